#!/usr/bin/python3
# A deployment's input features as the bundle carries them, without an
# instance: job.json "features" (app/featurelist.c's output, one record per
# case of t/fixtures/input-features.json, which t/unit/test-features.c
# pins the C rule to) read back from an unpacked deploy bundle by
# mlcpy.features; a malformed record rejects the bundle; and the runtime
# names its features from it (only when the names can key rows, and fit
# the model), never from the raw featurelist.
import hashlib
import io
import json
import os
import pickle
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t  # noqa: E402

from mlcpy import bundle, features  # noqa: E402

BASE = tempfile.mkdtemp(prefix="mlc-features.")
t.defer(lambda: os.system("rm -rf --one-file-system '%s'" % BASE))

with open(os.path.join(HERE, "fixtures", "input-features.json"), encoding="utf-8") as f:
    CASES = json.load(f)
t.ok(len(CASES) >= 10, "the shared fixture has cases (%d)" % len(CASES))


def deploy_bundle(name, job_extra, model=b"\x80\x04N."):
    """A deploy bundle as app/jobs.c writes it: job.json and model.pkl."""
    job = {"type": "deploy", "deployment_id": name, "modelid": "m-1", "model_version": 1,
           "modelkind": "regression",
           "files": {"model": {"name": "model.pkl", "sha256": hashlib.sha256(model).hexdigest(),
                               "size": len(model), "version": 1}}}
    job.update(job_extra)
    path = os.path.join(BASE, "deploy-%s.tar.gz" % name)
    with tarfile.open(path, "w:gz") as tar:
        for member, data in (("job.json", json.dumps(job, indent=1).encode()), ("model.pkl", model)):
            ti = tarfile.TarInfo(member)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return path


def unpack(name, job_extra, model=b"\x80\x04N."):
    path = deploy_bundle(name, job_extra, model)
    dest = os.path.join(BASE, name)
    return bundle.unpack(path, dest, "deploy", name, 1 << 20), dest


# ---- every case of the rule, read back from a bundle ------------------------------

for i, case in enumerate(CASES):
    rec = case["features"]
    job, _ = unpack("dep-%d" % i, {"featurelist": case["featurelist"], "features": rec})
    got = features.read(job)
    t.is_(got.to_json() if got else None, rec, "bundle: %s: features read as written" % case["what"])
    want_names = [x["name"] for x in rec["inputs"]] if rec["named"] else None
    t.is_(got.names, want_names, "bundle: %s: names %s" % (
        case["what"], "usable" if rec["named"] else "not usable (%s)" % rec["why"]))

job, _ = unpack("dep-old", {"featurelist": [{"feature_name": "a"}]})
t.is_(features.read(job), None, "a bundle without \"features\" (written before) has none: nothing is "
      "computed from its featurelist")

for title, rec, pattern in [
        ("not an object", [1], r" is not an object"),
        ("inputs not a list", {"inputs": {}, "named": False, "why": "x"}, r"\.inputs is not a list"),
        ("named not a boolean", {"inputs": [], "named": 1, "why": None}, r"\.named is not true"),
        ("an empty name", {"inputs": [{"name": "", "type": None}], "named": False, "why": "x"},
         r"inputs\[0\]\.name is not a name"),
        ("a type that is no string", {"inputs": [{"name": "a", "type": 1}], "named": True, "why": None},
         r"inputs\[0\]\.type is not a string"),
        ("named with a name twice", {"inputs": [{"name": "a", "type": None}, {"name": "a", "type": None}],
                                     "named": True, "why": None}, r"input 1 has the name of an earlier one"),
        ("named with a nameless input", {"inputs": [{"name": None, "type": None}], "named": True, "why": None},
         r"input 0 has no name"),
        ("named without inputs", {"inputs": [], "named": True, "why": None}, r"named is true without inputs")]:
    try:
        unpack("dep-bad-%d" % len(title), {"features": rec})
        got = "accepted"
    except bundle.BundleError as e:
        got = str(e)
    t.like(got, r"^bundle rejected: job\.json features.*" + pattern,
           "a bundle whose features are %s is rejected" % title)

# ---- the runtime names its features from the record ------------------------------
try:
    import numpy as np
    from sklearn.linear_model import LinearRegression
    from mlcpy import runtime
except ImportError as e:
    t.skip("the runtime's feature names", "no scikit-learn (%s)" % e)
    t.done()
    sys.exit(0)

X = np.arange(12.0).reshape(4, 3) + np.array([[0.0, 1.0, 5.0]]) * np.arange(4.0)[:, None] ** 2
reg = LinearRegression().fit(X, X @ np.array([1.0, 2.0, 3.0]))
pkl = pickle.dumps(reg)


def names_of(title, rec, model=pkl):
    job, dest = unpack("dep-rt-%s" % title, {"features": rec} if rec is not None else {}, model)
    return runtime.Model(dest).feature_names


def rec_of(names, named=True, why=None):
    return {"inputs": [{"name": n, "type": "cont"} for n in names], "named": named, "why": why}


t.is_(names_of("named", rec_of(["a", "b", "c"])), ["a", "b", "c"],
      "runtime: usable names of as many inputs as the model takes name its features")
t.is_(names_of("twice", rec_of(["a", "b", "a"], False, "its featurelist names the input feature 'a' twice")),
      None, "runtime: a name given twice: no feature names (as for object rows)")
t.is_(names_of("nameless", {"inputs": [{"name": "a", "type": None}, {"name": None, "type": None},
                                       {"name": "c", "type": None}], "named": False,
                            "why": "its featurelist entry 1 is an input (kind 0) without a feature_name"}),
      None, "runtime: a nameless input: no feature names")
t.is_(names_of("count", rec_of(["a", "b"])), None,
      "runtime: names of fewer inputs than the model takes are not used")
t.is_(names_of("none", None), None, "runtime: no \"features\": no feature names (the raw featurelist is not read)")
import pandas as pd  # noqa: E402
framed = LinearRegression().fit(pd.DataFrame(X, columns=["x", "y", "z"]), X[:, 0])
t.is_(names_of("own", rec_of(["a", "b", "c"]), pickle.dumps(framed)), ["x", "y", "z"],
      "runtime: a model's own feature_names_in_ come first")

t.done()
