"""The kubernetes backend: each deployment's runtime runs in a Kubernetes
cluster as a Deployment + Service (kubemanifest.py has the objects and
their rules), through the Kubernetes API with python3-kubernetes.

Settings: MLC_KUBECONFIG (the kubeconfig; without it the backend is not
configured), MLC_KUBE_NAMESPACE, MLC_KUBE_IMAGE, MLC_KUBE_ENDPOINT and
the others of docs/CONFIG.md.  The placement's clusterID names the
kubeconfig context to use ('*' or none: the current context).

The runtime's files reach the pod through the API: install() packs the
verified bundle into $MLC_VAR/bundles/deploy-<id>.tar.gz (nginx serves it
from there), launch() makes a new job credential - 32 random bytes, kept
in a Secret in the cluster and, hashed with SHA-256, in the deployments
row (job_token_sha256) - and the pod's init container downloads the bundle
with it from GET /deployment/{id}/bundle.  The credential opens that one
route for that one deployment while it is building or deployed, nothing
else; stopping the deployment clears it.

What the spooler remembers of a deployment is $MLC_VAR/kubernetes/<id>.json
(root only): the context and namespace its objects live in.  Status is read
back from the cluster: the rollout of the Deployment, and the pods' waiting
reasons (CrashLoopBackOff, ImagePullBackOff, ...) as failure reasons.
remove() deletes everything that carries the deployment's label.
"""

import json
import os
import threading
import time

from . import backend, kubemanifest as km, log
from .backend_remote import DEPLOY_FILES, RemoteBackend

FAIL_WAITING = {"CrashLoopBackOff", "ImagePullBackOff", "InvalidImageName",
                "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
                "ErrImageNeverPull"}
REQUEST_TIMEOUT = 15  # s for one request to the Kubernetes API


class KubeError(OSError):
    """A Kubernetes API request failed; str() says which and why."""


class NotConfigured(backend.Unavailable):
    pass


def _import_client():
    try:
        from kubernetes import client, config
        from kubernetes.client.rest import ApiException
    except ImportError:
        raise NotConfigured("backend 'kubernetes' needs the Debian package python3-kubernetes"
                            ) from None
    return client, config, ApiException


class Cluster:
    """One kubeconfig context: its API clients and namespace, and the
    requests the backend makes, each answering plain JSON dicts."""

    def __init__(self, kubeconfig, context, namespace):
        client, config, self.ApiException = _import_client()
        try:
            api = config.new_client_from_config(config_file=kubeconfig, context=context)
        except Exception as e:  # kubeconfig missing, unreadable, or no such context
            raise KubeError("cannot use %s%s: %s" % (
                kubeconfig, " context '%s'" % context if context else "",
                " ".join(str(e).split())[:300])) from None
        self.context, self.namespace = context, namespace
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.net = client.NetworkingV1Api(api)
        self.batch = client.BatchV1Api(api)

    def _call(self, what, fn, *args, missing_ok=False, raw=False, **kw):
        kw.update(_preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        try:
            resp = fn(*args, **kw)
        except self.ApiException as e:
            if missing_ok and e.status == 404:
                return None
            detail = e.reason or ""
            try:
                detail = json.loads(e.body).get("message") or detail
            except (TypeError, ValueError, AttributeError):
                pass
            raise KubeError("Kubernetes API%s: %s: HTTP %s %s" % (
                " (context %s)" % self.context if self.context else "", what, e.status,
                " ".join(str(detail).split())[:500])) from None
        except Exception as e:  # connection refused, TLS, timeouts (urllib3)
            raise KubeError("Kubernetes API%s unreachable: %s: %s" % (
                " (context %s)" % self.context if self.context else "", what,
                " ".join(str(e).split())[:300])) from None
        data = resp.data
        if raw:
            return data or b""
        return json.loads(data) if data else {}

    # ---- per kind: (api, singular suffix) ----

    def _ops(self, kind):
        return {
            "Secret": (self.core, "namespaced_secret"),
            "Service": (self.core, "namespaced_service"),
            "Pod": (self.core, "namespaced_pod"),
            "Deployment": (self.apps, "namespaced_deployment"),
            "ReplicaSet": (self.apps, "namespaced_replica_set"),
            "NetworkPolicy": (self.net, "namespaced_network_policy"),
            "Job": (self.batch, "namespaced_job"),
        }[kind]

    def get(self, kind, name):
        api, op = self._ops(kind)
        return self._call("read %s %s" % (kind, name), getattr(api, "read_" + op), name,
                          self.namespace, missing_ok=True)

    def list(self, kind, selector):
        api, op = self._ops(kind)
        out = self._call("list %s %s" % (kind, selector), getattr(api, "list_" + op),
                         self.namespace, label_selector=selector)
        return out.get("items") or []

    def apply(self, obj):
        """Create the object, or replace the one of that name (keeping
        what the cluster assigned: a Service's cluster IP and node port)."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        api, op = self._ops(kind)
        old = self.get(kind, name)
        if old is None:
            return self._call("create %s %s" % (kind, name), getattr(api, "create_" + op),
                              self.namespace, obj)
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
        if kind == "Service":
            ospec = old.get("spec") or {}
            for k in ("clusterIP", "clusterIPs"):
                if ospec.get(k):
                    obj["spec"][k] = ospec[k]
            oports = {p.get("name"): p for p in ospec.get("ports") or []}
            for p in obj["spec"]["ports"]:
                if oports.get(p.get("name"), {}).get("nodePort") and \
                        obj["spec"].get("type") in ("NodePort", "LoadBalancer"):
                    p["nodePort"] = oports[p["name"]]["nodePort"]
        return self._call("replace %s %s" % (kind, name), getattr(api, "replace_" + op), name,
                          self.namespace, obj)

    def logs(self, pod, container, limit=1 << 18):
        """The tail of a container's log (bytes; b"" when there is none)."""
        out = self._call("read the log of pod %s" % pod, self.core.read_namespaced_pod_log, pod,
                         self.namespace, container=container, limit_bytes=limit,
                         missing_ok=True, raw=True)
        return out or b""

    def delete(self, kind, name):
        api, op = self._ops(kind)
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        self._call("delete %s %s" % (kind, name), getattr(api, "delete_" + op), name,
                   self.namespace, body=body, missing_ok=True)


def _selector(s, key, name):
    return "%s=%s,%s=%s" % (km.L_INSTANCE, s.instance, key, name)


def pod_problem(pods):
    """(reason, detail) of the first container that cannot run (a waiting
    reason of FAIL_WAITING), or None."""
    for pod in pods:
        st = pod.get("status") or {}
        for group, label in (("initContainerStatuses", "init container"),
                             ("containerStatuses", "container")):
            for cs in st.get(group) or []:
                waiting = (cs.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") not in FAIL_WAITING:
                    continue
                last = (cs.get("lastState") or {}).get("terminated") or {}
                who = "%s %s" % (label, cs.get("name"))
                if last:
                    # The message is the log's tail (FallbackToLogsOnError):
                    # its last line says why.
                    lines = [ln.strip() for ln in str(last.get("message") or "").splitlines()
                             if ln.strip()]
                    msg = lines[-1][-600:] if lines else ""
                    detail = "%s exited with status %s%s" % (who, last.get("exitCode"),
                                                             ": " + msg if msg else "")
                else:
                    msg = " ".join(str(waiting.get("message") or "").split())[:600]
                    detail = "%s%s" % (who, ": " + msg if msg else "")
                return waiting["reason"], "%s: %s" % (waiting["reason"], detail.strip())
    return None


def restarts(pods):
    return sum(int(cs.get("restartCount") or 0) for pod in pods
               for cs in (pod.get("status") or {}).get("containerStatuses") or [])


def unschedulable(pods):
    for pod in pods:
        for c in (pod.get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False":
                return " ".join(str(c.get("message") or c.get("reason") or "").split())[:400]
    return None


class KubeLaunch:
    def __init__(self, dep_id, kind, cluster, generation, deadline):
        self.dep_id, self.kind, self.cluster = dep_id, kind, cluster
        self.generation, self.deadline = generation, deadline
        self.pid = None


class KubernetesBackend(RemoteBackend):
    name = "kubernetes"
    state_name = "kubernetes"

    def __init__(self, cfg):
        self.kubeconfig = cfg.get("MLC_KUBECONFIG")
        if not self.kubeconfig:
            raise NotConfigured("backend 'kubernetes' is not configured: set MLC_KUBECONFIG")
        _import_client()
        super().__init__(cfg)
        self.settings = km.Settings.from_config(cfg)
        self.endpoint_template = cfg.get("MLC_KUBE_ENDPOINT")
        self.start_timeout = cfg.number("MLC_KUBE_START_TIMEOUT")
        self._clusters = {}
        self._lock = threading.Lock()
        self.seen_restarts = {}  # dep_id -> container restarts counted so far

    # ---- clusters and small files ----

    def cluster(self, context=None):
        """The Cluster of a kubeconfig context (None: the current one); a
        changed kubeconfig file is read again."""
        try:
            mtime = os.stat(self.kubeconfig).st_mtime_ns
        except OSError as e:
            raise KubeError("cannot read MLC_KUBECONFIG %s: %s" % (self.kubeconfig, e.strerror)
                            ) from None
        with self._lock:
            hit = self._clusters.get(context)
            if hit is None or hit[0] != mtime:
                hit = (mtime, Cluster(self.kubeconfig, context, self.settings.namespace))
                self._clusters[context] = hit
            return hit[1]

    # ---- installing and starting ----

    def install(self, dep_id, staging_dir):
        """Pack the verified bundle for the init container; remember where
        the deployment goes (context from placement.clusterID)."""
        with open(os.path.join(staging_dir, "job.json"), encoding="utf-8") as f:
            job = json.load(f)
        placement = job.get("placement") if isinstance(job.get("placement"), dict) else {}
        context = km.context_of(placement)
        km.affinity(placement)  # raises PlacementError (a ValueError) early
        self.cluster(context)   # a context that does not exist fails the deployment now
        sha = self.pack("deploy", dep_id, staging_dir, DEPLOY_FILES)
        self._write_state(dep_id, {"context": context, "namespace": self.settings.namespace,
                                   "placement": placement, "bundle_sha256": sha,
                                   "model_version": job.get("model_version")})
        self.discard(staging_dir)
        return self.bundle_path("deploy", dep_id)

    def launch(self, dep_id, kind, version=None, key=None):
        """Create (or update) the deployment's objects with a new job
        credential; returns a KubeLaunch for poll()."""
        st = self._read_state(dep_id)
        if not st or not os.path.isfile(self.bundle_path("deploy", dep_id)):
            raise KubeError("the deployment's bundle is gone from %s; deploy again"
                            % self.bundle_dir)
        c = self.cluster(st.get("context"))
        token = self.new_credential(dep_id)
        dep = None
        for obj in km.deployment_objects(self.settings, dep_id, st.get("placement"), token,
                                         st.get("bundle_sha256", "")):
            out = c.apply(obj)
            if obj["kind"] == "Deployment":
                dep = out
        self.backoff.pop(dep_id, None)
        generation = ((dep or {}).get("metadata") or {}).get("generation") or 1
        log.deployment(dep_id, "kubernetes: applied Deployment %s in %s%s (%s)",
                       km.object_name(dep_id), c.namespace,
                       " (context %s)" % c.context if c.context else "", kind)
        return KubeLaunch(dep_id, kind, c, generation, time.monotonic() + self.start_timeout)

    def adopt(self, dep_id):
        st = self._read_state(dep_id)
        if not st:
            return None
        c = self.cluster(st.get("context"))
        dep = c.get("Deployment", km.object_name(dep_id))
        if dep is None:
            return None
        return KubeLaunch(dep_id, "deploy", c, dep["metadata"].get("generation") or 1,
                          time.monotonic() + self.start_timeout)

    def _endpoint(self, c, dep_id):
        svc = c.get("Service", km.object_name(dep_id))
        return km.endpoint(self.endpoint_template, dep_id, c.namespace, svc)

    def _pods(self, c, dep_id):
        return c.list("Pod", _selector(self.settings, km.L_DEPLOYMENT, km.object_name(dep_id)))

    @staticmethod
    def rolled_out(dep, generation):
        """Whether the Deployment's newest generation has an available pod."""
        md, st = dep.get("metadata") or {}, dep.get("status") or {}
        return (st.get("observedGeneration", 0) >= max(generation, md.get("generation") or 0)
                and (st.get("updatedReplicas") or 0) >= 1
                and (st.get("availableReplicas") or 0) >= 1
                and (st.get("unavailableReplicas") or 0) == 0)

    def poll(self, launch):
        c, dep_id = launch.cluster, launch.dep_id
        dep = c.get("Deployment", km.object_name(dep_id))
        if dep is None:
            return backend.Failed("its Kubernetes Deployment %s disappeared while starting"
                                  % km.object_name(dep_id), "")
        if self.rolled_out(dep, launch.generation):
            self.seen_restarts[dep_id] = restarts(self._pods(c, dep_id))
            return backend.Ready(self._endpoint(c, dep_id), None)
        pods = self._pods(c, dep_id)
        problem = pod_problem(pods)
        if problem:
            return backend.Failed(problem[1], problem[1])
        for cond in (dep.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Progressing" and cond.get("reason") == \
                    "ProgressDeadlineExceeded":
                return backend.Failed("Kubernetes gave up on the rollout: %s" % " ".join(
                    str(cond.get("message") or "").split())[:600], "")
        if time.monotonic() > launch.deadline:
            why = unschedulable(pods)
            return backend.Failed("the runtime did not become available in Kubernetes within "
                                  "%g s (MLC_KUBE_START_TIMEOUT)%s" % (
                                      self.start_timeout,
                                      "; the pod cannot be scheduled: " + why if why else ""), "")
        return None

    def cancel(self, launch):
        self._delete_objects(launch.cluster, launch.dep_id)

    # ---- supervising ----

    def observe(self, dep_id, version=None):
        st = self._read_state(dep_id)
        if not st:
            return backend.Missing("the spooler's record of the Kubernetes deployment is gone "
                                   "(%s); deploy again" % self._state_path(dep_id))
        until = self.backoff.get(dep_id)
        if until is not None:
            return backend.Backoff(until)
        c = self.cluster(st.get("context"))
        dep = c.get("Deployment", km.object_name(dep_id))
        if dep is None:
            return backend.Absent("its Kubernetes Deployment %s is gone" % km.object_name(dep_id))
        pods = self._pods(c, dep_id)
        n = restarts(pods)
        seen = self.seen_restarts.setdefault(dep_id, n)
        problem = pod_problem(pods)
        if n > seen or (problem and problem[0] == "CrashLoopBackOff"):
            self.seen_restarts[dep_id] = n
            return backend.Crashed(problem[1] if problem else
                                   "a container of its pod restarted", 0)
        return backend.Running(None, self._endpoint(c, dep_id))

    # ---- stopping ----

    def _objects(self, c, selector):
        """(kind, name) of everything left with the selector."""
        out = []
        for kind in ("Deployment", "ReplicaSet", "Pod", "Service", "NetworkPolicy", "Secret",
                     "Job"):
            for item in c.list(kind, selector):
                out.append((kind, item["metadata"]["name"]))
        return out

    def _delete_objects(self, c, dep_id):
        """Delete every object of the deployment; True when none is left."""
        name = km.object_name(dep_id)
        for kind, suffix in (("Deployment", ""), ("Service", ""), ("NetworkPolicy", ""),
                             ("Secret", "-job")):
            c.delete(kind, name + suffix)
        left = self._objects(c, _selector(self.settings, km.L_DEPLOYMENT, name))
        for kind, obj in left:
            if kind not in ("ReplicaSet", "Pod"):  # those go with the Deployment
                c.delete(kind, obj)
        return not left

    def release(self, dep_id):
        st = self._read_state(dep_id)
        gone = self._delete_objects(self.cluster(st.get("context")), dep_id)
        self.seen_restarts.pop(dep_id, None)
        return gone

    def strays(self, keep, busy=None):
        """Delete the objects (in the current context's namespace and in
        every context a recorded deployment uses) of deployments that are
        not in keep; returns their ids."""
        if not os.path.exists(self.kubeconfig):
            return []  # nothing was ever deployed with it (deployments fail and say why)
        contexts = {None} | {self._read_state(d).get("context") for d in self.present()}
        stopped = []
        sel = "%s=%s,%s=%s" % (km.L_MANAGED, km.MANAGED_BY, km.L_INSTANCE,
                               self.settings.instance)
        for ctx in contexts:
            try:
                c = self.cluster(ctx)
                items = c.list("Deployment", sel) + c.list("Service", sel) + \
                    c.list("Secret", sel) + c.list("NetworkPolicy", sel)
            except KubeError as e:
                log.spooler("kubernetes: cannot look for stray objects: %s", e)
                continue
            for item in items:
                md = item.get("metadata") or {}
                dep_id = (md.get("annotations") or {}).get(km.A_ID)
                if not dep_id or km.L_DEPLOYMENT not in (md.get("labels") or {}):
                    continue
                if dep_id in keep or (busy is not None and busy(dep_id)):
                    continue
                if dep_id not in stopped:
                    log.deployment(dep_id, "kubernetes: deleting stray objects (no deployment "
                                   "wants them)")
                    self._delete_objects(c, dep_id)
                    stopped.append(dep_id)
        return stopped
