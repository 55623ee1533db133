#!/usr/bin/python3
# The kubernetes backend end to end: POST /deployment/add with "backend":
# "kubernetes" goes through the instance's spooler to a fake Kubernetes API
# server (t/lib/fakekube.py) that runs the pod's containers here - the init
# container downloads the bundle from the API with the deployment's job
# credential, the runtime serves on the Service's node port - and the
# gateway predicts through it over HTTP.  A model that cannot load ends in
# a crash loop that fails the deployment with its reason; an image that
# cannot be pulled likewise; placement becomes affinity and a kubeconfig
# context; DELETE leaves nothing in the cluster.
import gzip
import hashlib
import io
import json
import os
import pickle
import sys
import tarfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR", "MLC_KUBECONFIG", "MLC_ROOT")
try:
    import kubernetes  # noqa: F401
except ImportError:
    t.skip_all("needs the Debian package python3-kubernetes")
import fakekube  # noqa: E402
import fcgi  # noqa: E402
import mlcapi  # noqa: E402
import mlcmodels as mm  # noqa: E402

ROOT, VAR = os.environ["MLC_ROOT"], os.environ["MLC_VAR"]
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from mlcpy import kubemanifest as km  # noqa: E402

fk = fakekube.FakeKube(root=ROOT, mode="exec")
t.defer(fk.close)
fk.kubeconfig(os.environ["MLC_KUBECONFIG"], contexts=("fake", "edge"), current="fake")


class RaisesOnLoad:
    def __reduce__(self):
        return (int, ("this is not a number",))


def add(modelid, dep, backend="kubernetes", placement=None):
    body = {"modelid": modelid, "ownerid": "agent-k8s", "deployment_id": dep,
            "placement": placement or {"clusterID": "*", "node": "*", "continuum": False}}
    if backend is not None:
        body["backend"] = backend
    resp = t.post("/deployment/add", json=body)
    if resp.status_code == 201:
        t.defer(lambda: t.http("DELETE", "/deployment/" + dep, timeout=30))
    return resp


def objects_of(dep, cluster=None):
    sel = "%s=%s" % (km.L_DEPLOYMENT, km.object_name(dep))
    return [o for o in fk.all_objects(sel) if cluster is None or o[1] == cluster]


def token_of(dep, cluster="fake"):
    import base64
    secs = fk.find("Secret", cluster, "%s=%s" % (km.L_DEPLOYMENT, km.object_name(dep)))
    return base64.b64decode(secs[0]["data"]["token"]).decode() if secs else None


# ---- deploy, predict, delete ----
reg, X, y, names = mm.diabetes_ridge()
model = mm.register(reg, X, y, names)
dep = t.uniq("k8s-Ridge")
resp = add(model["modelid"], dep)
t.is_status(resp, 201, "POST /deployment/add with backend kubernetes answers 201")
body = t.body_of(resp) or {}
t.is_((body.get("status"), body.get("backend")), ("waiting", "kubernetes"),
      "the new deployment is waiting, on backend kubernetes")
st = mm.wait_status(dep, seconds=120)
t.is_((st or {}).get("status"), "deployed", "the deployment reaches deployed once the pod in the "
      "cluster answers its readiness probe", st, fk.all_objects())
t.like((st or {}).get("endpoint") or "", r"^http://127\.0\.0\.1:\d+$",
       "its endpoint is the Service's node port (MLC_KUBE_ENDPOINT)")
kinds = sorted(k for k, _, _ in objects_of(dep))
t.is_(kinds, ["Deployment", "NetworkPolicy", "Pod", "ReplicaSet", "Secret", "Service"],
      "the cluster holds its Deployment (with ReplicaSet and pod), Service, NetworkPolicy and "
      "Secret, all carrying the deployment's label")
d = (fk.find("Deployment", "fake", "%s=%s" % (km.L_DEPLOYMENT, km.object_name(dep))) or [{}])[0]
t.is_(d.get("metadata", {}).get("annotations", {}).get(km.A_ID), dep,
      "the Deployment is annotated with the deployment id as given")
row = t.db_rows("SELECT job_token_sha256, runtime_pid, backend FROM deployments "
                "WHERE deployment_id = %s", dep)[0]
token = token_of(dep)
t.ok(token and row["job_token_sha256"] == hashlib.sha256(token.encode()).hexdigest(),
     "the row holds the SHA-256 of the credential in the cluster's Secret, not the credential",
     row)
t.is_((row["runtime_pid"], row["backend"]), (None, "kubernetes"),
      "a remote runtime has no pid; the row names its backend")

resp = t.post("/deployment/%s/predict" % dep, json={"data": X[:3].tolist(), "explain": True})
t.is_status(resp, 200, "POST /deployment/{id}/predict reaches the runtime in the cluster over HTTP")
out = t.body_of(resp) or {}
pred = out.get("prediction") or []
t.ok(len(pred) == 3 and max(abs(a - b) for a, b in zip(pred, reg.predict(X[:3]))) < 1e-9,
     "it predicts what the model predicts in-process", out)
t.ok(isinstance((out.get("explanation") or {}).get("feature_importance"), list),
     "explanations come back through the remote runtime too", out)
ops = t.db_rows("SELECT COUNT(*) AS n FROM operations WHERE deployment_id = %s", dep)
t.is_(ops[0]["n"], 1, "the call is recorded as an inference operation")

# The bundle route and its credential.
path = "/deployment/%s/bundle" % dep
t.is_error(t.get(path), 401, "the bundle without a credential")
t.is_error(t.get(path, headers={"X-MLC-Job-Token": "wrong"}), 403,
           "the bundle with a wrong credential")
t.is_error(t.get("/deployment/%s/bundle" % t.uniq("none"), headers={"X-MLC-Job-Token": token}),
           403, "another deployment's credential opens nothing else (an unknown id answers the "
           "same)")
resp = t.get(path, headers={"X-MLC-Job-Token": token})
t.is_status(resp, 200, "the bundle with the deployment's credential")
try:
    with tarfile.open(fileobj=io.BytesIO(resp.content), mode="r:gz") as tar:
        members = sorted(tar.getnames())
        job = json.load(tar.extractfile("job.json"))
except (tarfile.TarError, ValueError, KeyError) as e:
    members, job = [], {"error": str(e)}
t.is_(members, ["data.csv", "job.json", "model.pkl"], "it holds job.json, the model and the data")
t.is_((job.get("deployment_id"), job.get("type")), (dep, "deploy"), "its job.json is the deployment's")

bundle_file = os.path.join(VAR, "bundles", "deploy-%s.tar.gz" % dep)
record = os.path.join(VAR, "kubernetes", dep + ".json")
t.ok(os.path.isfile(bundle_file) and os.path.isfile(record),
     "the spooler keeps the bundle and its record of the deployment")
port = int(st["endpoint"].rsplit(":", 1)[1]) if st and st.get("endpoint") else 0
resp = t.delete("/deployment/" + dep)
t.is_status(resp, 200, "DELETE answers 200 once everything is gone")
t.is_((t.body_of(resp) or {}).get("status"), "stopped", "the deployment is stopped")
t.is_(objects_of(dep), [], "nothing of the deployment is left in the cluster")
t.ok(not os.path.exists(bundle_file) and not os.path.exists(record),
     "its bundle and record are removed")
t.is_(t.db_rows("SELECT job_token_sha256 FROM deployments WHERE deployment_id = %s",
                dep)[0]["job_token_sha256"], None, "its credential is cleared")
t.is_error(t.get(path, headers={"X-MLC-Job-Token": token}), 403,
           "the old credential no longer opens the bundle")
time.sleep(0.5)
t.ok(not fakekube.health_ok(port), "the runtime process is gone")
deletes = [(c, p) for c, m, p, q, b in fk.requests if m == "DELETE" and km.object_name(dep) in p]
t.ok(len(deletes) >= 4, "the spooler deleted the objects through the API", deletes)

# ---- a model that cannot load: a crash loop fails the deployment ----
bad = mm.register(reg, X, y, names, pickled=pickle.dumps(RaisesOnLoad(), protocol=4))
dep_bad = t.uniq("k8s-crash")
t.is_status(add(bad["modelid"], dep_bad), 201, "a deployment of a model that cannot load")
st = mm.wait_status(dep_bad, seconds=120)
t.is_((st or {}).get("status"), "failed", "its crash loop fails the deployment", st)
t.like((st or {}).get("reason") or "", r"CrashLoopBackOff: container runtime exited with "
       r"status 3: model failed to load: ValueError", "the reason names the crash loop and the "
       "runtime's last words")
t.is_(objects_of(dep_bad), [], "a failed deployment leaves nothing in the cluster")

# ---- an image that cannot be pulled ----
dep_img = t.uniq("k8s-img")
fk.modes[km.object_name(dep_img)] = "imagepull"
t.is_status(add(model["modelid"], dep_img), 201, "a deployment whose image cannot be pulled")
st = mm.wait_status(dep_img, seconds=60)
t.is_((st or {}).get("status"), "failed", "it fails", st)
t.like((st or {}).get("reason") or "", r"^ImagePullBackOff: init container fetch: Back-off "
       r"pulling image", "with ImagePullBackOff as its reason")

# ---- placement ----
dep_edge = t.uniq("k8s-edge")
fk.modes[km.object_name(dep_edge)] = "ready"
resp = add(model["modelid"], dep_edge, placement={"clusterID": "edge", "node": "worker-1",
                                                  "continuum": "Edge"})
t.is_status(resp, 201, "a deployment placed on cluster edge, node worker-1, continuum Edge")
st = mm.wait_status(dep_edge, seconds=60)
t.is_((st or {}).get("status"), "deployed", "it is deployed", st)
t.is_(sorted({c for _, c, _ in objects_of(dep_edge)}), ["edge"],
      "clusterID selects the kubeconfig context: every object is in cluster edge")
d = (fk.find("Deployment", "edge") or [{}])[0]
terms = (d.get("spec", {}).get("template", {}).get("spec", {}).get("affinity", {})
         .get("nodeAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", {})
         .get("nodeSelectorTerms"))
t.is_(terms, [{"matchExpressions": [
    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["worker-1"]},
    {"key": "mlconnector.io/continuum", "operator": "In", "values": ["Edge"]}]}],
    "node and continuum become required node affinity")
t.is_status(t.delete("/deployment/" + dep_edge), 200, "DELETE of the edge deployment")
t.is_(objects_of(dep_edge), [], "nothing is left in cluster edge")

dep_nowhere = t.uniq("k8s-nowhere")
t.is_status(add(model["modelid"], dep_nowhere, placement={"clusterID": "mars", "node": "*",
                                                          "continuum": False}), 201,
            "a deployment placed on a cluster the kubeconfig does not know")
st = mm.wait_status(dep_nowhere, seconds=60)
t.is_((st or {}).get("status"), "failed", "it fails", st)
t.like((st or {}).get("reason") or "", r"mars", "the reason names the unknown context")

# ---- the backend field ----
t.is_422(t.post("/deployment/add", json={"modelid": model["modelid"], "ownerid": "a",
                                         "placement": None, "backend": "docker"}),
         [(("body", "backend"), "backend must be one of: local, kubernetes, mlsysops",
           "value_error.str.regex")], "an unknown backend")

# On an installation without MLC_KUBECONFIG and MLC_NORTHBOUND_URL (a second
# mlc-api), both remote backends are refused.
sock = os.path.join(VAR, "run", "t0820.sock")
api = mlcapi.Api(sock, os.path.join(VAR, "log", "t0820-mlc-api.log"),
                 drop=("MLC_KUBECONFIG", "MLC_NORTHBOUND_URL"), MLC_WORKERS="1")
api.wait_up(30, 0.1)
for backend, key in (("kubernetes", "MLC_KUBECONFIG"), ("mlsysops", "MLC_NORTHBOUND_URL")):
    status, _, out = fcgi.request(sock, "/deployment/add", "POST", json.dumps(
        {"modelid": model["modelid"], "ownerid": "a", "placement": None,
         "backend": backend}).encode())
    try:
        detail = json.loads(out)["detail"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        detail = out
    t.is_((status, detail.get("loc") if isinstance(detail, dict) else None), (422, ["body", "backend"]),
          "backend %s without %s: 422 at backend" % (backend, key), out)
    t.like(detail.get("msg", "") if isinstance(detail, dict) else "",
           r"not configured on this installation \(%s is not set\)" % key,
           "the message names the missing setting")
t.done()
