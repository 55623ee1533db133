"""What the backends that run deployments beyond this host (kubernetes,
mlsysops) share: the bundle a remote runtime downloads, the job credential
it downloads it with, and the spooler's record of each deployment.

The bundle: install() gets the spooler's verified, extracted bundle and
packs its files again into $MLC_VAR/bundles/<kind>-<id>.tar.gz (root's,
group MLC_WEB_GROUP, 0640: nginx sends it).  The job credential: 32 random
bytes (URL-safe base64) made at each launch, handed to the runtime through
the cluster (a Secret; the MLSysOps description), and stored in the
deployments (or trainings) row only as its SHA-256 (job_token_sha256).
GET /deployment/{id}/bundle (and /mltraining/{id}/bundle) answer the
bundle to a request carrying it in the X-MLC-Job-Token header while the
job is building or deployed (running); nothing else accepts it.  remove()
clears it.

The record: $MLC_VAR/kubernetes/<id>.json (root only) - where the
deployment went, the bundle's hash, its placement.
"""

import hashlib
import json
import os
import secrets
import tarfile
import threading
import time

from . import backend, db, log, safefs

RETRY_AFTER = 5.0     # s before a failed removal is tried again
LOOK_AGAIN = 1.0      # s before looking again at a removal under way

DEPLOY_FILES = ["job.json", "model.pkl", "data.csv", "requirements.txt"]
TRAIN_FILES = ["job.json", "code.py", "data.csv", "requirements.txt"]


def new_token():
    return secrets.token_urlsafe(32)


def token_hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


class JobTokens(db._Table):
    """The hashes of the job credentials in the deployments and trainings
    rows (a connection of the backend's own: it is called from the
    spooler's task threads)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.lock = threading.Lock()

    def deployment(self, dep_id, sha):
        with self.lock:
            return self._update("UPDATE deployments SET job_token_sha256 = %s "
                                "WHERE deployment_id = %s", (sha, dep_id))

    def training(self, training_id, sha):
        with self.lock:
            return self._update("UPDATE trainings SET job_token_sha256 = %s "
                                "WHERE training_id = %s", (sha, training_id))




class RemoteBackend(backend.Backend):
    """The shared half of the kubernetes and mlsysops backends."""

    state_name = "kubernetes"

    def __init__(self, cfg):
        self.cfg = cfg
        self.state_dir = os.path.join(cfg.var, self.state_name)
        self.bundle_dir = os.path.join(cfg.var, "bundles")
        self.tokens = JobTokens(cfg)
        self.backoff = {}        # dep_id -> restart_after (time.time())
        self._next_try = {}      # dep_id -> when remove() may ask the cluster again

    def _state_path(self, dep_id):
        return os.path.join(self.state_dir, dep_id + ".json")

    def _read_state(self, dep_id):
        try:
            with open(self._state_path(dep_id), encoding="utf-8") as f:
                st = json.load(f)
            return st if isinstance(st, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_state(self, dep_id, state):
        os.makedirs(self.state_dir, 0o700, exist_ok=True)
        path = self._state_path(dep_id)
        tmp = "%s.%d.tmp" % (path, threading.get_ident())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(state, f)
        os.replace(tmp, path)

    def bundle_path(self, kind, job_id):
        return os.path.join(self.bundle_dir, "%s-%s.tar.gz" % (kind, job_id))

    def pack(self, kind, job_id, src_dir, names):
        """Write the files `names` of src_dir as the bundle nginx serves to
        the job's init container; returns its SHA-256."""
        os.makedirs(self.bundle_dir, 0o750, exist_ok=True)
        final = self.bundle_path(kind, job_id)
        tmp = os.path.join(self.bundle_dir, ".%s-%s.%d.tmp" % (kind, job_id,
                                                               threading.get_ident()))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o640)
        try:
            with os.fdopen(fd, "wb") as f:
                with tarfile.open(fileobj=f, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
                    for name in names:
                        path = os.path.join(src_dir, name)
                        if not os.path.isfile(path):
                            continue
                        info = tar.gettarinfo(path, arcname=name)
                        info.uid = info.gid = 0
                        info.uname = info.gname = "root"
                        info.mode = 0o644
                        with open(path, "rb") as src:
                            tar.addfile(info, src)
                f.flush()
                os.fsync(f.fileno())
            st = os.stat(self.bundle_dir)
            os.chown(tmp, 0, st.st_gid) if os.geteuid() == 0 else None
            os.chmod(tmp, 0o640)
            os.replace(tmp, final)
        except BaseException:
            safefs.unlink(tmp, self.cfg.var)
            raise
        h = hashlib.sha256()
        with open(final, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    def discard(self, path):
        safefs.rmtree(path, self.cfg.var, ignore_errors=True)

    def new_credential(self, dep_id):
        """A fresh job credential for the deployment, its hash stored in
        the row before the credential goes anywhere."""
        token = new_token()
        self.tokens.deployment(dep_id, token_hash(token))
        return token

    def drop_credential(self, dep_id, log_fn):
        try:
            self.tokens.deployment(dep_id, None)
        except Exception as e:  # the row may be gone; the credential dies with it
            log_fn(dep_id, "cannot clear the job credential: %s", e)

    def forget(self, dep_id):
        """Remove the bundle and the record (once nothing runs)."""
        safefs.unlink(self.bundle_path("deploy", dep_id), self.cfg.var)
        safefs.unlink(self._state_path(dep_id), self.cfg.var)

    def release(self, dep_id):
        """Delete what the cluster runs for the deployment; True once
        nothing of it is left (subclasses)."""
        raise NotImplementedError

    def stop(self, dep_id):
        return self.release(dep_id)

    def remove(self, dep_id, keep_log=False):
        """Delete what the cluster runs for the deployment, then its
        credential, bundle and record; False while something is left (the
        spooler asks again every tick: the cluster is asked at most every
        LOOK_AGAIN s, or RETRY_AFTER s after an error)."""
        now = time.monotonic()
        if self._next_try.get(dep_id, 0) > now:
            return False
        try:
            gone = self.release(dep_id)
        except OSError as e:
            self._next_try[dep_id] = now + RETRY_AFTER
            log.deployment(dep_id, "%s: cannot remove it yet (trying again): %s", self.name, e)
            return False
        self.backoff.pop(dep_id, None)
        if not gone:
            self._next_try[dep_id] = now + LOOK_AGAIN
            return False
        self._next_try.pop(dep_id, None)
        self.drop_credential(dep_id, log.deployment)
        self.forget(dep_id)
        return True

    def present(self):
        try:
            names = os.listdir(self.state_dir)
        except FileNotFoundError:
            return set()
        return {n[:-5] for n in names if n.endswith(".json") and not n.startswith(".")}

    def crashed(self, dep_id, restart_after, detail, version=None):
        # The cluster restarts the container itself; the spooler counts the
        # crash and looks again (a launch that re-applies the description)
        # once the back-off is over.
        self.backoff[dep_id] = restart_after

    def prune(self, dep_id, version):
        return []

    def reap(self):
        pass
