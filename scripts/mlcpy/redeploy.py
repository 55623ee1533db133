"""The redeploy of a completed training ("redeploy": true): every serving
deployment of the model that belongs to the owner who started the training
(every one, when an admin did, or with auth off) moves onto the model
version the training stored, without a gap in service.

For each deployment (RollItem): stage a directory for the new version
(<id>@<version>, see backend_local.py) with the trained model, the
training's data and requirements (or the deployment's own) and a job.json
that keeps the deployment's own "featurelist" and "features" (the gateway
keeps checking rows against the features the deployment was created with:
deployments.features), start a runtime there, wait until it answers
/health, switch the row to it in one UPDATE, let the old runtime finish
what it serves for ROLL_GRACE seconds, then stop it and remove its
directory.  A deployment that changed meanwhile (stopped, removed, already
on a newer version) stays where it is, and says so in the training's log.

Driven by the spooler's main loop (Trainer.tick in training.py, which
shares the deployments and runtimes with the reconciler); the blocking
steps run as tasks of the spooler's Workers.  A spooler that stops cuts a
redeploy short: an unswitched new runtime goes (the next spooler redeploys
again), a switched one keeps serving.
"""

import hashlib
import json
import os
import shutil
import time

from . import backends
from . import bundle, log, safefs, sandbox

ROLL_GRACE = 2.0          # s the old runtime keeps serving after the switch


def _event(training_id, message, *args):
    log.event("training %s" % training_id, message, *args)


def _remove(cfg, path):
    """Remove a directory of the spooler's below MLC_VAR (never following a
    symbolic link)."""
    safefs.rmtree(path, cfg.var, ignore_errors=True)


def staged_job(old, train, dep_id, modelid, version, training_id):
    """job.json of a deployment's directory for the trained version, less
    its "files": the current directory's job.json `old` with the new
    version, and the training bundle's `train` modelkind.  The
    deployment's "featurelist" and "features" stay: they are what it was
    created with, which the gateway keeps checking rows against."""
    job = dict(old)
    job.update(type="deploy", deployment_id=dep_id, modelid=modelid, model_version=version,
               redeployed_by_training=training_id)
    if train.get("modelkind"):
        job["modelkind"] = train["modelkind"]
    job.pop("files", None)
    return job


class RollItem:
    """One deployment moving onto the new version: start a runtime for it in
    a new directory, wait until it answers /health, switch the row to it in
    one UPDATE, let the old runtime finish what it serves for ROLL_GRACE
    seconds, then stop it and remove its directory.  Starting, polling and
    stopping runtimes run as tasks of the spooler's Workers (one step of a
    deployment at a time), so that the loop never waits on them."""

    def __init__(self, roll, row):
        self.roll, self.row = roll, row
        self.dep = row["deployment_id"]
        self.state = "new"
        self.be = self.launch = self.key = self.old_key = self.ready = None
        self.until = 0.0
        self.waiting = False

    @property
    def done(self):
        return self.state in ("done", "failed")

    def _task(self, what, fn, then):
        """Run fn as the deployment's task, then(task) on the loop's thread;
        False when another step of the deployment is under way."""
        workers = self.roll.trainer.spooler.workers
        if workers.busy(self.dep):
            return False

        def done(task):
            self.waiting = False
            then(task)
        self.waiting = True
        workers.submit(self.dep, what, fn, done)
        return True

    def note(self, text, failure=False):
        self.roll.notes.append("deployment %s: %s" % (self.dep, text))
        if failure:
            self.roll.failures.append("deployment %s %s" % (self.dep, text))
        log.deployment(self.dep, "redeploy: %s", text)

    def give_up(self, why):
        key, launch, be = self.key, self.launch, self.be
        if key and be is not None:
            def clean():
                if launch is not None:
                    be.cancel(launch)
                be.remove_key(key)
            if not self._task("cleanup", clean, lambda task: None):
                clean()
        self.note("stays on version %d: %s" % (self.row["model_version"], why), failure=True)
        self.state = "failed"

    def begin(self):
        sp, roll = self.roll.trainer.spooler, self.roll
        try:
            self.be = sp.backend_for(self.row)
        except backends.Unavailable as e:
            self.give_up(str(e))
            return
        if not hasattr(self.be, "install_generation"):
            self.give_up("backend '%s' cannot switch runtimes" % self.be.name)
            return
        staging = os.path.join(sp.cfg.deployments, ".%s@%d.partial" % (self.dep, roll.version))

        def start():
            key = None
            try:
                _remove(sp.cfg, staging)
                os.mkdir(staging, 0o755)
                self.stage(staging)
                key = self.be.install_generation(self.dep, roll.version, staging)
                return key, self.be.launch(self.dep, "redeploy", key=key), None
            except (sandbox.SandboxError, OSError, ValueError) as e:
                _remove(sp.cfg, staging)
                return key, None, e
        self._task("redeploy", start, self._begun)

    def _begun(self, task):
        if task.error is not None:
            self.give_up("internal error in mlc-spooler; see the spooler log")
            return
        self.key, self.launch, error = task.result
        if error is not None:
            self.give_up("cannot start a runtime for version %d: %s" % (self.roll.version, error))
            return
        log.deployment(self.dep, "redeploy: starting a runtime for model version %d (pid %s)",
                       self.roll.version, self.launch.pid)
        self.state = "starting"

    def stage(self, staging):
        """The new directory's files: the trained model, the training data,
        requirements, and job.json describing them."""
        roll, be = self.roll, self.be
        current = be.dir(be.key(self.dep, self.row["model_version"]))
        old = bundle.read_job(current)
        train = bundle.read_job(roll.paths.inputs)
        tfiles = train.get("files") if isinstance(train.get("files"), dict) else {}
        ofiles = old.get("files") if isinstance(old.get("files"), dict) else {}
        job = staged_job(old, train, self.dep, roll.modelid, roll.version, roll.id)
        files = {"model": {"name": "model.pkl", "sha256": roll.sha256,
                           "size": os.path.getsize(roll.paths.model), "version": roll.version}}
        shutil.copyfile(roll.paths.model, os.path.join(staging, "model.pkl"))
        for kind, name in (("data", "data.csv"), ("env", "requirements.txt")):
            src = os.path.join(roll.paths.inputs, name)
            if isinstance(tfiles.get(kind), dict) and os.path.isfile(src):
                files[kind] = tfiles[kind]
            elif isinstance(ofiles.get(kind), dict) and os.path.isfile(os.path.join(current, name)):
                src, files[kind] = os.path.join(current, name), ofiles[kind]
            else:
                continue
            shutil.copyfile(src, os.path.join(staging, name))
        job["files"] = files
        with open(os.path.join(staging, "job.json"), "w", encoding="utf-8") as f:
            json.dump(job, f, indent=1)

    def step(self):
        sp, version = self.roll.trainer.spooler, self.roll.version
        if self.waiting:
            return
        if self.state == "new":
            if not sp.busy(self.dep):
                self.begin()
            return
        if self.state == "starting":
            self._task("poll", lambda: self.be.poll(self.launch), self._polled)
            return
        if self.state == "ready":
            if sp.busy(self.dep):
                return  # the old runtime is being restarted; switch once that settled
            row = sp.db.get(self.dep)
            if (row is None or row["status"] != "deployed" or row["desired"] != "running"
                    or row["model_version"] >= version):
                self.give_up("it changed meanwhile (%s)" % (
                    "removed" if row is None else "status %s, desired %s, version %d" % (
                        row["status"], row["desired"], row["model_version"])))
                return
            self.old_key = self.be.key(self.dep, row["model_version"])
            if not sp.db.switch(self.dep, row["model_version"], version, self.ready.endpoint,
                                self.ready.pid):
                self.give_up("it changed meanwhile")
                return
            self.row = row
            log.deployment(self.dep, "now serves model version %d at %s (pid %s); the runtime "
                           "of version %d stops in %g s", version, self.ready.endpoint,
                           self.ready.pid, row["model_version"], ROLL_GRACE)
            self.until = time.monotonic() + ROLL_GRACE
            self.state = "grace"
        if self.state == "grace" and time.monotonic() >= self.until:
            self._task("retire", self._retire_old, self._retired)

    def _polled(self, task):
        result = task.result
        if task.error is not None:
            result = backends.Failed("internal error in mlc-spooler; see the spooler log", "")
        if result is None:
            return
        if isinstance(result, backends.Failed):
            self.launch = None
            self.give_up("its runtime for version %d did not start: %s"
                         % (self.roll.version, result.reason))
            return
        self.ready, self.state = result, "ready"

    def _retire_old(self):
        if self.old_key and self.old_key != self.key:
            self.be.remove_key(self.old_key)
            self.be.skip_log(self.key)

    def _retired(self, task):
        self.note("version %d -> %d (runtime pid %s)" % (
            self.row["model_version"], self.roll.version, self.ready.pid))
        self.state = "done"

    def retire(self):
        self._retire_old()
        self._retired(None)

    def abort(self):
        """The spooler stops: an unswitched new runtime goes (the next
        spooler redeploys again), a switched one keeps serving."""
        if self.state in ("starting", "ready"):
            self.be.cancel(self.launch)
            self.be.remove_key(self.key)
        elif self.state == "grace":
            self.retire()


class Roll:
    """The redeploy of a completed training ("redeploy": true): every
    deployment of the model that is deployed and should run, and belongs
    to the training's redeploy_owner (the owner who started it; every
    deployment when an admin did, or with auth off), moves onto the new
    version, one RollItem each, all at once.  Other owners' deployments of
    the model stay where they are.  Driven by the spooler's main loop (it shares the deployments and
    runtimes with the reconciler)."""

    def __init__(self, trainer, training_id, modelid, version, owner, bundle_path, paths,
                 sha256=None):
        """paths: the training's Paths (training.py): .model the checked
        model, .inputs the unpacked training bundle, .private what to
        remove when done; sha256: the model's, if known."""
        self.trainer, self.id = trainer, training_id
        self.modelid, self.version, self.bundle = modelid, version, bundle_path
        self.owner = owner
        self.paths = paths
        self.items = None
        self.notes, self.failures = [], []
        self.done = False
        self.sha256 = sha256

    def deployments(self):
        return {i.dep for i in (self.items or {}).values() if not i.done}

    def step(self):
        sp = self.trainer.spooler
        if self.items is None:
            self.sha256 = self.sha256 or self._hash()
            rows = sp.db.serving(self.modelid, self.version, self.owner)
            self.items = {r["deployment_id"]: RollItem(self, r) for r in rows}
            _event(self.id, "redeploy of model version %d: %s", self.version,
                   ", ".join(sorted(self.items)) or "no deployment serves an older version")
            if not rows:
                self.notes.append("no deployment serves an older version of the model; nothing to move")
        for item in self.items.values():
            if not item.done and sp.isolated(item.dep, item.step):
                item.give_up("internal error in mlc-spooler; see the spooler log")
        if all(i.done for i in self.items.values()):
            self.finish()

    def _hash(self):
        h = hashlib.sha256()
        with open(self.paths.model, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    def finish(self):
        text = "".join("mlc-spooler: redeploy: %s\n" % n for n in self.notes)
        reason = ("completed, but the redeploy left %s" % "; ".join(self.failures)
                  if self.failures else None)
        self.trainer.db.note(self.id, text, reason, self.trainer.log_max)
        _event(self.id, "redeploy done%s", ": " + reason if reason else "")
        _remove(self.trainer.cfg, self.paths.private)
        safefs.unlink(self.bundle, self.trainer.cfg.var)
        self.done = True

    def abort(self):
        for item in (self.items or {}).values():
            if not item.done:
                item.abort()
