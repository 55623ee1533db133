"""fakekube - a fake Kubernetes API server and a fake MLSysOps Northbound
API for the tests of the kubernetes and mlsysops backends.

FakeKube is a small HTTP server on loopback that python3-kubernetes talks
to through a generated kubeconfig (kubeconfig()).  It keeps objects
(Secrets, Services, Pods, Deployments, ReplicaSets, NetworkPolicies, Jobs)
in memory, records every request (.requests), and plays what a cluster
does with them, chosen per object by .mode (or .modes[name]):

  "ready"      the Deployment's pod becomes ready after .delay seconds;
               a Job's pod succeeds
  "crash"      the runtime container keeps exiting: restartCount grows,
               waiting reason CrashLoopBackOff, lastState.terminated with
               the message .crash_message
  "imagepull"  the init container waits in ImagePullBackOff
  "pending"    the pod is never scheduled (PodScheduled False)
  "fail"       a Job's pod fails
  "exec"       the pod's containers really run here, as local processes
               (Runner): /opt/mlconnector is the source tree, every volume
               a temporary directory, port 8080 the Service's node port on
               127.0.0.1, secretKeyRef env values read from the Secrets

Deleting a Deployment or Job deletes its ReplicaSet and pods (garbage
collection) and stops their processes.  Server URLs may carry a
/clusters/<name> prefix: requests are recorded with that cluster name, so
that kubeconfig contexts pointing at different "clusters" can be told
apart.

FakeNorthbound is the MLSysOps Northbound API: POST /ml/deploy_ml,
GET /ml/status/{id}, GET /ml/list_all/, DELETE /ml/remove/{id}, with the
answers' shapes of the framework (status values as str(dict)); in mode
"exec" it runs the description's container command here.
"""

import base64
import copy
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

APP_DIR = "/opt/mlconnector"
KINDS = {  # url segment -> (kind, api prefix)
    "secrets": ("Secret", "/api/v1"),
    "services": ("Service", "/api/v1"),
    "pods": ("Pod", "/api/v1"),
    "deployments": ("Deployment", "/apis/apps/v1"),
    "replicasets": ("ReplicaSet", "/apis/apps/v1"),
    "networkpolicies": ("NetworkPolicy", "/apis/networking.k8s.io/v1"),
    "jobs": ("Job", "/apis/batch/v1"),
}
PATH_RE = re.compile(r"^(?:/clusters/(?P<cluster>[^/]+))?(?P<prefix>/api/v1|/apis/[^/]+/v1)"
                     r"/namespaces/(?P<ns>[^/]+)/(?P<plural>[a-z]+)(?:/(?P<name>[^/]+))?"
                     r"(?P<sub>/status|/log)?$")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def selector_match(selector, labels):
    """k=v,k2=v2 equality selectors (what the backend sends)."""
    for term in filter(None, (selector or "").split(",")):
        k, _, v = term.partition("=")
        if labels.get(k.strip()) != v.strip():
            return False
    return True


class Runner:
    """A pod's (or MLSysOps component's) containers as local processes."""

    def __init__(self, root, volumes, port_map, env_lookup=None):
        self.root, self.volumes, self.port_map = root, volumes, port_map
        self.env_lookup = env_lookup or (lambda ref: "")
        self.proc = None
        self.output = b""

    def _map(self, text):
        # Volumes are container paths: match them before the image's
        # /opt/mlconnector becomes the source tree, which may itself lie
        # under a path a volume shadows (a checkout in /tmp, a /tmp volume).
        for mount, local in sorted(self.volumes.items(), key=lambda kv: -len(kv[0])):
            if text == mount or text.startswith(mount + "/"):
                return local + text[len(mount):]
        text = text.replace(APP_DIR + "/", self.root.rstrip("/") + "/")
        for port, local in self.port_map.items():
            text = text.replace("0.0.0.0:%d" % port, "127.0.0.1:%d" % local)
        return text

    def env(self, spec):
        env = {}
        for e in spec.get("env") or []:
            if "value" in e:
                env[e["name"]] = self._map(str(e["value"]))
            elif "valueFrom" in e:
                env[e["name"]] = self.env_lookup(e["valueFrom"])
        env.setdefault("PATH", "/usr/bin:/bin")
        return env

    def start(self, spec):
        argv = [self._map(a) for a in spec["command"] + (spec.get("args") or [])]
        self.output = b""
        self.proc = subprocess.Popen(argv, env=self.env(spec), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
        return self.proc

    def _drain(self, proc):
        for chunk in iter(lambda: proc.stdout.read(4096), b""):
            self.output = (self.output + chunk)[-65536:]

    def run(self, spec, timeout=120):
        proc = self.start(spec)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return -9

    def last_line(self):
        lines = [ln for ln in self.output.decode("utf-8", "replace").splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 15)
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, 9)
                except OSError:
                    pass


def health_ok(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=1) as r:
            return r.status == 200
    except Exception:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class FakeKube:
    def __init__(self, root=None, mode="ready", delay=0.5):
        self.root = root or os.environ.get("MLC_ROOT") or os.getcwd()
        self.mode, self.modes, self.delay = mode, {}, delay
        self.crash_message = "model failed to load: ValueError: not a model"
        self.lock = threading.RLock()
        self.objects = {}      # (cluster, kind, ns, name) -> obj
        self.requests = []     # (cluster, method, path, query, body)
        self.pods = {}         # (cluster, ns, pod name) -> state dict
        self.rv = itertools.count(1)
        self.tmp = tempfile.mkdtemp(prefix="fakekube-")
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _reply(self, status, obj):
                raw = isinstance(obj, bytes)
                data = obj if raw else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if raw else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                body = json.loads(raw) if raw else None
                status, obj = fake.handle(method, self.path, body)
                self._reply(status, obj)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PUT(self):
                self._handle("PUT")

            def do_DELETE(self):
                self._handle("DELETE")

            def do_PATCH(self):
                self._handle("PATCH")

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.stopping = threading.Event()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.ticker = threading.Thread(target=self._tick_loop, daemon=True)
        self.ticker.start()

    # ---- kubeconfig ----

    def kubeconfig(self, path, contexts=("fake",), current="fake"):
        """Write a kubeconfig whose contexts are clusters of this server
        (context c reaches <url>/clusters/c)."""
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": current,
               "clusters": [{"name": c, "cluster": {"server": "%s/clusters/%s" % (self.url, c)}}
                            for c in contexts],
               "users": [{"name": "tester", "user": {"token": "fake-token"}}],
               "contexts": [{"name": c, "context": {"cluster": c, "user": "tester"}}
                            for c in contexts]}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(cfg, f)
        os.replace(tmp, path)
        return path

    def close(self):
        self.stopping.set()
        with self.lock:
            for st in self.pods.values():
                for r in st.get("runners", {}).values():
                    r.stop()
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- the API ----

    def handle(self, method, path, body):
        u = urllib.parse.urlsplit(path)
        q = dict(urllib.parse.parse_qsl(u.query))
        m = PATH_RE.match(u.path)
        cluster = (m.group("cluster") if m else None) or "default"
        with self.lock:
            self.requests.append((cluster, method, u.path, q, copy.deepcopy(body)))
        if not m or m.group("plural") not in KINDS:
            return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound",
                         "message": "the server could not find the requested resource",
                         "code": 404}
        kind = KINDS[m.group("plural")][0]
        ns, name = m.group("ns"), m.group("name")
        with self.lock:
            if method == "GET" and name is None:
                items = [copy.deepcopy(o) for (c, k, n, _), o in sorted(self.objects.items())
                         if c == cluster and k == kind and n == ns and
                         selector_match(q.get("labelSelector"),
                                        o["metadata"].get("labels") or {})]
                return 200, {"kind": kind + "List", "apiVersion": "v1",
                             "metadata": {"resourceVersion": str(next(self.rv))}, "items": items}
            key = (cluster, kind, ns, name)
            if method == "GET" and m.group("sub") == "/log":
                st = self.pods.get((cluster, ns, name))
                if st is None:
                    return self._404(kind, name)
                runner = st.get("runners", {}).get("main")
                return 200, runner.output if runner else b"fake log line\n"
            if method == "GET":
                obj = self.objects.get(key)
                return (200, copy.deepcopy(obj)) if obj else self._404(kind, name)
            if method == "POST":
                name = body["metadata"]["name"]
                key = (cluster, kind, ns, name)
                if key in self.objects:
                    return 409, {"kind": "Status", "status": "Failure", "reason": "AlreadyExists",
                                 "message": '%s "%s" already exists' % (kind.lower(), name),
                                 "code": 409}
                obj = self._create(cluster, kind, ns, body)
                return 201, copy.deepcopy(obj)
            if method == "PUT":
                old = self.objects.get(key)
                if old is None:
                    return self._404(kind, name)
                if body["metadata"].get("resourceVersion") not in (
                        None, old["metadata"]["resourceVersion"]):
                    return 409, {"kind": "Status", "status": "Failure", "reason": "Conflict",
                                 "message": "the object has been modified", "code": 409}
                obj = copy.deepcopy(body)
                obj["metadata"].update({k: old["metadata"][k] for k in
                                        ("uid", "creationTimestamp", "generation")})
                obj["metadata"]["resourceVersion"] = str(next(self.rv))
                if json.dumps(old.get("spec"), sort_keys=True) != json.dumps(obj.get("spec"),
                                                                             sort_keys=True):
                    obj["metadata"]["generation"] = old["metadata"]["generation"] + 1
                obj["status"] = old.get("status", {})
                if kind == "Service":
                    self._service_defaults(obj, old)
                self.objects[key] = obj
                return 200, copy.deepcopy(obj)
            if method == "DELETE":
                obj = self.objects.get(key)
                if obj is None:
                    return self._404(kind, name)
                self._delete(key)
                return 200, {"kind": "Status", "status": "Success"}
        return 405, {"message": "method not allowed"}

    @staticmethod
    def _404(kind, name):
        return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound",
                     "message": '%ss "%s" not found' % (kind.lower(), name), "code": 404}

    def _create(self, cluster, kind, ns, body):
        obj = copy.deepcopy(body)
        md = obj.setdefault("metadata", {})
        md.update(namespace=ns, uid="uid-%d" % next(self.rv), resourceVersion=str(next(self.rv)),
                  creationTimestamp=now_iso(), generation=1)
        obj["kind"], obj["status"] = kind, {}
        if kind == "Secret" and "stringData" in obj:
            obj["data"] = {k: base64.b64encode(v.encode()).decode()
                           for k, v in obj.pop("stringData").items()}
        if kind == "Service":
            self._service_defaults(obj, None)
        if kind == "Deployment":
            obj["status"] = {"observedGeneration": 0}
        self.objects[(cluster, kind, ns, md["name"])] = obj
        return obj

    def _service_defaults(self, obj, old):
        spec = obj.setdefault("spec", {})
        ospec = (old or {}).get("spec") or {}
        spec["clusterIP"] = ospec.get("clusterIP") or "10.96.%d.%d" % (next(self.rv) % 250,
                                                                       next(self.rv) % 250)
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            oports = {p.get("name"): p.get("nodePort") for p in ospec.get("ports") or []}
            for p in spec.get("ports") or []:
                p["nodePort"] = p.get("nodePort") or oports.get(p.get("name")) or free_port()

    def _delete(self, key):
        cluster, kind, ns, name = key
        obj = self.objects.pop(key, None)
        if obj is None:
            return
        if kind in ("Deployment", "Job"):
            for k in [k for k, o in self.objects.items()
                      if k[0] == cluster and k[2] == ns and k[1] in ("ReplicaSet", "Pod") and
                      any(r.get("name") == name for r in
                          o["metadata"].get("ownerReferences") or [])]:
                self._delete(k)
        if kind == "ReplicaSet":
            for k in [k for k, o in self.objects.items()
                      if k[0] == cluster and k[2] == ns and k[1] == "Pod" and
                      any(r.get("name") == name for r in
                          o["metadata"].get("ownerReferences") or [])]:
                self._delete(k)
        if kind == "Pod":
            st = self.pods.pop((cluster, ns, name), None)
            for r in (st or {}).get("runners", {}).values():
                threading.Thread(target=r.stop, daemon=True).start()

    # ---- what the cluster does ----

    def mode_of(self, name):
        return self.modes.get(name, self.mode)

    def _tick_loop(self):
        while not self.stopping.wait(0.1):
            try:
                with self.lock:
                    self.tick()
            except Exception as e:  # keep playing; a test sees the effect
                print("# fakekube tick: %s: %s" % (type(e).__name__, e))

    def tick(self):
        for key, obj in list(self.objects.items()):
            if key[1] == "Deployment":
                self._play_deployment(key, obj)
            elif key[1] == "Job":
                self._play_job(key, obj)
        for key, st in list(self.pods.items()):
            pod = self.objects.get((key[0], "Pod", key[1], key[2]))
            if pod is not None:
                self._play_pod(key, st, pod)

    def _owned(self, cluster, ns, kind, owner):
        return [o for (c, k, n, _), o in self.objects.items() if c == cluster and n == ns and
                k == kind and any(r.get("name") == owner
                                  for r in o["metadata"].get("ownerReferences") or [])]

    def _new_pod(self, cluster, ns, owner_kind, owner_name, template, mode):
        pod_name = "%s-%s" % (owner_name, next(self.rv))
        md = copy.deepcopy(template.get("metadata") or {})
        md.update(name=pod_name, ownerReferences=[{"kind": owner_kind, "name": owner_name}])
        pod = self._create(cluster, "Pod", ns, {"metadata": md,
                                                 "spec": copy.deepcopy(template["spec"])})
        pod["status"] = {"phase": "Pending", "conditions": []}
        self.pods[(cluster, ns, pod_name)] = {"mode": mode, "born": time.monotonic(),
                                              "restarts": 0, "runners": {}, "phase": "new",
                                              "owner": owner_kind}
        return pod

    def _play_deployment(self, key, dep):
        cluster, _, ns, name = key
        gen = dep["metadata"]["generation"]
        tmpl_hash = str(abs(hash(json.dumps(dep["spec"]["template"], sort_keys=True))) % 10**8)
        rs_name = "%s-%s" % (name, tmpl_hash)
        rss = self._owned(cluster, ns, "ReplicaSet", name)
        if not any(rs["metadata"]["name"] == rs_name for rs in rss):
            for rs in rss:  # a new template: the old pods go (replace at once)
                self._delete((cluster, "ReplicaSet", ns, rs["metadata"]["name"]))
            rs = self._create(cluster, "ReplicaSet", ns, {"metadata": {
                "name": rs_name, "labels": dep["spec"]["template"]["metadata"].get("labels"),
                "ownerReferences": [{"kind": "Deployment", "name": name}]}, "spec": {}})
            self._new_pod(cluster, ns, "ReplicaSet", rs_name, dep["spec"]["template"],
                          self.mode_of(name))
        pods = self._owned(cluster, ns, "Pod", rs_name)
        ready = sum(1 for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                           for c in p["status"].get("conditions") or []))
        st = {"observedGeneration": gen, "replicas": len(pods), "updatedReplicas": len(pods),
              "readyReplicas": ready, "availableReplicas": ready,
              "unavailableReplicas": max(0, 1 - ready),
              "conditions": [{"type": "Available", "status": "True" if ready else "False"}]}
        dep["status"] = st

    def _play_job(self, key, job):
        cluster, _, ns, name = key
        pods = self._owned(cluster, ns, "Pod", name)
        if not pods and not job["status"].get("startTime"):
            job["status"]["startTime"] = now_iso()
            self._new_pod(cluster, ns, "Job", name, job["spec"]["template"], self.mode_of(name))
            return
        for p in pods:
            phase = p["status"].get("phase")
            if phase == "Succeeded" and not job["status"].get("succeeded"):
                job["status"].update(succeeded=1, completionTime=now_iso(), active=0,
                                     conditions=[{"type": "Complete", "status": "True"}])
            elif phase == "Failed" and not job["status"].get("failed"):
                job["status"].update(failed=1, active=0, conditions=[{
                    "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit"}])
            elif phase in ("Pending", "Running"):
                job["status"]["active"] = 1

    def _service_port(self, cluster, ns, pod):
        labels = pod["metadata"].get("labels") or {}
        for (c, k, n, _), o in self.objects.items():
            if c == cluster and n == ns and k == "Service" and selector_match(
                    ",".join("%s=%s" % kv for kv in (o["spec"].get("selector") or {}).items()),
                    labels):
                for p in o["spec"].get("ports") or []:
                    if p.get("nodePort"):
                        return p["nodePort"]
        return free_port()

    def _secret_ref(self, cluster, ns, ref):
        sk = ref.get("secretKeyRef") or {}
        sec = self.objects.get((cluster, "Secret", ns, sk.get("name")))
        if not sec:
            return ""
        return base64.b64decode((sec.get("data") or {}).get(sk.get("key"), "")).decode()

    @staticmethod
    def _cstatus(name, ready=False, waiting=None, terminated=None, last=None, restarts=0):
        state = {"running": {"startedAt": now_iso()}}
        if waiting:
            state = {"waiting": waiting}
        elif terminated:
            state = {"terminated": terminated}
        return {"name": name, "ready": ready, "restartCount": restarts, "state": state,
                "lastState": {"terminated": last} if last else {}, "image": "fake"}

    def _play_pod(self, key, st, pod):
        mode = st["mode"]
        spec = pod["spec"]
        init = (spec.get("initContainers") or [{}])[0].get("name", "fetch")
        main = spec["containers"][0]["name"]
        age = time.monotonic() - st["born"]
        s = pod["status"]
        job = st["owner"] == "Job"
        if mode == "pending":
            s["conditions"] = [{"type": "PodScheduled", "status": "False",
                                "reason": "Unschedulable",
                                "message": "0/3 nodes are available: 3 node(s) didn't match "
                                           "Pod's node affinity/selector."}]
            return
        s["conditions"] = [{"type": "PodScheduled", "status": "True"}]
        if mode == "imagepull":
            s["initContainerStatuses"] = [self._cstatus(init, waiting={
                "reason": "ImagePullBackOff",
                "message": 'Back-off pulling image "%s"' % spec["containers"][0]["image"]})]
            return
        if age < self.delay and mode != "exec":
            s["phase"] = "Pending"
            return
        if mode == "exec":
            self._play_exec(key, st, pod, init, main)
            return
        s["initContainerStatuses"] = [self._cstatus(init, terminated={"exitCode": 0,
                                                                       "reason": "Completed"})]
        if mode in ("ready", "fail") and job:
            code = 0 if mode == "ready" else 1
            s["phase"] = "Succeeded" if code == 0 else "Failed"
            s["containerStatuses"] = [self._cstatus(main, terminated={
                "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                "message": "" if code == 0 else self.crash_message})]
            return
        if mode == "ready":
            s["phase"] = "Running"
            s["conditions"].append({"type": "Ready", "status": "True"})
            s["containerStatuses"] = [self._cstatus(main, ready=True)]
            return
        if mode == "crash":
            n = int((age - self.delay) / 0.5) + 1
            s["phase"] = "Running"
            s["containerStatuses"] = [self._cstatus(
                main, restarts=n, waiting={"reason": "CrashLoopBackOff",
                                           "message": "back-off 10s restarting failed container"},
                last={"exitCode": 3, "reason": "Error", "message": self.crash_message + "\n"})]

    def _play_exec(self, key, st, pod, init, main):
        cluster, ns, _ = key
        s, spec = pod["status"], pod["spec"]
        job = st["owner"] == "Job"
        if st["phase"] == "new":
            vols = {}
            for v in spec.get("volumes") or []:
                vols[v["name"]] = tempfile.mkdtemp(prefix=v["name"] + "-", dir=self.tmp)
            port = self._service_port(cluster, ns, pod) if not job else free_port()

            def runner(c):
                mounts = {m["mountPath"]: vols[m["name"]] for m in c.get("volumeMounts") or []}
                return Runner(self.root, mounts, {8080: port},
                              lambda ref: self._secret_ref(cluster, ns, ref))
            st.update(phase="init", port=port, runners={
                "init": runner(spec["initContainers"][0]), "main": runner(spec["containers"][0])})
            st["runners"]["init"].start(spec["initContainers"][0])
            s["phase"] = "Pending"
            s["initContainerStatuses"] = [self._cstatus(init)]
            return
        r_init, r_main = st["runners"]["init"], st["runners"]["main"]
        if st["phase"] == "init":
            if r_init.alive():
                return
            code = r_init.proc.returncode
            if code != 0:
                st["phase"] = "init-failed"
                term = {"exitCode": code, "reason": "Error", "message": r_init.last_line()}
                s["initContainerStatuses"] = [self._cstatus(
                    init, restarts=1, last=term,
                    waiting=None if job else {"reason": "CrashLoopBackOff",
                                              "message": "back-off restarting"},
                    terminated=term if job else None)]
                if job:
                    s["phase"] = "Failed"
                return
            s["initContainerStatuses"] = [self._cstatus(init, terminated={
                "exitCode": 0, "reason": "Completed"})]
            st["phase"] = "run"
            r_main.start(spec["containers"][0])
            s["phase"] = "Running"
            s["containerStatuses"] = [self._cstatus(main, restarts=st["restarts"])]
            return
        if st["phase"] == "run":
            if r_main.alive():
                if not job and health_ok(st["port"]):
                    if not any(c.get("type") == "Ready" for c in s["conditions"]):
                        s["conditions"].append({"type": "Ready", "status": "True"})
                    s["containerStatuses"] = [self._cstatus(main, ready=True,
                                                            restarts=st["restarts"])]
                return
            code = r_main.proc.returncode
            term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                    "message": r_main.last_line()}
            s["conditions"] = [c for c in s["conditions"] if c.get("type") != "Ready"]
            if job:
                s["phase"] = "Succeeded" if code == 0 else "Failed"
                s["containerStatuses"] = [self._cstatus(main, terminated=term)]
                st["phase"] = "done"
                return
            st["restarts"] += 1
            st["restart_at"] = time.monotonic() + 0.5
            st["phase"] = "backoff"
            s["containerStatuses"] = [self._cstatus(
                main, restarts=st["restarts"], last=term,
                waiting={"reason": "CrashLoopBackOff", "message": "back-off restarting failed "
                                                                  "container"})]
            return
        if st["phase"] == "backoff" and time.monotonic() >= st["restart_at"]:
            st["phase"] = "run"
            r_main.start(spec["containers"][0])

    # ---- what the tests ask ----

    def find(self, kind, cluster=None, selector=None):
        with self.lock:
            return [copy.deepcopy(o) for (c, k, _, _), o in sorted(self.objects.items())
                    if k == kind and (cluster is None or c == cluster)
                    and selector_match(selector, o["metadata"].get("labels") or {})]

    def all_objects(self, selector=None):
        with self.lock:
            return sorted((k, c, o["metadata"]["name"]) for (c, k, _, _), o in self.objects.items()
                          if selector_match(selector, o["metadata"].get("labels") or {}))


class FakeNorthbound:
    """The MLSysOps Northbound API's /ml routes; in mode "exec" the
    described container runs here, else a deployment becomes 'deployed'
    (mode "ready") or 'Deployment_Failed' (mode "fail") after .delay s."""

    def __init__(self, root=None, port=0, mode="ready", delay=0.3, prefix=""):
        self.root = root or os.environ.get("MLC_ROOT") or os.getcwd()
        self.mode, self.delay, self.prefix = mode, delay, prefix.rstrip("/")
        self.lock = threading.RLock()
        self.requests = []
        self.apps = {}  # id -> {"status": str(dict) | word, "born", "runner", ...}
        self.tmp = tempfile.mkdtemp(prefix="fakenb-")
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                status, obj = fake.handle(method, self.path, body)
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

        self.server = _Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d%s" % (self.port, self.prefix)
        self.stopping = threading.Event()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._tick_loop, daemon=True).start()

    def close(self):
        self.stopping.set()
        with self.lock:
            for app in self.apps.values():
                if app.get("runner"):
                    app["runner"].stop()
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def handle(self, method, path, body):
        u = urllib.parse.urlsplit(path)
        p = u.path[len(self.prefix):] if u.path.startswith(self.prefix) else u.path
        with self.lock:
            self.requests.append((method, p, copy.deepcopy(body)))
            if method == "POST" and p == "/ml/deploy_ml":
                app = (body or {}).get("MLSysOpsApplication") if isinstance(body, dict) else None
                if not isinstance(app, dict) or not app.get("mlsysops-id") or \
                        not app.get("components"):
                    return 422, {"detail": [{"loc": ["body", "MLSysOpsApplication"],
                                             "msg": "field required"}]}
                uid = app["mlsysops-id"]
                self.apps[uid] = {"desc": body, "born": time.monotonic(), "state": "pending",
                                  "runner": None, "port": None}
                return 200, {"status": "success", "message": "Deployment request added to queue"}
            m = re.match(r"^/ml/status/([^/]+)$", p)
            if method == "GET" and m:
                uid = urllib.parse.unquote(m.group(1))
                app = self.apps.get(uid)
                if app is None:  # the framework wraps its 404 in a 500
                    return 500, {"detail": "Error retrieving status for app_id '%s': 404: Model "
                                           "ID '%s' not found in the system." % (uid, uid)}
                return 200, {"Model ": uid, "status": self._status(app)}
            if method == "GET" and p == "/ml/list_all/":
                if not self.apps:
                    return 200, {"status": "No data in the system."}
                return 200, {"System_status": {k: self._status(a) for k, a in self.apps.items()}}
            m = re.match(r"^/ml/remove/([^/]+)$", p)
            if method == "DELETE" and m:
                uid = urllib.parse.unquote(m.group(1))
                app = self.apps.get(uid)
                if app is None:
                    return 500, {"detail": "Error updating status for app_id '%s': 404: App ID "
                                           "'%s' not found in the system." % (uid, uid)}
                app["state"], app["removing_since"] = "To_be_removed", time.monotonic()
                return 200, {"model_uid": uid, "message": "Application status updated to "
                                                          "'To_be_removed'."}
        return 404, {"detail": "Not Found"}

    @staticmethod
    def _status(app):
        if app["state"] in ("Deployment_Failed", "To_be_removed"):
            return app["state"]
        info = {"status": app["state"], "timestamp": "2026-01-01 00:00:00"}
        if app["state"] == "deployed":
            info["local_endpoint"] = "10.96.0.10:8080"
            info["global_endpoint"] = "127.0.0.1:%d" % app["port"]
        return str(info)

    def _tick_loop(self):
        while not self.stopping.wait(0.1):
            try:
                with self.lock:
                    self.tick()
            except Exception as e:
                print("# fakenorthbound tick: %s: %s" % (type(e).__name__, e))

    def tick(self):
        for uid, app in list(self.apps.items()):
            age = time.monotonic() - app["born"]
            if app["state"] == "To_be_removed":
                if app.get("runner"):
                    app["runner"].stop()
                if time.monotonic() - app["removing_since"] > self.delay:
                    del self.apps[uid]
                continue
            if app["state"] == "pending" and age > self.delay / 2:
                app["state"] = "under_deployment"
            if app["state"] != "under_deployment" and app["state"] != "deployed":
                continue
            if self.mode == "fail" and age > self.delay:
                app["state"] = "Deployment_Failed"
            elif self.mode == "ready" and age > self.delay:
                app["state"], app["port"] = "deployed", app["port"] or free_port()
            elif self.mode == "exec":
                self._exec(app)

    def _exec(self, app):
        if app["runner"] is None:
            comp = app["desc"]["MLSysOpsApplication"]["components"][0]
            c = comp["containers"][0]
            app["port"] = free_port()
            tmp = tempfile.mkdtemp(prefix="app-", dir=self.tmp)
            app["runner"] = Runner(self.root, {"/tmp": tmp}, {8080: app["port"]})
            app["runner"].start(c)
            return
        r = app["runner"]
        if not r.alive():
            app["state"] = "Deployment_Failed"
            app["last"] = r.last_line()
        elif app["state"] == "under_deployment" and health_ok(app["port"]):
            app["state"] = "deployed"
