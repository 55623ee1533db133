#!/usr/bin/python3
# A model runtime runs the uploaded model's code, so whatever it answers is
# untrusted.  One deployed "model" picks, by the first value of the row it
# is given, something odd to return from predict() - a string, a dict, a
# list nested 10,000 deep, a list of the wrong length, NaN and infinities,
# a 50 MiB list - or to make the runtime itself send - a list instead of an
# object, NaN text, bytes that are not UTF-8, JSON nested 10,000 deep, an
# explanation that is not an object, an empty body, an error that is not
# JSON.  Each call answers 502 with a detail naming what was wrong and is
# recorded as a failed operation; no worker dies; the service and the
# deployment go on answering.
import json
import os
import pickle
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR")
import mlcmodels as mm

var = os.environ["MLC_VAR"]

# The model.  Its code runs in the runtime when the pickle is loaded; it
# replaces json.dumps there, so that a predict() can choose the text of the
# runtime's next answer in its thread.
HOSTILE = r'''
import json, threading

_orig_dumps = json.dumps
_next = {}


class _NotUTF8(str):
    def encode(self, *args, **kw):
        return b'{"prediction": ["\xff"]}'


def _dumps(obj, *args, **kw):
    text = _next.pop(threading.get_ident(), None)
    return _orig_dumps(obj, *args, **kw) if text is None else text


json.dumps = _dumps


def _send(text):
    _next[threading.get_ident()] = text


def _deep(n):
    v = 0
    for _ in range(n):
        v = [v]
    return v


class Hostile:
    def predict(self, X):
        mode, n = int(X[0][0]), len(X)
        if mode == 1:
            return "a string"
        if mode == 2:
            return {"a": 1}
        if mode == 3:
            return [_deep(10000)] * n
        if mode == 4:
            return [_deep(40)] * n
        if mode == 5:
            return list(range(n + 2))
        if mode == 6:
            return [[float("nan"), float("inf"), float("-inf")][i % 3] for i in range(n)]
        if mode == 7:
            return ["x" * (1 << 20)] * 50
        if mode == 8:
            _send("[1, 2, 3]")
        if mode == 9:
            _send('{"prediction": [NaN]}')
        if mode == 10:
            _send(_NotUTF8("x"))
        if mode == 11:
            _send('{"prediction": ' + "[" * 10000 + "]" * 10000 + "}")
        if mode == 12:
            _send('{"prediction": [0], "explanation": [1]}')
        if mode == 13:
            _send("<html>Internal Server Error</html>")
            raise RuntimeError("boom")
        if mode == 14:
            _send("")
        if mode == 15:
            _send('"just a string"')
        if mode == 16:
            _send('{"prediction": [0]}')
        return [float(row[1]) for row in X]


model = Hostile()
'''


class Pickled:
    def __reduce__(self):
        return (eval, ("(lambda ns: (exec(%r, ns), ns['model'])[1])({'__name__': 'hostile'})" % HOSTILE,))


def workers():
    """Every mlc-api worker of the instance (of both masters on the Galera
    topology)."""
    return t.api_workers()


def deployed(model, **kw):
    r = mm.deploy(model["modelid"], **kw)
    dep = (t.body_of(r) or {}).get("deployment_id")
    st = mm.wait_status(dep) if dep else None
    if (st or {}).get("status") != "deployed":
        raise RuntimeError("deployment did not come up: %s %s" % (t.describe(r), st))
    return dep


def predict(dep, body):
    return t.post("/deployment/%s/predict" % dep, json=body, timeout=60)


def operation(opid):
    rows = t.db_rows("SELECT data, result FROM operations WHERE operation_uuid = %s", opid or "")
    if not rows:
        return None, None
    data, result = rows[0]["data"], rows[0]["result"]
    return (json.loads(data) if data is not None else None), json.loads(result)


before = workers()
names = ["mode", "x"]
model = mm.register(None, None, None, names, with_data=False, pickled=pickle.dumps(Pickled(), protocol=4))
dep = deployed(model, ownerid="agent-hostile")
dep_link = deployed(model, ownerid="agent-hostile", inference_data=1)

r = predict(dep, {"data": [0, 2.5]})
t.is_status(r, 200, "the model answers a sane call")
t.is_((t.body_of(r) or {}).get("prediction"), [2.5], "with its prediction")

MODEL_CALLS = [
    (1, "returns a string", r"^deployment '%s' sent an answer that cannot be used: prediction is a string, not a list$"),
    (2, "returns a dict", r"^deployment '%s' sent an answer that cannot be used: prediction is an object, not a list$"),
    (3, "returns a list nested 10,000 deep",
     r"^deployment '%s' failed: model prediction failed: RecursionError: maximum recursion depth exceeded"),
    (4, "returns a list nested 40 deep (deeper than the gateway parses)",
     r"^deployment '%s' sent an answer that cannot be used: the answer is not valid JSON: at byte \d+: nesting too deep$"),
    (5, "returns 3 values for 1 row", r"^deployment '%s' sent an answer that cannot be used: prediction has 3 values for 1 row$"),
    (7, "returns a 50 MiB list", r"^deployment '%s' sent an answer over the 16777216 byte limit \(MLC_PREDICT_MAX_REPLY\)$"),
    (8, "makes the runtime answer a list instead of an object",
     r"^deployment '%s' sent an answer that cannot be used: the answer is a list, not an object$"),
    (9, "makes the runtime answer NaN",
     r"^deployment '%s' sent an answer that cannot be used: the answer is not valid JSON: at byte 16: unexpected character$"),
    (10, "makes the runtime answer bytes that are not UTF-8",
     r"^deployment '%s' sent an answer that cannot be used: the answer is not valid JSON: at byte 17: invalid utf-8 string$"),
    (11, "makes the runtime answer JSON nested 10,000 deep",
     r"^deployment '%s' sent an answer that cannot be used: the answer is not valid JSON: at byte \d+: nesting too deep$"),
    (12, "makes the runtime answer an explanation that is a list",
     r"^deployment '%s' sent an answer that cannot be used: explanation is a list, not an object$"),
    (13, "raises, and makes the runtime's 500 answer HTML", r"^deployment '%s' failed: the answer is not JSON$"),
    (14, "makes the runtime answer an empty body", r"^deployment '%s' sent an answer that cannot be used: the answer is empty$"),
    (15, "makes the runtime answer a JSON string",
     r"^deployment '%s' sent an answer that cannot be used: the answer is a string, not an object$"),
]
for mode, what, detail in MODEL_CALLS:
    row = [mode, 1.0]
    r = predict(dep, {"data": row})
    body = t.is_error(r, 502, "a model that %s" % what)
    t.like(body.get("detail"), detail % dep, "a model that %s: the detail says what was wrong" % what)
    data, result = operation(body.get("operationid"))
    t.is_((data, result), ([row], {"error": body.get("detail"), "status": 502}),
          "a model that %s: the call is recorded as failed, its rows and the detail as result {\"error\": ...}" % what)

# Non-finite numbers are no JSON: the runtime sends them as null.
rows = [[6, 1.0], [6, 2.0], [6, 3.0]]
r = predict(dep, {"data": rows})
t.is_status(r, 200, "a model that returns NaN, inf and -inf: 200")
t.is_((t.body_of(r) or {}).get("prediction"), [None, None, None], "NaN, inf and -inf come back as null")
data, result = operation((t.body_of(r) or {}).get("operationid"))
t.is_((data, result), (rows, [None, None, None]), "and are recorded so")

# ---- data links ----
csvs = {"/ok.csv": b"mode,x\n0,1.5\n0,2.5\n", "/no-data.csv": b"mode,x\n16,1\n",
        "/short.csv": b"mode,x\n5,1\n5,2\n", "/latin1.csv": b"mode,x\n0,caf\xe9\n"}


srv = mm.CSVServer(csvs)
base = srv.base
if "127.0.0.1" not in os.environ.get("MLC_LINK_ALLOW_HOSTS", "").split(","):
    t.skip("data links to a hostile runtime", "MLC_LINK_ALLOW_HOSTS lacks 127.0.0.1")
else:
    r = predict(dep_link, {"data_link": base + "/ok.csv"})
    t.is_((r.status_code, (t.body_of(r) or {}).get("prediction")), (200, [1.5, 2.5]),
          "a data link to the model predicts its rows")
    for path, what, detail in (
            ("/no-data.csv", "an answer without the rows it read",
             r"^deployment '%s' sent an answer that cannot be used: the answer has no data \(the rows read from the CSV\)$"),
            ("/short.csv", "4 predictions for 2 rows read",
             r"^deployment '%s' sent an answer that cannot be used: prediction has 4 values for 2 rows$")):
        r = predict(dep_link, {"data_link": base + path})
        body = t.is_error(r, 502, "a data link and %s" % what)
        t.like(body.get("detail"), detail % dep_link, "a data link and %s: the detail says so" % what)
        data, result = operation(body.get("operationid"))
        t.is_((data, result), (None, {"error": body.get("detail"), "status": 502}),
              "a data link and %s: recorded as failed (the rows the runtime read are unknown)" % what)
    t.is_422(predict(dep_link, {"data_link": base + "/latin1.csv"}),
             [(("body", "data_link"), "data_link is not UTF-8 text: line 2 has a byte that is not UTF-8 (0xe9)",
               "value_error.csv")], "a data link to a CSV that is not UTF-8 (Latin-1)")
srv.shutdown()

# ---- nothing went down ----
r = predict(dep, {"data": [[0, 7.0], [0, 8.0]]})
t.is_((r.status_code, (t.body_of(r) or {}).get("prediction")), (200, [7.0, 8.0]),
      "the deployment still answers a sane call afterwards")
codes = [t.get("/health").status_code for _ in range(20)]
t.is_(sorted(set(codes)), [200], "GET /health keeps answering 200")
t.is_status(t.get("/model/all", params={"limit": 1}), 200, "GET /model/all keeps answering")
t.is_(workers(), before, "no worker died: the mlc-api master has the same children")
t.done()
