#!/usr/bin/python3
# A training with "redeploy": true moves the model's serving deployment
# onto the new version while it is being called: no predict fails during
# the switch, the old runtime goes away afterwards, and the deployment then
# behaves like any other (answers with the retrained model, restarts after
# a crash in its new directory, stops on DELETE).
import io
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR")
import mlcmodels as mm

import pandas as pd  # noqa: E402
import requests  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402

var = os.environ["MLC_VAR"]

TRAIN_CODE = b'''
import os, pickle, sys
import pandas as pd
from sklearn.linear_model import Ridge

df = pd.read_csv(os.environ["MLC_DATA"])
print("retraining on", len(df), "rows", flush=True)
reg = Ridge(alpha=0.05).fit(df.drop(columns=["target"]).values, df["target"].values)
with open(os.environ["MLC_OUTPUT"], "wb") as f:
    pickle.dump(reg, f)
'''


wait_for = t.wait_for


def status(dep):
    r = t.get("/deployment/get/status/" + dep)
    return r.json() if r.status_code == 200 else {}


def first(pred):
    """The prediction for the one row sent (the API answers a list)."""
    return pred[0] if isinstance(pred, list) and len(pred) == 1 else pred


def runtime_pid(dep):
    rows = t.db_rows("SELECT runtime_pid FROM deployments WHERE deployment_id = %s", dep)
    return rows[0]["runtime_pid"] if rows else None


reg, X, y, names = mm.diabetes_ridge()
frame = pd.read_csv(io.BytesIO(mm.csv_bytes(X, y, names)))
retrained = Ridge(alpha=0.05).fit(frame.drop(columns=["target"]).values, frame["target"].values)
row = X[7].tolist()
old_answer, new_answer = float(reg.predict([row])[0]), float(retrained.predict([row])[0])
t.ok(abs(old_answer - new_answer) > 1e-3, "the retrained model answers differently from the first",
     old_answer, new_answer)

model = mm.register(reg, X, y, names)
mm.upload(model["modelid"], "code", "code.py", TRAIN_CODE)
dep = t.uniq("dep-roll")
t.is_status(mm.deploy(model["modelid"], dep), 201, "the model is deployed")
st = mm.wait_status(dep)
t.is_((st or {}).get("status"), "deployed", "the deployment serves version 1")
old_pid, old_endpoint = runtime_pid(dep), (st or {}).get("endpoint")

# Continuous predicts through the API for the whole redeploy.
calls = []
stop = threading.Event()


def load():
    s = requests.Session()
    while not stop.is_set():
        t0 = time.time()
        try:
            r = s.post(t.BASE_URL + "/deployment/%s/predict" % dep, json={"data": row}, timeout=30)
            pred = first(r.json().get("prediction")) if r.status_code == 200 else r.text[:300]
            calls.append((t0, r.status_code, pred))
        except (requests.RequestException, ValueError) as e:
            calls.append((t0, None, str(e)))
        time.sleep(0.01)


worker = threading.Thread(target=load, daemon=True)
worker.start()
time.sleep(1.0)
r = t.post("/mltraining/add", json={"modelid": model["modelid"], "redeploy": True})
t.is_status(r, 201, "POST /mltraining/add with redeploy true answers 201")
body = t.body_of(r) or {}
t.is_(body.get("redeploy"), True, "the training records redeploy true")
tid = body.get("training_id", "?")
st = wait_for(lambda: (t.body_of(t.get("/mltraining/status/" + tid)) or {}).get("status")
              in ("completed", "failed") and t.body_of(t.get("/mltraining/status/" + tid)), 90, 0.2)
t.is_((st or {}).get("status"), "completed", "the training completes", st)
t.is_((st or {}).get("produced_version"), 2, "it produced version 2")
moved = wait_for(lambda: status(dep).get("model_version") == 2, 60)
t.ok(moved, "the deployment's model_version becomes 2", status(dep))
gone = wait_for(lambda: not mm.pid_alive(old_pid), 30)
time.sleep(1.0)
stop.set()
worker.join(30)

bad = [c for c in calls if c[1] != 200]
t.ok(len(calls) > 50, "the load ran through the redeploy (%d predicts)" % len(calls))
t.is_(len(bad), 0, "no predict failed during the redeploy", bad[:5])
answers = [c[2] for c in calls if c[1] == 200]
t.ok(answers and abs(answers[0] - old_answer) < 1e-9, "predicts before the switch answer with version 1",
     answers[:1], old_answer)
t.ok(answers and abs(answers[-1] - new_answer) < 1e-9, "predicts after the switch answer with the "
     "retrained model", answers[-1:], new_answer)
flips = sum(1 for a, b in zip(answers, answers[1:]) if abs(a - b) > 1e-9)
t.is_(flips, 1, "the answers switch from the old to the new model once, never back")
t.ok(gone, "the old runtime process is gone", old_pid)
st = status(dep)
new_pid = runtime_pid(dep)
t.ok(st.get("status") == "deployed" and st.get("endpoint") not in (None, old_endpoint)
     and new_pid != old_pid and mm.pid_alive(new_pid),
     "the deployment is deployed on a new runtime at a new endpoint", st, new_pid)
t.ok(not os.path.exists(old_endpoint[5:]) and not os.path.exists(os.path.dirname(old_endpoint[5:])),
     "the old runtime's socket and directory are removed")
r = t.post("/deployment/%s/predict" % dep, json={"data": X[:4].tolist()})
pred = (t.body_of(r) or {}).get("prediction") or []
t.ok(len(pred) == 4 and max(abs(a - b) for a, b in zip(pred, retrained.predict(X[:4]))) < 1e-9,
     "a batch predict matches the retrained model in-process", t.describe(r))
log = (t.body_of(t.get("/mltraining/%s/log" % tid)) or {}).get("log") or ""
t.like(log, r"redeploy: deployment %s: version 1 -> 2" % dep, "the training's log records the redeploy")

# The rolled deployment is supervised like any other.
os.kill(new_pid, signal.SIGKILL)
back = wait_for(lambda: runtime_pid(dep) not in (None, new_pid) and mm.pid_alive(runtime_pid(dep))
                and status(dep).get("endpoint") == st.get("endpoint"), 30)
t.ok(back, "a crashed runtime of the new version is restarted in its directory", status(dep))
r = t.post("/deployment/%s/predict" % dep, json={"data": row})
t.ok(r.status_code == 200 and abs(first((t.body_of(r) or {}).get("prediction")) - new_answer) < 1e-9,
     "after the restart it still serves the retrained model", t.describe(r))
last_pid = runtime_pid(dep)
t.is_status(t.delete("/deployment/" + dep), 200, "DELETE stops the redeployed deployment")
t.ok(not mm.pid_alive(last_pid), "its runtime is gone")
left = [n for n in os.listdir(os.path.join(var, "deployments")) if n.split("@")[0] == dep]
t.is_(left, [], "no directory of the deployment is left")
t.done()
