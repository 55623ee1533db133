#!/usr/bin/python3
# Ownership: the model registry is shared for reading, but only a model's
# owner (or an admin) changes it, uploads to it, retrains it, checks its
# drift or reads its data, code and env files (403 for others: the model
# is visible).  Deployments, operations and trainings are their owner's:
# other owners get 404 for their ids and do not see them in lists.  And
# the hijacks these rules close, each end to end:
#   (a) code uploaded to someone else's model and a retrain with redeploy
#       moving their deployments;
#   (b) a deleted deployment's id reused by another owner for another model;
#   (c) a PATCH of a model's featurelist reordering the rows its running
#       deployments are fed;
#   (d) an operation recorded against a deployment under another model or
#       owner.
import os
import pickle
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_auth("MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME", "MLC_VAR")
import mlcmodels as mm

from sklearn.linear_model import LinearRegression  # noqa: E402

alice, bob = t.uniq("alice"), t.uniq("bob")
_, A = t.make_token(alice, "write")
_, B = t.make_token(bob, "write")
_, R = t.make_token(t.uniq("reader"), "read")

# A model whose answer is its first feature: the order of the features
# shows in every prediction.
X = [[1, 5], [2, 3], [3, 9], [4, 1], [5, 7]]
y = [1, 2, 3, 4, 5]
est = LinearRegression().fit(X, y)
FEATURES = [{"feature_name": "a", "type": "cont", "kind": 0, "units": None},
            {"feature_name": "b", "type": "cont", "kind": 0, "units": None},
            {"feature_name": "target", "type": "cont", "kind": 1, "units": None}]
DATA = b"a,b,target\n" + b"".join(b"%d,%d,%d\n" % (r[0], r[1], v) for r, v in zip(X, y))
TRAIN_CODE = b'''
import os, pickle
import pandas as pd
from sklearn.linear_model import LinearRegression
df = pd.read_csv(os.environ["MLC_DATA"])
m = LinearRegression().fit(df[["a", "b"]].values, df["target"].values * 10)
with open(os.environ["MLC_OUTPUT"], "wb") as f:
    pickle.dump(m, f)
'''


def as_(token, method, path, **kw):
    return t.http(method, path, token=token, **kw)


def register(token, owner_name):
    r = as_(token, "POST", "/model/add", json=t.minimal_model(featurelist=FEATURES))
    if not t.is_status(r, 201, "%s registers a model" % owner_name):
        raise RuntimeError("cannot go on without a model")
    m = r.json()
    t.defer(t.delete, "/model/" + m["modelid"])
    for kind, name, data in (("model", "model.pkl", pickle.dumps(est, protocol=4)),
                             ("data", "train.csv", DATA), ("code", "code.py", TRAIN_CODE)):
        up = as_(token, "POST", "/model/%s/upload" % m["modelid"],
                 files={"file": (name, data), "file_kind": (None, kind)})
        if up.status_code != 201:
            raise RuntimeError("upload failed: " + t.describe(up))
    return m


def deploy(token, modelid, dep, **extra):
    body = dict({"modelid": modelid, "placement": None, "deployment_id": dep}, **extra)
    r = as_(token, "POST", "/deployment/add", json=body)
    if r.status_code == 201:
        t.defer(t.delete, "/deployment/" + dep)
    return r


def wait_deployed(dep, seconds=90):
    end = time.time() + seconds
    while time.time() < end:
        st = t.body_of(t.get("/deployment/get/status/" + dep)) or {}
        if st.get("status") in ("deployed", "failed"):
            return st
        time.sleep(0.2)
    return {}


def predict(token, dep, data, **extra):
    r = as_(token, "POST", "/deployment/%s/predict" % dep, json=dict({"data": data}, **extra))
    p = (t.body_of(r) or {}).get("prediction")
    return r, (p[0] if isinstance(p, list) and len(p) == 1 else p)


def ids_of(resp, key):
    return [o.get(key) for o in (t.body_of(resp) or [])] if resp.status_code == 200 else resp.status_code


# ---- models: shared for reading, the owner's to change -----------------------

ma = register(A, "alice")
mid = ma["modelid"]
t.is_(t.db_rows("SELECT ownerid FROM models WHERE modelid = %s", mid), [{"ownerid": alice}],
      "the model's owner is the owner of the token that registered it")
for token, who in ((B, "another owner"), (R, "a read token")):
    t.is_status(as_(token, "GET", "/model/" + mid), 200, "%s reads the model's metadata" % who)
    t.ok(mid in t.ids(t.body_of(as_(token, "GET", "/model/all", params={"limit": 1000})) or []),
         "%s finds it in /model/all" % who)
    t.is_status(as_(token, "GET", "/model/%s/files" % mid), 200, "%s lists its files" % who)
    t.is_status(as_(token, "GET", "/model/%s/files/model" % mid), 200, "%s downloads its model file" % who)
for kind in ("data", "code"):
    r = as_(B, "GET", "/model/%s/files/%s" % (mid, kind))
    t.is_error(r, 403, "another owner may not download the %s file" % kind)
    t.is_status(as_(A, "GET", "/model/%s/files/%s" % (mid, kind)), 200, "the owner downloads the %s file" % kind)
r = as_(B, "PATCH", "/model/" + mid, json={"modelname": "stolen"})
body = t.is_error(r, 403, "another owner may not PATCH the model")
t.like(body.get("detail", ""), "only its owner or an admin", "the 403 says who may")
t.is_error(as_(B, "DELETE", "/model/" + mid), 403, "another owner may not DELETE the model")
t.is_error(as_(B, "POST", "/model/%s/drift/run" % mid), 403, "another owner may not ask for a drift check")
t.is_error(as_(B, "GET", "/model/%s/drift" % mid), 403, "another owner may not read its drift results")
t.is_error(as_(B, "GET", "/model/%s/drift/summary" % mid), 403, "another owner may not read its drift summary")
t.is_(t.body_of(t.get("/model/" + mid)).get("modelname"), ma["modelname"], "the model is unchanged")
t.is_status(as_(A, "PATCH", "/model/" + mid, json={"modeltags": ["mine"]}), 200, "the owner may PATCH it")
t.is_status(t.patch("/model/" + mid, json={"modeltags": ["admin-was-here"]}), 200, "an admin may PATCH it")
gone = str(__import__("uuid").uuid4())
t.is_error(as_(B, "PATCH", "/model/" + gone, json={}), 404, "PATCH of a model that does not exist is 404")

# (a) code for someone else's model, and their retraining
r = as_(B, "POST", "/model/%s/upload" % mid, files={"file": ("code.py", b"import os\n"),
                                                    "file_kind": (None, "code")})
t.is_error(r, 403, "(a) another owner may not upload code to the model")
t.is_(len(t.db_rows("SELECT 1 FROM artifacts WHERE modelid = %s AND filekind = 'code'", mid)), 1,
      "(a) no code version was added")
r = as_(B, "POST", "/mltraining/add", json={"modelid": mid, "redeploy": True})
t.is_error(r, 403, "(a) another owner may not retrain the model")

# ---- deployments --------------------------------------------------------------

dep_a = t.uniq("dep-alice")
r = deploy(A, mid, dep_a)
t.is_status(r, 201, "the owner deploys the model without an ownerid")
t.is_((t.body_of(r) or {}).get("ownerid"), alice, "the deployment's ownerid is filled from the token")
t.is_error(deploy(A, mid, t.uniq("dep-x"), ownerid=bob), 403, "an ownerid other than the token's is 403")
dep_same = t.uniq("dep-same")
t.is_status(deploy(A, mid, dep_same, ownerid=alice), 201, "the token's own ownerid is accepted")
dep_b = t.uniq("dep-bob")
r = deploy(B, mid, dep_b)
t.is_status(r, 201, "another owner may deploy the shared model: the deployment is theirs")
t.is_((t.body_of(r) or {}).get("ownerid"), bob, "bob's deployment is bob's")
t.is_(t.db_rows("SELECT features FROM deployments WHERE deployment_id = %s", dep_a)[0]["features"] is not None,
      True, "(c) the deployment keeps the model's featurelist")

for path in ("/deployment/get/status/" + dep_a,):
    t.is_error(as_(B, "GET", path), 404, "another owner's deployment status is 404")
t.is_error(as_(B, "DELETE", "/deployment/" + dep_a), 404, "another owner may not stop it: 404")
t.is_error(predict(B, dep_a, [1, 2])[0], 404, "another owner may not predict on it: 404")
t.is_error(as_(B, "POST", "/deployment/add/operation", json={"deploymentid": dep_a, "data": [1]}), 404,
           "(d) another owner may not record an operation on it: 404")
lists = {who: ids_of(as_(tok, "GET", "/deployment/all", params={"limit": 1000}), "deployment_id")
         for who, tok in (("alice", A), ("bob", B), ("admin", t.TOKEN), ("reader", R))}
t.ok(dep_a in lists["alice"] and dep_b not in lists["alice"], "alice's list has her deployment, not bob's",
     lists["alice"])
t.ok(dep_b in lists["bob"] and dep_a not in lists["bob"], "bob's list has his, not alice's", lists["bob"])
t.ok(dep_a in lists["admin"] and dep_b in lists["admin"], "an admin's list has both")
t.is_(lists["reader"], [], "a read token of a third owner lists none")
t.is_(t.db_rows("SELECT status FROM deployments WHERE deployment_id = %s", dep_a)[0]["status"] != "stopped",
      True, "bob's 404s left alice's deployment running")

st = wait_deployed(dep_a)
t.is_(st.get("status"), "deployed", "alice's deployment is deployed", st)
r, first = predict(A, dep_a, {"a": 1, "b": 2})
t.ok(r.status_code == 200 and abs(first - 1.0) < 1e-9, "a row keyed by feature name: the model gets [a, b]",
     t.describe(r))
opid = (t.body_of(r) or {}).get("operationid")
t.is_(t.db_rows("SELECT ownerid FROM operations WHERE operation_uuid = %s", opid), [{"ownerid": alice}],
      "the prediction is recorded as alice's operation")
t.is_error(predict(A, dep_a, [1, 2], ownerid=bob)[0], 403, "a prediction may not be recorded under another owner")

# (c) the featurelist is frozen when the deployment is created
swapped = [FEATURES[1], FEATURES[0], FEATURES[2]]
t.is_status(as_(A, "PATCH", "/model/" + mid, json={"featurelist": swapped}), 200,
            "(c) the owner swaps the model's featurelist to [b, a]")
r, first = predict(A, dep_a, {"a": 1, "b": 2})
t.ok(r.status_code == 200 and abs(first - 1.0) < 1e-9,
     "(c) the running deployment still feeds [a, b]: the PATCH does not reorder its rows", t.describe(r))
r, first = predict(A, dep_a, [[1, 2]])
t.ok(r.status_code == 200 and abs(first - 1.0) < 1e-9, "(c) list rows are unchanged too", t.describe(r))

# (d) operations: the model is the deployment's, the owner the token's
r = as_(A, "POST", "/deployment/add/operation", json={"deploymentid": dep_a, "data": [1, 2], "result": [1]})
t.is_status(r, 201, "(d) an operation without modelid or ownerid is recorded")
t.is_([(t.body_of(r) or {}).get(k) for k in ("modelid", "ownerid")], [mid, alice],
      "(d) its modelid is the deployment's and its ownerid the token's")
r = as_(A, "POST", "/deployment/add/operation", json={"deploymentid": dep_a, "modelid": str(
    __import__("uuid").uuid4()), "data": [1]})
t.is_422(r, [(("body", "modelid"), None, "value_error.modelid")], "(d) another modelid than the deployment's")
t.is_error(as_(A, "POST", "/deployment/add/operation", json={"deploymentid": dep_a, "ownerid": bob}), 403,
           "(d) another owner's ownerid is 403")
t.is_status(as_(A, "POST", "/deployment/add/operation", json={"deploymentid": dep_a, "ownerid": alice,
                                                             "modelid": mid}), 201,
            "(d) the right modelid and ownerid are accepted")
ops_a = as_(A, "GET", "/deployment/get/opos/" + alice)
t.ok(ops_a.status_code == 200 and len(t.body_of(ops_a)) == 5,
     "alice reads her 5 operations (3 predictions, 2 recorded)", t.describe(ops_a))
t.is_error(as_(B, "GET", "/deployment/get/opos/" + alice), 404, "bob gets 404 for alice's operations")
t.is_error(as_(B, "GET", "/deployment/get/opos/" + t.uniq("nobody")), 404,
           "and the same 404 for an owner that has none (nothing to tell them apart)")
t.is_(as_(B, "GET", "/deployment/get/opos/" + bob).status_code, 200, "bob reads his own (none yet)")
t.is_(len(t.body_of(t.get("/deployment/get/opos/" + alice)) or []), 5, "an admin reads alice's")

# (a) a retraining with redeploy moves only the owner's deployments
st_b = wait_deployed(dep_b)
t.is_(st_b.get("status"), "deployed", "bob's deployment of alice's model is deployed", st_b)
r = as_(A, "POST", "/mltraining/add", json={"modelid": mid, "redeploy": True})
t.is_status(r, 201, "(a) the owner retrains her model with redeploy")
tid = (t.body_of(r) or {}).get("training_id", "?")
t.is_error(as_(B, "GET", "/mltraining/status/" + tid), 404, "another owner's training status is 404")
t.is_error(as_(B, "GET", "/mltraining/%s/log" % tid), 404, "another owner's training log is 404")
t.ok(tid not in ids_of(as_(B, "GET", "/mltraining/all"), "training_id"), "bob's training list lacks it")
t.ok(tid in ids_of(as_(A, "GET", "/mltraining/all"), "training_id"), "alice's training list has it")
t.is_(t.db_rows("SELECT ownerid, redeploy_owner FROM trainings WHERE training_id = %s", tid),
      [{"ownerid": alice, "redeploy_owner": alice}], "the training is alice's, and so is what it redeploys")
end = time.time() + 120
while time.time() < end:
    st = t.body_of(as_(A, "GET", "/mltraining/status/" + tid)) or {}
    if st.get("status") in ("completed", "failed"):
        break
    time.sleep(0.5)
t.is_(st.get("status"), "completed", "(a) the retraining completes", st)
end = time.time() + 60
while time.time() < end and (t.body_of(t.get("/deployment/get/status/" + dep_a)) or {}).get("model_version") != 2:
    time.sleep(0.3)
time.sleep(1.0)
versions = {d: (t.body_of(t.get("/deployment/get/status/" + d)) or {}).get("model_version") for d in (dep_a, dep_b)}
t.is_(versions, {dep_a: 2, dep_b: 1}, "(a) alice's deployment moved to version 2, bob's stayed on version 1")
r, first = predict(B, dep_b, [[1, 2]])
t.ok(r.status_code == 200 and abs(first - 1.0) < 1e-9, "(a) bob's deployment still answers with version 1",
     t.describe(r))

# (b) a stopped deployment's id is its owner's to reuse
t.is_status(as_(A, "DELETE", "/deployment/" + dep_a), 200, "(b) alice stops her deployment")
mb = register(B, "bob")
r = deploy(B, mb["modelid"], dep_a)
t.is_error(r, 409, "(b) bob may not take the stopped deployment's id for his model")
row = t.db_rows("SELECT ownerid, modelid, status FROM deployments WHERE deployment_id = %s", dep_a)
t.is_(row, [{"ownerid": alice, "modelid": mid, "status": "stopped"}], "(b) alice's stopped row is untouched")
r = deploy(A, mid, dep_a)
t.is_status(r, 201, "(b) alice may reuse her own stopped id")
t.is_status(as_(A, "DELETE", "/deployment/" + dep_a), 200, "alice stops it again")
t.is_status(as_(B, "DELETE", "/deployment/" + dep_b), 200, "bob stops his")

# ---- deleting a model another owner serves -------------------------------------

t.is_status(as_(A, "DELETE", "/deployment/" + dep_same), 200, "alice stops her other deployment")
d2 = t.uniq("dep-bob2")
t.is_status(deploy(B, mid, d2), 201, "bob deploys alice's model again")
r = as_(A, "DELETE", "/model/" + mid)
body = t.is_error(r, 409, "alice may not delete her model while bob's deployment is active")
t.ok(d2 not in body.get("detail", "") and "another owner" in body.get("detail", ""),
     "the 409 says another owner serves it, without naming bob's deployment", body)
t.done()
