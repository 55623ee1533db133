"""The mlsysops backend: deployments handed to the MLSysOps framework
through its Northbound API (MLC_NORTHBOUND_URL), as the Python MLConnector
did:

  POST   <NORTHBOUND>/ml/deploy_ml      the application description
         {"MLSysOpsApplication": {"name", "mlsysops-id": <deployment id>,
          "clusterPlacement": {"clusterID": [id], "instances": 1} (unless '*'),
          "components": [{"Component": {"name": "ml-comp", "uid": <id>},
                          "nodePlacement": {"node", "continuumLayer": [..]},
                          "restartPolicy": "OnFailure",
                          "containers": [{"image", "imagePullPolicy", "ports",
                                          "command", "env"}]}]}}
  GET    <NORTHBOUND>/ml/status/{id}   {"Model ": id, "status": "<str of a dict>"}
         whose 'status' is pending, under_deployment or deployed (with
         local_endpoint "IP:port" and, for a node port, global_endpoint),
         or the bare string Deployment_Failed / To_be_removed
  GET    <NORTHBOUND>/ml/list_all/     {"System_status": {id: status, ...}}
  DELETE <NORTHBOUND>/ml/remove/{id}

The Python service built one image per model; here every deployment runs
the one runtime image (MLC_KUBE_IMAGE), whose command downloads the
deployment's bundle from the API with the deployment's job credential
(backend_remote.py) and then serves it on port 8080.  The credential
travels in the description's env (the Northbound API and the framework's
queue see it).  The gateway calls the runtime at http://<global_endpoint>,
else http://<local_endpoint>.
"""

import ast
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request

from . import backend, kubemanifest as km, log
from .backend_remote import DEPLOY_FILES, RemoteBackend

REQUEST_TIMEOUT = 15
STATUS_MAX = 65536  # characters of one status string that are parsed
COMPONENT = "ml-comp"


class NorthboundError(OSError):
    """The Northbound API could not be reached or refused a request."""


def parse_status(raw):
    """(state, info dict) from a status answer's "status" value: the
    framework stores str(dict), or a bare word for some states."""
    if isinstance(raw, dict):
        info = raw
    else:
        text = str(raw or "").strip()
        try:
            # Literals only (never evaluated as code), of a bounded size.
            info = ast.literal_eval(text) if text.startswith("{") and \
                len(text) <= STATUS_MAX else {"status": text[:STATUS_MAX]}
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            info = {"status": text[:200]}
        if not isinstance(info, dict):
            info = {"status": text}
    for key in ("local_endpoint", "global_endpoint"):
        v = info.get(key)
        # host:port, nothing else (it becomes the URL the API calls).
        if v is not None and not (isinstance(v, str) and
                                  re.match(r"^[A-Za-z0-9.\-]+:[0-9]{1,5}$|^\[[0-9A-Fa-f:.]+\]:"
                                           r"[0-9]{1,5}$", v)):
            info = dict(info)
            del info[key]
    return str(info.get("status") or "").strip()[:200], info


def description(dep_id, placement, image, command, env, port=km.PORT, name="mlconnector"):
    """The MLSysOps application description of one deployment."""
    app = {"name": name, "mlsysops-id": dep_id}
    placement = placement or {}
    cluster = placement.get("clusterID")
    if cluster and cluster != "*":
        app["clusterPlacement"] = {"clusterID": [str(cluster)], "instances": 1}
    comp = {"Component": {"name": COMPONENT, "uid": dep_id}}
    node_conf = {}
    node = placement.get("node")
    if node and node != "*":
        node_conf["node"] = str(node)
    continuum = placement.get("continuum")
    if isinstance(continuum, str) and continuum and continuum != "*":
        node_conf["continuumLayer"] = [continuum]
    elif continuum is True:
        node_conf["continuumLayer"] = ["*"]
    if node_conf:
        comp["nodePlacement"] = node_conf
    comp["restartPolicy"] = "OnFailure"
    comp["containers"] = [{"image": image, "imagePullPolicy": "IfNotPresent",
                           "ports": [{"containerPort": port}],
                           "command": command,
                           "env": [{"name": k, "value": v} for k, v in env]}]
    app["components"] = [comp]
    return {"MLSysOpsApplication": app}


class MlsysopsLaunch:
    def __init__(self, dep_id, kind, deadline):
        self.dep_id, self.kind, self.deadline = dep_id, kind, deadline
        self.pid = None


class MlsysopsBackend(RemoteBackend):
    name = "mlsysops"
    state_name = "mlsysops"

    def __init__(self, cfg):
        self.url = (cfg.get("MLC_NORTHBOUND_URL") or "").rstrip("/")
        if not self.url:
            raise backend.Unavailable("backend 'mlsysops' is not configured: set "
                                      "MLC_NORTHBOUND_URL")
        super().__init__(cfg)
        self.settings = km.Settings.from_config(cfg)
        self.start_timeout = cfg.number("MLC_KUBE_START_TIMEOUT")
        self.removing = set()

    # ---- the Northbound API ----

    def request(self, method, path, body=None, missing_ok=False):
        """(status, parsed JSON) of one request; NorthboundError when it
        cannot be made or is refused (404 too unless missing_ok)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Accept": "application/json", "Content-Type": "application/json",
            "User-Agent": "mlc-spooler"})
        try:
            with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as resp:
                raw, status = resp.read(1 << 20), resp.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(1 << 16), e.code
        except (OSError, ValueError) as e:
            raise NorthboundError("the MLSysOps Northbound API at %s is unreachable: %s %s: %s"
                                  % (self.url, method, path, e)) from None
        try:
            out = json.loads(raw) if raw else {}
        except ValueError:
            out = {"detail": raw.decode("utf-8", "replace")[:300]}
        detail = out.get("detail") if isinstance(out, dict) else None
        # The framework wraps its own 404 in a 500 whose detail says "not found".
        if status == 404 or (status == 500 and "not found" in str(detail or "")):
            if missing_ok:
                return 404, out
        if status >= 300:
            raise NorthboundError("the MLSysOps Northbound API answered %s %s with HTTP %d: %s"
                                  % (method, path, status, " ".join(str(detail or out).split())
                                     [:400]))
        return status, out

    def status(self, dep_id):
        """(state, info) of a deployment in MLSysOps; state '' when it has none."""
        code, out = self.request("GET", "/ml/status/" + urllib.parse.quote(dep_id, safe=""),
                                 missing_ok=True)
        if code == 404 or not isinstance(out, dict):
            return "", {}
        return parse_status(out.get("status"))

    def list_all(self):
        """{id: (state, info)} of every deployment the framework knows."""
        _, out = self.request("GET", "/ml/list_all/")
        table = out.get("System_status") if isinstance(out, dict) else None
        if not isinstance(table, dict):
            return {}
        return {k: parse_status(v) for k, v in table.items()}

    @staticmethod
    def endpoint(info):
        where = info.get("global_endpoint") or info.get("local_endpoint")
        return "http://%s" % where if where else None

    # ---- the backend ----

    def install(self, dep_id, staging_dir):
        with open(os.path.join(staging_dir, "job.json"), encoding="utf-8") as f:
            job = json.load(f)
        placement = job.get("placement") if isinstance(job.get("placement"), dict) else {}
        sha = self.pack("deploy", dep_id, staging_dir, DEPLOY_FILES)
        self._write_state(dep_id, {"placement": placement, "bundle_sha256": sha,
                                   "model_version": job.get("model_version")})
        self.discard(staging_dir)
        return self.bundle_path("deploy", dep_id)

    def launch(self, dep_id, kind, version=None, key=None):
        st = self._read_state(dep_id)
        if not st or not os.path.isfile(self.bundle_path("deploy", dep_id)):
            raise NorthboundError("the deployment's bundle is gone from %s; deploy again"
                                  % self.bundle_dir)
        token = self.new_credential(dep_id)
        s = self.settings
        command = ["/usr/bin/python3", km.APP_DIR + "/scripts/mlc-kube-fetch", "--kind", "deploy",
                   "--id", dep_id, "--url", km.bundle_url(s, "deploy", dep_id),
                   "--dest", "/tmp/bundle", "--max-size", str(int(s.bundle_max)), "--",
                   "/usr/bin/python3", km.APP_DIR + "/scripts/mlc-runtime",
                   "--dir", "/tmp/bundle", "--listen", "0.0.0.0:%d" % km.PORT]
        env = [(e["name"], e["value"]) for e in km.environment()] + [(km.TOKEN_ENV, token)]
        desc = description(dep_id, st.get("placement"), s.image, command, env,
                           name=km.object_name(dep_id))
        self.request("POST", "/ml/deploy_ml", desc)
        self.backoff.pop(dep_id, None)
        self.removing.discard(dep_id)
        log.deployment(dep_id, "mlsysops: deployment request sent to %s (%s)", self.url, kind)
        return MlsysopsLaunch(dep_id, kind, time.monotonic() + self.start_timeout)

    def adopt(self, dep_id):
        if not self._read_state(dep_id):
            return None
        state, _ = self.status(dep_id)
        if state in ("", "Deployment_Failed", "To_be_removed", "Removed"):
            return None
        return MlsysopsLaunch(dep_id, "deploy", time.monotonic() + self.start_timeout)

    def poll(self, launch):
        state, info = self.status(launch.dep_id)
        if state == "deployed":
            ep = self.endpoint(info)
            if ep:
                return backend.Ready(ep, None)
            return backend.Failed("MLSysOps reports the deployment deployed without an "
                                  "endpoint: %s" % json.dumps(info)[:400], "")
        if state == "Deployment_Failed":
            return backend.Failed("MLSysOps reported Deployment_Failed", "Deployment_Failed")
        if state in ("", "To_be_removed", "Removed") and time.monotonic() > launch.deadline - \
                self.start_timeout + 30:
            return backend.Failed("MLSysOps does not know the deployment (status %s)"
                                  % (state or "not found"), "")
        if time.monotonic() > launch.deadline:
            return backend.Failed("MLSysOps did not deploy the runtime within %g s "
                                  "(MLC_KUBE_START_TIMEOUT); its last status: %s"
                                  % (self.start_timeout, state or "none"), "")
        return None

    def cancel(self, launch):
        self._remove_request(launch.dep_id)

    def observe(self, dep_id, version=None):
        if not self._read_state(dep_id):
            return backend.Missing("the spooler's record of the MLSysOps deployment is gone "
                                   "(%s); deploy again" % self._state_path(dep_id))
        until = self.backoff.get(dep_id)
        if until is not None:
            return backend.Backoff(until)
        state, info = self.status(dep_id)
        if state == "deployed" and self.endpoint(info):
            return backend.Running(None, self.endpoint(info))
        if state == "Deployment_Failed":
            return backend.Crashed("MLSysOps reported Deployment_Failed", 0)
        if state in ("", "Removed", "To_be_removed"):
            return backend.Absent("MLSysOps no longer runs it (status %s)"
                                  % (state or "not found"))
        return backend.Running(None, self.endpoint(info) or "")

    def _remove_request(self, dep_id):
        """Ask MLSysOps to remove the deployment (once); True when it no
        longer knows it."""
        state, _ = self.status(dep_id)
        if state in ("", "Removed"):
            self.removing.discard(dep_id)
            return True
        if state != "To_be_removed" and dep_id not in self.removing:
            self.request("DELETE", "/ml/remove/" + urllib.parse.quote(dep_id, safe=""),
                         missing_ok=True)
            self.removing.add(dep_id)
            log.deployment(dep_id, "mlsysops: removal requested")
        return False

    def release(self, dep_id):
        return self._remove_request(dep_id)

    def strays(self, keep, busy=None):
        """Deployments this spooler sent that MLSysOps still runs but no
        row wants (the framework's list holds other users' too: only ids
        with a record here are touched)."""
        stopped = []
        mine = self.present()
        if not mine:
            return stopped
        for dep_id, (state, _) in self.list_all().items():
            if dep_id in mine and dep_id not in keep and not (busy and busy(dep_id)) \
                    and state not in ("Removed", "To_be_removed"):
                self._remove_request(dep_id)
                stopped.append(dep_id)
        return stopped
