"""Trainings as Kubernetes Jobs (MLC_TRAIN_BACKEND=kubernetes).

training.Job runs everything around the script as for a local training
(claiming, requirements, the trainings row, the model check in the local
sandbox, storing the model through POST /model/{id}/upload, redeploys);
only running the script moves into the cluster:

  1. the verified training bundle is packed into
     $MLC_VAR/bundles/train-<id>.tar.gz and a job credential made (its
     SHA-256 in trainings.job_token_sha256);
  2. a Secret, a NetworkPolicy and a Job (kubemanifest.training_objects)
     are created in the current context's namespace: the init container
     downloads the bundle (GET /mltraining/{id}/bundle), the container
     `train` runs scripts/mlc-kube-train, which runs code.py and sends the
     model it wrote to PUT /mltraining/{id}/model;
  3. the API puts that body into spool/new/model-<id>.pkl; once the Job
     has succeeded the spooler renames it into its private directory and
     goes on as with a local training's model;
  4. the container's log becomes the training's log; the Job, its pods,
     the Secret, the NetworkPolicy, the bundle and the credential are
     removed whatever the outcome (also when the spooler stops: the
     training then runs again from the start, as a local one does).
"""

import os
import time

from . import backends, bundle
from . import kubemanifest as km
from . import safefs
from .backend_kubernetes import KubeError, pod_problem
from .backend_remote import TRAIN_FILES, new_token, token_hash
from .outcome import Failure, Interrupted

POLL = 2.0           # s between looks at the Job
GONE_WAIT = 60.0     # s to wait for an earlier attempt's Job to be deleted


def _selector(s, name):
    return "%s=%s,%s=%s" % (km.L_INSTANCE, s.instance, km.L_TRAINING, name)


def output_path(cfg, training_id):
    return os.path.join(cfg.spool, "new", "%s%s.pkl" % (bundle.OUTPUT_PREFIX, training_id))


def discard_output(cfg, training_id):
    """Drop a model a pod sent for this training (spool/new/ is the
    service user's: the file is first renamed out of it)."""
    src = output_path(cfg, training_id)
    dst = os.path.join(cfg.spool, "rejected", os.path.basename(src))
    try:
        os.rename(src, dst)
    except FileNotFoundError:
        return
    safefs.unlink(dst, cfg.var)


def _delete_all(c, s, name):
    for kind, suffix in (("Job", ""), ("NetworkPolicy", ""), ("Secret", "-job")):
        c.delete(kind, name + suffix)
    for pod in c.list("Pod", _selector(s, name)):
        c.delete("Pod", pod["metadata"]["name"])


def _job_failure(j, pods):
    """Why a failed Job failed: the train container's last words, else the
    Job's condition."""
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or {}
            if term and term.get("exitCode"):
                lines = [ln.strip() for ln in str(term.get("message") or "").splitlines()
                         if ln.strip()]
                return "the training script exited with status %s%s" % (
                    term["exitCode"], ": " + lines[-1][-600:] if lines else "")
        for cs in (pod.get("status") or {}).get("initContainerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or {}
            if term and term.get("exitCode"):
                lines = [ln.strip() for ln in str(term.get("message") or "").splitlines()
                         if ln.strip()]
                return "its init container could not fetch the bundle (status %s)%s" % (
                    term["exitCode"], ": " + lines[-1][-600:] if lines else "")
    for cond in (j.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed":
            return "Kubernetes failed the Job: %s: %s" % (cond.get("reason"),
                                                         cond.get("message"))
    return "the Job failed"


def run(job, row):
    """Run the training's script as a Kubernetes Job; returns the path of
    the model it sent (copied where only the spooler can reach it).
    Raises outcome.Failure or outcome.Interrupted."""
    cfg, tid = job.cfg, job.id
    try:
        be = backends.get("kubernetes", cfg)
    except backends.Unavailable as e:
        raise Failure("MLC_TRAIN_BACKEND=kubernetes, but %s" % e) from None
    s = be.settings
    name = km.object_name(tid, "mlt")
    try:
        c = be.cluster(None)
    except KubeError as e:
        raise Failure(str(e)) from None
    discard_output(cfg, tid)
    try:
        # An earlier attempt's Job (a spooler restart): a Job's pod template
        # cannot be changed, so it goes before the new one is made.
        _delete_all(c, s, name)
        end = time.monotonic() + GONE_WAIT
        while c.get("Job", name) is not None:
            if time.monotonic() > end:
                raise Failure("an earlier run's Kubernetes Job %s is still being deleted" % name)
            if job.stop.wait(1.0):
                raise Interrupted()
        be.pack("train", tid, job.paths.inputs, TRAIN_FILES)
        token = new_token()
        be.tokens.training(tid, token_hash(token))
        for obj in km.training_objects(s, tid, row["modelid"], token):
            c.apply(obj)
        job.out.note("running as Kubernetes Job %s in namespace %s" % (name, c.namespace))
        deadline = time.monotonic() + job.trainer.timeout + be.start_timeout
        while True:
            if job.stop.wait(POLL):
                raise Interrupted()
            j = c.get("Job", name)
            if j is None:
                raise Failure("its Kubernetes Job %s disappeared" % name)
            pods = c.list("Pod", _selector(s, name))
            st = j.get("status") or {}
            if st.get("succeeded"):
                break
            if st.get("failed"):
                _take_log(job, c, pods)
                raise Failure(_job_failure(j, pods))
            problem = pod_problem(pods)
            if problem:
                raise Failure("the training Job cannot run: %s" % problem[1])
            if time.monotonic() > deadline:
                raise Failure("training exceeded MLC_TRAIN_TIMEOUT (%g s) in Kubernetes"
                              % job.trainer.timeout)
        _take_log(job, c, pods)
        src = output_path(cfg, tid)
        dst = os.path.join(job.paths.private, "sent.pkl")
        try:
            os.rename(src, dst)
        except FileNotFoundError:
            raise Failure("the training Job ended without sending a model "
                          "(PUT /mltraining/{id}/model); see the training's log") from None
        try:
            return job.take_model(src=dst, uid=None)
        finally:
            safefs.unlink(dst, cfg.var)
    except KubeError as e:
        raise Failure(str(e)) from None
    finally:
        try:
            _delete_all(c, s, name)
        except KubeError as e:
            job.say("cannot delete Kubernetes Job %s (the reconciler tries again): %s", name, e)
        safefs.unlink(be.bundle_path("train", tid), cfg.var)
        discard_output(cfg, tid)
        try:
            be.tokens.training(tid, None)
        except Exception as e:
            job.say("cannot clear the job credential: %s", e)


def _take_log(job, c, pods):
    """The train container's output into the training's log."""
    for pod in pods:
        try:
            data = c.logs(pod["metadata"]["name"], "train")
        except KubeError as e:
            job.out.note("cannot read the pod's log: %s" % e)
            continue
        if data:
            job.out.add(data)
