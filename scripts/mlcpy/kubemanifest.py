"""The Kubernetes objects of one deployment or training, as plain dicts
(the JSON the API server takes).  Pure functions of the settings and the
job: nothing here talks to a cluster, so that the shape of every object is
tested without one (t/0800-kube-manifests-unit.t).

A deployment becomes, in the namespace MLC_KUBE_NAMESPACE:

  Secret <name>-job     the deployment's job credential (MLC_JOB_TOKEN),
                        read only by the init container
  Deployment <name>     one replica: the init container `fetch` downloads
                        and verifies the bundle from the API
                        (GET /deployment/{id}/bundle with the credential)
                        into an emptyDir; the container `runtime` serves
                        it (scripts/mlc-runtime --listen 0.0.0.0:8080)
  Service <name>        port 8080 of the runtime (type MLC_KUBE_SERVICE_TYPE)
  NetworkPolicy <name>  ingress to port 8080 only; egress to nothing but the
                        API's address and port (and DNS when the API is
                        reached by name)

A training becomes a Secret and a Job <name> (init container `fetch`, then
`train`: scripts/mlc-kube-train runs code.py, checks the model it wrote and
sends it to PUT /mltraining/{id}/model) and the same kind of NetworkPolicy.

<name> is "mlc-" (or "mlt-" for a training) + a DNS-safe form of the id +
a hash of the id: ids may hold upper case, '.' and '_', which object names
may not.  Every object carries the labels
  app.kubernetes.io/managed-by: mlconnector
  mlconnector.io/instance:      MLC_KUBE_INSTANCE
  mlconnector.io/deployment:    <name>   (mlconnector.io/training for a Job)
and the annotation mlconnector.io/id: <the id as given>, so that everything
of one deployment is found (and deleted) by one label selector.
"""

import hashlib
import ipaddress
import re
import urllib.parse

PORT = 8080
APP_DIR = "/opt/mlconnector"
BUNDLE_DIR = "/bundle"
MANAGED_BY = "mlconnector"
L_MANAGED = "app.kubernetes.io/managed-by"
L_INSTANCE = "mlconnector.io/instance"
L_DEPLOYMENT = "mlconnector.io/deployment"
L_TRAINING = "mlconnector.io/training"
A_ID = "mlconnector.io/id"
A_BUNDLE = "mlconnector.io/bundle-sha256"
CONTINUUM_LABEL = "mlconnector.io/continuum"
HOSTNAME_LABEL = "kubernetes.io/hostname"
RUN_AS = 10001  # the image's mlc-runtime user (conf/kubernetes/Dockerfile)
TOKEN_ENV = "MLC_JOB_TOKEN"
TOKEN_KEY = "token"


class PlacementError(ValueError):
    """A placement that cannot be mapped onto the cluster."""


def object_name(job_id, prefix="mlc"):
    """A DNS-1123 label (at most 63 characters) naming the id's objects;
    distinct ids give distinct names (the hash)."""
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:10]
    safe = re.sub(r"[^a-z0-9-]+", "-", job_id.lower()).strip("-")[:40].strip("-")
    return "%s-%s%s%s" % (prefix, safe, "-" if safe else "", digest)


def _wild(v):
    """Whether a placement value means 'anywhere'."""
    return v is None or v is False or (isinstance(v, str) and v.strip() in ("", "*"))


def context_of(placement):
    """The kubeconfig context a placement names (clusterID), or None for
    the current context."""
    cluster = (placement or {}).get("clusterID")
    return None if _wild(cluster) else str(cluster)


def _label_value(what, v):
    v = str(v)
    if len(v) > 63 or not re.match(r"^([A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)?$", v):
        raise PlacementError("placement %s %r cannot be a Kubernetes label value (at most 63 "
                             "letters, digits, '-', '_' or '.', starting and ending with a "
                             "letter or digit)" % (what, v))
    return v


def affinity(placement):
    """The pod affinity of a placement: node -> kubernetes.io/hostname,
    continuum -> mlconnector.io/continuum (a string: that value; true: any
    node with the label); '*', null, false or absent -> anywhere.  None when
    nothing constrains the pod."""
    placement = placement or {}
    exprs = []
    node, continuum = placement.get("node"), placement.get("continuum")
    if not _wild(node):
        exprs.append({"key": HOSTNAME_LABEL, "operator": "In",
                      "values": [_label_value("node", node)]})
    if continuum is True:
        exprs.append({"key": CONTINUUM_LABEL, "operator": "Exists"})
    elif not _wild(continuum):
        exprs.append({"key": CONTINUUM_LABEL, "operator": "In",
                      "values": [_label_value("continuum", continuum)]})
    if not exprs:
        return None
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": exprs}]}}}


class Settings:
    """What the manifests take from the configuration (see docs/CONFIG.md)."""

    def __init__(self, namespace="mlconnector", image="mlconnector-runtime:1", instance="mlconnector",
                 api_url="http://127.0.0.1:8090", api_cidr="", memory=2 << 30, cpu=1.0,
                 tmp_size=64 << 20, bundle_max=4 << 30, service_type="ClusterIP",
                 pull_secret="", start_timeout=600, train_timeout=600, pull_policy=""):
        self.namespace, self.image, self.instance = namespace, image, instance
        self.api_url, self.api_cidr = api_url.rstrip("/"), api_cidr
        self.memory, self.cpu, self.tmp_size, self.bundle_max = memory, cpu, tmp_size, bundle_max
        self.service_type, self.pull_secret = service_type, pull_secret
        self.start_timeout, self.train_timeout = start_timeout, train_timeout
        self.pull_policy = pull_policy

    @classmethod
    def from_config(cls, cfg):
        return cls(namespace=cfg.get("MLC_KUBE_NAMESPACE"), image=cfg.get("MLC_KUBE_IMAGE"),
                   instance=cfg.get("MLC_KUBE_INSTANCE"),
                   api_url=cfg.get("MLC_KUBE_API_URL") or cfg.api_url(),
                   api_cidr=cfg.get("MLC_KUBE_API_CIDR"),
                   memory=cfg.number("MLC_RUNTIME_MEMORY", int),
                   cpu=cfg.number("MLC_RUNTIME_CPU"),
                   tmp_size=cfg.number("MLC_RUNTIME_TMP_SIZE", int),
                   bundle_max=cfg.number("MLC_BUNDLE_MAX_SIZE", int),
                   service_type=cfg.get("MLC_KUBE_SERVICE_TYPE"),
                   pull_secret=cfg.get("MLC_KUBE_PULL_SECRET"),
                   start_timeout=cfg.number("MLC_KUBE_START_TIMEOUT", int),
                   train_timeout=cfg.number("MLC_TRAIN_TIMEOUT", int),
                   pull_policy=cfg.get("MLC_KUBE_PULL_POLICY"))


def labels(s, key, name):
    return {L_MANAGED: MANAGED_BY, L_INSTANCE: s.instance, key: name}


def _meta(s, key, name, job_id, suffix=""):
    return {"name": name + suffix, "namespace": s.namespace, "labels": labels(s, key, name),
            "annotations": {A_ID: job_id}}


def container_security():
    """Every container: no root, no privilege gain, nothing writable but
    the volumes, no capabilities, the runtime's default seccomp filter."""
    return {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS,
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "privileged": False, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def pod_security():
    return {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"}}


def _cpu(v):
    """A CPU quantity in millicores ('1000m'); at least 10m."""
    return "%dm" % max(10, int(round(float(v) * 1000)))


def resources(s):
    """The local sandbox's limits as resources: memory (MLC_RUNTIME_MEMORY)
    as request and limit, CPU (MLC_RUNTIME_CPU, 0: no limit) as limit, and
    the /tmp size as ephemeral storage.  (Tasks per pod are a kubelet
    setting, podPidsLimit: no pod field carries MLC_RUNTIME_PIDS.)"""
    limits = {"memory": str(int(s.memory)), "ephemeral-storage": str(int(s.tmp_size) + (64 << 20))}
    requests = {"memory": str(int(s.memory)), "cpu": "100m"}
    if s.cpu and float(s.cpu) > 0:
        limits["cpu"] = _cpu(s.cpu)
        requests["cpu"] = _cpu(min(float(s.cpu), 0.1))
    return {"limits": limits, "requests": requests}


def environment(extra=None):
    """The containers' whole environment (as the local sandbox's, see
    sandbox.environment), plus extra (name -> value)."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp", "TMPDIR": "/tmp",
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    env.update(extra or {})
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


def bundle_url(s, kind, job_id):
    """Where the init container downloads the job's bundle."""
    path = "deployment" if kind == "deploy" else "mltraining"
    return "%s/%s/%s/bundle" % (s.api_url, path, urllib.parse.quote(job_id, safe=""))


def _fetch_container(s, kind, job_id, name):
    c = {"name": "fetch", "image": s.image,
         "command": ["/usr/bin/python3", APP_DIR + "/scripts/mlc-kube-fetch",
                     "--kind", kind, "--id", job_id, "--url", bundle_url(s, kind, job_id),
                     "--dest", BUNDLE_DIR, "--max-size", str(int(s.bundle_max))],
         "env": environment() + [{"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {
             "name": name + "-job", "key": TOKEN_KEY}}}],
         "volumeMounts": [{"name": "bundle", "mountPath": BUNDLE_DIR},
                          {"name": "tmp", "mountPath": "/tmp"}],
         "resources": {"limits": {"memory": "256Mi", "cpu": "500m",
                                  "ephemeral-storage": str(64 << 20)},
                       "requests": {"memory": "64Mi", "cpu": "50m"}},
         "securityContext": container_security(),
         "terminationMessagePolicy": "FallbackToLogsOnError"}
    if s.pull_policy:
        c["imagePullPolicy"] = s.pull_policy
    return c


def _volumes(s):
    return [{"name": "bundle", "emptyDir": {"sizeLimit": str(int(s.bundle_max))}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": str(int(s.tmp_size))}}]


def _pod_spec(s, placement, init, main, restart="Always"):
    spec = {"automountServiceAccountToken": False, "enableServiceLinks": False,
            "securityContext": pod_security(), "restartPolicy": restart,
            "initContainers": [init], "containers": [main], "volumes": _volumes(s),
            "terminationGracePeriodSeconds": 10}
    aff = affinity(placement)
    if aff:
        spec["affinity"] = aff
    if s.pull_secret:
        spec["imagePullSecrets"] = [{"name": s.pull_secret}]
    return spec


def secret(s, key, name, job_id, token):
    m = _meta(s, key, name, job_id, "-job")
    return {"apiVersion": "v1", "kind": "Secret", "metadata": m, "type": "Opaque",
            "stringData": {TOKEN_KEY: token}}


def deployment(s, dep_id, placement, bundle_sha256=""):
    """The Deployment running the runtime of deployment dep_id."""
    name = object_name(dep_id)
    sel = {L_INSTANCE: s.instance, L_DEPLOYMENT: name}
    probe = {"httpGet": {"path": "/health", "port": PORT}, "periodSeconds": 5,
             "timeoutSeconds": 3}
    main = {"name": "runtime", "image": s.image,
            "command": ["/usr/bin/python3", APP_DIR + "/scripts/mlc-runtime",
                        "--dir", BUNDLE_DIR, "--listen", "0.0.0.0:%d" % PORT],
            "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
            "env": environment(),
            "readinessProbe": dict(probe, failureThreshold=2),
            "livenessProbe": dict(probe, periodSeconds=10, failureThreshold=6,
                                  initialDelaySeconds=10),
            "resources": resources(s),
            "volumeMounts": [{"name": "bundle", "mountPath": BUNDLE_DIR, "readOnly": True},
                             {"name": "tmp", "mountPath": "/tmp"}],
            "securityContext": container_security(),
            "terminationMessagePolicy": "FallbackToLogsOnError"}
    if s.pull_policy:
        main["imagePullPolicy"] = s.pull_policy
    pod_meta = {"labels": labels(s, L_DEPLOYMENT, name),
                "annotations": {A_ID: dep_id, A_BUNDLE: bundle_sha256}}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _meta(s, L_DEPLOYMENT, name, dep_id),
            "spec": {"replicas": 1, "selector": {"matchLabels": sel},
                     "progressDeadlineSeconds": max(60, int(s.start_timeout)),
                     "revisionHistoryLimit": 2,
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                     "template": {"metadata": pod_meta,
                                  "spec": _pod_spec(s, placement,
                                                    _fetch_container(s, "deploy", dep_id, name),
                                                    main)}}}


def service(s, dep_id):
    name = object_name(dep_id)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta(s, L_DEPLOYMENT, name, dep_id),
            "spec": {"type": s.service_type or "ClusterIP",
                     "selector": {L_INSTANCE: s.instance, L_DEPLOYMENT: name},
                     "ports": [{"name": "http", "port": PORT, "targetPort": PORT,
                                "protocol": "TCP"}]}}


def api_egress(s):
    """The egress rules that let a pod reach the API and nothing else:
    the API URL's address and port (MLC_KUBE_API_CIDR, or the URL's host
    when it is an address), plus DNS (port 53) when the URL names a host."""
    u = urllib.parse.urlsplit(s.api_url)
    port = u.port or (443 if u.scheme == "https" else 80)
    rule = {"ports": [{"protocol": "TCP", "port": port}]}
    cidrs = [c.strip() for c in re.split(r"[ ,]+", s.api_cidr or "") if c.strip()]
    named = False
    if not cidrs:
        try:
            ip = ipaddress.ip_address((u.hostname or "").strip("[]"))
            cidrs = ["%s/%d" % (ip, ip.max_prefixlen)]
        except ValueError:
            named = True
    if cidrs:
        rule["to"] = [{"ipBlock": {"cidr": c}} for c in cidrs]
    rules = [rule]
    if named:
        rules.append({"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]})
    return rules


def network_policy(s, key, job_id, name, ingress_port=PORT):
    """Ingress to the runtime's port only (none for a training); egress only
    to the API (the bundle download, a training's model upload)."""
    spec = {"podSelector": {"matchLabels": {L_INSTANCE: s.instance, key: name}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": ingress_port}]}]
            if ingress_port else [],
            "egress": api_egress(s)}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta(s, key, name, job_id), "spec": spec}


def deployment_objects(s, dep_id, placement, token, bundle_sha256=""):
    """Every object of a deployment, in the order they are created."""
    name = object_name(dep_id)
    return [secret(s, L_DEPLOYMENT, name, dep_id, token),
            network_policy(s, L_DEPLOYMENT, dep_id, name),
            service(s, dep_id),
            deployment(s, dep_id, placement, bundle_sha256)]


def training_job(s, training_id, modelid, token):
    """The Job running one training (no retries: a failed run is the
    training's failure, as on the local backend)."""
    name = object_name(training_id, "mlt")
    upload = "%s/mltraining/%s/model" % (s.api_url, urllib.parse.quote(training_id, safe=""))
    main = {"name": "train", "image": s.image,
            "command": ["/usr/bin/python3", APP_DIR + "/scripts/mlc-kube-train",
                        "--dir", BUNDLE_DIR, "--upload", upload],
            "env": environment({"MLC_MODEL_ID": modelid, "MLC_TRAINING_ID": training_id,
                                "MLC_DATA": BUNDLE_DIR + "/data.csv",
                                "MLC_OUTPUT": "/tmp/model.pkl"})
            + [{"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {
                "name": name + "-job", "key": TOKEN_KEY}}}],
            "resources": resources(s),
            "volumeMounts": [{"name": "bundle", "mountPath": BUNDLE_DIR, "readOnly": True},
                             {"name": "tmp", "mountPath": "/tmp"}],
            "securityContext": container_security(),
            "terminationMessagePolicy": "FallbackToLogsOnError"}
    if s.pull_policy:
        main["imagePullPolicy"] = s.pull_policy
    spec = _pod_spec(s, None, _fetch_container(s, "train", training_id, name), main,
                     restart="Never")
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": _meta(s, L_TRAINING, name, training_id),
            "spec": {"backoffLimit": 0, "activeDeadlineSeconds": max(30, int(s.train_timeout)),
                     "ttlSecondsAfterFinished": 3600,
                     "template": {"metadata": {"labels": labels(s, L_TRAINING, name),
                                               "annotations": {A_ID: training_id}},
                                  "spec": spec}}}


def training_objects(s, training_id, modelid, token):
    name = object_name(training_id, "mlt")
    return [secret(s, L_TRAINING, name, training_id, token),
            network_policy(s, L_TRAINING, training_id, name, ingress_port=None),
            training_job(s, training_id, modelid, token)]


def endpoint(template, dep_id, namespace, svc):
    """The URL the API reaches the runtime at (MLC_KUBE_ENDPOINT with
    {name}, {namespace}, {id}, {port}, {cluster_ip}, {node_port} filled in
    from the Service)."""
    spec = (svc or {}).get("spec") or {}
    ports = spec.get("ports") or [{}]
    fields = {"name": object_name(dep_id), "namespace": namespace,
              "id": urllib.parse.quote(dep_id, safe=""), "port": PORT,
              "cluster_ip": spec.get("clusterIP") or "",
              "node_port": ports[0].get("nodePort") or ""}
    return template.format(**fields).rstrip("/")
