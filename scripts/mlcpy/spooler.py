"""mlc-spooler's loop: claim job bundles from the spool and converge the
deployments table (what should run) with the runtimes (what runs).

Every MLC_SPOOL_POLL seconds a tick
  - claims jobs in the database: deployments and trainings that need a
    spooler and have none (or whose spooler's lease expired), and renews
    the lease of those it holds (spool.py, Claims); everything below
    looks only at the rows this spooler holds,
  - collects exited children,
  - stops deployments the API asked to stop (desired='stopped'),
  - polls runtimes that are starting (deployed once /health answers),
  - collects finished trainings and steps their redeploys (training.py),
  - claims new bundles of its jobs: rename new/X -> cur/X (spool.py,
    claim_file), then handle by job type (a deploy here, a train job in a
    thread of its own);
and every MLC_RECONCILE_INTERVAL seconds (and at start) a reconcile pass
  - processes bundles of its jobs left in cur/ by a spooler that died,
  - fails 'building' deployments that lost their bundle, and trainings
    that did,
  - restarts deployed runtimes that are gone (a crash is counted, with
    back-off; a clean stop or a reboot is not) and fails those that keep
    crashing,
  - removes files and processes no deployment wants (also the runtime of
    an older model version a redeploy left behind, those of deployments
    another spooler has taken over, and mlc-api's predict slot files of
    deployments stopped, failed or gone: slots.py) and those of trainings
    that are over;
and every MLC_TMP_CLEAN_INTERVAL seconds the leftovers of dead requests in
artifacts/.tmp and spool/tmp (older than MLC_TMP_MAX_AGE; tmpclean.py).

A bundle leaves cur/ only once its outcome is in the database, so a
spooler killed at any point leaves either the bundle (processed again, and
a runtime it had already started is adopted) or the final state.

The loop never waits on one job.  Every step that may take long -
extracting and hashing a bundle and checking its requirements, installing
and starting a runtime, polling one that starts, stopping a runtime (which
may ignore SIGTERM for its grace period), removing files - runs as a task
in a thread of its own (Workers), at most one per deployment at a time;
the loop skips a deployment while it has one and handles the outcome
(database transitions, which only the loop's thread writes) once it is
done.  So a hostile or huge job delays no other deployment's start, stop
or restart.
"""

import errno
import fcntl
import os
import signal
import threading
import time
import traceback

import pymysql

from . import backends
from . import bundle, layout, log, requirements, safefs, slots, spool, testhooks, tmpclean, training
from .bundle import LOST_BUNDLE_AFTER
from .config import ConfigError
from .db import Deployments, LockHeld as DbLockHeld
from .sandbox import SandboxError

STABLE_AFTER = 600        # s a runtime must have served for its crash count to restart at 1
BACKOFF_MAX = 60          # s, longest wait before restarting a crashed runtime
STRAYS = "*strays"        # the Workers key of the stray-runtime sweep (no id starts with '*')
REMOTE_SWEEP_EVERY = 60   # s between looks for stray objects in clusters (remote backends)
SHUTDOWN_WAIT = 20.0      # s a stopping spooler waits for the tasks under way
QUICK_JOB_SECONDS = 0.05  # s a test-hook job takes (quick_job)


class Pending:
    """A runtime being started for a deployment."""

    def __init__(self, launch, backend, kind, bundle_path=None):
        self.launch, self.backend, self.kind, self.bundle = launch, backend, kind, bundle_path


class LockHeld(Exception):
    pass


def refusal(e, what="refusing to use the state directory"):
    """The one log line for a state directory the spooler will not use."""
    return ("%s: %s; root daemons never follow a symbolic link or use a directory another "
            "user controls under MLC_VAR (put a root-owned directory there; mlc-spooler "
            "--prepare sets owners and modes, see docs/OPERATIONS.md)" % (what, e))


class Task(threading.Thread):
    """One blocking step for one item (a deployment id), run in a thread;
    `then(task)` runs on the loop's thread once it is done, with
    task.result or task.error set."""

    def __init__(self, key, what, fn, then):
        super().__init__(name="mlc-%s %s" % (what, key), daemon=True)
        self.key, self.what, self.fn, self.then = key, what, fn, then
        self.result = self.error = None
        self.trace = ""
        self.started_at = time.monotonic()

    def run(self):
        try:
            self.result = self.fn()
        except Exception as e:
            self.error = e
            self.trace = " / ".join(traceback.format_exc().strip().splitlines()[-6:])


class Workers:
    """The tasks under way, by key: at most one per deployment."""

    def __init__(self):
        self.tasks = {}

    def busy(self, key):
        """Whether the item has a task under way (safe from any thread)."""
        return key in self.tasks

    def keys(self):
        return set(self.tasks)

    def submit(self, key, what, fn, then=None):
        if key in self.tasks:
            raise RuntimeError("%s: a %s task is under way" % (key, self.tasks[key].what))
        task = Task(key, what, fn, then)
        self.tasks[key] = task
        task.start()
        return task

    def finished(self):
        """The tasks that are done, removed from the set under way."""
        done = [t for t in self.tasks.values() if not t.is_alive()]
        for t in done:
            del self.tasks[t.key]
        return done

    def join(self, seconds):
        deadline = time.monotonic() + seconds
        for t in list(self.tasks.values()):
            t.join(max(0.0, deadline - time.monotonic()))


def take_lock(cfg, wait):
    """Hold $MLC_VAR/run/mlc-spooler.lock (flock) for the life of the
    process: one spooler per instance.  Waits up to `wait` seconds; raises
    LockHeld naming the lock.  Returns the open descriptor."""
    path = os.path.join(cfg.run_dir, "mlc-spooler.lock")
    dfd = safefs.open_beneath(cfg.var, ["run"])
    try:
        fd = os.open("mlc-spooler.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644, dir_fd=dfd)
    finally:
        os.close(dfd)
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
        self.next_sweep = {}        # remote backend name -> when to look for strays next
        self.unobserved = {}        # deployment id -> why its backend cannot see it now
        self.sweeping = set()       # (backend, id) whose leftovers are being removed (logged)
        self.spool = {d: spool.spool_path(cfg, d) for d in spool.STATES}
        self.me = spool.spooler_id(cfg)
        self.lease = cfg.number("MLC_SPOOLER_LEASE")
        if self.lease < 3:
            raise ConfigError("MLC_SPOOLER_LEASE=%g: the lease must be at least 3 seconds"
                              % self.lease)
        self.claims = spool.Claims(self.db, self.me, self.lease)
        self.held = (set(), set())  # (deployment ids, training ids) this spooler holds
        self.next_renew = 0.0
        self.drain = True           # the first claim_jobs takes every free deployment
        self.lock_fd = None
        self.layout = layout.Layout(cfg)
        self.bundle_owners = self.layout.bundle_owners()
        self.workers = Workers()
        self.trainer = training.Trainer(self)
        self.cleaner = tmpclean.Cleaner(cfg, log.spooler)

    # ---- setup ----

    def prepare(self):
        """Create (or refuse, raising safefs.Unsafe) the state directories
        (layout.py); take the lock that makes this the only spooler of the
        instance."""
        for note in self.layout.notes:
            log.spooler(note)
        for change in self.layout.ensure(start=True):
            log.spooler(change)
        self.lock_fd = take_lock(self.cfg, 0)
        self.trainer.prepare()
        for name in os.listdir(self.cfg.deployments):
            # Staging dirs of an interrupted extraction (.<id>.partial,
            # .<id>@<version>.partial); no deployment id starts with a dot.
            if name.startswith(".") and name.endswith(".partial"):
                self.rmtree(os.path.join(self.cfg.deployments, name))

    def rmtree(self, path):
        """Remove path below MLC_VAR without following symbolic links
        (best effort; Unsafe when the directories above it are not root's)."""
        safefs.rmtree(path, self.cfg.var, ignore_errors=True)

    def check_layout(self):
        """Before every tick: the state directories are still root's (or
        the service user's) and no symbolic link has replaced one."""
        for change in self.layout.ensure():
            log.spooler(change)

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
        log.spooler("started (pid %d, MLC_VAR %s, database %s, backend %s; claims as '%s' with "
                    "a lease of %g s; runtimes: %s)", os.getpid(), self.cfg.var,
                    self.cfg.db_where(), self.default_backend, self.me, self.lease,
                    lb.cgroups.describe())
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
        self.finish_tasks()
        self.trainer.shutdown()
        self.db.close()
        return 0

    def finish_tasks(self, wait=SHUTDOWN_WAIT):
        """Let the tasks under way end and record their outcome; one still
        running after `wait` seconds is left (its bundle stays in cur/ and
        is processed again by the next spooler)."""
        if self.workers.tasks:
            self.workers.join(wait)
            self.guarded(self.collect)
            if self.workers.tasks:
                log.spooler("leaving %d task(s) under way: %s", len(self.workers.tasks),
                            ", ".join("%s %s" % (t.what, t.key)
                                      for t in self.workers.tasks.values()))

    def once(self):
        """One reconcile pass plus every pending bundle, waiting for the
        runtimes started to come up or fail and for the trainings (and
        their redeploys) to end (for tests and cron)."""
        self.prepare()
        self.guarded(self.claim_jobs)
        self.guarded(self.handle_stop_requests)
        self.guarded(self.reconcile)
        self.guarded(self.claim_new)
        while (self.pending or self.trainer.busy() or self.workers.tasks) and not self.stopping:
            time.sleep(0.05)
            self.guarded(self.collect)
            self.guarded(self.claim_jobs)
            self.guarded(self.handle_stop_requests)
            self.guarded(self.poll_pending)
            self.guarded(self.trainer.tick)
            if self.trainer.has_room():
                self.guarded(self.claim_new)  # train bundles that waited for room
        self.finish_tasks()
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
        except safefs.Unsafe as e:
            self._error(refusal(e))
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
        self.check_layout()
        self.db.ensure()
        for b in {p.backend for p in self.pending.values()} | {self.local()}:
            b.reap()
        self.collect()
        self.claim_jobs()
        self.handle_stop_requests()
        self.poll_pending()
        self.trainer.tick()
        self.claim_new()
        if time.monotonic() >= self.next_reconcile:
            self.reconcile()
            self.next_reconcile = time.monotonic() + self.reconcile_interval
        self.cleaner.tick()

    # ---- claims in the database (spool.py) ----

    def claim_jobs(self):
        """Take the jobs no live spooler holds, renew the lease of ours
        (every third of it), and note which rows are ours now."""
        now = time.monotonic()
        if now >= self.next_renew:
            self.claims.renew()
            self.next_renew = now + self.lease / 3.0
        taken = self.claims.claim_deployments()
        if self.drain:
            # At start every free row is taken before the first reconcile
            # pass, which would count the runtimes of rows not yet held
            # (deployments from before the claims, say) as strays.
            self.drain = False
            more = taken
            while len(more) >= spool.CLAIM_BATCH:
                more = self.claims.claim_deployments()
                taken.update(more)
        taken_tr = self.claims.claim_trainings(
            self.trainer.max_jobs - len(self.held[1] | set(self.trainer.jobs)))
        for kind, got in (("deployment", taken), ("training", taken_tr)):
            for job_id, before in sorted(got.items()):
                if before is not None and before != self.me:
                    log.event("%s %s" % (kind, job_id), "taken over from spooler '%s' (its lease "
                              "expired)" % before)
        self.held = self.claims.held()

    def elsewhere(self, row):
        """Another spooler holds the row: what this one still has of it goes."""
        return row["claimed_by"] is not None and row["claimed_by"] != self.me

    def holds(self, kind, job_id):
        """This spooler holds the job's claim (as of the last claim_jobs)."""
        return job_id in self.held[0 if kind == "deploy" else 1]

    # ---- bundles ----

    def _bundle_names(self, where):
        return spool.names(self.cfg, where)

    def _bundle_exists(self, dep_id):
        """The deployment's bundle is published (new/, cur/) or still being
        written by a live mlc-api worker (tmp/<name>.<pid>, spool.py)."""
        return spool.bundle_exists(self.cfg, spool.bundle_name("deploy", dep_id))

    def claim_new(self):
        """Claim each bundle in new/ (rename into cur/) and handle it."""
        self.db.ensure()  # don't claim work while the database is away
        for name in self._bundle_names("new"):
            if self.stopping:
                return
            if name.startswith(training.OUTPUT_PREFIX):
                continue  # a remote training's model, taken by its job (training_kube.py)
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
            if not self.holds(kind, job_id) and not self._orphan_bundle(kind, job_id, name):
                continue  # another spooler's job, or one not claimed yet
            src = os.path.join(self.spool["new"], name)
            if kind == "train" and not self.trainer.may_claim(name, job_id, src):
                continue
            dst = spool.claim_file(self.cfg, name)
            if dst is None:
                continue  # taken meanwhile
            log.event("%s %s" % ("deployment" if kind == "deploy" else "training", job_id),
                      "claimed %s" % name)
            self.run_job(kind, dst, job_id)

    # ---- tasks ----

    def collect(self):
        """Handle the outcome of every finished task (on the loop's thread)."""
        for task in self.workers.finished():
            if task.error is not None and not isinstance(task.error, (SandboxError, OSError)):
                log.deployment(task.key, "internal error in the %s task: %s: %s | %s", task.what,
                               type(task.error).__name__, task.error, task.trace)
            if task.then is not None:
                self.isolated(task.key, task.then, task)

    def busy(self, dep_id):
        """A step of the deployment is under way (a task or a starting runtime)."""
        return dep_id in self.pending or self.workers.busy(dep_id)

    def isolated(self, dep_id, fn, *args):
        """Run one item's step so that a bug it triggers is logged and does
        not stop the other items; database errors still end the step.
        Returns True when it raised."""
        try:
            fn(*args)
            return False
        except (pymysql.Error, DbLockHeld, safefs.Unsafe):
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

    def _orphan_bundle(self, kind, job_id, name):
        """A bundle no row can claim: its row is gone or at rest (a deploy
        bundle is then claimed and discarded by deploy_job, a train bundle
        by Trainer.may_claim, as by a single spooler), or it has no row yet
        and has waited LOST_BUNDLE_AFTER (may_claim rejects it)."""
        if kind == "deploy":
            row = self.db.get(job_id)
            return row is None or row["status"] in ("failed", "stopped")
        row = self.trainer.db.get(job_id)
        if row is None:
            try:
                age = time.time() - os.lstat(os.path.join(self.spool["new"], name)).st_mtime
            except OSError:
                return False
            return age > LOST_BUNDLE_AFTER
        return row["status"] in ("completed", "failed")

    def _reject(self, name, where, why):
        if spool.reject(self.cfg, name, where):
            log.spooler("moved spool/%s/%s to spool/rejected/: %s", where, name, why)

    def _drop(self, path):
        spool.drop(self.cfg, path)

    # ---- train jobs (see training.py) ----

    def train_job(self, path, training_id):
        """Run a claimed train bundle (also one processed again after a
        crash) in a thread of its own."""
        self.trainer.start(path, training_id)

    # ---- deploy jobs ----

    def deploy_job(self, path, dep_id):
        """Handle a claimed deploy bundle (also one processed again after a
        crash): verify it, start the runtime, leave the rest to poll_pending.
        While a step of the deployment is under way, the bundle waits in
        cur/ (resume_claimed takes it up again)."""
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
        if self.workers.busy(dep_id):
            return
        quick = testhooks.armed(self.cfg.var, "quick-jobs")
        if quick is not None:
            self.quick_job(row, path, float(quick or QUICK_JOB_SECONDS))
            return
        try:
            be = self.backend_for(row)
        except backends.Unavailable as e:
            self.fail(dep_id, str(e), path, None)
            return
        if row["status"] == "building":
            launch = be.adopt(dep_id)
            if launch is not None:
                log.deployment(dep_id, "adopting runtime pid %s started before a spooler restart",
                               launch.pid)
                self.pending[dep_id] = Pending(launch, be, "deploy", path)
                return
        self.build(row, be, path)

    def quick_job(self, row, path, seconds):
        """Tests (testhooks.py, the hook quick-jobs, whose file holds the
        seconds a job takes, QUICK_JOB_SECONDS when empty): a deploy job
        that only records that it ran - one line in $MLC_VAR/quick-jobs.log
        and, in the row, status failed with reason 'quick job run by
        <spooler>' - so that the claims of many jobs can be tested without
        starting runtimes.  It takes its time in a task before it writes."""
        dep_id = row["deployment_id"]

        def work():
            time.sleep(seconds)
            with open(os.path.join(self.cfg.var, "quick-jobs.log"), "a") as f:
                f.write("%s %s %d\n" % (dep_id, self.me, os.getpid()))
        self.workers.submit(dep_id, "quick", work,
                            lambda task: self._failed(dep_id, "quick job run by %s" % self.me,
                                                      path))

    def build(self, row, be, path):
        """Extract, verify and check the bundle in a task; then (_unpacked)
        install and start the runtime in another."""
        dep_id = row["deployment_id"]
        staging = os.path.join(self.cfg.deployments, ".%s.partial" % dep_id)
        self.workers.submit(dep_id, "unpack",
                            lambda: self._unpack(path, staging, dep_id),
                            lambda task: self._unpacked(task, row, be, path, staging))

    def _unpack(self, path, staging, dep_id):
        """(In a task.)  (missing, warnings, request): why the bundle cannot
        run, or what to note about it, and the API request that made it
        (see bundle.request_note); the staging directory holds it when
        nothing is missing."""
        self.rmtree(staging)
        try:
            job = bundle.unpack(path, staging, "deploy", dep_id, self.max_bundle,
                                top=self.cfg.var, owners=self.bundle_owners)
        except bundle.BundleError as e:
            return [str(e)], [], ""
        missing, warnings = requirements.check_job(job, staging)
        if missing:
            self.rmtree(staging)
        return missing, warnings, bundle.request_note(job)

    def _unpacked(self, task, row, be, path, staging):
        dep_id = row["deployment_id"]
        if task.error is not None:
            self.rmtree(staging)
            self.fail(dep_id, "internal error in mlc-spooler while handling the bundle; see the "
                      "spooler log", path, be)
            return
        missing, warnings, request = task.result
        if missing:
            self.fail(dep_id, "; ".join(missing), path, be)
            return
        for w in warnings:
            log.deployment(dep_id, "warning: %s", w)
        if not self.db.building(dep_id, "\n".join(warnings) or None):
            self.rmtree(staging)
            self._drop(path)
            self.settle(dep_id)
            return
        log.deployment(dep_id, "building (model version %s%s)", row["model_version"], request)

        def start():
            be.install(dep_id, staging)
            return be.launch(dep_id, "deploy")
        self.workers.submit(dep_id, "start", start,
                            lambda task: self._started(task, dep_id, be, path, staging))

    def _started(self, task, dep_id, be, path, staging):
        if task.error is not None:
            self.rmtree(staging)
            self.fail(dep_id, "cannot start the runtime: %s" % task.error
                      if isinstance(task.error, (SandboxError, OSError)) else
                      "internal error in mlc-spooler while starting the runtime; see the "
                      "spooler log", path, be)
            return
        launch = task.result
        log.deployment(dep_id, "runtime starting (pid %s)", launch.pid)
        self.pending[dep_id] = Pending(launch, be, "deploy", path)

    def fail(self, dep_id, reason, path, be):
        """The deployment failed: clean up (so that 'failed' means nothing of
        it runs; in a task), then record why and drop the bundle."""
        if be is None or self.workers.busy(dep_id):
            # (A step under way: what it leaves behind is removed by the
            # reconciler once the row is failed.)
            self._failed(dep_id, reason, path)
            return
        self.workers.submit(dep_id, "cleanup", lambda: be.remove(dep_id, keep_log=True),
                            lambda task: self._failed(dep_id, reason, path))

    def _failed(self, dep_id, reason, path):
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
        """Poll each starting runtime (in a task: a health request, or
        stopping one that missed its deadline, may take a while)."""
        for dep_id, p in list(self.pending.items()):
            if self.workers.busy(dep_id):
                continue
            self.workers.submit(dep_id, "poll", lambda p=p: p.backend.poll(p.launch),
                                lambda task, dep_id=dep_id, p=p: self._polled(task, dep_id, p))

    def _polled(self, task, dep_id, p):
        if self.pending.get(dep_id) is not p:
            return  # stopped meanwhile
        result = task.result
        if task.error is not None:
            result = backends.Failed("internal error in mlc-spooler while polling the runtime; "
                                     "see the spooler log", "")
        if result is None:
            return
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
            log.deployment(dep_id, "deployed at %s (pid %s)", result.endpoint, result.pid)
        else:
            log.deployment(dep_id, "runtime ready but the deployment changed meanwhile")
            if self.db.get(dep_id) is None:
                self.workers.submit(dep_id, "cleanup", lambda: p.backend.remove(dep_id))
        self._drop(p.bundle)
        self.settle(dep_id)  # a stop asked for meanwhile stops it

    def finish_restart(self, dep_id, p, result):
        row = self.db.get(dep_id)
        if row is None or row["desired"] != "running" or row["status"] != "deployed":
            self.workers.submit(dep_id, "cancel", lambda: p.backend.cancel(p.launch),
                                lambda task: self.settle(dep_id))
            return
        if isinstance(result, backends.Failed):
            self.count_crash(row, p.backend, result.detail or result.reason, 0)
            return
        self.db.runtime(dep_id, result.endpoint, result.pid, row["restarts"])
        log.deployment(dep_id, "runtime %s (pid %s)", "restarted" if p.kind == "restart"
                       else "resumed", result.pid)

    def start_again(self, row, be, kind):
        dep_id = row["deployment_id"]
        self.workers.submit(dep_id, "launch",
                            lambda: be.launch(dep_id, kind, version=row["model_version"]),
                            lambda task: self._relaunched(task, row, be, kind))

    def _relaunched(self, task, row, be, kind):
        dep_id = row["deployment_id"]
        if task.error is not None:
            self.count_crash(row, be, "cannot start the runtime: %s" % task.error, 0)
            return
        launch = task.result
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
        """Stop the runtime and remove its files (in a task: a runtime may
        take its grace period to die), then mark the row stopped.  A
        deployment with a step under way is stopped once that step is done
        (handle_stop_requests asks again every tick)."""
        dep_id = row["deployment_id"]
        if self.workers.busy(dep_id):
            return
        p = self.pending.pop(dep_id, None)
        try:
            be = self.backend_for(row)
        except backends.Unavailable:
            be = None

        def stop():
            if p is not None:
                p.backend.cancel(p.launch)
                self._drop(p.bundle)
            # False: logged by the backend; tried again next tick.
            gone = be is None or be.remove(dep_id)
            if gone:
                self.remove_slots(dep_id)
            return gone
        self.workers.submit(dep_id, "stop", stop, lambda task: self._stopped(task, dep_id))

    def remove_slots(self, dep_id):
        """The deployment's predict slot file (slots.py), unless a call
        still holds a slot in it (then the next reconcile looks again)."""
        try:
            if slots.remove(self.cfg.var, dep_id, self.bundle_owners) == "removed":
                log.deployment(dep_id, "removed its predict slot file")
        except OSError as e:
            log.deployment(dep_id, "cannot remove its predict slot file: %s", e)

    def sweep_slots(self):
        """Slot files of deployments that are stopped, failed or gone."""
        ids = slots.deployments(self.cfg.var, self.bundle_owners) - set(self.pending) \
            - self.workers.keys()
        rows = self.db.existing(ids) if ids else {}
        for dep_id in sorted(ids):
            row = rows.get(dep_id)
            if row is None or row["status"] in ("failed", "stopped"):
                self.remove_slots(dep_id)

    def _stopped(self, task, dep_id):
        if task.error is None and task.result and self.db.stopped(dep_id):
            log.deployment(dep_id, "stopped")

    # ---- reconcile ----

    def reconcile(self):
        self.resume_claimed()
        rows = self.db.active()
        for row in rows:
            if self.stopping:
                return
            if not self.busy(row["deployment_id"]):
                self.isolated(row["deployment_id"], self.reconcile_row, row)
        self.remove_orphans(rows)
        self.sweep_slots()
        self.trainer.reconcile()

    def resume_claimed(self):
        """Bundles in cur/ that no step is handling: a spooler died with them."""
        for name in self._bundle_names("cur"):
            parsed = bundle.parse_name(name)
            if parsed is None or parsed[0] not in JOB_TYPES:
                self._reject(name, "cur", "not a job bundle this spooler handles")
                continue
            kind, job_id = parsed
            if self.busy(job_id) or not self.holds(kind, job_id):
                continue  # under way here, or another spooler's
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
            if row["idle_s"] > LOST_BUNDLE_AFTER:
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
        try:
            seen = be.observe(dep_id, version=row["model_version"])
        except OSError as e:
            # A remote backend's cluster is unreachable: the runtime may well
            # serve on; nothing is counted, it is looked at again next pass.
            if self.unobserved.get(dep_id) != str(e):
                log.deployment(dep_id, "cannot see the runtime: %s", e)
            self.unobserved[dep_id] = str(e)
            return
        if self.unobserved.pop(dep_id, None) is not None:
            log.deployment(dep_id, "the runtime can be seen again")
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
        """Files and processes of deployments that no row wants running
        (removed in tasks)."""
        lb = self.local()
        present = lb.present() - set(self.pending) - self.workers.keys()
        rows = self.db.existing(present) if present else {}
        rolling = self.trainer.rolling()
        for dep_id in sorted(present):
            row = rows.get(dep_id)
            if row is None or row["status"] in ("failed", "stopped") or (
                    row["backend"] or "local") != "local" or self.elsewhere(row):
                log.deployment(dep_id, "removing leftover files (%s)",
                               "no row" if row is None else "status %s" % row["status"]
                               if row["status"] in ("failed", "stopped") or not
                               self.elsewhere(row) else
                               "now looked after by spooler '%s'" % row["claimed_by"])
                keep_log = row is not None and row["status"] == "failed"
                self.workers.submit(dep_id, "cleanup",
                                    lambda dep_id=dep_id, keep_log=keep_log:
                                    lb.remove(dep_id, keep_log=keep_log))
            elif row["status"] == "deployed" and dep_id not in rolling:
                # A redeploy interrupted by a spooler restart leaves the
                # directory of the version the row does not name.
                version = row["model_version"]
                if [k for k in lb.keys(dep_id) if k != lb.key(dep_id, version)]:
                    self.workers.submit(dep_id, "prune",
                                        lambda dep_id=dep_id, version=version:
                                        lb.prune(dep_id, version),
                                        lambda task, version=version: self._pruned(task, version))
        keep = set(self.pending) | {r["deployment_id"] for r in active_rows
                                    if r["desired"] == "running"}
        if not self.workers.busy(STRAYS):
            # Deployments with a task under way are left alone: a runtime
            # being started has not recorded itself yet.
            self.workers.submit(STRAYS, "strays", lambda: lb.strays(keep, self.workers.busy))
        self.sweep_remote(keep)

    def sweep_remote(self, keep):
        """The same for the remote backends (kubernetes, mlsysops): records
        of deployments no row wants are removed with everything they run,
        and every REMOTE_SWEEP_EVERY seconds the cluster is searched for
        objects of this instance that belong to no wanted deployment - of
        any spooler: the cluster is shared by all spoolers of the
        database."""
        now = time.monotonic()
        remotes = backends.remote(self.cfg)
        if remotes and any(now >= self.next_sweep.get(be.name, 0) for be in remotes):
            keep = set(keep) | self.db.wanted()
        for be in remotes:
            held = be.present()
            self.sweeping = {(n, d) for n, d in self.sweeping if n != be.name or d in held}
            present = held - set(self.pending) - self.workers.keys()
            rows = self.db.existing(present) if present else {}
            for dep_id in sorted(present):
                row = rows.get(dep_id)
                # (A row another spooler took over is left alone: the
                # objects are in the cluster, where the new owner acts on them.)
                if row is None or row["status"] in ("failed", "stopped") or \
                        (row["backend"] or "local") != be.name:
                    if (be.name, dep_id) not in self.sweeping:
                        self.sweeping.add((be.name, dep_id))
                        log.deployment(dep_id, "removing what %s still holds (%s)", be.name,
                                       "no row" if row is None else "status %s" % row["status"])
                    self.workers.submit(dep_id, "cleanup", lambda be=be, dep_id=dep_id:
                                        be.remove(dep_id, keep_log=True))
            key = STRAYS + "-" + be.name
            if now >= self.next_sweep.get(be.name, 0) and not self.workers.busy(key):
                self.next_sweep[be.name] = now + REMOTE_SWEEP_EVERY
                self.workers.submit(key, "strays", lambda be=be: be.strays(keep,
                                                                          self.workers.busy))

    @staticmethod
    def _pruned(task, version):
        for key in task.result or ():
            log.deployment(task.key, "removed the runtime directory %s (the deployment serves "
                           "model version %d)", key, version)


def stop_runtimes(cfg):
    """`mlc-spooler --stop-runtimes`: stop every runtime of this instance
    (for `mlc down`, after the spooler itself has stopped), keeping their
    files and not touching the database; the next spooler resumes them."""
    try:
        layout.Layout(cfg).ensure()
    except safefs.Unsafe as e:
        log.spooler(refusal(e))
        return 1
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
