"""mlc-spooler's loop: claim job bundles from the spool and converge the
deployments table (what should run) with the runtimes (what runs).

Every MLC_SPOOL_POLL seconds a tick
  - collects exited children,
  - stops deployments the API asked to stop (desired='stopped'),
  - polls runtimes that are starting (deployed once /health answers),
  - collects finished trainings and steps their redeploys (training.py),
  - claims new bundles: rename new/X -> cur/X, then handle by job type
    (a deploy here, a train job in a thread of its own);
and every MLC_RECONCILE_INTERVAL seconds (and at start) a reconcile pass
  - processes bundles left in cur/ by a spooler that died,
  - fails 'building' deployments that lost their bundle, and trainings
    that did,
  - restarts deployed runtimes that are gone (a crash is counted, with
    back-off; a clean stop or a reboot is not) and fails those that keep
    crashing,
  - removes files and processes no deployment wants (also the runtime of
    an older model version a redeploy left behind) and those of trainings
    that are over.

A bundle leaves cur/ only once its outcome is in the database, so a
spooler killed at any point leaves either the bundle (processed again, and
a runtime it had already started is adopted) or the final state.
"""

import datetime
import errno
import fcntl
import os
import shutil
import signal
import time
import traceback

import pymysql

from . import backend as backends
from . import bundle, log, requirements, training
from .db import Deployments, LockHeld as DbLockHeld
from .sandbox import SandboxError

STABLE_AFTER = 600        # s a runtime must have served for its crash count to restart at 1
BACKOFF_MAX = 60          # s, longest wait before restarting a crashed runtime
LOST_BUNDLE_AFTER = 60    # s a 'waiting' row may exist without its bundle in the spool
REQUIREMENTS_MAX = 1 << 20


class Pending:
    """A runtime being started for a deployment."""

    def __init__(self, launch, backend, kind, bundle_path=None):
        self.launch, self.backend, self.kind, self.bundle = launch, backend, kind, bundle_path


class LockHeld(Exception):
    pass


def take_lock(cfg, wait):
    """Hold $MLC_VAR/run/mlc-spooler.lock (flock) for the life of the
    process: one spooler per instance.  Waits up to `wait` seconds; raises
    LockHeld naming the lock.  Returns the open descriptor."""
    os.makedirs(cfg.run_dir, exist_ok=True)
    path = os.path.join(cfg.run_dir, "mlc-spooler.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LockHeld("another mlc-spooler is running for %s (it holds %s); stop it "
                               "first" % (cfg.var, path)) from None
            time.sleep(0.1)


class Spooler:
    def __init__(self, cfg):
        self.cfg = cfg
        self.db = Deployments(cfg)
        self.poll_interval = cfg.number("MLC_SPOOL_POLL")
        self.reconcile_interval = cfg.number("MLC_RECONCILE_INTERVAL")
        self.max_restarts = cfg.number("MLC_RUNTIME_MAX_RESTARTS", int)
        self.backoff = cfg.number("MLC_RUNTIME_BACKOFF")
        self.max_bundle = cfg.number("MLC_BUNDLE_MAX_SIZE", int)
        self.default_backend = cfg.get("MLC_BACKEND")
        self.pending = {}
        self.noted = set()          # bundles already logged as not handled here
        self.stopping = False
        self.last_error = None
        self.errors = 0
        self.next_reconcile = 0.0
        self.spool = {d: os.path.join(cfg.spool, d) for d in ("tmp", "new", "cur", "rejected")}
        self.lock_fd = None
        self.trainer = training.Trainer(self)

    # ---- setup ----

    def prepare(self):
        """Create the spool and deployments directories; take the lock that
        makes this the only spooler of the instance."""
        for d in list(self.spool.values()) + [self.cfg.deployments, self.cfg.run_dir,
                                              self.cfg.log_dir]:
            os.makedirs(d, exist_ok=True)
        self.lock_fd = take_lock(self.cfg, 0)
        self.trainer.prepare()
        for name in os.listdir(self.cfg.deployments):
            if name.startswith("."):  # staging dirs of an interrupted extraction
                shutil.rmtree(os.path.join(self.cfg.deployments, name), ignore_errors=True)

    def backend_for(self, row):
        return backends.get(row.get("backend") or self.default_backend, self.cfg)

    def local(self):
        return backends.get("local", self.cfg)

    # ---- the loop ----

    def run(self):
        """Run until SIGTERM/SIGINT; returns the exit status."""
        def on_signal(signum, frame):
            self.stopping = True
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.prepare()
        lb = self.local()
        log.spooler("started (pid %d, MLC_VAR %s, database %s, backend %s; runtimes: %s, "
                    "memory %d bytes)", os.getpid(), self.cfg.var, self.cfg.db_where(),
                    self.default_backend, lb.cgroups.describe(), lb.memory)
        while not self.stopping:
            self.guarded(self.tick)
            end = time.monotonic() + self.poll_interval
            while not self.stopping and time.monotonic() < end:
                time.sleep(min(0.05, self.poll_interval))
        log.spooler("stopping on signal; %d runtime(s) still starting will be adopted by the "
                    "next spooler" % len(self.pending) if self.pending else "stopping on signal")
        if self.trainer.busy():
            log.spooler("stopping %d training(s) (they run again when a spooler starts) and "
                        "%d redeploy(s)", len(self.trainer.jobs), len(self.trainer.rolls))
        self.trainer.shutdown()
        self.db.close()
        return 0

    def once(self):
        """One reconcile pass plus every pending bundle, waiting for the
        runtimes started to come up or fail and for the trainings (and
        their redeploys) to end (for tests and cron)."""
        self.prepare()
        self.guarded(self.handle_stop_requests)
        self.guarded(self.reconcile)
        self.guarded(self.claim_new)
        while (self.pending or self.trainer.busy()) and not self.stopping:
            time.sleep(0.05)
            self.guarded(self.poll_pending)
            self.guarded(self.trainer.tick)
            if self.trainer.has_room():
                self.guarded(self.claim_new)  # train bundles that waited for room
        self.trainer.shutdown()
        self.db.close()
        return 1 if self.errors else 0

    def guarded(self, step):
        """Run one step; a database outage or a bug is logged (once while it
        repeats) and the loop goes on - the next tick retries."""
        try:
            step()
            if self.last_error is not None:
                log.spooler("recovered from: %s", self.last_error)
            self.last_error = None
        except pymysql.Error as e:
            self._error("database unavailable: %s; retrying" % (e,))
            self.db.close()
        except DbLockHeld as e:
            self._error("%s; waiting" % e)
        except Exception as e:
            self._error("error in %s: %s: %s | %s" % (
                step.__name__, type(e).__name__, e,
                " / ".join(traceback.format_exc().strip().splitlines()[-6:])))

    def _error(self, msg):
        self.errors += 1
        if msg != self.last_error:
            log.spooler(msg)
        self.last_error = msg

    def tick(self):
        self.db.ensure()
        for b in {p.backend for p in self.pending.values()} | {self.local()}:
            b.reap()
        self.handle_stop_requests()
        self.poll_pending()
        self.trainer.tick()
        self.claim_new()
        if time.monotonic() >= self.next_reconcile:
            self.reconcile()
            self.next_reconcile = time.monotonic() + self.reconcile_interval

    # ---- bundles ----

    def _bundle_names(self, where):
        try:
            names = [n for n in os.listdir(self.spool[where]) if not n.startswith(".")]
        except FileNotFoundError:
            return []

        def mtime(n):
            try:
                return os.stat(os.path.join(self.spool[where], n)).st_mtime
            except OSError:
                return 0
        return sorted(names, key=lambda n: (mtime(n), n))

    def _bundle_exists(self, dep_id):
        name = "deploy-%s.tar.gz" % dep_id
        return any(os.path.exists(os.path.join(self.spool[w], name))
                   for w in ("tmp", "new", "cur"))

    def claim_new(self):
        """Claim each bundle in new/ (rename into cur/) and handle it."""
        self.db.ensure()  # don't claim work while the database is away
        for name in self._bundle_names("new"):
            if self.stopping:
                return
            parsed = bundle.parse_name(name)
            if parsed is None:
                self._reject(name, "new", "not a job bundle name")
                continue
            kind, job_id = parsed
            if kind not in JOB_TYPES:
                if name not in self.noted:
                    log.event("job %s" % job_id, "%s jobs are not handled by this spooler yet; "
                              "the bundle stays in spool/new/" % kind)
                    self.noted.add(name)
                continue
            src, dst = os.path.join(self.spool["new"], name), os.path.join(self.spool["cur"], name)
            if kind == "train" and not self.trainer.may_claim(name, job_id, src):
                continue
            try:
                os.rename(src, dst)
            except FileNotFoundError:
                continue  # taken meanwhile
            log.event("%s %s" % ("deployment" if kind == "deploy" else "training", job_id),
                      "claimed %s" % name)
            self.run_job(kind, dst, job_id)

    def isolated(self, dep_id, fn, *args):
        """Run one item's step so that a bug it triggers is logged and does
        not stop the other items; database errors still end the step.
        Returns True when it raised."""
        try:
            fn(*args)
            return False
        except (pymysql.Error, DbLockHeld):
            raise
        except Exception as e:
            log.deployment(dep_id, "internal error: %s: %s | %s", type(e).__name__, e,
                           " / ".join(traceback.format_exc().strip().splitlines()[-6:]))
            return True

    def run_job(self, kind, path, job_id):
        """Handle one claimed bundle; one that trips a bug fails its job
        instead of coming back on every pass."""
        if self.isolated(job_id, JOB_TYPES[kind], self, path, job_id):
            reason = "internal error in mlc-spooler while handling the bundle; see the spooler log"
            if kind == "train":
                self.isolated(job_id, self.trainer.fail_now, job_id, reason, path)
                return
            self.pending.pop(job_id, None)
            self.isolated(job_id, self.fail, job_id, reason, path, None)
            self._drop(path)

    def _reject(self, name, where, why):
        src = os.path.join(self.spool[where], name)
        try:
            os.rename(src, os.path.join(self.spool["rejected"], name))
            log.spooler("moved spool/%s/%s to spool/rejected/: %s", where, name, why)
        except OSError:
            pass

    @staticmethod
    def _drop(path):
        if path:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # ---- train jobs (see training.py) ----

    def train_job(self, path, training_id):
        """Run a claimed train bundle (also one processed again after a
        crash) in a thread of its own."""
        self.trainer.start(path, training_id)

    # ---- deploy jobs ----

    def deploy_job(self, path, dep_id):
        """Handle a claimed deploy bundle (also one processed again after a
        crash): verify it, start the runtime, leave the rest to poll_pending."""
        if dep_id in self.pending:
            return
        row = self.db.get(dep_id)
        if row is None:
            log.deployment(dep_id, "no deployments row (removed by the API); bundle discarded")
            self._drop(path)
            return
        if row["desired"] == "stopped":
            log.deployment(dep_id, "stop requested before it started; bundle discarded")
            self._drop(path)
            self.finish_stop(row)
            return
        if row["status"] not in ("waiting", "building"):
            log.deployment(dep_id, "already %s; bundle discarded", row["status"])
            self._drop(path)
            return
        try:
            be = self.backend_for(row)
        except backends.Unavailable as e:
            self.fail(dep_id, str(e), path, None)
            return
        if row["status"] == "building":
            launch = be.adopt(dep_id)
            if launch is not None:
                log.deployment(dep_id, "adopting runtime pid %d started before a spooler restart",
                               launch.pid)
                self.pending[dep_id] = Pending(launch, be, "deploy", path)
                return
        self.build(row, be, path)

    def build(self, row, be, path):
        dep_id = row["deployment_id"]
        staging = os.path.join(self.cfg.deployments, ".%s.partial" % dep_id)
        shutil.rmtree(staging, ignore_errors=True)
        try:
            job = bundle.unpack(path, staging, "deploy", dep_id, self.max_bundle)
        except bundle.BundleError as e:
            self.fail(dep_id, str(e), path, be)
            return
        missing, warnings = self.check_requirements(job, staging)
        if missing:
            shutil.rmtree(staging, ignore_errors=True)
            self.fail(dep_id, "; ".join(missing), path, be)
            return
        for w in warnings:
            log.deployment(dep_id, "warning: %s", w)
        if not self.db.building(dep_id, "\n".join(warnings) or None):
            shutil.rmtree(staging, ignore_errors=True)
            self._drop(path)
            self.settle(dep_id)
            return
        log.deployment(dep_id, "building (model version %s)", row["model_version"])
        try:
            be.install(dep_id, staging)
            launch = be.launch(dep_id, "deploy")
        except (SandboxError, OSError) as e:
            shutil.rmtree(staging, ignore_errors=True)
            self.fail(dep_id, "cannot start the runtime: %s" % e, path, be)
            return
        log.deployment(dep_id, "runtime starting (pid %s)", launch.pid)
        self.pending[dep_id] = Pending(launch, be, "deploy", path)

    def check_requirements(self, job, staging):
        """(missing, warnings) for the bundle's requirements.txt, if any."""
        env = job["files"].get("env")
        if not env:
            return [], []
        with open(os.path.join(staging, env["name"]), "rb") as f:
            text = f.read(REQUIREMENTS_MAX).decode("utf-8", "replace")
        return requirements.check(text)

    def fail(self, dep_id, reason, path, be):
        """The deployment failed: clean up (so that 'failed' means nothing of
        it runs), record why, drop the bundle."""
        if be is not None:
            be.remove(dep_id, keep_log=True)
        if self.db.failed(dep_id, reason):
            log.deployment(dep_id, "failed: %s", reason)
        else:
            log.deployment(dep_id, "not marked failed (it changed meanwhile): %s", reason)
        self._drop(path)
        self.settle(dep_id)

    def settle(self, dep_id):
        """After a transition lost a race, look at the row again: a stop the
        API asked for meanwhile is carried out now."""
        row = self.db.get(dep_id)
        if row is not None and row["desired"] == "stopped" and row["status"] != "stopped":
            self.finish_stop(row)

    # ---- starting runtimes ----

    def poll_pending(self):
        for dep_id, p in list(self.pending.items()):
            result = p.backend.poll(p.launch)
            if result is None:
                continue
            del self.pending[dep_id]
            if p.kind == "deploy":
                self.finish_deploy(dep_id, p, result)
            else:
                self.finish_restart(dep_id, p, result)

    def finish_deploy(self, dep_id, p, result):
        if isinstance(result, backends.Failed):
            self.fail(dep_id, result.reason, p.bundle, p.backend)
            return
        if self.db.deployed(dep_id, result.endpoint, result.pid):
            log.deployment(dep_id, "deployed at %s (pid %d)", result.endpoint, result.pid)
        else:
            log.deployment(dep_id, "runtime ready but the deployment changed meanwhile")
            row = self.db.get(dep_id)
            if row is None or row["desired"] == "stopped":
                p.backend.remove(dep_id)
        self._drop(p.bundle)
        self.settle(dep_id)

    def finish_restart(self, dep_id, p, result):
        row = self.db.get(dep_id)
        if row is None or row["desired"] != "running" or row["status"] != "deployed":
            p.backend.cancel(p.launch)
            self.settle(dep_id)
            return
        if isinstance(result, backends.Failed):
            self.count_crash(row, p.backend, result.detail or result.reason, 0)
            return
        self.db.runtime(dep_id, result.endpoint, result.pid, row["restarts"])
        log.deployment(dep_id, "runtime %s (pid %d)", "restarted" if p.kind == "restart"
                       else "resumed", result.pid)

    def start_again(self, row, be, kind):
        dep_id = row["deployment_id"]
        try:
            launch = be.launch(dep_id, kind, version=row["model_version"])
        except (SandboxError, OSError) as e:
            self.count_crash(row, be, "cannot start the runtime: %s" % e, 0)
            return
        log.deployment(dep_id, "runtime %s (pid %s)", "restarting" if kind == "restart"
                       else "resuming", launch.pid)
        self.pending[dep_id] = Pending(launch, be, kind)

    def count_crash(self, row, be, detail, uptime):
        """A deployed runtime died (or failed to come back): restart it
        after a back-off, or fail the deployment at the
        MLC_RUNTIME_MAX_RESTARTS-th crash in a row.  `restarts` counts the
        crashes so far; a runtime that served for STABLE_AFTER seconds
        starts a new count."""
        dep_id = row["deployment_id"]
        n = 1 if uptime >= STABLE_AFTER else row["restarts"] + 1
        if n >= self.max_restarts:
            self.fail(dep_id, "runtime keeps crashing: %s" % detail, None, be)
            return
        delay = min(self.backoff * 2 ** (n - 1), BACKOFF_MAX)
        be.crashed(dep_id, time.time() + delay, detail, version=row["model_version"])
        if self.db.runtime(dep_id, None, None, n):
            log.deployment(dep_id, "runtime crashed (crash %d of at most %d): %s; restarting "
                           "in %g s", n, self.max_restarts, detail, delay)
        else:
            self.settle(dep_id)

    # ---- stopping ----

    def handle_stop_requests(self):
        for row in self.db.stop_requests():
            self.finish_stop(row)

    def finish_stop(self, row):
        """Stop the runtime, remove its files, then mark the row stopped."""
        dep_id = row["deployment_id"]
        p = self.pending.pop(dep_id, None)
        if p is not None:
            p.backend.cancel(p.launch)
            self._drop(p.bundle)
        try:
            be = self.backend_for(row)
        except backends.Unavailable:
            be = None
        if be is not None and not be.remove(dep_id):
            return  # logged by the backend; tried again next tick
        if self.db.stopped(dep_id):
            log.deployment(dep_id, "stopped")

    # ---- reconcile ----

    def reconcile(self):
        self.resume_claimed()
        rows = self.db.active()
        for row in rows:
            if self.stopping:
                return
            if row["deployment_id"] not in self.pending:
                self.isolated(row["deployment_id"], self.reconcile_row, row)
        self.remove_orphans(rows)
        self.trainer.reconcile()

    def resume_claimed(self):
        """Bundles in cur/ that no step is handling: a spooler died with them."""
        for name in self._bundle_names("cur"):
            parsed = bundle.parse_name(name)
            if parsed is None or parsed[0] not in JOB_TYPES:
                self._reject(name, "cur", "not a job bundle this spooler handles")
                continue
            kind, job_id = parsed
            if job_id in self.pending:
                continue
            if kind == "train" and (self.trainer.handles(job_id) or not self.trainer.has_room()):
                continue
            log.event("deployment %s" % job_id if kind == "deploy" else "training %s" % job_id,
                      "processing %s again (claimed by an earlier spooler)" % name)
            self.run_job(kind, os.path.join(self.spool["cur"], name), job_id)

    def reconcile_row(self, row):
        dep_id, status = row["deployment_id"], row["status"]
        if row["desired"] == "stopped":
            self.finish_stop(row)
        elif status == "waiting" and not self._bundle_exists(dep_id):
            age = datetime.datetime.utcnow() - row["updated_at"]
            if age.total_seconds() > LOST_BUNDLE_AFTER:
                self.fail(dep_id, "the deployment bundle never reached the spool (the API may "
                          "have stopped while writing it); deploy again", None, None)
        elif status == "building" and not self._bundle_exists(dep_id):
            try:
                be = self.backend_for(row)
            except backends.Unavailable:
                be = None
            self.fail(dep_id, "interrupted while building; deploy again", None, be)
        elif status == "deployed":
            self.supervise(row)

    def supervise(self, row):
        """A deployed deployment that should run: is its runtime serving?"""
        dep_id = row["deployment_id"]
        try:
            be = self.backend_for(row)
        except backends.Unavailable as e:
            self.fail(dep_id, str(e), None, None)
            return
        seen = be.observe(dep_id, version=row["model_version"])
        if isinstance(seen, backends.Running):
            if row["runtime_pid"] != seen.pid or row["endpoint"] != seen.endpoint:
                self.db.runtime(dep_id, seen.endpoint, seen.pid, row["restarts"])
        elif isinstance(seen, backends.Crashed):
            self.count_crash(row, be, seen.detail, seen.uptime)
        elif isinstance(seen, backends.Backoff):
            if time.time() >= seen.until:
                self.start_again(row, be, "restart")
        elif isinstance(seen, backends.Absent):
            log.deployment(dep_id, "runtime not running (%s)", seen.why)
            self.start_again(row, be, "resume")
        elif isinstance(seen, backends.Missing):
            self.fail(dep_id, seen.reason, None, be)

    def remove_orphans(self, active_rows):
        """Files and processes of deployments that no row wants running."""
        lb = self.local()
        present = lb.present() - set(self.pending)
        rows = self.db.existing(present) if present else {}
        rolling = self.trainer.rolling()
        for dep_id in sorted(present):
            row = rows.get(dep_id)
            if row is None or row["status"] in ("failed", "stopped") or (
                    row["backend"] or "local") != "local":
                log.deployment(dep_id, "removing leftover files (%s)",
                               "no row" if row is None else "status %s" % row["status"])
                lb.remove(dep_id, keep_log=row is not None and row["status"] == "failed")
            elif row["status"] == "deployed" and dep_id not in rolling:
                # A redeploy interrupted by a spooler restart leaves the
                # directory of the version the row does not name.
                for key in lb.prune(dep_id, row["model_version"]):
                    log.deployment(dep_id, "removed the runtime directory %s (the deployment "
                                   "serves model version %d)", key, row["model_version"])
        keep = set(self.pending) | {r["deployment_id"] for r in active_rows
                                    if r["desired"] == "running"}
        lb.strays(keep)


def stop_runtimes(cfg):
    """`mlc-spooler --stop-runtimes`: stop every runtime of this instance
    (for `mlc down`, after the spooler itself has stopped), keeping their
    files and not touching the database; the next spooler resumes them."""
    take_lock(cfg, 15)  # a running spooler would start them again at once
    lb = backends.get("local", cfg)
    stopped = lb.stop_all()
    for dep_id in stopped:
        log.deployment(dep_id, "runtime stopped (--stop-runtimes)")
    # A spooler stops its trainings itself; one that was killed cannot.
    for training_id in training.kill_all(cfg):
        log.event("training %s" % training_id, "sandbox killed (--stop-runtimes); the training "
                  "runs again when a spooler starts")
    return 0


JOB_TYPES = {"deploy": Spooler.deploy_job, "train": Spooler.train_job}
