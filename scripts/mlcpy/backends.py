"""Which deployment backends exist, which are configured, and one instance
of each per process.

backend.py is the interface every backend implements; this module is the
only one that knows the concrete backends, so they import the interface and
nothing imports them but this registry.  Callers use the outcome types
through here as well (backends.Failed, backends.Unavailable, ...).
"""

from .backend import (Absent, Backend, Backoff, Crashed, Failed,  # noqa: F401 (re-exported)
                      Missing, Ready, Running, Unavailable)


NAMES = ("local", "kubernetes", "mlsysops")
_instances = {}


def configured(name, cfg):
    """None when backend `name` can be used with this configuration, else
    why not (the rule app/route-deployments.c applies to POST /deployment/add)."""
    if name == "local":
        return None
    if name == "kubernetes":
        return None if cfg.get("MLC_KUBECONFIG") else "set MLC_KUBECONFIG"
    if name == "mlsysops":
        return None if cfg.get("MLC_NORTHBOUND_URL") else "set MLC_NORTHBOUND_URL"
    return "no such backend (known: %s)" % ", ".join(NAMES)


def get(name, cfg):
    """The backend called name (one instance per process: it keeps the
    children it started)."""
    if name not in _instances:
        why = configured(name, cfg)
        if why:
            raise Unavailable("backend '%s' is not available: %s" % (name, why))
        if name == "local":
            from .backend_local import LocalBackend
            _instances[name] = LocalBackend(cfg)
        elif name == "kubernetes":
            from .backend_kubernetes import KubernetesBackend
            _instances[name] = KubernetesBackend(cfg)
        else:
            from .backend_mlsysops import MlsysopsBackend
            _instances[name] = MlsysopsBackend(cfg)
    return _instances[name]


def remote(cfg):
    """The configured backends other than local (created on first use)."""
    out = []
    for name in NAMES[1:]:
        if configured(name, cfg) is None:
            try:
                out.append(get(name, cfg))
            except Unavailable:
                pass
    return out
