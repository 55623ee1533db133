#!/usr/bin/python3
# POST /model/{id}/upload and the artifact downloads: every kind through
# the document's own Python and curl forms, versions, exact bytes back,
# file names that try to escape the store, and the format checks.
import hashlib
import os
import pickle
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR")
import requests

BASE = t.BASE_URL
store = os.environ.get("MLC_ARTIFACTS") or os.path.join(os.environ["MLC_VAR"], "artifacts")
work = os.path.join(os.environ["MLC_VAR"], "t0300")
os.makedirs(work, exist_ok=True)


def write(name, data):
    path = os.path.join(work, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def sha(data):
    return hashlib.sha256(data).hexdigest()


pkl_bytes = pickle.dumps({"coef": [1.5, 2.5]}, protocol=4)
csv_bytes = b"age,bmi,target\n59,32.1,151\n48,21.6,75\n"
files = {
    "model": write("model.pkl", pkl_bytes),
    "data": write("train.csv", csv_bytes),
    "code": write("train.py", b"import sys\nprint(sys.argv)\n"),
    "env": write("requirements.txt", b"scikit-learn>=1.0\nnumpy\n"),
}
model = t.add_model(t.minimal_model(), "a model to upload artifacts to")
mid = model["modelid"]

# The document's Python example, for every kind.
for kind, path in files.items():
    with open(path, "rb") as fh:
        resp = requests.post(BASE + "/model/%s/upload" % mid,
                             files={"file": open(path, "rb"), "file_kind": (None, kind)})
    t.is_status(resp, 201, "python-requests upload of a %s file answers 201" % kind)
    body = t.body_of(resp) or {}
    data = open(path, "rb").read()
    t.is_({k: body.get(k) for k in ("modelid", "filekind", "filename", "version", "size", "sha256")},
          {"modelid": mid, "filekind": kind, "filename": os.path.basename(path), "version": 1,
           "size": len(data), "sha256": sha(data)},
          "the %s FileSchema names the model, kind, file, version 1, size and SHA-256" % kind)
    t.like(body.get("created_at", ""), t.ISO_UTC_RE, "the %s upload has an ISO 8601 UTC created_at" % kind)
    t.ok(isinstance(body.get("fileid"), int) and body.get("contenttype"),
         "the %s upload has a fileid and a contenttype" % kind)

# The curl form: -F file=@... -F file_kind=...
out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-F", "file=@" + files["model"],
                      "-F", "file_kind=model", BASE + "/model/%s/upload" % mid] + t.curl_auth(),
                     capture_output=True, text=True)
status = out.stdout.rsplit("\n", 1)[-1]
t.is_(status, "201", "curl -F file=@model.pkl -F file_kind=model answers 201")

# file_kind before file, and a second upload of a kind is the next version.
pkl2 = pickle.dumps({"coef": [9.0]}, protocol=5)
resp = requests.post(BASE + "/model/%s/upload" % mid,
                     files=[("file_kind", (None, "model")), ("file", ("v3.pkl", pkl2))])
t.is_status(resp, 201, "file_kind may come before file in the body")
t.is_((t.body_of(resp) or {}).get("version"), 3, "each upload of a kind adds the next version")

dl = requests.get(BASE + "/model/%s/files/model" % mid)
t.is_status(dl, 200, "GET /model/{id}/files/model answers 200")
t.is_(sha(dl.content), sha(pkl2), "the download without ?version is the latest version, byte for byte")
t.is_(dl.headers.get("X-Checksum-SHA256"), sha(pkl2), "the download carries its SHA-256 in X-Checksum-SHA256")
t.like(dl.headers.get("Content-Disposition", ""), r'^attachment; filename="v3\.pkl"$',
       "the download is an attachment with the stored file name")
dl1 = requests.get(BASE + "/model/%s/files/model" % mid, params={"version": 1})
t.is_(sha(dl1.content), sha(pkl_bytes), "?version=1 returns the first version's exact bytes")
t.is_error(requests.get(BASE + "/model/%s/files/model" % mid, params={"version": 99}), 404,
           "a version that does not exist")
t.is_error(requests.get(BASE + "/model/%s/files/bogus" % mid), 422, "an unknown kind in the download path")
t.is_error(requests.get(BASE + "/_artifacts/%s/model/v1-model.pkl" % mid), 404,
           "the store's internal location is not reachable from outside")

listing = requests.get(BASE + "/model/%s/files" % mid)
t.is_status(listing, 200, "GET /model/{id}/files answers 200")
t.is_(sorted((f["filekind"], f["version"]) for f in listing.json()),
      [("code", 1), ("data", 1), ("env", 1), ("model", 1), ("model", 2), ("model", 3)],
      "the listing has every kind and every version")
rows = t.db_rows("SELECT filekind, version, size, sha256, path FROM artifacts WHERE modelid = %s "
                 "ORDER BY filekind, version", mid)
t.is_(len(rows), 6, "one artifacts row per stored version")
t.ok(all(os.path.getsize(os.path.join(store, r["path"])) == r["size"] for r in rows),
     "every row points at a file of the recorded size")
t.ok(all(sha(open(os.path.join(store, r["path"]), "rb").read()) == r["sha256"] for r in rows),
     "every stored file has the recorded SHA-256")

# Hostile file names never leave the model's directory.
for hostile in ("../../../../etc/passwd", "..\\..\\win.ini", "/abs/path.pkl", ".hidden",
                "a" * 1000 + ".pkl", "na\u00efve \u2603.pkl", "..", "x/../../y.pkl"):
    resp = requests.post(BASE + "/model/%s/upload" % mid,
                         files={"file": (hostile, b"#!/bin/sh\n"), "file_kind": (None, "code")})
    body = t.body_of(resp) or {}
    name = body.get("filename", "")
    t.ok(resp.status_code == 201 and "/" not in name and "\\" not in name
         and not name.startswith(".") and 0 < len(name) <= 100,
         "file name %r is stored as a plain name inside the store (%r)" % (hostile[:40], name[:60]))
resp = requests.post(BASE + "/model/%s/upload" % mid,
                     files={"file": ("b" * 5000 + ".py", b"#!/bin/sh\n"), "file_kind": (None, "code")})
t.is_422(resp, [(("body",), None, "value_error.multipart")], "a file name over 1024 bytes is refused")
paths = [r["path"] for r in t.db_rows("SELECT path FROM artifacts WHERE modelid = %s", mid)]
t.ok(all(os.path.realpath(os.path.join(store, p)).startswith(os.path.realpath(os.path.join(store, mid)) + "/")
         for p in paths), "every stored path resolves inside the model's directory")
t.ok(not os.path.exists(os.path.join(store, "etc")) and not os.path.exists("/abs/path.pkl"),
     "nothing was written outside the store")

# Validation.
up = "/model/%s/upload" % mid
t.is_error(requests.post(BASE + "/model/00000000-0000-4000-8000-000000000000/upload",
                         files={"file": ("m.pkl", pkl_bytes), "file_kind": (None, "model")}), 404,
           "upload to an unknown model")
t.is_422(requests.post(BASE + up, files={"file": ("m.pkl", pkl_bytes)}),
         [(("body", "file_kind"), "field required", "value_error.missing")], "upload without file_kind")
t.is_422(requests.post(BASE + up, files={"file_kind": (None, "model")}),
         [(("body", "file"), "field required", "value_error.missing")], "upload without a file")
resp = requests.post(BASE + up, files={"file": ("m.pkl", pkl_bytes), "file_kind": (None, "weights")})
t.is_422(resp, [(("body", "file_kind"), None, "value_error.const")], "an unknown file_kind")
t.like(str(t.body_of(resp)), r"'model', 'data', 'code', 'env'", "the unknown-kind error lists the allowed kinds")
t.is_422(requests.post(BASE + up, files={"file": ("m.pkl", b""), "file_kind": (None, "code")}),
         [(("body", "file"), None, "value_error.empty")], "an empty file")
t.is_422(requests.post(BASE + up, files={"file": ("m.pkl", b"not a pickle"), "file_kind": (None, "model")}),
         [(("body", "file"), None, "value_error.pickle")], "a model file that is not a pickle")
resp = requests.post(BASE + up, files={"file": ("d.csv", b"a,b\n1,2\n3\n"), "file_kind": (None, "data")})
t.is_422(resp, [(("body", "file"), None, "value_error.csv")], "training data with a short row")
t.like(str(t.body_of(resp)), r"line 3", "the CSV error names the line")
t.is_422(requests.post(BASE + up, data=b"{}", headers={"Content-Type": "application/json"}),
         [(("header", "content-type"), None, "value_error.content_type")], "a body that is not multipart")
resp = requests.post(BASE + up, data=b"--xyz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",
                     headers={"Content-Type": "multipart/form-data; boundary=xyz"})
t.is_422(resp, [(("body",), None, "value_error.multipart")], "a multipart body without its closing boundary")
t.is_(len(t.db_rows("SELECT 1 FROM artifacts WHERE modelid = %s", mid)), 14,
      "rejected uploads added no rows")
t.is_(sorted(os.listdir(os.path.join(store, ".tmp"))) if os.path.isdir(os.path.join(store, ".tmp")) else [],
      [], "rejected uploads left no temporary files")

# Deleting the model removes its files.
t.is_status(requests.delete(BASE + "/model/" + mid), 200, "DELETE /model/{id} answers 200")
t.ok(not os.path.exists(os.path.join(store, mid)), "the model's artifact directory is gone")
t.is_(t.db_rows("SELECT 1 FROM artifacts WHERE modelid = %s", mid), [], "its artifact rows are gone")
t.done()
