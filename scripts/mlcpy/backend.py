"""Deployment backends: where and how a deployment's runtime runs.

The spooler (reconcile.py) owns the policy - what should run, when a
crash counts, when to give up - and talks to a backend only through this
interface (backends.py picks one).  `local` runs sandboxed runtimes on
this host; `kubernetes` (backend_kubernetes.py) runs them in a Kubernetes
cluster and `mlsysops` (backend_mlsysops.py) hands them to the MLSysOps
framework.  A remote
runtime has no pid: Ready, Running and launch handles carry pid None.
"""

from collections import namedtuple

# The outcome of a launch, from Backend.poll().
Ready = namedtuple("Ready", "endpoint pid")
Failed = namedtuple("Failed", "reason detail")  # detail: the runtime's last output line

# What Backend.observe() found for a deployment that should be serving.
Running = namedtuple("Running", "pid endpoint")
Crashed = namedtuple("Crashed", "detail uptime")     # was running, is gone
Backoff = namedtuple("Backoff", "until")             # crashed, restart not due yet
Absent = namedtuple("Absent", "why")                 # not running, not a crash
Missing = namedtuple("Missing", "reason")            # its files are gone


class Backend:
    """The interface; every method takes the deployment id.  Methods that
    act on the runtime serving now also take the row's model_version
    (`version`): a retraining with redeploy moves a deployment onto a new
    version by starting a second runtime next to the first (see
    redeploy.Roll), and the version tells the backend which one is current."""

    name = None

    def install(self, dep_id, staging_dir):
        """Move a verified, extracted bundle into place as the deployment's
        files (replacing older ones); returns the deployment directory."""
        raise NotImplementedError

    def launch(self, dep_id, kind, version=None):
        """Start the runtime; returns a launch handle for poll().  kind is
        'deploy', 'restart' (after a crash), 'resume' (after a clean stop or
        a reboot) or 'redeploy' (a new model version), for the logs."""
        raise NotImplementedError

    def adopt(self, dep_id):
        """A launch handle for a runtime that is already running (started
        by an earlier spooler that died before it was ready), or None."""
        raise NotImplementedError

    def poll(self, launch):
        """None while starting, then Ready(endpoint, pid) or Failed(reason)."""
        raise NotImplementedError

    def cancel(self, launch):
        """Abandon a launch, stopping what it started."""
        raise NotImplementedError

    def observe(self, dep_id, version=None):
        """Running / Crashed / Backoff / Absent / Missing for a deployment
        that should be serving."""
        raise NotImplementedError

    def crashed(self, dep_id, restart_after, detail, version=None):
        """Remember that the runtime crashed and may restart at restart_after
        (time.time() seconds), so that the crash is counted once."""
        raise NotImplementedError

    def stop(self, dep_id):
        """Stop the deployment's runtimes and wait until they are gone; keep
        the files so that it can resume.  Returns False if one could not be
        stopped."""
        raise NotImplementedError

    def remove(self, dep_id):
        """Stop the runtime and delete everything of the deployment."""
        raise NotImplementedError

    def prune(self, dep_id, version):
        """Remove what the backend holds for the deployment besides the
        runtime of model version `version` (left by an interrupted
        redeploy)."""
        raise NotImplementedError

    def present(self):
        """Ids of the deployments this backend holds files or processes for."""
        raise NotImplementedError

    def strays(self, keep, busy=None):
        """Stop runtimes that belong to no deployment in `keep` (a set of
        ids) or are not the recorded process, except those of deployments
        for which busy(id) is true (a step under way); returns what was
        stopped."""
        raise NotImplementedError

    def reap(self):
        """Collect exited child processes (called every tick)."""


class Unavailable(Exception):
    """No backend of that name in this build, or it is not configured."""

