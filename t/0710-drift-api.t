#!/usr/bin/python3
# Drift detection end to end: inferences recorded by predict calls are
# compared with the uploaded training data when asked through the API, and
# the results are served per feature.
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR")
import mlcmodels as mm
import numpy as np


def wait_run(run_id, seconds=90):
    end = time.time() + seconds
    while time.time() < end:
        rows = t.db_rows("SELECT status, reason FROM drift_runs WHERE run_id = %s", run_id)
        if rows and rows[0]["status"] in ("completed", "failed"):
            return rows[0]
        time.sleep(0.2)
    return None


reg, X, y, names = mm.diabetes_ridge()
model = t.add_model(t.minimal_model(featurelist=mm.featurelist(names),
                                    drift_detection=[{"is_true": 1, "method": 2}]),
                    "register a model with drift detection on (method 2, KS)")
mid = model["modelid"]
t.is_error(t.post("/model/%s/drift/run" % mid), 409, "a drift run without training data")
import pickle
mm.upload(mid, "model", "model.pkl", pickle.dumps(reg, protocol=4))
mm.upload(mid, "data", "train.csv", mm.csv_bytes(X, y, names))
r = t.post("/model/%s/drift/run" % mid)
t.is_error(r, 409, "a drift run with fewer than 10 recorded inference rows")
t.like((t.body_of(r) or {}).get("detail", ""), r"at least 10", "the 409 says how many rows are needed")
t.is_error(t.post("/model/00000000-0000-4000-8000-000000000000/drift/run"), 404, "a drift run for an unknown model")

dep = mm.deploy(mid).json()["deployment_id"]
t.is_((mm.wait_status(dep) or {}).get("status"), "deployed", "the model is deployed")
rng = np.random.default_rng(7)
shifted = X[rng.choice(len(X), 200)].copy()
shifted[:, 2] += 3 * X[:, 2].std()          # bmi moves by three standard deviations
for i in range(0, 200, 20):                 # ten batches of 20 rows
    rr = t.post("/deployment/%s/predict" % dep, json={"data": shifted[i:i + 20].tolist()})
t.is_status(rr, 200, "200 inference rows are recorded through predict")
r = t.post("/model/%s/drift/run" % mid)
t.is_status(r, 202, "POST /model/{id}/drift/run answers 202")
run = (t.body_of(r) or {}).get("run_id")
t.like(run or "", t.UUID4_RE, "the answer carries the run's id")
st = wait_run(run)
t.is_((st or {}).get("status"), "completed", "the run completes", st)
res = t.body_of(t.get("/model/%s/drift" % mid, params={"limit": 1000})) or []
by = {m["feature"]: m for m in res}
t.is_(sorted(by), sorted(names), "there is one result per feature")
t.ok(by.get("bmi", {}).get("drift_detected") is True, "the shifted feature is flagged", by.get("bmi"))
t.is_(by.get("bmi", {}).get("method"), "ks", "the configured method (2) is the Kolmogorov-Smirnov test")
t.ok(by.get("bmi", {}).get("p_value", 1) < 0.05, "its p-value is below 0.05")
t.is_((by.get("bmi", {}).get("n_infer"), by.get("bmi", {}).get("n_train")), (200, len(X)),
      "it counts every row of every batch and the whole training set")
t.ok(all(m.get("window_start") and m.get("window_end") for m in res), "results record their window")
t.ok(all("note" in m and m["note"] is None for m in res), "results carry a note, null when there is nothing to say",
     [m.get("note", "absent") for m in res])
only = t.body_of(t.get("/model/%s/drift" % mid, params={"feature": "bmi"})) or []
t.is_([m["feature"] for m in only], ["bmi"], "?feature= filters the results")
summary = t.body_of(t.get("/model/%s/drift/summary" % mid)) or []
t.is_(sorted(m["feature"] for m in summary), sorted(names), "the summary has the latest result per feature")

# The method follows the model's settings from the next run on; a
# featurelist type other than cont/cat is decided from the training data.
fl = [dict(f, type="numeric") if f["feature_name"] == "bmi" else f for f in mm.featurelist(names)]
t.is_status(t.patch("/model/" + mid, json={"drift_detection": [{"is_true": "1", "method": False}],
                                           "featurelist": fl}), 200,
            "PATCH switches drift detection to method 0 (sent as false) and types bmi \"numeric\"")
for i in range(0, 40, 20):
    t.post("/deployment/%s/predict" % dep, json={"data": shifted[i:i + 20].tolist()})
r = t.post("/model/%s/drift/run" % mid)
st = wait_run((t.body_of(r) or {}).get("run_id", ""))
t.is_((st or {}).get("status"), "completed", "the second run completes")
summary = {m["feature"]: m for m in t.body_of(t.get("/model/%s/drift/summary" % mid)) or []}
t.is_(summary.get("bmi", {}).get("method"), "mean_shift", "the next run uses the new method (Welch's t-test)")
t.is_([summary.get("bmi", {}).get("type"), summary.get("bmi", {}).get("note")],
      ["cont", 'featurelist type "numeric" is neither "cont" nor "cat": taken as continuous, '
       "because the training data's column is numeric"],
      "bmi of type \"numeric\" is tested as continuous, and its note in the results says why")
t.is_(summary.get("age", {}).get("note"), None, "a feature typed cont has no note")
t.is_status(t.delete("/deployment/" + dep), 200, "stop the deployment")
t.done()
