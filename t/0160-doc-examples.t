#!/usr/bin/python3
# The /model examples of the published API document (the reference our
# clients were written against), run as they are printed: the curl commands
# through /bin/sh with real curl, the Python snippets with exec(), BASE_URL
# replaced by the instance's address.  The snippets below are verbatim
# copies; the only change a check makes is said in its title.
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME")

CURL_ADD = r"""curl -X POST "BASE_URL/model/add" \
-H "Content-Type: application/json" \
-d '{
"modelname": "MyModel",
"modelkind": "regression",
"drift_detection": [{"is_true": 1, "method": 2}]
}'"""

PY_ADD = r"""import requests
payload = {
"modelname": "MyModel",
"modelkind": "regression",
"drift_detection": [{"is_true": 1, "method": 2}]
}
resp = requests.post("BASE_URL/model/add", json=payload)
print(resp.json())"""

PY_UPLOAD = r"""import requests
files = {
"file": open("model.pkl", "rb"),
"file_kind": (None, "model")
}
resp = requests.post("BASE_URL/model/1234/upload", files=files)
print(resp.json())"""

PY_ALL = r"""import requests
resp = requests.get(
"BASE_URL/model/all",
params={"skip": 0, "limit": 50}
)
print(resp.json())"""

PY_GETKIND = r"""import requests
kind = "regression"
resp = requests.get(f"BASE_URL/model/getkind/{kind}")
print(resp.json())"""

CURL_SEARCH = r'''curl -G "BASE_URL/model/search" \
--data-urlencode "tags=fast" \
--data-urlencode "tags=accuracy-focused" \
-H "Accept: application/json"'''

PY_SEARCH = r"""import requests
params = [("tags", "fast"), ("tags", "accuracy-focused")]
resp = requests.get("BASE_URL/model/search", params=params)
print(resp.json())"""

CURL_PATCH = r"""curl -X PATCH "BASE_URL/model/1234" \
-H "Content-Type: application/json" \
-d '{
"modeltags": ["updated-tag"],
"drift_detection": [{"is_true": 1, "method": 1}]
}'"""

PY_PATCH = r"""import requests
update = {
"modeltags": ["updated-tag"],
"drift_detection": [{"is_true": 1, "method": 1}]
}
resp = requests.patch("BASE_URL/model/1234", json=update)
print(resp.status_code)"""

# Section 2.1, "Model metadata", with its "featurelist": [...] written out.
E2E_METADATA = """{
"modelname": "Ridge",
"modelkind": "Regressor",
"hyperparameter": [
{
"parameter": "string",
"value": 0
}
],
"modelperformance": [
{
"metric": "Accuracy",
"order": 1,
"threshold": 0.89
}
],
"trainingresource": [
{
"resource_name": "GPU",
"value": 16,
"deploy": "string"
}
],
"runresource": [
{
"resource_name": "GPU",
"value": 16,
"deploy": "string"
}
],
"featurelist": [...],
"inference": [
{
"type": "string",
"value": "string"
}
],
"modeltags": [
"regression",
"fast"
],
"drift_detection": [
{
"is_true": 1,
"method": 0
}
]
}"""

# The diabetes data set of the document's Ridge example has ten features.
FEATURES = """[
{"feature_name": "age", "type": "cont", "kind": 0, "units": 1},
{"feature_name": "sex", "type": "cat", "kind": 1, "units": 0},
{"feature_name": "bmi", "type": "cont", "kind": 0, "units": 1},
{"feature_name": "bp", "type": "cont", "kind": 0, "units": 1},
{"feature_name": "s1", "type": "cont", "kind": 0, "units": 1},
{"feature_name": "s2", "type": "cont", "kind": 0, "units": 1},
{"feature_name": "s3", "type": "cont", "kind": 0, "units": 1},
{"feature_name": "s4", "type": "cont", "kind": 0, "units": 1},
{"feature_name": "s5", "type": "cont", "kind": 0, "units": 1},
{"feature_name": "s6", "type": "cont", "kind": 0, "units": 1}
]"""


def with_base(text, modelid=None):
    text = text.replace("BASE_URL", t.BASE_URL)
    return text.replace("/model/1234", "/model/" + modelid) if modelid else text


def run_curl(cmd):
    """Run a curl example through /bin/sh, adding only -sS and a --write-out
    of the status code; returns (status, body text)."""
    p = subprocess.run(["/bin/sh", "-c", cmd + r" -sS -w '\n%{http_code}'"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    out, _, code = p.stdout.rpartition("\n")
    if p.returncode != 0:
        t.diag("curl exited %d: %s" % (p.returncode, p.stderr))
    return (int(code) if code.isdigit() else None), out


def run_python(snippet, cwd=None):
    """exec() a Python example; returns (resp, what it printed)."""
    ns = {"__name__": "doc_example"}
    out = io.StringIO()
    here = os.getcwd()
    try:
        if cwd:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out):
            exec(compile(snippet, "<document example>", "exec"), ns)
    finally:
        os.chdir(here)
    return ns.get("resp"), out.getvalue()


def remember(model):
    if isinstance(model, dict) and model.get("modelid"):
        t.defer(t.delete, "/model/" + model["modelid"])


def parse(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def is_mymodel(m, name):
    t.ok(isinstance(m, dict) and t.same({k: m.get(k) for k in ("modelname", "modelkind", "drift_detection")},
                                        {"modelname": "MyModel", "modelkind": "regression",
                                         "drift_detection": [{"is_true": 1, "method": 2}]})
         and all(k in m for k in t.MODEL_KEYS),
         name, json.dumps(m, ensure_ascii=False))


# ---- POST /model/add ---------------------------------------------------------

status, text = run_curl(with_base(CURL_ADD))
t.is_(status, 201, "the curl example for POST /model/add answers 201")
created_curl = parse(text)
remember(created_curl)
is_mymodel(created_curl, "the curl example for POST /model/add prints the created MyModel")

resp, printed = run_python(with_base(PY_ADD))
t.is_(getattr(resp, "status_code", None), 201, "the Python example for POST /model/add answers 201")
created_py = resp.json() if resp is not None and resp.status_code == 201 else None
remember(created_py)
is_mymodel(created_py, "the Python example for POST /model/add gets the created MyModel")
t.ok("'modelname': 'MyModel'" in printed and "'modelid': '" in printed,
     "the Python example for POST /model/add prints the model with its new modelid", printed)

# ---- GET /model/all ------------------------------------------------------------

resp, printed = run_python(with_base(PY_ALL))
body = resp.json() if resp is not None and resp.status_code == 200 else None
t.ok(isinstance(body, list) and len(body) <= 50 and all("modelid" in m for m in body),
     "the Python example for GET /model/all (skip 0, limit 50) answers 200 with at most 50 models",
     t.describe(resp) if resp is not None else "no response")
t.ok(printed.startswith("["), "the Python example for GET /model/all prints the list", printed[:500])

# ---- GET /model/getkind/{modelkind} ---------------------------------------------

resp, printed = run_python(with_base(PY_GETKIND))
body = resp.json() if resp is not None and resp.status_code == 200 else None
t.ok(isinstance(body, list) and body and all(m.get("modelkind") == "regression" for m in body),
     "the Python example for GET /model/getkind/regression answers 200 with only regression models",
     t.describe(resp) if resp is not None else "no response")
# getkind returns every model of the kind unless limit asks for fewer
# (API.md), however many the instance holds.
t.ok(isinstance(body, list) and {created_curl and created_curl.get("modelid"),
                                 created_py and created_py.get("modelid")} <= set(t.ids(body)),
     "the Python example for GET /model/getkind/regression lists the two MyModel models just added")

# ---- GET /model/search -------------------------------------------------------------

fast = t.add_model(t.minimal_model(modelkind="doc-example", modeltags=["fast"]), "setup: register a model tagged fast")
focused = t.add_model(t.minimal_model(modelkind="doc-example", modeltags=["accuracy-focused", "x"]),
                      "setup: register a model tagged accuracy-focused")
wanted = {fast["modelid"], focused["modelid"]}

status, text = run_curl(with_base(CURL_SEARCH))
t.is_(status, 200, "the curl example for GET /model/search answers 200")
body = parse(text)
t.ok(isinstance(body, list) and all(set(m.get("modeltags") or []) & {"fast", "accuracy-focused"} for m in body),
     "the curl example for GET /model/search lists only models tagged fast or accuracy-focused", text[:2000])
# search returns every match unless limit asks for fewer (API.md).
t.ok(isinstance(body, list) and wanted <= set(t.ids(body)),
     "the curl example for GET /model/search finds the fast and the accuracy-focused model", text[:2000])

resp, printed = run_python(with_base(PY_SEARCH))
body = resp.json() if resp is not None and resp.status_code == 200 else None
t.ok(isinstance(body, list) and all(set(m.get("modeltags") or []) & {"fast", "accuracy-focused"} for m in body)
     and wanted <= set(t.ids(body)),
     "the Python example for GET /model/search answers 200 with the models tagged fast or accuracy-focused",
     t.describe(resp) if resp is not None else "no response")

# ---- PATCH /model/{model_id} ---------------------------------------------------------

if t.get("/model/1234").status_code == 404:
    status, text = run_curl(with_base(CURL_PATCH))
    t.ok(status == 404 and (parse(text) or {}).get("detail") == "model '1234' not found",
         "the curl example for PATCH, run literally on the placeholder id 1234, answers 404 model '1234' not found",
         "%s %s" % (status, text))
    resp, printed = run_python(with_base(PY_PATCH))
    t.is_(printed, "404\n", "the Python example for PATCH, run literally on the placeholder id 1234, prints 404")
else:
    t.skip("the PATCH examples on the placeholder id 1234 answer 404", "a model with id 1234 exists")
    t.skip("the PATCH examples on the placeholder id 1234 answer 404", "a model with id 1234 exists")

target = created_curl["modelid"] if isinstance(created_curl, dict) and "modelid" in created_curl else None
if target:
    status, text = run_curl(with_base(CURL_PATCH, target))
    t.is_(status, 200, "the curl example for PATCH, with 1234 replaced by a registered model's id, answers 200")
    m = parse(text) or {}
    t.is_([m.get("modeltags"), m.get("drift_detection"), m.get("modelname")],
          [["updated-tag"], [{"is_true": 1, "method": 1}], "MyModel"],
          "the curl example for PATCH updates modeltags and drift_detection and keeps the name")
    t.ok({"tag": "updated-tag"} in t.db_rows("SELECT tag FROM model_tags WHERE modelid = %s", target),
         "after the curl PATCH example the model is stored with the tag updated-tag")
else:
    for _ in range(3):
        t.skip("the curl example for PATCH on a registered model", "the curl example for POST /model/add failed")

target = created_py["modelid"] if isinstance(created_py, dict) else None
if target:
    resp, printed = run_python(with_base(PY_PATCH, target))
    t.is_(printed, "200\n",
          "the Python example for PATCH, with 1234 replaced by a registered model's id, prints 200")
    m = t.body_of(t.get("/model/" + target)) or {}
    t.is_([m.get("modeltags"), m.get("drift_detection")], [["updated-tag"], [{"is_true": 1, "method": 1}]],
          "the Python example for PATCH updates modeltags and drift_detection")
else:
    for _ in range(2):
        t.skip("the Python example for PATCH on a registered model", "the Python example for POST /model/add failed")

# ---- POST /model/{model_id}/upload -----------------------------------------------------

with tempfile.TemporaryDirectory() as tmp:
    import pickle
    with open(os.path.join(tmp, "model.pkl"), "wb") as f:
        pickle.dump({"a": 1}, f)
    resp, printed = run_python(with_base(PY_UPLOAD), cwd=tmp)
    t.ok(resp is not None and resp.status_code == 404
         and (t.body_of(resp) or {}).get("detail") == "model '1234' not found",
         "the Python example for POST /model/{id}/upload, run literally on the placeholder id 1234, answers 404",
         t.describe(resp) if resp is not None else "no response")
    target = t.add_model(t.minimal_model(), "setup: register a model to upload to")["modelid"]
    resp, printed = run_python(with_base(PY_UPLOAD, target), cwd=tmp)
    t.ok(resp is not None and resp.status_code == 201 and isinstance(t.body_of(resp), dict),
         "the Python example for POST /model/{id}/upload, with 1234 replaced by a registered model's id, answers 201",
         t.describe(resp) if resp is not None else "no response")

# ---- section 2.1: the end-to-end model metadata ------------------------------------------

text = E2E_METADATA.replace('"featurelist": [...]', '"featurelist": ' + FEATURES)
sent = json.loads(text)
resp = t.post("/model/add", data=text.encode(), headers={"Content-Type": "application/json"})
t.is_status(resp, 201, "the end-to-end example's model metadata (2.1, featurelist written out) registers with 201")
got = t.body_of(resp) or {}
remember(got)
t.is_({k: got.get(k) for k in sent}, sent, "the end-to-end example's metadata comes back exactly as sent")
t.like(resp.text, r'"threshold"\s*:\s*0\.89\s*[,}]', "the end-to-end example's threshold comes back written as 0.89")
t.like(resp.text, r'"value"\s*:\s*0\s*[,}]', "the end-to-end example's hyperparameter value 0 comes back as 0")
t.like(got.get("modelid"), t.UUID4_RE, "the end-to-end example gets a model_id for the artifact step (UUID v4)")
t.is_(t.body_of(t.get("/model/" + str(got.get("modelid")))), got,
      "GET /model/{id} returns the end-to-end example's model unchanged")

t.done()
