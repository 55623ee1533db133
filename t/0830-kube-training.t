#!/usr/bin/python3
# Trainings as Kubernetes Jobs (MLC_TRAIN_BACKEND=kubernetes): the
# instance's spooler is restarted with that setting, and a fake Kubernetes
# API server (t/lib/fakekube.py) runs the Job's containers here.  The init
# container downloads the training bundle with the training's credential,
# mlc-kube-train runs code.py and sends the model back through
# PUT /mltraining/{id}/model, and the spooler stores it as the model's next
# version through the upload route.  A failing script fails the training
# with its last words; nothing is left in the cluster either way.
import hashlib
import os
import pickle
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

# Exclusive: it restarts the instance's spooler.
t.need_instance("MLC_DB_SOCKET", "MLC_VAR", "MLC_ROOT", "MLC_KUBECONFIG", exclusive=True)
try:
    import kubernetes  # noqa: F401
except ImportError:
    t.skip_all("needs the Debian package python3-kubernetes")
import fakekube  # noqa: E402
import mlcmodels as mm  # noqa: E402

ROOT, VAR = os.environ["MLC_ROOT"], os.environ["MLC_VAR"]
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from mlcpy import kubemanifest as km  # noqa: E402

mlc = os.path.join(ROOT, "scripts", "mlc")
pidfile = os.path.join(VAR, "run", "mlc-spooler.pid")

TRAIN_CODE = b'''
import os, pickle, sys
import pandas as pd
from sklearn.linear_model import Ridge

df = pd.read_csv(sys.argv[1])
X, y = df.drop(columns=["target"]), df["target"]
print("retraining Ridge(alpha=0.3) for model %s on %d rows" % (os.environ["MLC_MODEL_ID"], len(df)))
print("the job credential is %s" % ("hidden" if "MLC_JOB_TOKEN" not in os.environ else "visible"))
reg = Ridge(alpha=0.3).fit(X.values, y.values)
with open(os.environ["MLC_OUTPUT"], "wb") as f:
    pickle.dump(reg, f)
'''
FAIL_CODE = b'''
import sys
print("about to fail")
sys.stderr.write("ValueError: the data has no column 'target'\\n")
sys.exit(3)
'''


def restart_spooler(**env):
    pid = None
    try:
        pid = int(open(pidfile).read().strip())
    except (OSError, ValueError):
        pass
    if pid and mm.pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        end = time.time() + 30
        while mm.pid_alive(pid) and time.time() < end:
            time.sleep(0.05)
    return subprocess.run([mlc, "up"], capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, **env))


def wait_training(tid, seconds=120):
    end = time.time() + seconds
    last = None
    while time.time() < end:
        r = t.get("/mltraining/status/" + tid)
        if r.status_code == 200:
            last = r.json()
            if last["status"] in ("completed", "failed"):
                return last
        time.sleep(0.2)
    return last


def training_log(tid):
    return (t.body_of(t.get("/mltraining/%s/log" % tid)) or {}).get("log") or ""


fk = fakekube.FakeKube(root=ROOT, mode="exec")
t.defer(fk.close)
fk.kubeconfig(os.environ["MLC_KUBECONFIG"])
t.defer(restart_spooler)  # the instance's own spooler again, whatever happens
up = restart_spooler(MLC_TRAIN_BACKEND="kubernetes")
t.is_(up.returncode, 0, "the spooler restarts with MLC_TRAIN_BACKEND=kubernetes", up.stderr)

reg, X, y, names = mm.diabetes_ridge()
model = mm.register(reg, X, y, names)
mm.upload(model["modelid"], "code", "code.py", TRAIN_CODE)
r = t.post("/mltraining/add", json={"modelid": model["modelid"]})
t.is_status(r, 201, "POST /mltraining/add")
tid = (t.body_of(r) or {}).get("training_id")
st = wait_training(tid)
t.is_((st or {}).get("status"), "completed", "the training completes as a Kubernetes Job",
      st, training_log(tid)[-2000:])
t.is_((st or {}).get("produced_version"), 2, "its model is stored as version 2")
log = training_log(tid)
t.like(log, r"running as Kubernetes Job mlt-", "the log says where it ran")
t.like(log, r"retraining Ridge\(alpha=0\.3\) for model %s on 442 rows" % model["modelid"],
       "the log holds the script's output, read from the pod")
t.like(log, r"the job credential is hidden", "the script does not get the job credential")
files = t.body_of(t.get("/model/%s/files" % model["modelid"])) or []
v2 = [f for f in files if f.get("file_kind", f.get("filekind")) == "model" and f.get("version") == 2]
t.ok(v2, "the model's files list version 2 of the model", files)
dl = t.get("/model/%s/files/model" % model["modelid"])
retrained = pickle.loads(dl.content) if dl.status_code == 200 else None
t.ok(retrained is not None and abs(retrained.alpha - 0.3) < 1e-12,
     "the stored model is the one the script wrote (Ridge alpha 0.3)")
reqs = [(m, p) for c, m, p, q, b in fk.requests if m == "POST" and p.endswith("/jobs")]
t.is_(len(reqs), 1, "one Job was created")
job = [b for c, m, p, q, b in fk.requests if m == "POST" and p.endswith("/jobs")][0]
spec = job["spec"]
t.is_((spec["backoffLimit"], spec["template"]["spec"]["restartPolicy"]), (0, "Never"),
      "the Job does not retry: a failed run is the training's failure")
t.is_(spec["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"], True,
      "its container has the runtime's security context")
sel = "%s=%s" % (km.L_TRAINING, km.object_name(tid, "mlt"))
t.is_(fk.all_objects(sel), [], "nothing of the training is left in the cluster")
t.ok(not os.path.exists(os.path.join(VAR, "bundles", "train-%s.tar.gz" % tid)),
     "its bundle is removed")
row = t.db_rows("SELECT job_token_sha256 FROM trainings WHERE training_id = %s", tid)[0]
t.is_(row["job_token_sha256"], None, "its credential is cleared")
t.is_error(t.http("PUT", "/mltraining/%s/model" % tid, data=b"x",
                  headers={"X-MLC-Job-Token": "guess"}), 403,
           "PUT /mltraining/{id}/model without the training's credential")

# ---- a script that fails ----
model2 = mm.register(reg, X, y, names)
mm.upload(model2["modelid"], "code", "code.py", FAIL_CODE)
r = t.post("/mltraining/add", json={"modelid": model2["modelid"]})
tid2 = (t.body_of(r) or {}).get("training_id")
st = wait_training(tid2)
t.is_((st or {}).get("status"), "failed", "a failing script fails the training", st)
t.like((st or {}).get("reason") or "", r"the training script exited with status 3: ValueError: "
       r"the data has no column 'target'", "the reason is its exit status and last words")
t.like(training_log(tid2), r"about to fail", "its output is in the log")
t.is_(fk.all_objects("%s=%s" % (km.L_TRAINING, km.object_name(tid2, "mlt"))), [],
      "nothing of the failed training is left in the cluster")
t.done()
