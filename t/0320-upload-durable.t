#!/usr/bin/python3
# Uploads that lose nothing and store nothing twice: an Idempotency-Key
# sent again (also concurrently, also by the spooler's training upload)
# answers with the version stored the first time; a key reused for another
# file is refused; and when the database connection is lost during the
# upload's COMMIT, the worker looks on a new connection whether the row
# landed before it removes the file (fault injected through the test
# build's MLC_TEST_HOOKS).
import hashlib
import os
import pickle
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR")
import requests

var = os.environ["MLC_VAR"]
store = os.environ.get("MLC_ARTIFACTS") or os.path.join(var, "artifacts")


def upload(mid, kind, name, data, key=None, session=None):
    headers = {"Idempotency-Key": key} if key is not None else {}
    post = session.post if session else requests.post
    return post(t.BASE_URL + "/model/%s/upload" % mid, headers=headers, timeout=60,
                files={"file": (name, data), "file_kind": (None, kind)})


def versions(mid, kind):
    return [r["version"] for r in t.db_rows("SELECT version FROM artifacts WHERE modelid = %s AND "
                                            "filekind = %s ORDER BY version", mid, kind)]


def store_files(mid, kind):
    d = os.path.join(store, mid, kind)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


pkl = pickle.dumps({"w": [1, 2, 3]}, protocol=4)
pkl2 = pickle.dumps({"w": [4, 5, 6]}, protocol=4)
mid = t.add_model(t.minimal_model(), "a model to upload to")["modelid"]

# ---- Idempotency-Key ------------------------------------------------------------------------

first = upload(mid, "model", "model.pkl", pkl, key="k-1")
t.is_status(first, 201, "an upload with an Idempotency-Key answers 201")
t.is_(first.headers.get("Idempotent-Replayed"), None, "... a first one is not marked replayed")
second = upload(mid, "model", "model.pkl", pkl, key="k-1")
t.is_status(second, 201, "the same upload with the same key answers 201 again")
b1, b2 = t.body_of(first) or {}, t.body_of(second) or {}
t.is_([b2.get(k) for k in ("fileid", "version", "sha256", "created_at")],
      [b1.get(k) for k in ("fileid", "version", "sha256", "created_at")],
      "... with the row stored the first time (same fileid, version, sha256, created_at)")
t.is_(second.headers.get("Idempotent-Replayed"), "true", "... marked Idempotent-Replayed: true")
t.is_(versions(mid, "model"), [1], "one version is stored")
t.is_(len(store_files(mid, "model")), 1, "one file is in the store")
t.is_(t.db_rows("SELECT idempotency_key FROM artifacts WHERE fileid = %s", b1.get("fileid")),
      [{"idempotency_key": "k-1"}], "the key is kept with the artifact row")
t.is_(os.listdir(os.path.join(store, ".tmp")), [], "the replayed upload's bytes are not left behind")

other = upload(mid, "model", "model.pkl", pkl2, key="k-1")
t.is_422(other, [(["header", "idempotency-key"], None, "value_error.idempotency_key.reused")],
         "the key sent with another file is a 422 on the header")
t.like((t.body_of(other) or {"detail": [{}]})["detail"][0].get("msg", ""),
       "was used for another file of this model", "... saying the key was used for another file")
t.is_(upload(mid, "data", "t.csv", b"a,b\n1,2\n", key="k-1").status_code, 422,
      "... also for the same key with another file kind")
t.is_(versions(mid, "model"), [1], "nothing more is stored")
plain = upload(mid, "model", "model.pkl", pkl)
t.is_((plain.status_code, (t.body_of(plain) or {}).get("version")), (201, 2),
      "the same file without a key is a new version")
mid2 = t.add_model(t.minimal_model(), "a second model")["modelid"]
t.is_((upload(mid2, "model", "model.pkl", pkl, key="k-1").json() or {}).get("version"), 1,
      "a key is one model's: the same key on another model stores there")

for bad, why in (("", "empty"), ("a b", "a space"), ("x" * 256, "256 characters"),
                 ("caf\u00e9".encode().decode("latin-1"), "a byte outside ASCII")):
    r = upload(mid, "model", "model.pkl", pkl, key=bad)
    t.is_422(r, [(["header", "idempotency-key"], None, "value_error.idempotency_key")],
             "an Idempotency-Key with %s is a 422 on the header" % why)
t.is_(upload(mid, "model", "model.pkl", pkl2, key="x" * 255).status_code, 201,
      "a key of 255 characters is accepted")

# Concurrent uploads with one key: one version.
mid3 = t.add_model(t.minimal_model(), "a model for concurrent keyed uploads")["modelid"]
N = 6
answers = [None] * N
barrier = threading.Barrier(N)


def send(i):
    with requests.Session() as s:
        barrier.wait()
        answers[i] = upload(mid3, "model", "model.pkl", pkl, key="race", session=s)


threads = [threading.Thread(target=send, args=(i,)) for i in range(N)]
for th in threads:
    th.start()
for th in threads:
    th.join()
t.is_(sorted({a.status_code for a in answers}), [201], "%d concurrent keyed uploads all answer 201" % N)
t.is_({(t.body_of(a) or {}).get("fileid") for a in answers}.__len__(), 1, "... all with one fileid")
t.is_(versions(mid3, "model"), [1], "... and one version is stored")
t.is_(sum(1 for a in answers if a.headers.get("Idempotent-Replayed") == "true"), N - 1,
      "... %d of them replayed" % (N - 1))

# The spooler's training upload carries training-<id>: sent twice, one version.
from mlcpy import training, uploadclient  # noqa: E402
path = os.path.join(var, "t0320-model.pkl")
with open(path, "wb") as f:
    f.write(pkl2)
t.defer(os.unlink, path)
key = training.idempotency_key("3f1c0000-0000-4000-8000-000000000001")
t.is_(key, "training-3f1c0000-0000-4000-8000-000000000001", "a training's key is training-<id>")
s1, j1 = uploadclient.upload(t.BASE_URL, mid3, path, key=key, token=t.TOKEN)
s2, j2 = uploadclient.upload(t.BASE_URL, mid3, path, key=key, token=t.TOKEN)
t.is_((s1, s2, (j1 or {}).get("version"), (j2 or {}).get("version")), (201, 201, 2, 2),
      "the spooler's upload of a trained model, sent twice, stores version 2 once")
t.is_(versions(mid3, "model"), [1, 2], "... no third version")

# ---- a lost COMMIT ---------------------------------------------------------------------------

hook = os.path.join(var, "test-lost-commit")
mid4 = t.add_model(t.minimal_model(), "a model for lost commits")["modelid"]
with open(hook, "w") as f:
    f.write("landed")
r = upload(mid4, "model", "model.pkl", pkl)
if os.path.exists(hook):
    os.unlink(hook)
    t.skip("lost COMMIT checks", "mlc-api is not the test build (MLC_TEST_HOOKS)")
    t.done()
body = t.body_of(r) or {}
t.is_((r.status_code, body.get("version")), (201, 1),
      "a COMMIT that landed although its answer was lost: 201 with the stored version")
t.is_(versions(mid4, "model"), [1], "... the row is there")
t.is_(store_files(mid4, "model"), ["v1-model.pkl"], "... and so is its file")
got = t.get("/model/%s/files/model" % mid4)
t.is_((got.status_code, hashlib.sha256(got.content).hexdigest()),
      (200, hashlib.sha256(pkl).hexdigest()), "... which downloads with its bytes")

with open(hook, "w") as f:
    f.write("not landed")
r = upload(mid4, "model", "model.pkl", pkl2)
t.is_error(r, 503, "a COMMIT lost before it landed: 503")
t.is_(versions(mid4, "model"), [1], "... no row for it")
t.is_(store_files(mid4, "model"), ["v1-model.pkl"], "... and its file is gone from the store")
t.is_(os.listdir(os.path.join(store, ".tmp")), [], "... and from the temporary directory")
r = upload(mid4, "model", "model.pkl", pkl2)
t.is_((r.status_code, (t.body_of(r) or {}).get("version")), (201, 2),
      "sent again, the upload stores version 2")
t.done()
