#!/usr/bin/python3
# The remote backends without an instance: the Kubernetes objects of a
# deployment and a training (placement, security context, resources,
# credential, network policy), the runtime image's Dockerfile rules, the
# MLSysOps application description as the Python MLConnector sent it, and
# both backends driven against the fakes of t/lib/fakekube.py (rollout,
# crash loop, image pull failure, unschedulable pod, stray objects,
# removal; the Northbound API's deploy, status, list and remove).
import json
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import mlctap as t  # noqa: E402
from mlcpy import config, kubemanifest as km  # noqa: E402
from mlcpy import backends as B  # noqa: E402
from mlcpy import backend_mlsysops as bm  # noqa: E402
from mlcpy import log as mlog  # noqa: E402

# The backends' log lines (stderr) are kept for the checks instead.
LOGGED = []
mlog.event = lambda subject, message, *args: LOGGED.append(
    "%s: %s" % (subject, message % args if args else message))

# ---- object names ----
for dep_id in ("a", "A", "Dep_1.x", "x" * 64, "9-lives", "-.-"):
    name = km.object_name(dep_id)
    t.ok(re.match(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", name) and len(name) <= 63,
         "object name of %r is a DNS-1123 label: %s" % (dep_id, name))
t.isnt(km.object_name("A"), km.object_name("a"), "ids differing in case get different names")

# ---- placement ----
HOST = {"key": "kubernetes.io/hostname", "operator": "In", "values": ["worker-1"]}
CONT = {"key": "mlconnector.io/continuum", "operator": "In", "values": ["Edge"]}


def terms(placement):
    a = km.affinity(placement)
    return None if a is None else a["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]


for placement, want, what in [
        (None, None, "no placement: anywhere"),
        ({"clusterID": "*", "node": "*", "continuum": False}, None, "'*' and false: anywhere"),
        ({"clusterID": None, "node": None, "continuum": None}, None, "nulls: anywhere"),
        ({"node": "worker-1"}, [{"matchExpressions": [HOST]}], "node: kubernetes.io/hostname"),
        ({"continuum": "Edge"}, [{"matchExpressions": [CONT]}],
         "continuum: the mlconnector.io/continuum label"),
        ({"continuum": True}, [{"matchExpressions": [
            {"key": "mlconnector.io/continuum", "operator": "Exists"}]}],
         "continuum true: any node with the label"),
        ({"node": "worker-1", "continuum": "Edge", "clusterID": "c1"},
         [{"matchExpressions": [HOST, CONT]}], "node and continuum: both required")]:
    t.is_(terms(placement), want, "placement %s -> %s" % (json.dumps(placement), what))
for bad in ({"node": "a node"}, {"continuum": "x" * 64}, {"node": "-x"}):
    try:
        km.affinity(bad)
        t.ok(False, "placement %s is refused" % json.dumps(bad))
    except km.PlacementError as e:
        t.like(str(e), r"cannot be a Kubernetes label value", "placement %s is refused: %s"
               % (json.dumps(bad), e))
t.is_([km.context_of(p) for p in (None, {"clusterID": "*"}, {"clusterID": ""},
                                  {"clusterID": "edge-1"})], [None, None, None, "edge-1"],
      "clusterID names the kubeconfig context; '*', '' and none mean the current one")

# ---- a deployment's objects ----
s = km.Settings(namespace="ml", image="reg.example/mlconnector-runtime:1", instance="inst",
                api_url="http://10.0.0.5:8090", memory=1 << 30, cpu=1.5, tmp_size=32 << 20)
objs = km.deployment_objects(s, "Dep_1", {"node": "worker-1"}, "s3cret", "abc")
t.is_([o["kind"] for o in objs], ["Secret", "NetworkPolicy", "Service", "Deployment"],
      "a deployment is a Secret, a NetworkPolicy, a Service and a Deployment")
name = km.object_name("Dep_1")
for o in objs:
    md = o["metadata"]
    t.is_((md["namespace"], md["labels"], md["annotations"][km.A_ID]),
          ("ml", {"app.kubernetes.io/managed-by": "mlconnector", "mlconnector.io/instance": "inst",
                  "mlconnector.io/deployment": name}, "Dep_1"),
          "%s: namespace, the labels that find it, the id annotation" % o["kind"])
sec, pol, svc, dep = objs
t.is_(sec["stringData"], {"token": "s3cret"}, "the Secret holds the job credential")
spec = dep["spec"]["template"]["spec"]
t.is_(dep["spec"]["selector"]["matchLabels"],
      {"mlconnector.io/instance": "inst", "mlconnector.io/deployment": name},
      "the Deployment selects its pods by instance and deployment")
t.ok(all(dep["spec"]["template"]["metadata"]["labels"].get(k) == v
         for k, v in svc["spec"]["selector"].items()), "the Service selects the same pods")
t.is_(svc["spec"]["ports"], [{"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"}],
      "the Service exposes the runtime's port 8080")
t.is_((spec["automountServiceAccountToken"], spec["enableServiceLinks"]), (False, False),
      "the pod gets no service account token and no service links")
t.is_(spec["securityContext"], {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
      "the pod runs as the image's non-root user with the runtime's default seccomp profile")
containers = spec["initContainers"] + spec["containers"]
t.is_([c["name"] for c in containers], ["fetch", "runtime"], "an init container and the runtime")
for c in containers:
    sc = c["securityContext"]
    t.is_((sc["runAsNonRoot"], sc["readOnlyRootFilesystem"], sc["allowPrivilegeEscalation"],
           sc["privileged"], sc["capabilities"], sc["seccompProfile"]),
          (True, True, False, False, {"drop": ["ALL"]}, {"type": "RuntimeDefault"}),
          "container %s: non-root, read-only root, no privilege escalation, no capabilities, "
          "RuntimeDefault seccomp" % c["name"])
main = spec["containers"][0]
t.is_(main["command"], ["/usr/bin/python3", "/opt/mlconnector/scripts/mlc-runtime", "--dir",
                        "/bundle", "--listen", "0.0.0.0:8080"],
      "the runtime container runs mlc-runtime on port 8080 from the fetched bundle")
t.is_(main["resources"]["limits"], {"memory": str(1 << 30), "cpu": "1500m",
                                    "ephemeral-storage": str((32 << 20) + (64 << 20))},
      "MLC_RUNTIME_MEMORY and MLC_RUNTIME_CPU become the runtime's limits")
t.is_(main["resources"]["requests"]["memory"], str(1 << 30), "memory is requested as limited")
s0 = km.Settings(cpu=0)
t.ok("cpu" not in km.deployment(s0, "x", None)["spec"]["template"]["spec"]["containers"][0][
    "resources"]["limits"], "MLC_RUNTIME_CPU=0: no CPU limit")
t.is_([m["readOnly"] for m in main["volumeMounts"] if m["mountPath"] == "/bundle"], [True],
      "the runtime sees its bundle read-only")
t.ok("s3cret" not in json.dumps(dep), "the credential itself is nowhere in the Deployment")
fetch_env = {e["name"]: e for e in spec["initContainers"][0]["env"]}
t.is_(fetch_env["MLC_JOB_TOKEN"].get("valueFrom"),
      {"secretKeyRef": {"name": name + "-job", "key": "token"}},
      "the init container reads the credential from the Secret")
t.ok(all(e["name"] != "MLC_JOB_TOKEN" for e in main["env"]),
     "the runtime container does not get the credential")
t.ok("http://10.0.0.5:8090/deployment/Dep_1/bundle" in spec["initContainers"][0]["command"],
     "the init container downloads from GET /deployment/{id}/bundle")
t.is_(spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
    "nodeSelectorTerms"], [{"matchExpressions": [HOST]}], "the placement's node affinity")
t.is_(dep["spec"]["template"]["metadata"]["annotations"][km.A_BUNDLE], "abc",
      "the bundle's hash is a pod annotation: a new bundle rolls the pods")
t.is_(pol["spec"]["policyTypes"], ["Ingress", "Egress"], "the NetworkPolicy restricts both ways")
t.is_(pol["spec"]["ingress"], [{"ports": [{"protocol": "TCP", "port": 8080}]}],
      "ingress: only the runtime's port")
t.is_(pol["spec"]["egress"], [{"ports": [{"protocol": "TCP", "port": 8090}],
                               "to": [{"ipBlock": {"cidr": "10.0.0.5/32"}}]}],
      "egress: nothing but the API's address and port")
s2 = km.Settings(api_url="https://mlc.example")
t.is_(km.api_egress(s2), [{"ports": [{"protocol": "TCP", "port": 443}]},
                          {"ports": [{"protocol": "UDP", "port": 53},
                                     {"protocol": "TCP", "port": 53}]}],
      "an API reached by name: its port, and DNS")
s3 = km.Settings(api_url="https://mlc.example", api_cidr="192.0.2.0/28, 198.51.100.7/32")
t.is_(km.api_egress(s3), [{"ports": [{"protocol": "TCP", "port": 443}],
                           "to": [{"ipBlock": {"cidr": "192.0.2.0/28"}},
                                  {"ipBlock": {"cidr": "198.51.100.7/32"}}]}],
      "MLC_KUBE_API_CIDR narrows it to the API's addresses")
t.is_(km.endpoint("http://{name}.{namespace}.svc:{port}", "Dep_1", "ml", svc),
      "http://%s.ml.svc:8080" % name, "the default endpoint is the Service's DNS name")
t.is_(km.endpoint("http://{cluster_ip}:{port}", "d", "ml", {"spec": {"clusterIP": "10.9.8.7"}}),
      "http://10.9.8.7:8080", "or its cluster IP")
t.is_(km.endpoint("https://models.example/{id}", "a b", "ml", {}), "https://models.example/a%20b",
      "or an ingress URL naming the deployment")

# ---- a training's objects ----
tobjs = km.training_objects(s, "t-1", "m-1", "tok")
t.is_([o["kind"] for o in tobjs], ["Secret", "NetworkPolicy", "Job"],
      "a training is a Secret, a NetworkPolicy and a Job")
job = tobjs[2]
t.is_((job["spec"]["backoffLimit"], job["spec"]["template"]["spec"]["restartPolicy"],
       job["spec"]["activeDeadlineSeconds"]), (0, "Never", 600),
      "the Job never retries and ends at MLC_TRAIN_TIMEOUT")
t.is_(tobjs[1]["spec"]["ingress"], [], "nothing may connect to a training's pod")
tmain = job["spec"]["template"]["spec"]["containers"][0]
t.ok("http://10.0.0.5:8090/mltraining/t-1/model" in tmain["command"],
     "the training sends its model to PUT /mltraining/{id}/model")

# ---- the runtime image ----
dockerfile = open(os.path.join(ROOT, "conf", "kubernetes", "Dockerfile")).read()
lines = re.sub(r"\\\n", " ", dockerfile).splitlines()
instr = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
t.is_([i for i in instr if i.startswith("FROM ")], ["FROM debian:12-slim"],
      "Dockerfile: one base, Debian 12 slim")
users = [i.split()[1] for i in instr if i.startswith("USER ")]
t.ok(users and re.match(r"^[1-9][0-9]*(:[1-9][0-9]*)?$", users[-1]) and
     users[-1].split(":")[0] == str(km.RUN_AS),
     "Dockerfile: the last USER is the non-root uid the pods run as (%d)" % km.RUN_AS, users)
t.ok(not [i for i in instr if i.startswith("ADD ")], "Dockerfile: no ADD (nothing fetched)")
runs = " ".join(i for i in instr if i.startswith("RUN "))
t.ok(not re.search(r"\b(curl|wget|pip3?|git|easy_install)\b|https?://", runs),
     "Dockerfile: no network fetch besides Debian's archive", runs)
t.ok(re.search(r"apt-get install -y --no-install-recommends", runs) and
     all(p in runs.split() for p in ("python3", "python3-numpy", "python3-scipy", "python3-sklearn",
                                     "python3-pandas", "python3-joblib")),
     "Dockerfile: the runtime's Debian packages, without recommends")
copied = []
for i in instr:
    if i.startswith("COPY "):
        copied += i.split()[1:-1]
t.ok(copied and all(os.path.exists(os.path.join(ROOT, c)) for c in copied),
     "Dockerfile: every file it copies exists", [c for c in copied
                                                  if not os.path.exists(os.path.join(ROOT, c))])
need = set()
for mod in ("runtime", "explain", "bundle", "safefs"):
    src = open(os.path.join(ROOT, "scripts", "mlcpy", mod + ".py")).read()
    need |= {m for m in re.findall(r"^from \.(\w*) import (\w+)", src, re.M) for m in m if m}
need = {n for n in need if os.path.exists(os.path.join(ROOT, "scripts", "mlcpy", n + ".py"))}
t.ok(all("scripts/mlcpy/%s.py" % n in copied for n in need),
     "Dockerfile: the mlcpy modules the image's programs import are copied", need)

# ---- the MLSysOps application description ----
desc = bm.description("dep-1", {"clusterID": "*", "node": "*", "continuum": False}, "img",
                      ["run"], [("A", "1")])
t.is_(desc, {"MLSysOpsApplication": {"name": "mlconnector", "mlsysops-id": "dep-1", "components": [
    {"Component": {"name": "ml-comp", "uid": "dep-1"}, "restartPolicy": "OnFailure",
     "containers": [{"image": "img", "imagePullPolicy": "IfNotPresent",
                     "ports": [{"containerPort": 8080}], "command": ["run"],
                     "env": [{"name": "A", "value": "1"}]}]}]}},
      "MLSysOps description of a deployment placed anywhere")
app = bm.description("d", {"clusterID": "uth-prod", "node": "n1", "continuum": "Edge"}, "i", [],
                     [])["MLSysOpsApplication"]
t.is_((app["clusterPlacement"], app["components"][0]["nodePlacement"]),
      ({"clusterID": ["uth-prod"], "instances": 1}, {"node": "n1", "continuumLayer": ["Edge"]}),
      "clusterID, node and continuum as the Python MLConnector mapped them")
t.is_(bm.parse_status("{'status': 'deployed', 'timestamp': 't', 'local_endpoint': "
                      "'10.0.0.1:8080'}"),
      ("deployed", {"status": "deployed", "timestamp": "t", "local_endpoint": "10.0.0.1:8080"}),
      "a status stored as str(dict) is read")
t.is_(bm.parse_status("Deployment_Failed")[0], "Deployment_Failed", "a bare status word is read")
t.is_(bm.parse_status("{'status': __import__('os')}")[0], "{'status': __import__('os')}",
      "a status that is not a literal is only text (never evaluated)")
for hostile in ("{" * 200000, "{'status': 'deployed', 'x': " + "[" * 5000 + "]" * 5000 + "}",
                "{'status': " + "1" * 100000 + "}", "{'status': 'deployed'" + " " * 70000 + "}"):
    got = bm.parse_status(hostile)
    t.ok(isinstance(got[0], str) and len(got[0]) <= 200,
         "a hostile status string (%d characters) is read without harm" % len(hostile))
t.is_(bm.parse_status("{'status': 'deployed', 'global_endpoint': 'evil.example/x?y#:80', "
                      "'local_endpoint': '10.0.0.1:8080'}")[1].get("global_endpoint"), None,
      "an endpoint that is not host:port is dropped")
t.is_(bm.MlsysopsBackend.endpoint(bm.parse_status(
    "{'status': 'deployed', 'global_endpoint': 'a b:1', 'local_endpoint': '10.0.0.1:8080'}")[1]),
      "http://10.0.0.1:8080", "the local endpoint is used instead")

# ---- configured or not ----
cfg0 = config.Config({"MLC_VAR": "/nonexistent"}, ROOT, {})
t.is_([B.configured(n, cfg0) for n in ("local", "kubernetes", "mlsysops", "docker")],
      [None, "set MLC_KUBECONFIG", "set MLC_NORTHBOUND_URL",
       "no such backend (known: local, kubernetes, mlsysops)"],
      "which backends an installation can use, and what the others need")

# ---- the kubernetes backend against the fake API server ----
try:
    import kubernetes  # noqa: F401
    have_client = True
except ImportError:
    have_client = False
import fakekube  # noqa: E402


class Tokens:
    def __init__(self):
        self.rows = {}

    def deployment(self, dep_id, sha):
        self.rows[dep_id] = sha
        return True

    training = deployment


def staged(var, dep_id, placement=None):
    d = tempfile.mkdtemp(dir=var)
    with open(os.path.join(d, "job.json"), "w") as f:
        json.dump({"type": "deploy", "deployment_id": dep_id, "placement": placement,
                   "files": {"model": {"name": "model.pkl"}}}, f)
    with open(os.path.join(d, "model.pkl"), "wb") as f:
        f.write(b"not really a model")
    return d


def until(fn, seconds=15):
    end = time.time() + seconds
    while time.time() < end:
        out = fn()
        if out is not None:
            return out
        time.sleep(0.1)
    return None


if not have_client:
    t.skip("kubernetes backend against the fake", "needs the Debian package python3-kubernetes")
else:
    from mlcpy import backend_kubernetes as bk  # noqa: E402
    var = tempfile.mkdtemp(prefix="t0800-")
    fk = fakekube.FakeKube(root=ROOT, mode="ready", delay=0.3)
    t.defer(fk.close)
    kc = fk.kubeconfig(os.path.join(var, "kube", "config"))
    cfg = config.Config({"MLC_VAR": var, "MLC_KUBECONFIG": kc, "MLC_KUBE_START_TIMEOUT": "3",
                         "MLC_KUBE_INSTANCE": "t0800"}, ROOT, {})
    be = bk.KubernetesBackend(cfg)
    be.tokens = Tokens()

    def deploy(dep_id, mode, placement=None):
        fk.modes[km.object_name(dep_id)] = mode
        be.install(dep_id, staged(var, dep_id, placement))
        launch = be.launch(dep_id, "deploy")
        return until(lambda: be.poll(launch))

    r = deploy("ok-1", "ready")
    t.is_(type(r).__name__, "Ready", "a rollout that becomes available is Ready", r)
    t.is_(r.endpoint, "http://%s.mlconnector.svc:8080" % km.object_name("ok-1"),
          "with the endpoint of MLC_KUBE_ENDPOINT's default")
    t.is_(type(be.observe("ok-1")).__name__, "Running", "observed while serving: Running")
    # The container starts crashing after it served.
    with fk.lock:
        for key, st in fk.pods.items():
            if key[2].startswith(km.object_name("ok-1")):
                st["mode"], st["born"] = "crash", time.monotonic() - 1
    seen = until(lambda: be.observe("ok-1") if type(be.observe("ok-1")).__name__ == "Crashed"
                 else None, 5)
    t.like(getattr(seen, "detail", ""), r"^CrashLoopBackOff: container runtime exited with status "
           r"3: model failed to load", "a crash loop after serving is observed as Crashed")
    be.crashed("ok-1", time.time() + 60, "x")
    t.is_(type(be.observe("ok-1")).__name__, "Backoff", "then Backoff until the restart is due")
    t.ok(be.remove("ok-1"), "remove() deletes it all and says so")
    t.is_(fk.all_objects("mlconnector.io/deployment=%s" % km.object_name("ok-1")), [],
          "nothing of it is left")
    t.is_(be.tokens.rows.get("ok-1"), None, "its credential is cleared")
    t.is_(be.present(), set(), "and the spooler's record")

    r = deploy("crash-1", "crash")
    t.like(getattr(r, "reason", ""), r"^CrashLoopBackOff: container runtime exited with status 3: "
           r"model failed to load: ValueError: not a model$", "a crash loop while starting fails "
           "the launch with its reason")
    r = deploy("pull-1", "imagepull")
    t.like(getattr(r, "reason", ""), r"^ImagePullBackOff: init container fetch: Back-off pulling "
           r"image", "an image that cannot be pulled fails the launch")
    r = deploy("pend-1", "pending", {"node": "nowhere"})
    t.like(getattr(r, "reason", ""), r"did not become available in Kubernetes within 3 s "
           r"\(MLC_KUBE_START_TIMEOUT\); the pod cannot be scheduled: 0/3 nodes are available",
           "a pod that cannot be scheduled fails at MLC_KUBE_START_TIMEOUT, saying why")
    for d in ("crash-1", "pull-1", "pend-1"):
        be.remove(d)
    t.is_(fk.all_objects("mlconnector.io/instance=t0800"), [], "removed, they leave nothing")

    # Objects of this instance that no deployment wants are found and deleted.
    deploy("keep-1", "ready")
    deploy("lost-1", "ready")
    os.unlink(os.path.join(var, "kubernetes", "lost-1.json"))  # a record lost
    stopped = be.strays({"keep-1"})
    t.is_(stopped, ["lost-1"], "strays() deletes the objects of a deployment no row wants")
    t.ok("deployment lost-1: kubernetes: deleting stray objects (no deployment wants them)"
         in LOGGED, "and says so in the log")
    t.is_(sorted({n for _, _, n in fk.all_objects("mlconnector.io/instance=t0800")
                  if not n.startswith(km.object_name("keep-1"))}), [],
          "only the wanted deployment's objects remain")
    lists = [q.get("labelSelector") for c, m, p, q, b in fk.requests if m == "GET"
             and p.endswith("/pods")]
    t.ok(lists and all(sel and "mlconnector.io/instance=t0800" in sel for sel in lists),
         "every pod listing is narrowed to this instance's labels", lists[:3])
    be.remove("keep-1")

    # The cluster API unreachable: removal waits and says why; nothing is lost.
    dead = fakekube.free_port()
    kc2 = os.path.join(var, "kube", "dead")
    with open(kc2, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "d",
                   "clusters": [{"name": "d", "cluster": {"server": "http://127.0.0.1:%d" % dead}}],
                   "users": [{"name": "u", "user": {"token": "x"}}],
                   "contexts": [{"name": "d", "context": {"cluster": "d", "user": "u"}}]}, f)
    be2 = bk.KubernetesBackend(config.Config({"MLC_VAR": var, "MLC_KUBECONFIG": kc2}, ROOT, {}))
    be2.tokens = Tokens()
    be2._write_state("down-1", {"context": None})
    t.is_(be2.remove("down-1"), False, "with the cluster API unreachable, remove() is not done")
    t.ok(any(ln.startswith("deployment down-1: kubernetes: cannot remove it yet (trying again): "
                           "Kubernetes API unreachable") for ln in LOGGED),
         "and logs why", LOGGED[-2:])
    t.is_(be2.present(), {"down-1"}, "its record stays for the next try")
    try:
        be2.observe("down-1")
        t.ok(False, "observe() with the cluster away raises an OSError for the spooler")
    except OSError as e:
        t.like(str(e), r"unreachable", "observe() with the cluster away raises an OSError for the "
               "spooler, which counts no crash")

# ---- the mlsysops backend against the fake Northbound API ----
var2 = tempfile.mkdtemp(prefix="t0800-nb-")
nb = fakekube.FakeNorthbound(root=ROOT, mode="ready", delay=0.3, prefix="/nb")
t.defer(nb.close)
cfg2 = config.Config({"MLC_VAR": var2, "MLC_NORTHBOUND_URL": nb.url, "MLC_KUBE_START_TIMEOUT": "5",
                      "MLC_KUBE_API_URL": "http://10.0.0.5:8090",
                      "MLC_KUBE_IMAGE": "reg.example/rt:1"}, ROOT, {})
mb = bm.MlsysopsBackend(cfg2)
mb.tokens = Tokens()
mb.install("nb-1", staged(var2, "nb-1", {"clusterID": "uth-dev", "node": "*", "continuum": "Edge"}))
launch = mb.launch("nb-1", "deploy")
posted = [b for m, p, b in nb.requests if m == "POST" and p == "/ml/deploy_ml"]
app = posted[0]["MLSysOpsApplication"] if posted else {}
t.is_((app.get("mlsysops-id"), app.get("clusterPlacement")),
      ("nb-1", {"clusterID": ["uth-dev"], "instances": 1}),
      "POST /ml/deploy_ml carries the deployment id and its cluster")
c = app["components"][0]["containers"][0] if app else {}
env = {e["name"]: e["value"] for e in c.get("env", [])}
t.is_(c.get("image"), "reg.example/rt:1", "the container is the runtime image (MLC_KUBE_IMAGE)")
t.ok(c.get("command", [])[:2] == ["/usr/bin/python3", "/opt/mlconnector/scripts/mlc-kube-fetch"]
     and "--" in c.get("command", []) and "http://10.0.0.5:8090/deployment/nb-1/bundle" in
     c.get("command", []), "its command fetches the bundle from the API, then runs mlc-runtime",
     c.get("command"))
t.ok(env.get("MLC_JOB_TOKEN") and mb.tokens.rows.get("nb-1") ==
     __import__("hashlib").sha256(env["MLC_JOB_TOKEN"].encode()).hexdigest(),
     "it carries the credential whose hash the row keeps")
r = until(lambda: mb.poll(launch))
t.is_(type(r).__name__, "Ready", "the deployment becomes Ready when MLSysOps says deployed", r)
t.like(getattr(r, "endpoint", ""), r"^http://127\.0\.0\.1:\d+$", "at its global endpoint")
t.is_(type(mb.observe("nb-1")).__name__, "Running", "observed: Running")
t.is_(mb.remove("nb-1"), False, "remove() asks MLSysOps to remove it and waits")
t.ok(until(lambda: mb.remove("nb-1") or None, 5), "until MLSysOps no longer knows it")
t.is_(len([1 for m, p, b in nb.requests if m == "DELETE" and p == "/ml/remove/nb-1"]), 1,
      "DELETE /ml/remove/{id} is sent once")
t.is_(mb.present(), set(), "the record is gone")
nb.mode = "fail"
mb.install("nb-2", staged(var2, "nb-2"))
launch = mb.launch("nb-2", "deploy")
r = until(lambda: mb.poll(launch))
t.like(getattr(r, "reason", ""), r"MLSysOps reported Deployment_Failed", "a failed deployment")
t.is_(sorted(mb.list_all()), ["nb-2"], "GET /ml/list_all/ lists what MLSysOps holds")
until(lambda: mb.remove("nb-2") or None, 5)
t.is_(mb.list_all(), {}, "nothing is left once removed")
t.done()
