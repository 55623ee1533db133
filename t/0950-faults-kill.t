#!/usr/bin/python3
# Processes killed with SIGKILL at the worst moments, and what must hold
# afterwards (t/lib/mlcfaults.py): every committed row has its file, no job
# is lost or run twice, and the service recovers without a restart.
#
# - an mlc-api worker killed mid-upload (a large upload sent slowly; the
#   worker is the one holding the upload's temporary file open);
# - a worker killed between the COMMIT of a deployment's or a training's
#   row and the publishing of its job bundle (test build hook
#   kill-before-publish, see mlc_test_hook in app/config.h);
# - mlc-spooler killed between the 201 of a trained model's upload and
#   noting it in its state file (hook kill-after-upload,
#   scripts/mlcpy/testhooks.py): restarted, it completes the training
#   once, with one new model version.
import os
import pickle
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

# Exclusive: it kills workers and the spooler of the shared instance.
t.need_instance("MLC_DB_SOCKET", "MLC_VAR", "MLC_ROOT", exclusive=True)
import mlcfaults as f  # noqa: E402
import mlcmodels as mm  # noqa: E402

var, root = os.environ["MLC_VAR"], os.environ["MLC_ROOT"]
store = f.store_dir()
spool = f.spool_dir()
hooks = os.environ.get("MLC_TEST_HOOKS") == "1"

TRAIN_CODE = b'''
import os, pickle, sys
import pandas as pd
from sklearn.linear_model import Ridge
df = pd.read_csv(sys.argv[1])
reg = Ridge(alpha=0.3).fit(df.drop(columns=["target"]).values, df["target"].values)
with open(os.environ["MLC_OUTPUT"], "wb") as f:
    pickle.dump(reg, f)
'''


def arm(name, content):
    path = os.path.join(var, "test-" + name)
    with open(path, "w") as fh:
        fh.write(content)
    t.defer(lambda: os.path.exists(path) and os.unlink(path))
    return path


def versions(mid, kind="model"):
    return [r["version"] for r in t.db_rows("SELECT version FROM artifacts WHERE modelid = %s "
                                            "AND filekind = %s ORDER BY version", mid, kind)]


def recovered(label, master, nworkers):
    """The mlc-api master is the same process and has its workers again."""
    t.is_(f.pidfile("mlc-api"), master, "%s: the mlc-api master is the same process" % label)
    got = f.wait_until(lambda: len(f.api_workers(master)) >= nworkers, 10)
    t.ok(got, "%s: the master has %d workers again" % (label, nworkers), f.api_workers(master))


def temp_cleaned(label, path):
    """A leftover of a dead request is removed by the spooler's cleaner
    once old (backdated here instead of waiting MLC_TMP_MAX_AGE)."""
    if not os.path.exists(path):
        t.ok(True, "%s: the leftover temporary file is gone" % label)
        return
    past = time.time() - 7200
    os.utime(path, (past, past))
    t.ok(f.wait_until(lambda: not os.path.exists(path), 15),
         "%s: the leftover temporary file is removed by mlc-spooler's cleaner" % label, path)


def wait_training(tid, want=("completed", "failed"), seconds=90):
    def done():
        r = t.get("/mltraining/status/" + tid)
        return r.json() if r.status_code == 200 and r.json()["status"] in want else None
    return f.wait_until(done, seconds, 0.2) or t.body_of(t.get("/mltraining/status/" + tid))


master = f.pidfile("mlc-api")
nworkers = len(f.api_workers(master))
t.ok(master and nworkers >= 1, "mlc-api runs with %d workers" % nworkers)
f.check("before the faults")

# ---- a worker killed mid-upload ------------------------------------------------------------

mid = t.add_model(t.minimal_model(), "a model to upload to")["modelid"]
before = set(os.listdir(os.path.join(store, ".tmp"))) if os.path.isdir(os.path.join(store, ".tmp")) else set()
up = f.SlowUpload(mid, 16 << 20)
up.send(256 << 10)
held = f.wait_until(lambda: {p: pids for p, pids in f.open_files(os.path.join(store, ".tmp") + "/").items()
                             if os.path.basename(p) not in before}, 10)
worker = tmp_path = None
if held:
    (tmp_path, holders), = held.items()
    worker = holders[0]
# Of any master of the instance: nginx may send it to the second host's
# on the Galera topology.
t.ok(worker in t.api_workers(),
     "the upload's temporary file under artifacts/.tmp is held open by an mlc-api worker", held)
if worker:
    up.send(1 << 20)
    os.kill(worker, signal.SIGKILL)
    f.wait_until(lambda: not f.alive(worker), 5)
status, body = up.finish()
t.ok(status is None or status >= 500,
     "the client of the killed upload gets no success (a 5xx or a broken connection)", status, body)
t.is_(versions(mid, "code"), [], "no artifacts row for the killed upload")
t.ok(worker and os.path.exists(tmp_path), "its temporary file is left (no process to remove it)")
mdir = os.path.join(store, mid)
t.ok(not os.path.isdir(mdir) or not any(files for _, _, files in os.walk(mdir)),
     "nothing of it is in the model's directory of the store")
recovered("after the kill mid-upload", master, nworkers)
r = mm.upload(mid, "code", "train.py", b"print('again')\n")
t.is_(r.get("version"), 1, "the same upload sent again is stored as version 1")
if worker:
    temp_cleaned("after the kill mid-upload", tmp_path)
f.check("after the kill mid-upload")

# ---- a worker killed between COMMIT and publishing the bundle ------------------------------

if not hooks:
    t.skip("kills between COMMIT and publish", "MLC_TEST_HOOKS is not 1 (not run by mlc test)")
    t.done()

reg, X, y, names = mm.diabetes_ridge()
model = mm.register(reg, X, y, names)
dep = t.uniq("dep-kill")
t.defer(lambda: t.http("DELETE", "/deployment/" + dep, timeout=30))
hook = arm("kill-before-publish", "deploy-%s.tar.gz" % dep)
r = mm.deploy(model["modelid"], dep)
if os.path.exists(hook):
    os.unlink(hook)
    t.skip("kills between COMMIT and publish", "mlc-api is not the test build (MLC_TEST_HOOKS)")
    t.done()
t.is_error(r, 503, "POST /deployment/add whose worker dies before publishing")
rows = t.db_rows("SELECT status FROM deployments WHERE deployment_id = %s", dep)
t.is_(rows, [{"status": "waiting"}], "the row committed before the kill is there, waiting")
tmp_bundles = [os.path.join(spool, "tmp", n) for n in os.listdir(os.path.join(spool, "tmp"))
               if n.startswith("deploy-%s.tar.gz." % dep)]
t.is_(len(tmp_bundles), 1, "its bundle is in spool/tmp, never published", os.listdir(os.path.join(spool, "tmp")))
t.ok(any(dep in p for p in f.job_problems()),
     "the invariant checker sees the waiting row without its bundle", f.job_problems())
recovered("after the kill before publishing", master, nworkers)
# The spooler fails a waiting row whose bundle never came after 60 s;
# backdated here instead of waiting.
with t.db().cursor() as cur:
    cur.execute("UPDATE deployments SET updated_at = updated_at - INTERVAL 5 MINUTE "
                "WHERE deployment_id = %s", (dep,))
st = mm.wait_status(dep, ("failed",), 30) or {}
t.is_(st.get("status"), "failed", "mlc-spooler fails the deployment whose bundle never came")
t.like(st.get("reason") or "", r"never reached the spool.*deploy again", "... saying to deploy again")
for p in tmp_bundles:
    temp_cleaned("after the kill before publishing", p)
f.check("after the kill before publishing a deployment")
d = t.delete("/deployment/" + dep)
t.ok(d.status_code in (200, 202), "the failed deployment is deleted", t.describe(d))
t.ok(f.wait_until(lambda: (t.body_of(t.get("/deployment/get/status/" + dep)) or {}).get("status") == "stopped", 30),
     "... and ends stopped")
r = mm.deploy(model["modelid"], dep)
t.is_status(r, 201, "the same deployment id is deployed again")
st = mm.wait_status(dep, seconds=120) or {}
t.is_(st.get("status"), "deployed", "... and runs", st.get("reason"))
p = t.post("/deployment/%s/predict" % dep, json={"data": X[0].tolist(), "explain": False})
t.is_status(p, 200, "... and predicts")

# The same for a training: its row is waiting, its bundle never published.
tm = mm.register(reg, X, y, names)
mm.upload(tm["modelid"], "code", "code.py", TRAIN_CODE)
arm("kill-before-publish", "train-")
r = t.post("/mltraining/add", json={"modelid": tm["modelid"]})
t.is_error(r, 503, "POST /mltraining/add whose worker dies before publishing")
rows = t.db_rows("SELECT training_id, status FROM trainings WHERE modelid = %s", tm["modelid"])
t.is_([x["status"] for x in rows], ["waiting"], "the training row committed before the kill is waiting")
tid = rows[0]["training_id"] if rows else "none"
with t.db().cursor() as cur:
    cur.execute("UPDATE trainings SET updated_at = updated_at - INTERVAL 5 MINUTE "
                "WHERE training_id = %s", (tid,))
st = wait_training(tid, ("failed",), 30) or {}
t.is_(st.get("status"), "failed", "mlc-spooler fails the training whose bundle never came")
t.like(st.get("reason") or "", r"never reached the spool.*start it again", "... saying to start it again")
for n in os.listdir(os.path.join(spool, "tmp")):
    if n.startswith("train-%s.tar.gz." % tid):
        temp_cleaned("after the kill before publishing a training", os.path.join(spool, "tmp", n))
recovered("after the kill before publishing a training", master, nworkers)
f.check("after the kill before publishing a training")

# ---- mlc-spooler killed between the upload's 201 and its state file ------------------------

spooler = f.pidfile("mlc-spooler")
hook = arm("kill-after-upload", "1")
r = t.post("/mltraining/add", json={"modelid": tm["modelid"]})
t.is_status(r, 201, "a training of the same model starts")
tid = (t.body_of(r) or {}).get("training_id") or "none"
gone = f.wait_until(lambda: not f.alive(spooler), 120, 0.2)
t.ok(gone and not os.path.exists(hook), "mlc-spooler kills itself right after the trained model's upload",
     "alive" if not gone else "", "hook still armed" if os.path.exists(hook) else "")
t.is_(versions(tm["modelid"]), [1, 2], "the trained model is stored as version 2")
t.is_(t.db_rows("SELECT idempotency_key FROM artifacts WHERE modelid = %s AND filekind = 'model' "
                "AND version = 2", tm["modelid"]), [{"idempotency_key": "training-%s" % tid}],
      "... under the training's Idempotency-Key")
t.is_((t.body_of(t.get("/mltraining/status/" + tid)) or {}).get("status"), "running",
      "with the spooler dead the training row still says running")
f.check("with mlc-spooler killed after the upload")
up = subprocess.run([os.path.join(root, "scripts", "mlc"), "up"], capture_output=True, text=True,
                    timeout=180)
t.is_(up.returncode, 0, "mlc up starts mlc-spooler again", up.stderr)
st = wait_training(tid, seconds=90) or {}
t.is_((st.get("status"), st.get("produced_version")), ("completed", 2),
      "the restarted spooler completes the training with version 2", st.get("reason"))
t.is_(versions(tm["modelid"]), [1, 2], "exactly one new model version: nothing stored twice")
log = (t.body_of(t.get("/mltraining/%s/log" % tid)) or {}).get("log") or ""
t.like(log, r"stored as version 2 before a spooler restart",
       "the training was not run again: its log says the model was stored before the restart")
t.is_(t.db_rows("SELECT COUNT(*) AS n FROM trainings WHERE modelid = %s AND status = 'completed'",
                tm["modelid"]), [{"n": 1}], "one completed training")
recovered("at the end", master, nworkers)
f.check("at the end")
t.done()
