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

# The method follows the model's settings from the next run on; the
# features are the deployment's, frozen when it was created (predict's).
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
t.is_([summary.get("bmi", {}).get("type"), summary.get("bmi", {}).get("note")], ["cont", None],
      "the features are those the deployment froze (bmi \"cont\"), as predict reads its rows, "
      "not the PATCHed featurelist")
t.is_(summary.get("age", {}).get("note"), None, "a feature typed cont has no note")
t.is_status(t.delete("/deployment/" + dep), 200, "stop the deployment")

# One count of inference rows, the database's (operations.input_rows): the
# API's 409 and the run mlc-drift fails give the same number for the data
# a client may record (POST /deployment/add/operation stores any JSON).
import json  # noqa: E402
import uuid  # noqa: E402
hostile = t.add_model(t.minimal_model(featurelist=mm.featurelist(["a", "b"]),
                                      drift_detection=[{"is_true": 0, "method": 0}]),
                      "register a second model, features a and b")
hid = hostile["modelid"]
mm.upload(hid, "data", "train.csv", mm.csv_bytes(np.arange(40.0).reshape(20, 2), [0] * 20, ["a", "b"]))


def record(*datas):
    for d in datas:
        t.db_rows("INSERT INTO operations (ownerid, deployment_id, modelid, data, timestamp) "
                  "VALUES ('o', 'd-hostile', %s, %s, UTC_TIMESTAMP(6))", hid, d)


record('"junk"', "42", "null", "{}", "[]", "not json", '"not json either"',
       json.dumps("[[1, 2], [3, 4]]"),    # a batch in a JSON string: 2 rows
       "[[1, 2], [3, 4], [5, 6]]",        # a batch: 3
       '{"a": 1, "b": 2}', "[1, 2]")      # a row object, a row: 1 each
t.is_([r["input_rows"] for r in t.db_rows(
    "SELECT input_rows FROM operations WHERE modelid = %s ORDER BY operationid", hid)],
      [0, 0, 0, 0, 0, 0, 0, 2, 3, 1, 1],
      "operations.input_rows: junk, a number, null, empty, not JSON 0; a batch its rows; "
      "a JSON string holding a batch its rows; a row or an object 1")
r = t.post("/model/%s/drift/run" % hid)
t.is_error(r, 409, "7 recorded rows: the API refuses a drift run")
t.like((t.body_of(r) or {}).get("detail", ""), r"has 7 recorded inference rows; drift detection needs at least 10",
       "... and counts 7")
queued = str(uuid.uuid4())
t.db_rows("INSERT INTO drift_runs (run_id, modelid, status, requested_by, created_at) "
          "VALUES (%s, %s, 'waiting', 'schedule', UTC_TIMESTAMP(6))", queued, hid)
st = wait_run(queued)
t.is_([(st or {}).get("status"), (st or {}).get("reason")],
      ["failed", "needs at least 10 inference rows, has 7"],
      "a run queued anyway fails in mlc-drift with the same count")
record(json.dumps("[[5, 6], [7, 8], [9, 10]]"))
r = t.post("/model/%s/drift/run" % hid)
t.is_status(r, 202, "3 rows more (a batch in a JSON string): the API queues the run")
t.is_((t.body_of(r) or {}).get("inference_rows"), 10, "... counting 10 rows")
st = wait_run((t.body_of(r) or {}).get("run_id", ""))
t.is_((st or {}).get("status"), "completed", "... and mlc-drift carries it out", st)
got = {m["feature"]: m["n_infer"] for m in t.body_of(t.get("/model/%s/drift" % hid)) or []}
t.is_(got, {"a": 10, "b": 10}, "every one of the 10 rows gave its values")
t.done()
