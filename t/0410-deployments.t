#!/usr/bin/python3
# POST /deployment/add through to a running, sandboxed runtime, the
# deployment routes reflecting its real state, DELETE stopping it, and the
# inference operations recorded against deployments.
import json
import os
import pickle
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR")
import mlcmodels as mm

var = os.environ["MLC_VAR"]


class RaisesOnLoad:
    def __reduce__(self):
        return (int, ("this is not a number",))


# ---- the API document's Ridge on the diabetes data ----
reg, X, y, names = mm.diabetes_ridge()
model = mm.register(reg, X, y, names, requirements="scikit-learn>=1.0\nnumpy\n")
dep = t.uniq("dep-ridge")
t0 = time.time()
resp = mm.deploy(model["modelid"], dep, ownerid="agent-1")
t.is_status(resp, 201, "POST /deployment/add answers 201")
body = t.body_of(resp) or {}
t.is_({k: body.get(k) for k in ("deployment_id", "modelid", "ownerid", "status", "model_version",
                                 "inference_data")},
      {"deployment_id": dep, "modelid": model["modelid"], "ownerid": "agent-1", "status": "waiting",
       "model_version": 1, "inference_data": 0},
      "the MLDeploymentReturn names the deployment, model, owner, pinned version and status waiting")
t.is_(body.get("placement"), {"clusterID": "*", "node": "*", "continuum": False},
      "the placement comes back as sent")
st = mm.wait_status(dep)
elapsed = time.time() - t0
t.is_((st or {}).get("status"), "deployed", "the Ridge deployment reaches deployed", st)
t.note("time from POST /deployment/add to deployed: %.2f s" % elapsed)
t.like((st or {}).get("endpoint") or "", r"^unix:/", "a deployed deployment records its runtime endpoint")
t.ok(all(k in (st or {}) for k in ("deployment_id", "status", "reason", "endpoint", "modelid",
                                   "model_version", "created_at", "updated_at")),
     "the status object has every documented field", st)
sock = ((st or {}).get("endpoint") or "unix:")[5:]
status, payload = mm.unix_http(sock) if sock else (None, b"")
t.is_(status, 200, "the runtime answers GET /health on its socket")
row = t.db_rows("SELECT runtime_pid FROM deployments WHERE deployment_id = %s", dep)
pid = row[0]["runtime_pid"] if row else None
t.ok(mm.pid_alive(pid), "the runtime process recorded in runtime_pid is alive", pid)
try:
    with open("/proc/%d/status" % pid) as f:
        uid = [line.split()[1] for line in f if line.startswith("Uid:")][0]
except (OSError, TypeError, IndexError):
    uid = None
t.ok(uid not in (None, "0"), "the runtime does not run as root (uid %s)" % uid)
status, payload = mm.unix_http(sock, "POST", "/predict",
                               json.dumps({"data": X[:3].tolist(), "explain": False}).encode())
pred = json.loads(payload or b"{}").get("prediction") if status == 200 else None
t.ok(pred is not None and max(abs(a - b) for a, b in zip(pred, reg.predict(X[:3]))) < 1e-9,
     "the runtime predicts what the model predicts in-process", status, payload[:300])

listing = t.get("/deployment/all", params={"limit": 1000})
t.is_status(listing, 200, "GET /deployment/all answers 200")
t.ok(dep in [d["deployment_id"] for d in t.body_of(listing) or []], "the deployment is listed")
t.is_error(t.get("/deployment/get/status/no-such-deployment"), 404, "status of an unknown deployment")

# Deleting the model while it is deployed is refused.
t.is_error(t.delete("/model/" + model["modelid"]), 409, "DELETE of a model with an active deployment")
t.is_error(mm.deploy(model["modelid"], dep), 409, "a deployment_id that is taken")

# ---- validation ----
t.is_422(t.post("/deployment/add", json={"ownerid": "a", "placement": None}),
         [(("body", "modelid"), "field required", "value_error.missing")], "deployment without modelid")
t.is_422(t.post("/deployment/add", json={"modelid": model["modelid"], "ownerid": "a", "placement": None,
                                         "deployment_id": "bad id/with slash"}),
         [(("body", "deployment_id"), None, "value_error.str.regex")], "a deployment_id outside [A-Za-z0-9._-]")
t.is_error(mm.deploy("00000000-0000-4000-8000-000000000000"), 404, "deploying an unknown model")
bare = t.add_model(t.minimal_model(), "a model without artifacts")
r = mm.deploy(bare["modelid"])
t.is_error(r, 409, "deploying a model that has no model file")
t.like((t.body_of(r) or {}).get("detail", ""), r"upload", "the 409 says to upload a model file")
gen = t.post("/deployment/add", json={"modelid": model["modelid"], "ownerid": "agent-e2e", "deployment_id": "",
                                     "placement": {"clusterID": "*", "node": "*", "continuum": 1},
                                     "inference_data": "1"})
if gen.status_code == 201:
    t.defer(lambda: t.http("DELETE", "/deployment/" + gen.json()["deployment_id"], timeout=30))
t.is_status(gen, 201, "an empty deployment_id is replaced by a generated one")
t.like((t.body_of(gen) or {}).get("deployment_id", ""), t.UUID4_RE, "the generated deployment_id is a UUID")
t.is_([(t.body_of(gen) or {}).get("inference_data"), ((t.body_of(gen) or {}).get("placement") or {}).get("continuum")],
      [1, True], "inference_data \"1\" is stored as 1 and continuum 1 as true, as pydantic 2 converted them")
t.is_(t.db_rows("SELECT inference_data FROM deployments WHERE deployment_id = %s",
                (t.body_of(gen) or {}).get("deployment_id")), [{"inference_data": 1}],
      "the deployments row holds inference_data 1")
t.is_422(t.post("/deployment/add", json={"modelid": 5, "ownerid": "a", "placement": {"continuum": 2},
                                         "inference_data": "yes"}),
         [(("body", "modelid"), "str type expected", "type_error.str"),
          (("body", "placement", "continuum"), "value is not a valid string or boolean", "type_error.str"),
          (("body", "inference_data"), "value is not a valid integer", "type_error.integer")],
         "a number for modelid, continuum 2 and inference_data \"yes\" are refused")

# ---- failures with reasons ----
bad = mm.register(reg, X, y, names, pickled=pickle.dumps(RaisesOnLoad(), protocol=4))
r = mm.deploy(bad["modelid"])
st = mm.wait_status(t.body_of(r)["deployment_id"]) if r.status_code == 201 else None
t.is_((st or {}).get("status"), "failed", "a pickle that raises on load ends failed")
t.like((st or {}).get("reason") or "", r"ValueError", "the reason carries the exception")

missing = mm.register(reg, X, y, names, requirements="numpy\nsurely-not-installed-pkg>=1.0\n")
r = mm.deploy(missing["modelid"])
st = mm.wait_status(t.body_of(r)["deployment_id"]) if r.status_code == 201 else None
t.is_((st or {}).get("status"), "failed", "a requirement that is not installed fails the deployment")
t.like((st or {}).get("reason") or "", r"surely-not-installed-pkg", "the reason names the missing package")

# ---- inference operations ----
owner = t.uniq("owner")
ids = []
for i in range(3):
    r = t.post("/deployment/add/operation", json={"ownerid": owner, "deploymentid": dep,
                                                  "modelid": model["modelid"], "data": "{...}",
                                                  "result": "{...}"})
    ids.append((t.body_of(r) or {}).get("operationid"))
t.is_status(r, 201, "POST /deployment/add/operation answers 201")
t.ok(all(isinstance(i, str) and re.match(t.UUID4_RE, i) for i in ids),
     "each operation gets an operationid, a UUID string")
r = t.post("/deployment/add/operation", json={"ownerid": owner, "deploymentid": dep,
                                              "modelid": model["modelid"],
                                              "data": [1, 2], "result": {"y": 3},
                                              "timestamp": "2026-01-02T03:04:05+01:00"})
t.is_((t.body_of(r) or {}).get("timestamp"), "2026-01-02T02:04:05.000000+00:00",
      "a timestamp with an offset is stored in UTC")
ids.append((t.body_of(r) or {}).get("operationid"))
t.is_422(t.post("/deployment/add/operation", json={"ownerid": owner, "deploymentid": dep,
                                                   "modelid": model["modelid"], "timestamp": "yesterday"}),
         [(("body", "timestamp"), None, "value_error.str.regex")], "an unparseable timestamp")
t.is_error(t.post("/deployment/add/operation", json={"ownerid": owner, "deploymentid": "nope",
                                                     "modelid": "m"}), 404, "an operation for an unknown deployment")
t.is_422(t.post("/deployment/add/operation", json={"ownerid": owner, "deploymentid": dep, "modelid": "m"}),
         [(("body", "modelid"), None, "value_error.modelid")],
         "an operation naming another model than its deployment's")
ops = t.get("/deployment/get/opos/" + owner)
t.is_([o["operationid"] for o in t.body_of(ops) or []], list(reversed(ids)),
      "GET /deployment/get/opos/{ownerid} lists the owner's operations, newest first")
t.is_((t.body_of(ops) or [{}])[0].get("data"), [1, 2], "operation data comes back as sent")
page = t.get("/deployment/get/opos/" + owner, params={"skip": 1, "limit": 2})
t.is_([o["operationid"] for o in t.body_of(page) or []], list(reversed(ids))[1:3], "opos pages with skip/limit")
t.is_(t.body_of(t.get("/deployment/get/opos/" + t.uniq("nobody"))), [], "an owner without operations gets []")

# ---- stopping ----
t0 = time.time()
r = t.delete("/deployment/" + dep)
t.is_status(r, 200, "DELETE /deployment/{id} answers 200 once the runtime is stopped")
t.is_((t.body_of(r) or {}).get("status"), "stopped", "the deployment is stopped")
t.ok(not mm.pid_alive(pid), "the runtime process is gone after DELETE", pid)
t.ok(not os.path.exists(os.path.join(var, "deployments", dep)), "the deployment's directory is removed")
t.ok(not os.path.exists(sock), "its socket is gone")
t.note("DELETE took %.2f s" % (time.time() - t0))
t.is_error(t.delete("/deployment/no-such-deployment"), 404, "DELETE of an unknown deployment")
ops = t.get("/deployment/get/opos/" + owner)
t.is_(len(t.body_of(ops) or []), 4, "operations outlive their deployment")
t.is_status(t.delete("/deployment/" + (t.body_of(gen) or {}).get("deployment_id", "")), 200,
            "the generated deployment stops too")
t.is_status(t.delete("/model/" + model["modelid"]), 200, "the model can be deleted once its deployments are stopped")
t.done()
