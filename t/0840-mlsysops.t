#!/usr/bin/python3
# The mlsysops backend end to end: POST /deployment/add with "backend":
# "mlsysops" makes the spooler send the application description to a fake
# MLSysOps Northbound API (t/lib/fakekube.py, on MLC_NORTHBOUND_URL), which
# runs the described container here: it fetches the bundle from the API
# with the deployment's credential and serves the model; the deployment is
# deployed at the endpoint the status reports, predictions go through the
# gateway, and DELETE asks the framework to remove it.
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR", "MLC_NORTHBOUND_URL", "MLC_ROOT")
import fakekube  # noqa: E402
import mlcmodels as mm  # noqa: E402

ROOT, VAR = os.environ["MLC_ROOT"], os.environ["MLC_VAR"]
u = urllib.parse.urlsplit(os.environ["MLC_NORTHBOUND_URL"])
nb = fakekube.FakeNorthbound(root=ROOT, port=u.port, mode="exec", prefix=u.path)
t.defer(nb.close)

reg, X, y, names = mm.diabetes_ridge()
model = mm.register(reg, X, y, names)
dep = t.uniq("nb-dep")
resp = t.post("/deployment/add", json={
    "modelid": model["modelid"], "ownerid": "agent-nb", "deployment_id": dep,
    "backend": "mlsysops", "placement": {"clusterID": "uth-prod", "node": "*", "continuum": "Edge"}})
t.is_status(resp, 201, "POST /deployment/add with backend mlsysops answers 201")
if resp.status_code == 201:
    t.defer(lambda: t.http("DELETE", "/deployment/" + dep, timeout=30))
t.is_((t.body_of(resp) or {}).get("backend"), "mlsysops", "the deployment is on backend mlsysops")
st = mm.wait_status(dep, seconds=120)
t.is_((st or {}).get("status"), "deployed", "it is deployed once MLSysOps reports it deployed",
      st, nb.requests[-3:])
posts = [b for m, p, b in nb.requests if m == "POST" and p == "/ml/deploy_ml"]
t.is_(len(posts), 1, "one application description was posted to /ml/deploy_ml")
app = posts[0]["MLSysOpsApplication"] if posts else {}
t.is_((app.get("mlsysops-id"), app.get("clusterPlacement"),
       app.get("components", [{}])[0].get("nodePlacement"),
       app.get("components", [{}])[0].get("Component")),
      (dep, {"clusterID": ["uth-prod"], "instances": 1}, {"continuumLayer": ["Edge"]},
       {"name": "ml-comp", "uid": dep}),
      "the description names the deployment and its placement as the Python MLConnector did")
polls = [p for m, p, b in nb.requests if m == "GET" and p.startswith("/ml/status/")]
t.ok(polls and all(p == "/ml/status/" + dep for p in polls),
     "the spooler polls GET /ml/status/{id}", polls[:3])
t.like((st or {}).get("endpoint") or "", r"^http://127\.0\.0\.1:\d+$",
       "the endpoint is the global endpoint MLSysOps reported")
resp = t.post("/deployment/%s/predict" % dep, json={"data": X[0].tolist()})
t.is_status(resp, 200, "a prediction goes through the gateway to the MLSysOps runtime")
pred = (t.body_of(resp) or {}).get("prediction") or [None]
t.ok(pred[0] is not None and abs(pred[0] - reg.predict(X[:1])[0]) < 1e-9,
     "it predicts what the model predicts in-process", resp.text[:300])
resp = t.delete("/deployment/" + dep)
t.is_((t.body_of(resp) or {}).get("status"), "stopped", "DELETE stops it", t.describe(resp))
t.is_([p for m, p, b in nb.requests if m == "DELETE"], ["/ml/remove/" + dep],
      "DELETE /ml/remove/{id} was sent once")
t.ok(dep not in nb.apps, "MLSysOps no longer holds it")
t.ok(not os.path.exists(os.path.join(VAR, "mlsysops", dep + ".json")) and
     not os.path.exists(os.path.join(VAR, "bundles", "deploy-%s.tar.gz" % dep)),
     "the spooler's record and the bundle are gone")
t.done()
