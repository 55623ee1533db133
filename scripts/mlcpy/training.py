"""Retraining jobs: run a model's training code in the runtime sandbox and
store the model it writes as the model's next version.

A training is a 'waiting' row in `trainings` plus the bundle
spool/new/train-<id>.tar.gz (job.json, code.py, data.csv and optionally
requirements.txt) written by the C workers (app/route-training.c).  The spooler
claims the bundle (rename into spool/cur/) and runs the job in a thread of
its own (at most MLC_TRAIN_MAX_JOBS at once; further bundles wait in new/):

  1. unpack and verify the bundle into $MLC_VAR/run/training/<id>/inputs/
     (root only) and check requirements.txt against the installed
     distributions (nothing is installed: the sandbox has no network);
  2. status waiting -> running;
  3. run `python3 <job>/code.py <job>/data.csv` in the job directory
     $MLC_VAR/training/<id>/ inside the runtime sandbox (sandbox.py: the
     runtime user, no network, memory/CPU/task limits, read-only system,
     the job directory the only writable one: inside the sandbox it is
     <job>/work/, a tmpfs of MLC_TRAIN_DISK bytes the spooler mounts on the
     host, with the inputs bound read-only over empty files of the same
     names), with MLC_MODEL_ID, MLC_DATA
     and MLC_OUTPUT (<job>/model.pkl) in its environment, for at most
     MLC_TRAIN_TIMEOUT seconds, after which the sandbox's pid namespace is
     killed (the script is its pid 1: everything it started dies with it);
     stdout and stderr, merged, go to trainings.log (the last
     MLC_TRAIN_LOG_MAX bytes, also every few seconds while it runs);
  4. take MLC_OUTPUT, or else the one *.pkl or *.joblib file the script
     wrote (pickle.dump or joblib.dump, plain or compressed), copy it out of
     the sandbox user's reach and load it in a second sandboxed run to check
     that it is a model (a pickle is code: the spooler never loads one); the
     check sees a fresh job directory holding only a read-only link to it;
  5. store it through the API, POST MLC_API_URL/model/{id}/upload
     (file_kind=model), the code path of every upload; the version it
     answers becomes trainings.produced_version, status completed;
  6. with "redeploy": true, move every serving deployment of the model that
     belongs to the owner who started the training (every one, when an
     admin did) onto the new version (redeploy.py, driven by the spooler's
     main loop).
The job directory is removed when the script has ended; the bundle leaves
spool/cur/ once the outcome (and the redeploy) is recorded.

Crash safety.  A spooler killed at any point leaves the bundle in cur/; the
next one kills what is left of the job's sandbox and runs the job again
from scratch, at most MAX_ATTEMPTS runs in all (then it fails: "interrupted
by a spooler restart; start it again").  Re-running is chosen because it is
cheap to get right: nothing of a killed run is reused except a model it had
already stored (state.json "uploaded"), so that no version is stored twice;
and should the spooler die between the upload and noting it there, or the
API's answer be lost, the upload sent again carries the same
Idempotency-Key (training-<id>) and is answered with the version stored the
first time.
A SIGTERM to the spooler (mlc down) stops running jobs the same way without
counting a run.  A completed training whose redeploy was interrupted
redeploys again; deployments already on the version are skipped.
"""

import hashlib
import http.client
import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
import traceback

import pymysql

from . import (bundle, db, log, procs, redeploy, requirements, safefs, sandbox, testhooks,
               training_kube, uploadclient)
from .outcome import Failure, Interrupted  # noqa: F401 (callers name them training.Failure)

MAX_ATTEMPTS = 3          # runs of one training across spooler restarts
PROGRESS_EVERY = 3.0      # s between updates of trainings.log while running
CHECK_TIMEOUT_MIN = 30    # s at least for loading the model in the check
UPLOAD_RETRY_FOR = 60     # s to keep retrying while the API does not answer
UPLOAD_TOKEN_LIFE = 900   # s the upload's token lives if it is not revoked
OUTPUT_NAME = "model.pkl"
OUTPUT_SUFFIXES = (".pkl", ".joblib")  # the model file, when not at MLC_OUTPUT
CHECK_MARK = "mlc-check: "
OUTPUT_PREFIX = bundle.OUTPUT_PREFIX

# Run by the sandboxed python3 -I: load the model the training wrote as the
# runtime does (joblib.load: a pickle or any file joblib.dump writes; see
# runtime.load_model_file) and say on its last line whether it is a model.
# Never run by the spooler.
CHECK_CODE = r"""
import pickle, sys
def say(verdict, text):
    print("mlc-check: %s %s" % (verdict, " ".join(str(text).split())), flush=True)
try:
    try:
        import joblib
    except ImportError:
        with open(sys.argv[1], "rb") as f:
            model = pickle.load(f)
    else:
        model = joblib.load(sys.argv[1])
except MemoryError:
    say("load-failed", "MemoryError: out of memory while unpickling")
    sys.exit(3)
except BaseException as e:
    say("load-failed", "%s: %s" % (type(e).__name__, e))
    sys.exit(3)
if not callable(getattr(model, "predict", None)):
    say("no-predict", type(model).__name__)
    sys.exit(3)
say("ok", type(model).__name__)
"""


def _event(training_id, message, *args):
    log.event("training %s" % training_id, message, *args)


def bundle_name(training_id):
    return "train-%s.tar.gz" % training_id


class Paths:
    """Where one training's files live."""

    def __init__(self, cfg, training_id):
        self.job = os.path.join(cfg.training, training_id)        # the sandbox's work dir
        self.work = os.path.join(self.job, "work")                # its writable part (tmpfs)
        self.private = os.path.join(cfg.run_dir, "training", training_id)  # root only
        self.inputs = os.path.join(self.private, "inputs")        # the unpacked bundle
        self.result = os.path.join(self.private, "model")         # the checked model
        self.model = os.path.join(self.result, "model.pkl")
        self.state = os.path.join(self.private, "state.json")
        self.code = os.path.join(self.job, "code.py")
        self.data = os.path.join(self.job, "data.csv")
        self.output = os.path.join(self.job, OUTPUT_NAME)         # as the sandbox sees it
        self.written = os.path.join(self.work, OUTPUT_NAME)       # the same, on the host

    def mine(self, args):
        """args (a command line) is this training's sandbox: the script
        (`python3 <job>/code.py <job>/data.csv`, or a stage before it) or
        the model check (`... <job>/model.pkl`)."""
        return (args[-2:] == [self.code, self.data]) or args[-1] in (self.model, self.output)


def _write_json(path, obj):
    tmp = "%s.%d.tmp" % (path, threading.get_ident())
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError):
        return {}


def _rmtree(cfg, path):
    """Remove path below MLC_VAR, never following a symbolic link (the
    script wrote what it liked in its job directory), after detaching the
    job directory's tmpfs."""
    sandbox.unmount_under(path)
    safefs.rmtree(path, cfg.var, ignore_errors=True)


def _unlink(cfg, path):
    """Remove a claimed bundle from spool/cur/."""
    safefs.unlink(path, cfg.var)


def idempotency_key(training_id):
    """The Idempotency-Key of a training's model upload: one per training,
    so that every retry of it stores at most one version."""
    return "training-%s" % training_id


def script_failure(rc, line):
    """The failure reason of a training script that ended with status rc
    (a shell-style 128+N for a signal), `line` the last it wrote to stderr."""
    if rc > 128 and rc - 128 < signal.NSIG:
        try:
            name = signal.Signals(rc - 128).name
        except ValueError:
            name = "signal %d" % (rc - 128)
        what = "was killed by %s" % name
    else:
        what = "exited with status %d" % rc
    return "the training script %s%s" % (what, ": " + line if line else " without writing to stderr")


class Output:
    """A training's merged stdout+stderr, bounded to its last `limit` bytes,
    plus the tail of stderr alone (for the failure reason)."""

    def __init__(self, limit):
        self.limit = max(1024, limit)
        self.buf = bytearray()
        self.err = bytearray()
        self.lock = threading.Lock()
        self.changed = False

    def add(self, data, from_stderr=False):
        with self.lock:
            self.buf += data
            if len(self.buf) > 2 * self.limit:
                del self.buf[:-self.limit]
            if from_stderr:
                self.err += data
                if len(self.err) > 16384:
                    del self.err[:-8192]
            self.changed = True

    def note(self, text):
        """A line of the spooler's own in the log."""
        self.add(("mlc-spooler: %s\n" % " ".join(str(text).split())).encode())

    def text(self):
        with self.lock:
            cut = len(self.buf) > self.limit
            data = bytes(self.buf[-self.limit:])
            self.changed = False
        # Start at a line when the limit cut one (and maybe a character).
        if cut and b"\n" in data[:4096]:
            data = data[data.index(b"\n") + 1:]
        return data.decode("utf-8", "replace")

    def last_line(self, stderr_only=True):
        with self.lock:
            data = bytes(self.err if stderr_only else self.buf[-8192:])
        lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
        return lines[-1][:1000] if lines else ""


# ---- one training ---------------------------------------------------------------


class Job(threading.Thread):
    """One training, run in a thread of the spooler (it waits for the
    script, the check and the upload; its database writes go through a
    connection of its own).  When it ends, `redeploy` holds (modelid,
    version) if the main loop has a redeploy to do."""

    def __init__(self, trainer, training_id, bundle_path):
        super().__init__(name="training-%s" % training_id, daemon=True)
        self.trainer, self.cfg = trainer, trainer.cfg
        self.id, self.bundle = training_id, bundle_path
        self.paths = Paths(self.cfg, training_id)
        self.db = db.Trainings(self.cfg)
        self.out = Output(trainer.log_max)
        self.stop = trainer.stop_event
        self.state = {}
        self.counted = False
        self.ran = False
        self.redeploy = None

    def say(self, message, *args):
        _event(self.id, message, *args)

    # ---- the thread ----

    def run(self):
        try:
            try:
                self.execute()
            except (Failure, sandbox.SandboxError) as e:
                self.fail(str(e))
        except Interrupted:
            if self.counted:
                self.state["attempts"] = max(0, self.state.get("attempts", 1) - 1)
                self._save_state()
            self.say("stopped with the spooler; it runs again from the start when a spooler "
                     "starts")
        except safefs.Unsafe as e:
            # Nothing is recorded: the bundle stays in spool/cur/ and the job
            # runs again once the state directory is fit for use.
            if self.counted:
                self.state["attempts"] = max(0, self.state.get("attempts", 1) - 1)
                self._save_state()
            self.say("stopped: %s; it runs again once that is fixed", e)
        except Exception as e:
            self.say("internal error: %s: %s | %s", type(e).__name__, e,
                     " / ".join(traceback.format_exc().strip().splitlines()[-6:]))
            try:
                self.fail("internal error in mlc-spooler while running the training (%s: %s); "
                          "see the spooler log" % (type(e).__name__, e))
            except Exception as e2:  # the next spooler retries from the bundle
                self.say("cannot record the failure: %s", e2)
        finally:
            self.db.close()

    def _db(self, fn, *args):
        """A database call, retried while the database is away (the job
        must record its outcome); Interrupted if the spooler stops meanwhile."""
        reported = False
        while True:
            try:
                return fn(*args)
            except pymysql.Error as e:
                self.db.close()
                if not reported:
                    self.say("database unavailable (%s); retrying", e)
                    reported = True
                if self.stop.wait(2.0):
                    raise Interrupted() from None

    def _save_state(self):
        try:
            os.makedirs(self.paths.private, mode=0o700, exist_ok=True)
            _write_json(self.paths.state, self.state)
        except OSError as e:
            self.say("cannot write %s: %s", self.paths.state, e)

    def _drop_bundle(self):
        _unlink(self.cfg, self.bundle)

    def cleanup(self, keep_result=False):
        """Remove the job directory and (unless a redeploy still needs the
        model) the private one; drop the bundle when nothing is left to do."""
        _rmtree(self.cfg, self.paths.job)
        if not keep_result:
            _rmtree(self.cfg, self.paths.private)
            self._drop_bundle()

    def fail(self, reason):
        self.trainer.kill_leftovers(self.paths, self.state)
        # Before the outcome shows: 'failed' means nothing is left.
        _rmtree(self.cfg, self.paths.job)
        if self.ran:
            self.out.note("failed: %s" % reason)
        if self._db(self.db.failed, self.id, reason, self.out.text() if self.ran else None):
            self.say("failed: %s", reason)
        else:
            self.say("not marked failed (it is no longer waiting or running): %s", reason)
        self.cleanup()

    # ---- the steps ----

    def execute(self):
        row = self._db(self.db.get, self.id)
        if row is None:
            self.say("no trainings row (removed from the database); bundle discarded")
            self.trainer.kill_leftovers(self.paths, {})
            self.cleanup()
            return
        if row["status"] in ("completed", "failed"):
            if (row["status"] == "completed" and row["redeploy"] and row["produced_version"]
                    and os.path.isfile(self.paths.model)):
                self.say("redeploying model version %d (the redeploy was interrupted)",
                         row["produced_version"])
                self.redeploy = (row["modelid"], row["produced_version"], row["redeploy_owner"])
                self.cleanup(keep_result=True)
                return
            self.say("already %s; bundle discarded", row["status"])
            self.cleanup()
            return
        self.state = _read_json(self.paths.state)
        self.trainer.kill_leftovers(self.paths, self.state)
        if not self.state.get("uploaded"):
            # Killed after the upload landed but before noting it in state.json.
            stored = self._db(self.db.stored_version, row["modelid"], idempotency_key(self.id))
            if stored:
                self.state["uploaded"] = stored
        if self.state.get("uploaded"):
            # Killed after storing the model but before recording it.
            self.ran = True
            self.out.note("the model was stored as version %d before a spooler restart"
                          % self.state["uploaded"])
            self.finish(row, self.state["uploaded"])
            return
        attempts = int(self.state.get("attempts", 0))
        if attempts >= MAX_ATTEMPTS:
            raise Failure("interrupted by a spooler restart %d times; start it again" % attempts)
        _rmtree(self.cfg, self.paths.job)
        _rmtree(self.cfg, self.paths.private)
        self.state = {"attempts": attempts + 1}
        self._save_state()
        self.counted = True
        job = self.unpack(row)
        missing, warnings = requirements.check_job(job, self.paths.inputs, "trainings")
        if missing:
            raise Failure("; ".join(missing))
        if not self._db(self.db.running, self.id):
            self.say("no longer waiting (removed or finished meanwhile); bundle discarded")
            self.cleanup()
            return
        self.ran = True
        self.say("running (attempt %d of at most %d%s)", attempts + 1, MAX_ATTEMPTS,
                 bundle.request_note(job))
        if attempts:
            self.out.note("run %d of at most %d: the previous run was interrupted by a spooler "
                          "restart" % (attempts + 1, MAX_ATTEMPTS))
        for w in warnings:
            self.out.note("warning: %s" % w)
        if self.trainer.remote:
            # A Kubernetes Job runs the script; its pod sends the model
            # back through the API (training_kube.py).
            model = training_kube.run(self, row)
        else:
            self.train(row)
            model = self.take_model()
        _rmtree(self.cfg, self.paths.job)
        kind = self.check_model(model)
        self.out.note("the script wrote a %s model (%d bytes); storing it through the API"
                      % (kind, os.path.getsize(model)))
        version = self.store(row["modelid"], model)
        # Test builds: the spooler dies between the upload's 201 and
        # noting it in state.json (t/0950-faults.t).
        testhooks.kill_here(self.cfg.var, "kill-after-upload", lambda m: self.say("%s", m))
        self.state["uploaded"] = version
        self._save_state()
        self.finish(row, version)

    def unpack(self, row):
        os.makedirs(self.paths.private, mode=0o700, exist_ok=True)
        try:
            job = bundle.unpack(self.bundle, self.paths.inputs, "train", self.id,
                                self.trainer.max_bundle, top=self.cfg.var,
                                owners=self.trainer.spooler.bundle_owners)
        except bundle.BundleError as e:
            raise Failure(str(e)) from None
        if job.get("modelid") != row["modelid"]:
            raise Failure("bundle rejected: job.json modelid %r is not the training's model %r"
                          % (job.get("modelid"), row["modelid"]))
        return job

    def prepare_job_dir(self):
        """The sandbox's job directory: the inputs (root-owned, 0644, bound
        read-only into the sandbox) and work/, a tmpfs of MLC_TRAIN_DISK
        bytes for what the script writes (mode 1771, group of the runtime
        user), which the sandbox sees as the job directory itself.  Returns
        the read-only binds."""
        _, gid = self.trainer.ids()
        os.makedirs(self.cfg.training, mode=0o755, exist_ok=True)
        os.mkdir(self.paths.job, 0o755)
        os.mkdir(self.paths.work, 0o700)
        try:
            sandbox.mount_tmpfs(self.paths.work, self.trainer.disk, 0, gid)
        except OSError as e:
            raise Failure("cannot mount the training's file space (a tmpfs of MLC_TRAIN_DISK "
                          "bytes on %s): %s; the spooler must run as root"
                          % (self.paths.work, e.strerror)) from None
        binds = []
        for name in ("code.py", "data.csv", "requirements.txt"):
            src = os.path.join(self.paths.inputs, name)
            if not os.path.exists(src):
                continue
            dst = os.path.join(self.paths.job, name)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
            os.chmod(dst, 0o644)
            # An empty root-owned file in the tmpfs to bind it over.
            os.close(os.open(os.path.join(self.paths.work, name),
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
            binds.append((dst, dst))
        return binds

    def disk_full(self):
        """The reason when the script filled its file space, else None."""
        if sandbox.disk_full(self.paths.work):
            return ("disk quota exceeded: the training's files reached MLC_TRAIN_DISK (%s)"
                    % sandbox.size_text(self.trainer.disk))
        return None

    def train(self, row):
        """Run the script; returns when it exited 0, else raises Failure."""
        binds = self.prepare_job_dir()
        env = sandbox.environment(self.paths.job, {
            "MLC_MODEL_ID": row["modelid"], "MLC_TRAINING_ID": self.id,
            "MLC_DATA": self.paths.data, "MLC_OUTPUT": self.paths.output})
        timeout = self.trainer.timeout
        rc, timed_out = self.sandboxed("train", [sandbox.PYTHON, self.paths.code, self.paths.data],
                                       self.paths.job, env, timeout, self.out, progress=True,
                                       write_from=self.paths.work, ro_binds=binds)
        if timed_out:
            raise Failure("training exceeded MLC_TRAIN_TIMEOUT (%g s)" % timeout)
        if rc == 0:
            return
        full = self.disk_full()
        if full:
            raise Failure(full)
        raise Failure(script_failure(rc, self.out.last_line()))

    def sandboxed(self, phase, program, work_dir, env, timeout, out, progress=False,
                  write_from=None, ro_binds=()):
        """Run program in the training's sandbox (sandbox.run) with work_dir
        as its directory (read-only, or write_from there read-write), its
        output into `out`; the whole sandbox is killed after `timeout`
        seconds, when the kernel killed one of its processes for memory, or
        when the spooler stops (Interrupted).  Returns (exit status, timed
        out); raises Failure when it ran out of memory."""
        t = self.trainer
        uid, gid = t.ids()
        t.check_sandbox(work_dir)
        notes = {
            "timeout": ("training exceeded MLC_TRAIN_TIMEOUT (%g s); its sandbox was killed"
                        % timeout if phase == "train" else
                        "the model check exceeded %g s; its sandbox was killed" % timeout),
            "oom": "%s; its sandbox was killed" % t.cgroups.out_of_memory(),
            "oom-late": t.cgroups.out_of_memory(),
            "stop": "interrupted: the spooler is stopping; the training runs again from the "
                    "start when a spooler starts",
        }

        def started(pid, start):
            self.state.update(pid=pid, start=start, boot=procs.boot_id(), phase=phase)
            self._save_state()

        try:
            ran = sandbox.run(self.cfg, t.cgroups, self.id, work_dir, uid, gid, program, env,
                              timeout, out.add, self.stop, hostname="mlc-training",
                              write_from=write_from, ro_binds=ro_binds, on_started=started,
                              on_event=lambda kind: out.note(notes[kind]),
                              progress=(PROGRESS_EVERY, self.push_progress) if progress else None,
                              after_exit=lambda: t.kill_leftovers(self.paths, {}))
        except OSError as e:
            raise Failure("cannot set up the training sandbox: %s" % e) from None
        except subprocess.SubprocessError as e:
            raise Failure("cannot start the training sandbox: %s" % e) from None
        finally:
            for k in ("pid", "start", "boot", "phase"):
                self.state.pop(k, None)
            self._save_state()
        if ran.stopped:
            if progress:
                self.push_progress()
            raise Interrupted()
        if ran.oom and not ran.timed_out:
            raise Failure("%s ran %s" % (
                "the training script" if phase == "train" else
                "loading the model the training script wrote", t.cgroups.out_of_memory()))
        return ran.rc, ran.timed_out

    def push_progress(self):
        if not self.out.changed:
            return
        try:
            self.db.progress(self.id, self.out.text())
        except pymysql.Error as e:  # progress is best effort; the outcome is retried
            self.db.close()
            self.say("cannot update the log (%s)", e)

    def take_model(self, src=None, uid=None):
        """Find the model the script wrote and copy it where the sandbox user
        cannot change it; returns the copy's path.  (A remote training's
        model: src, a file owned by uid.)"""
        job = self.paths.work
        if src is None:
            src, uid = self.paths.written, self.trainer.ids()[0]
        if not os.path.lexists(src):
            try:
                pkls = sorted(n for n in os.listdir(job) if n.endswith(OUTPUT_SUFFIXES))
            except OSError:
                pkls = []
            if len(pkls) != 1 and self.disk_full():
                raise Failure(self.disk_full())
            if len(pkls) != 1:
                raise Failure("the training script wrote no model (expected $MLC_OUTPUT)%s" % (
                    "; it wrote several model files (%s): write the model to $MLC_OUTPUT"
                    % ", ".join(pkls[:5]) if pkls else ""))
            src = os.path.join(job, pkls[0])
        name = "$MLC_OUTPUT" if src == self.paths.written else os.path.basename(src)
        try:
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise Failure("the model the training script wrote (%s) cannot be read: %s%s" % (
                name, e.strerror, "; write the file itself, not a symbolic link"
                if os.path.islink(src) else "")) from None
        limit = self.trainer.max_upload
        os.makedirs(self.paths.result, mode=0o755, exist_ok=True)
        os.chmod(self.paths.result, 0o755)
        tmp = self.paths.model + ".part"
        digest = hashlib.sha256()
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or (uid is not None and st.st_uid != uid):
                raise Failure("the model the training script wrote (%s) is not a regular file "
                              "of the training" % name)
            if st.st_size > limit:
                raise Failure("the model the training script wrote is %d bytes, over the upload "
                              "limit of %d bytes (MLC_MAX_UPLOAD)" % (st.st_size, limit))
            with open(tmp, "wb") as dst:
                copied = 0
                while True:
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        break
                    copied += len(chunk)
                    if copied > limit:
                        raise Failure("the model the training script wrote is over the upload "
                                      "limit of %d bytes (MLC_MAX_UPLOAD)" % limit)
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
        finally:
            os.close(fd)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.paths.model)
        self.state["sha256"] = digest.hexdigest()
        return self.paths.model

    def check_model(self, model):
        """Load the model in the sandbox; returns its type name, or raises
        Failure saying why it is not a model."""
        out = Output(65536)
        timeout = max(CHECK_TIMEOUT_MIN, self.trainer.start_timeout)
        # The sandbox user cannot reach the private copy: a fresh, root-owned
        # job directory holds a link to it (or a copy), read-only there.
        _rmtree(self.cfg, self.paths.job)
        os.makedirs(self.cfg.training, mode=0o755, exist_ok=True)
        os.mkdir(self.paths.job, 0o755)
        try:
            os.link(model, self.paths.output)
        except OSError:
            shutil.copyfile(model, self.paths.output)
            os.chmod(self.paths.output, 0o644)
        try:
            rc, timed_out = self.sandboxed("check", [sandbox.PYTHON, "-I", "-c", CHECK_CODE,
                                                     self.paths.output],
                                           self.paths.job, sandbox.environment(self.paths.job),
                                           timeout, out)
        finally:
            _rmtree(self.cfg, self.paths.job)
        if timed_out:
            raise Failure("the model the training script wrote did not load within %g s" % timeout)
        verdicts = [ln for ln in out.text().splitlines() if ln.startswith(CHECK_MARK)]
        verdict = verdicts[-1][len(CHECK_MARK):] if verdicts else ""
        what, _, text = verdict.partition(" ")
        if rc == 0 and what == "ok":
            return text
        if what == "no-predict":
            raise Failure("the training script wrote a %s, which is not a model: it has no "
                          "predict() method" % text)
        if what == "load-failed":
            raise Failure("the model the training script wrote cannot be loaded: %s" % text)
        line = out.last_line(stderr_only=False)
        raise Failure("the model the training script wrote cannot be loaded: the check ended "
                      "with status %d%s" % (rc, ": " + line if line else ""))

    def store(self, modelid, model):
        """Upload the model through the API; returns the version it got.
        With MLC_AUTH on, the upload carries a token made for it alone (see
        upload_token) and revoked when the upload is over."""
        token_id, token = self.upload_token(modelid) if self.cfg.auth_on() else (None, None)
        try:
            return self._store(modelid, model, token)
        finally:
            if token_id is not None:
                try:
                    self._db(self.db.revoke_token, token_id)
                except Interrupted:
                    pass  # it expires by itself within UPLOAD_TOKEN_LIFE

    def upload_token(self, modelid):
        """(id, token): a write token of the least privilege that can store
        the model - UPLOAD_TOKEN_LIFE seconds long, for the model's owner
        (only the owner may upload to a model) - made through the database
        procedure as every token is."""
        # A model deleted meanwhile has no owner: a token of no one's lets
        # the API say so (404) as it would to anyone.
        owner = self._db(self.db.model_owner, modelid) or "mlc-spooler"
        return self._db(self.db.issue_token, owner, "write", UPLOAD_TOKEN_LIFE,
                        "training %s: upload of model %s" % (self.id, modelid))

    def _store(self, modelid, model, token):
        url = self.cfg.api_url()
        give_up = time.monotonic() + UPLOAD_RETRY_FOR
        while True:
            if self.stop.is_set():
                raise Interrupted()
            try:
                status, body = uploadclient.upload(url, modelid, model,
                                                   key=idempotency_key(self.id), token=token)
            except (OSError, http.client.HTTPException) as e:
                if time.monotonic() > give_up:
                    raise Failure("cannot store the trained model: the API at %s does not answer "
                                  "(%s); check MLC_API_URL" % (url, e)) from None
                self.say("the API at %s does not answer (%s); retrying", url, e)
                if self.stop.wait(3.0):
                    raise Interrupted() from None
                continue
            if status == 201 and isinstance(body, dict) and isinstance(body.get("version"), int):
                self.say("model stored as version %d (sha256 %s)", body["version"],
                         body.get("sha256"))
                return body["version"]
            if status in (502, 503, 504) and time.monotonic() < give_up:
                self.say("the API answered %d (%s); retrying", status, uploadclient.detail(body))
                if self.stop.wait(3.0):
                    raise Interrupted() from None
                continue
            raise Failure("the API refused the trained model (HTTP %d): %s"
                          % (status, uploadclient.detail(body)))

    def finish(self, row, version):
        self.out.note("completed: the model is stored as version %d" % version)
        if self._db(self.db.completed, self.id, version, self.out.text()):
            self.say("completed: model version %d", version)
        else:
            self.say("stored model version %d, but the training is no longer running; not "
                     "marked completed", version)
            self.cleanup()
            return
        if row["redeploy"]:
            self.redeploy = (row["modelid"], version, row["redeploy_owner"])
            self.cleanup(keep_result=True)
        else:
            self.cleanup()


# ---- the spooler's side ----------------------------------------------------------


class Trainer:
    """Training jobs of one spooler: claims, threads, redeploys, and the
    reconcile checks for trainings that lost their bundle."""

    def __init__(self, spooler):
        self.spooler = spooler
        cfg = self.cfg = spooler.cfg
        self.timeout = cfg.number("MLC_TRAIN_TIMEOUT")
        self.log_max = cfg.number("MLC_TRAIN_LOG_MAX", int)
        self.max_jobs = max(1, cfg.number("MLC_TRAIN_MAX_JOBS", int))
        self.max_bundle = cfg.number("MLC_BUNDLE_MAX_SIZE", int)
        self.max_upload = cfg.number("MLC_MAX_UPLOAD", int)
        self.memory = cfg.number("MLC_RUNTIME_MEMORY", int)
        self.start_timeout = cfg.number("MLC_RUNTIME_START_TIMEOUT")
        self.disk = cfg.number("MLC_TRAIN_DISK", int)
        # Groups of their own (another name than the deployments' groups),
        # one per training, with the runtimes' memory, CPU and task limits.
        self.cgroups = sandbox.Cgroups(cfg.number("MLC_RUNTIME_CPU"),
                                       cfg.number("MLC_RUNTIME_PIDS", int), self.memory,
                                       cfg.var + "#training", "mlc-train-")
        self.user = cfg.get("MLC_RUNTIME_USER")
        # MLC_TRAIN_BACKEND=kubernetes: the scripts run as Kubernetes Jobs.
        self.remote = cfg.get("MLC_TRAIN_BACKEND") == "kubernetes"
        self._ids = None
        self._lock = threading.Lock()
        self.jobs = {}
        self.rolls = {}
        self.stop_event = threading.Event()
        self.db = db.Trainings(cfg)
        self.noted = set()

    def ids(self):
        with self._lock:
            if self._ids is None:
                self._ids = sandbox.runtime_user(self.user)
            return self._ids

    def check_sandbox(self, work_dir):
        """Refuse early, with the fix in the message, what would make the
        sandbox fail obscurely."""
        for tool, package in ((sandbox.BWRAP, "bubblewrap"), (sandbox.SETPRIV, "util-linux")):
            if not os.access(tool, os.X_OK):
                raise Failure("%s is missing; install the Debian package %s" % (tool, package))
        uid, gid = self.ids()
        try:
            sandbox.check_reachable(os.path.join(work_dir, "x"), uid, gid)
        except sandbox.SandboxError as e:
            raise Failure(str(e)) from None

    def prepare(self):
        os.makedirs(self.cfg.training, mode=0o755, exist_ok=True)
        os.makedirs(os.path.join(self.cfg.run_dir, "training"), mode=0o700, exist_ok=True)

    # ---- state ----

    def busy(self):
        return bool(self.jobs or self.rolls)

    def handles(self, training_id):
        return training_id in self.jobs or training_id in self.rolls

    def has_room(self):
        return len(self.jobs) < self.max_jobs

    def rolling(self):
        """Deployments a redeploy is moving right now (the reconciler leaves
        their extra runtime directory alone)."""
        out = set()
        for roll in self.rolls.values():
            out |= roll.deployments()
        return out

    # ---- claiming and starting ----

    def may_claim(self, name, training_id, path):
        """Whether to claim the bundle spool/new/<name> now: there is room
        and its trainings row is there to record the outcome in."""
        if self.handles(training_id) or not self.has_room():
            return False
        row = self.db.get(training_id)
        if row is None:
            try:
                age = time.time() - os.lstat(path).st_mtime
            except OSError:
                return False
            if age > bundle.LOST_BUNDLE_AFTER:
                self.spooler._reject(name, "new", "no trainings row for it")
            elif name not in self.noted:
                self.noted.add(name)
                _event(training_id, "no trainings row for %s (yet); it stays in spool/new/"
                       % name)
            return False
        if row["status"] in ("completed", "failed"):
            _event(training_id, "already %s; bundle discarded", row["status"])
            try:
                os.unlink(path)  # a name in spool/new/; unlink never follows it
            except FileNotFoundError:
                pass
            return False
        return True

    def start(self, path, training_id):
        if self.handles(training_id) or not self.has_room():
            return
        job = Job(self, training_id, path)
        self.jobs[training_id] = job
        job.start()

    def fail_now(self, training_id, reason, path):
        """Fail a training from the main loop (a bundle that tripped a bug)."""
        if self.db.failed(training_id, reason):
            _event(training_id, "failed: %s", reason)
        paths = Paths(self.cfg, training_id)
        self.kill_leftovers(paths, _read_json(paths.state))
        _rmtree(self.cfg, paths.job)
        _rmtree(self.cfg, paths.private)
        if path:
            _unlink(self.cfg, path)

    # ---- every tick ----

    def tick(self):
        for tid, job in list(self.jobs.items()):
            if job.is_alive():
                continue
            del self.jobs[tid]
            if job.redeploy and not self.stop_event.is_set():
                self.rolls[tid] = redeploy.Roll(
                    self, tid, *job.redeploy, bundle_path=job.bundle, paths=job.paths,
                    sha256=_read_json(job.paths.state).get("sha256"))
        for tid, roll in list(self.rolls.items()):
            roll.step()
            if roll.done:
                del self.rolls[tid]

    # ---- reconcile ----

    def _bundle_where(self, training_id):
        """Where the training's bundle is: spool/new/, spool/cur/.  One
        still in spool/tmp/ does not count: the API publishes it right
        after the row's COMMIT, so one left there belongs to a worker that
        died in between (the temp cleaner removes it), and counting it kept
        the row waiting, and the model from being trained, for
        MLC_TMP_MAX_AGE instead of LOST_BUNDLE_AFTER."""
        name = bundle_name(training_id)
        return [d for d in ("new", "cur")
                if os.path.lexists(os.path.join(self.spooler.spool[d], name))]

    def reconcile(self):
        """Trainings that can no longer end by themselves fail with a
        reason; files of trainings that are over are removed."""
        for row in self.db.in_states(("waiting", "running")):
            tid = row["training_id"]
            if self.handles(tid):
                continue
            where = self._bundle_where(tid)
            if row["status"] == "waiting" and not where:
                if row["idle_s"] > bundle.LOST_BUNDLE_AFTER:
                    self.fail_now(tid, "the training bundle never reached the spool (the API may "
                                  "have stopped while writing it); start it again", None)
            elif row["status"] == "running" and not where:
                self.fail_now(tid, "interrupted, and its job bundle is gone from the spool; "
                              "start it again", None)
        self.remove_leftovers()

    def remove_leftovers(self):
        cur = self.spooler.spool["cur"]
        for base in (self.cfg.training, os.path.join(self.cfg.run_dir, "training")):
            try:
                names = os.listdir(base)
            except FileNotFoundError:
                continue
            for name in names:
                if self.handles(name) or os.path.lexists(os.path.join(cur, bundle_name(name))):
                    continue
                paths = Paths(self.cfg, name)
                self.kill_leftovers(paths, _read_json(paths.state))
                _event(name, "removing leftover files %s", os.path.join(base, name))
                _rmtree(self.cfg, os.path.join(base, name))

    def kill_leftovers(self, paths, state):
        """Kill what is left of a training's sandboxes: the recorded pid 1
        (one kill ends its whole pid namespace) and any process running its
        script or its model check."""
        targets = []
        pid, start = state.get("pid"), state.get("start")
        if pid and state.get("boot") == procs.boot_id() and procs.alive(pid, start):
            targets.append((pid, start))
        for pid, args in sandbox.processes():
            if paths.mine(args) and all(pid != p for p, _ in targets):
                targets.append((pid, procs.starttime(pid)))
        for pid, start in targets:
            if start is not None:
                procs.terminate(pid, start, grace=0)
        return len(targets)

    # ---- stopping ----

    def shutdown(self, wait=20.0):
        """The spooler stops: running trainings are killed and run again
        from the start by the next spooler; redeploys are cut short."""
        self.stop_event.set()
        deadline = time.monotonic() + wait
        for job in list(self.jobs.values()):
            job.join(max(0.1, deadline - time.monotonic()))
        for roll in list(self.rolls.values()):
            try:
                roll.abort()
            except Exception as e:
                _event(roll.id, "cannot cut the redeploy short: %s", e)
        self.db.close()


def kill_all(cfg):
    """Kill every training sandbox of this instance (for --stop-runtimes,
    when a spooler died without stopping its trainings); returns the
    training ids."""
    roots = (cfg.training.rstrip("/") + "/", os.path.join(cfg.run_dir, "training") + "/")
    killed = set()
    for pid, args in sandbox.processes():
        hits = [a[len(r):].split("/", 1)[0] for a in args[-2:] for r in roots if a.startswith(r)]
        if hits:
            start = procs.starttime(pid)
            if start is not None:
                procs.terminate(pid, start, grace=0)
            killed.add(hits[0])
    return sorted(killed)
