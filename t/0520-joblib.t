#!/usr/bin/python3
# Models saved with joblib.dump, plain and compressed: accepted at upload,
# deployed, and predicting exactly what the same model pickled does.  Files
# that are neither a pickle nor a joblib file, compressed data that holds no
# pickle, lz4 and the pre-0.10 'ZF' format are refused with a 422 that says
# why; a file cut short after its start is found at deploy time; training
# scripts may save with joblib.dump.
import bz2
import gzip
import lzma
import os
import pickle
import random
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR")
import joblib
import mlcmodels as mm
import numpy as np
from sklearn.linear_model import Ridge

work = os.path.join(os.environ["MLC_VAR"], "t0520")
os.makedirs(work, exist_ok=True)


def dumped(obj, compress):
    """The bytes joblib.dump writes for obj with this compress argument."""
    path = os.path.join(work, "m-%s.joblib" % t.uniq())
    joblib.dump(obj, path, compress=compress)
    with open(path, "rb") as f:
        return f.read()


def upload(modelid, data, name="model.joblib"):
    return t.post("/model/%s/upload" % modelid,
                  files={"file": (name, data), "file_kind": (None, "model")})


def deploy_and_predict(modelid, rows):
    """(status row, prediction list or None); the deployment is deleted."""
    r = mm.deploy(modelid)
    dep = (t.body_of(r) or {}).get("deployment_id")
    st = mm.wait_status(dep) if dep else None
    pred = None
    if (st or {}).get("status") == "deployed":
        resp = t.post("/deployment/%s/predict" % dep, json={"data": rows})
        pred = (t.body_of(resp) or {}).get("prediction") if resp.status_code == 200 else None
    if dep:
        t.http("DELETE", "/deployment/" + dep, timeout=30)
    return st, pred


reg, X, y, names = mm.diabetes_ridge()
rows = X[:20].tolist()

# The reference: the same model as a plain pickle, deployed the usual way.
ref = mm.register(reg, X, y, names, with_data=False)
st, ref_pred = deploy_and_predict(ref["modelid"], rows)
t.is_((st or {}).get("status"), "deployed", "the pickled reference model deploys")
t.ok(ref_pred is not None and np.max(np.abs(np.array(ref_pred) - reg.predict(X[:20]))) < 1e-9,
     "the pickled model predicts what the model does in-process")

# ---- joblib.dump, every compression the server loads ----
variants = [
    ("plain", 0, b"\x80"),
    ("compress=3 (zlib)", 3, b"\x78"),
    ("compress=('zlib', 9)", ("zlib", 9), b"\x78"),
    ("compress=('gzip', 3)", ("gzip", 3), b"\x1f\x8b"),
    ("compress=('bz2', 3)", ("bz2", 3), b"BZh"),
    ("compress=('xz', 3)", ("xz", 3), b"\xfd7zXZ\x00"),
    ("compress=('lzma', 3)", ("lzma", 3), b"\x5d\x00\x00"),
]
for label, compress, magic in variants:
    data = dumped(reg, compress)
    t.ok(data.startswith(magic), "joblib.dump %s writes a file starting with %r" % (label, magic))
    m = t.add_model(t.minimal_model(modelkind="regression", featurelist=mm.featurelist(names)),
                    "register a model for joblib.dump %s" % label)
    resp = upload(m["modelid"], data)
    t.is_status(resp, 201, "upload of a joblib.dump %s file answers 201" % label)
    t.is_((t.body_of(resp) or {}).get("size"), len(data), "the %s file is stored whole" % label)
    st, pred = deploy_and_predict(m["modelid"], rows)
    t.is_((st or {}).get("status"), "deployed", "the joblib.dump %s model deploys" % label,
          "status: %r" % (st,))
    t.is_(pred, ref_pred, "the joblib.dump %s model predicts exactly what the pickled one does" % label)

# A random forest has many arrays written inline after their wrappers.
clf, Xi, yi, inames = mm.iris_forest(20)
m = t.add_model(t.minimal_model(modelkind="classification", featurelist=mm.featurelist(inames)),
                "register a random forest saved with joblib.dump")
t.is_status(upload(m["modelid"], dumped(clf, 0)), 201, "a plain joblib.dump random forest is accepted")
st, pred = deploy_and_predict(m["modelid"], Xi[::10].tolist())
t.is_(pred, clf.predict(Xi[::10]).tolist(), "the joblib.dump random forest predicts as in-process")

# ---- refused at upload ----
bad = t.add_model(t.minimal_model(), "a model to refuse files for")
bid = bad["modelid"]
pickled = pickle.dumps({"coef": [1.0]}, protocol=4)
noise = b"\x00" + random.Random(520).randbytes(8191)
# The .lzma header: properties, dictionary size (little-endian), length.
big_dict = lzma.compress(pickled, format=lzma.FORMAT_ALONE)
big_dict = big_dict[:1] + (1536 << 20).to_bytes(4, "little") + big_dict[5:]
refused = [
    ("a random binary file", noise, r"must be a Python pickle .* or a file joblib\.dump wrote"),
    ("a text file", b"model = Ridge(alpha=1.0)\nmodel.fit(X, y)\n",
     r"must be a Python pickle .* or a file joblib\.dump wrote"),
    ("a pickle of protocol 1", pickle.dumps({"a": 1}, protocol=1),
     r"must be a Python pickle \(protocol 2 to 5\)"),
    ("zlib data that holds text", zlib.compress(b"hello, world\n" * 100),
     r"zlib data does not start with a pickle"),
    ("gzip data that holds text", gzip.compress(b"hello, world\n" * 100),
     r"gzip data does not start with a pickle"),
    ("bz2 data that holds text", bz2.compress(b"hello, world\n" * 100),
     r"bz2 data does not start with a pickle"),
    ("xz data that holds text", lzma.compress(b"hello, world\n" * 100),
     r"xz data does not start with a pickle"),
    ("lzma data that holds text", lzma.compress(b"hello, world\n" * 100, format=lzma.FORMAT_ALONE),
     r"lzma data does not start with a pickle"),
    ("a zlib header followed by garbage", b"\x78\x9c" + b"\xff" * 64, r"not valid zlib data"),
    ("a gzip file cut after its header", gzip.compress(pickled)[:12],
     r"gzip data ends before a pickle starts"),
    ("a zlib stream cut after one byte", zlib.compress(pickled)[:1],
     r"zlib data ends before a pickle starts"),
    ("an lz4 frame", b"\x04\x22\x4d\x18" + b"\x64\x40\xa7" + b"\x00" * 16, r"lz4"),
    ("a joblib file of the 'ZF' format", b"ZF0x2a" + b" " * 15 + zlib.compress(pickled),
     r"before 0\.10"),
    ("lzma data that declares a 1.5 GiB dictionary", big_dict, r"needs more than \d+ MiB of memory"),
]
for label, data, pattern in refused:
    resp = upload(bid, data)
    t.is_422(resp, [(("body", "file"), None, "value_error.pickle")], label + " as a model file")
    t.like(str((t.body_of(resp) or {}).get("detail")), pattern, label + ": the 422 says why")
t.is_(t.db_rows("SELECT 1 FROM artifacts WHERE modelid = %s", bid), [],
      "the refused files added no rows")

# ---- accepted at upload, found at deploy ----
# A decompression bomb behind a pickle start: the upload check reads only
# the first bytes, so it is quick; the runtime stops at the first bad opcode.
zc = zlib.compressobj(9)
bomb = zc.compress(b"\x80\x04") + b"".join(zc.compress(bytes(1 << 20)) for _ in range(256)) + zc.flush()
m = t.add_model(t.minimal_model(modelkind="regression", featurelist=mm.featurelist(names)),
                "register a model for a zlib bomb")
started = time.monotonic()
resp = upload(m["modelid"], bomb)
t.is_status(resp, 201, "a %d KiB zlib file that expands to 256 MiB after a pickle start is accepted"
            % (len(bomb) >> 10))
t.ok(time.monotonic() - started < 10, "its upload check does not decompress it whole")
st, _ = deploy_and_predict(m["modelid"], rows)
t.is_((st or {}).get("status"), "failed", "the bomb's deployment fails")
t.like((st or {}).get("reason") or "", r"^model failed to load: UnpicklingError: invalid load key, "
       r"b'\\x00'$", "the reason names the first byte that is no pickle opcode")

# A compressed file cut in half: its start is a pickle, its end is missing.
half = dumped(reg, 3)
half = half[:len(half) // 2]
m = t.add_model(t.minimal_model(modelkind="regression", featurelist=mm.featurelist(names)),
                "register a model for a truncated joblib file")
t.is_status(upload(m["modelid"], half), 201, "a compress=3 file cut in half is accepted at upload")
st, _ = deploy_and_predict(m["modelid"], rows)
t.is_((st or {}).get("status"), "failed", "its deployment fails")
t.like((st or {}).get("reason") or "", r"^model failed to load: \w+: \S",
       "the reason says the model failed to load and why")

# ---- a training script that saves with joblib.dump ----
TRAIN = b'''
import os, sys
import joblib
import pandas as pd
from sklearn.linear_model import Ridge
df = pd.read_csv(sys.argv[1])
reg = Ridge(alpha=0.3).fit(df.drop(columns=["target"]).values, df["target"].values)
%s
'''
expected = Ridge(alpha=0.3).fit(X, y)
for label, save, magic in [
        ("joblib.dump(compress=3) to $MLC_OUTPUT",
         b"joblib.dump(reg, os.environ['MLC_OUTPUT'], compress=3)", b"\x78"),
        ("joblib.dump to model.joblib in its directory", b"joblib.dump(reg, 'model.joblib')", b"\x80")]:
    m = mm.register(reg, X, y, names)
    mm.upload(m["modelid"], "code", "train.py", TRAIN % save)
    r = t.post("/mltraining/add", json={"modelid": m["modelid"]})
    tid = (t.body_of(r) or {}).get("training_id")
    st = None
    end = time.time() + 120
    while tid and time.time() < end:
        st = t.body_of(t.get("/mltraining/status/" + tid)) or {}
        if st.get("status") in ("completed", "failed"):
            break
        time.sleep(0.2)
    t.is_([(st or {}).get("status"), (st or {}).get("produced_version")], ["completed", 2],
          "a training that saves with %s completes with model version 2" % label, st)
    dl = t.get("/model/%s/files/model" % m["modelid"], params={"version": 2})
    t.ok(dl.status_code == 200 and dl.content.startswith(magic),
         "version 2 is the file the script wrote (starts with %r)" % magic)
    _, pred = deploy_and_predict(m["modelid"], rows)
    t.ok(pred is not None and np.max(np.abs(np.array(pred) - expected.predict(X[:20]))) < 1e-9,
         "a deployment of version 2 predicts as the retrained model")
t.done()
