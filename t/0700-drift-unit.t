#!/usr/bin/python3
# mlcpy.drift: the drift tests must hold their level on undrifted data and
# find real shifts (40 seeds each; the exact numbers against scipy on fixed
# samples are t/0013-unit-drift-stats.t's), and - against a database -
# carry out drift_runs (claim, window, fallback, failure reasons, one
# transaction of metrics), schedule due models, and stream 200,000
# operations in bounded memory.  Timings are printed, never asserted.
#
# The database checks use a private database created through root's
# socket login when that works, so that the instance's own spooler never
# sees these rows; otherwise the instance's database, with checks that hold
# whoever carries out the runs.
import collections
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t  # noqa: E402

t.need_instance("MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME")
try:
    import numpy as np
    import pandas as pd
    from scipy import stats
except ImportError as e:
    t.bail_out("needs the Debian packages python3-numpy, python3-scipy, python3-pandas (%s)" % e)

from mlcpy import config as mconfig, drift  # noqa: E402
from mlcdrift import ALPHA, close, one  # noqa: E402

T0 = time.monotonic()


# ---- level and power -----------------------------------------------------------
#
# 40 seeds, 500 training and 200 inference values from N(0, 1).  Each test
# is exact or conservative at 5%, so the number of false alarms is at most
# Binomial(40, 0.05): P(more than 6) = 0.0034, so "at most 6 of 40" fails a
# correct implementation very rarely, while a test that ignores its level
# (say 20%: expected 8) fails it.  The mean p-value of a valid test on
# continuous data is about 0.5 (uniform: sd of the mean of 40 is 0.046), and
# 0.3..0.7 catches a p-value that is stuck near 0 or 1.  Against a shift of
# half a standard deviation the power of each test here is above 0.99, so
# "at least 38 of 40" is safe and shows the test sees the shift.

SEEDS = range(40)
NAMES = {0: "mean-shift (Welch)", 1: "MMD", 2: "Kolmogorov-Smirnov"}

for method in (0, 1, 2):
    t_start = time.monotonic()
    false_alarms = found = spread = 0
    pvals = []
    for seed in SEEDS:
        rng = np.random.default_rng(1000 + seed)
        train = rng.normal(0, 1, 500)
        null = one(train, rng.normal(0, 1, 200), method, seed)
        pvals.append(null["p_value"])
        false_alarms += null["drift_detected"]
        found += one(train, rng.normal(0.5, 1, 200), method, seed)["drift_detected"]
        if method != 0:
            spread += one(train, rng.normal(0, 2, 200), method, seed)["drift_detected"]
    t.ok(false_alarms <= 6, "%s: undrifted data raises at most 6 false alarms in 40 seeds "
         "(got %d)" % (NAMES[method], false_alarms))
    t.ok(0.3 <= np.mean(pvals) <= 0.7, "%s: mean p-value on undrifted data is near 0.5 (%.3f)"
         % (NAMES[method], np.mean(pvals)))
    t.ok(found >= 38, "%s: a shift of 0.5 sd is found in at least 38 of 40 seeds (got %d)"
         % (NAMES[method], found))
    if method != 0:
        # Welch's test compares means only; KS and MMD see a change of spread.
        t.ok(spread >= 36, "%s: doubling the spread is found in at least 36 of 40 seeds (got %d)"
             % (NAMES[method], spread))
    t.note("%s: %d seeds x %d checks in %.2f s" % (NAMES[method], len(SEEDS),
                                                   3 if method else 2,
                                                   time.monotonic() - t_start))

# ---- categorical: level and power ---------------------------------------------------

cats = ["a", "b", "c", "d"]
false_alarms = found = 0
for seed in SEEDS:
    rng = np.random.default_rng(5000 + seed)
    df = pd.DataFrame({"k": rng.choice(cats, 600, p=[0.4, 0.3, 0.2, 0.1])})
    same = rng.choice(cats, 200, p=[0.4, 0.3, 0.2, 0.1]).reshape(-1, 1).tolist()
    moved = rng.choice(cats, 200, p=[0.25, 0.25, 0.25, 0.25]).reshape(-1, 1).tolist()
    false_alarms += drift.compute(df, same, [("k", "cat")], 0, ALPHA)[0]["drift_detected"]
    found += drift.compute(df, moved, [("k", "cat")], 0, ALPHA)[0]["drift_detected"]
t.ok(false_alarms <= 6, "chi-square: an unchanged category mix raises at most 6 false alarms in "
     "40 seeds (got %d)" % false_alarms)
t.ok(found >= 38, "chi-square: a changed category mix (0.4/0.3/0.2/0.1 -> uniform) is found in at "
     "least 38 of 40 seeds (got %d)" % found)


# ---- with a database ------------------------------------------------------------------

import pymysql  # noqa: E402
import pymysql.cursors  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, ".."))
SOCK = os.environ["MLC_DB_SOCKET"]
DB_USER = os.environ["MLC_DB_USER"]
DB_NAME = "%s_drift_%d" % (os.environ["MLC_DB_NAME"], os.getpid())


why = t.private_database(DB_NAME)
PRIVATE = why is None
if not PRIVATE:
    DB_NAME = os.environ["MLC_DB_NAME"]
    t.note("no private database (root socket login refused): using %s" % DB_NAME)

STORE = tempfile.mkdtemp(prefix="drift-store.", dir=os.environ.get("MLC_VAR") or None)
t.defer(shutil.rmtree, STORE, True)
ENV = dict(os.environ, MLC_DB_NAME=DB_NAME, MLC_ARTIFACTS=STORE, MLC_DRIFT_ALPHA="0.05",
           MLC_DRIFT_MAX_ROWS="100000", MLC_DRIFT_INTERVAL="3600")


def cfg_with(**over):
    return mconfig.load(ROOT, dict(ENV, **over))


CFG = cfg_with()
_admin = pymysql.connect(unix_socket=SOCK, user=DB_USER,
                         password=os.environ.get("MLC_DB_PASSWORD", ""), database=DB_NAME,
                         charset="utf8mb4", autocommit=True,
                         cursorclass=pymysql.cursors.DictCursor)
t.defer(_admin.close)
from mlcpy import db as mdb  # noqa: E402
CONN = mdb.connect(CFG)  # as the spooler connects: autocommit off, dict rows
t.defer(CONN.close)


class Log:
    def __init__(self):
        self.lines = []

    def event(self, subject, message, *args):
        self.lines.append("%s: %s" % (subject, message % args if args else message))


LOG = Log()


def sql(query, *args):
    with _admin.cursor() as cur:
        cur.execute(query, args)
        return list(cur.fetchall())


MODELS = []


def forget(modelid):
    for table in ("operations", "drift_metrics", "drift_runs", "artifacts", "models"):
        sql("DELETE FROM %s WHERE modelid = %%s" % table, modelid)
    shutil.rmtree(os.path.join(STORE, modelid), ignore_errors=True)


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def add_model(featurelist, drift_detection, train=None, write_file=True):
    """A models row, and a data artifact holding the DataFrame train."""
    modelid = str(uuid.uuid4())
    MODELS.append(modelid)
    if not PRIVATE:
        t.defer(forget, modelid)
    stamp = now()
    sql("INSERT INTO models (modelid, modelname, modelkind, featurelist, drift_detection, "
        "created_at, updated_at) VALUES (%s, %s, 'drift-test', %s, %s, %s, %s)", modelid,
        "drift-" + modelid[:8], json.dumps(featurelist) if featurelist is not None else None,
        json.dumps(drift_detection), stamp, stamp)
    if train is not None:
        rel = os.path.join(modelid, "data", "v1-train.csv")
        path = os.path.join(STORE, rel)
        os.makedirs(os.path.dirname(path))
        text = train.to_csv(index=False).encode()
        if write_file:
            with open(path, "wb") as f:
                f.write(text)
        sql("INSERT INTO artifacts (modelid, filekind, version, filename, contenttype, path, size, "
            "sha256, created_at) VALUES (%s, 'data', 1, 'train.csv', 'text/csv', %s, %s, %s, %s)",
            modelid, rel, len(text), hashlib.sha256(text).hexdigest(), stamp)
    return modelid


def add_ops(modelid, datas, start, step=datetime.timedelta(milliseconds=10)):
    """operations rows with these data texts, timestamps start, start+step, ...;
    returns the timestamps."""
    stamps = [start + i * step for i in range(len(datas))]
    with _admin.cursor() as cur:
        cur.executemany("INSERT INTO operations (ownerid, deployment_id, modelid, data, result, "
                        "timestamp) VALUES ('drift-test', 'dep-drift', %s, %s, NULL, %s)",
                        [(modelid, d, ts) for d, ts in zip(datas, stamps)])
    return stamps


def request(modelid, by="api"):
    run_id = str(uuid.uuid4())
    sql("INSERT INTO drift_runs (run_id, modelid, status, requested_by, created_at) "
        "VALUES (%s, %s, 'waiting', %s, %s)", run_id, modelid, by, now())
    return run_id


def carry_out(run_id, cfg=None):
    """run_pending until the run is finished (by this or another spooler)."""
    deadline = time.monotonic() + 60
    ran = 0
    while True:
        ran += drift.run_pending(CONN, cfg or CFG, LOG)
        row = sql("SELECT status, reason, finished_at FROM drift_runs WHERE run_id = %s", run_id)[0]
        if row["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return row, ran
        time.sleep(0.2)


def plain(values):
    """Datetimes as text, so that a failing check can show them."""
    return [v.isoformat() if isinstance(v, datetime.datetime) else v for v in values]


def metrics(run_id):
    return {m["feature"]: m for m in sql("SELECT * FROM drift_metrics WHERE run_id = %s "
                                         "ORDER BY id", run_id)}


# Model A: three input features and a target, method 2 (KS) requested on
# demand (is_true 0: no scheduled runs).
rng = np.random.default_rng(42)
TRAIN_A = pd.DataFrame({"a": np.round(rng.normal(0, 1, 300), 6),
                        "b": np.round(rng.normal(0, 1, 300), 6),
                        "c": rng.choice(["x", "y", "z"], 300, p=[0.5, 0.3, 0.2]),
                        "y": rng.integers(0, 2, 300)})
FL_A = [{"feature_name": "a", "type": "cont", "kind": 0, "units": 1},
        {"feature_name": "b", "type": "cont", "kind": 0},
        {"feature_name": "c", "type": "cat"},
        {"feature_name": "y", "type": "cat", "kind": 1}]
A = add_model(FL_A, [{"is_true": 0, "method": 2}], TRAIN_A)

rows_a, datas = [], []


def draw(n):
    out = []
    for _ in range(n):
        row = [round(float(rng.normal(0, 1)), 6), round(float(rng.normal(3, 1)), 6),
               str(rng.choice(["x", "y", "z"]))]
        rows_a.append(row)
        out.append(row)
    return out


for i in range(10):                      # gateway: a 2-D list of 3 rows
    datas.append(json.dumps(draw(3)))
    if i == 4:
        datas.append("not json")
for _ in range(10):                      # an object row
    datas.append(json.dumps(dict(zip("abc", draw(1)[0]))))
datas.append(None)                       # NULL data
for _ in range(5):                       # legacy: a JSON string holding an object
    datas.append(json.dumps(json.dumps(dict(zip("abc", draw(1)[0])))))
for _ in range(3):                       # a batch of objects
    datas.append(json.dumps([dict(zip("abc", r)) for r in draw(2)]))
datas += ['[1, 2]', '"junk"', '{"other": 1}', "42"]   # the newest operations are junk
stamps = add_ops(A, datas, now() - datetime.timedelta(minutes=30))
contributing = [ts for d, ts in zip(datas, stamps) if d is not None and drift.extract_rows(d)
                and d not in ('[1, 2]', '{"other": 1}')]

run1 = request(A)
row, ran = carry_out(run1)
t.is_([row["status"], row["reason"]], ["completed", None],
      "an on-demand run of a model with 51 stored rows in mixed shapes completes")
if PRIVATE:
    t.is_(ran, 1, "run_pending reports the one run it carried out")
else:
    t.skip("run_pending reports the one run it carried out", "the instance's spooler may take it")
m = metrics(run1)
t.is_(sorted(m), ["a", "b", "c"], "one drift_metrics row per input feature (not the target)")
t.is_([[m[f]["type"], m[f]["method"], m[f]["n_train"], m[f]["n_infer"]] for f in "abc"],
      [["cont", "ks", 300, 51], ["cont", "ks", 300, 51], ["cat", "chi2", 300, 51]],
      "type, method (from drift_detection), n_train and n_infer of each feature")
ref_a = stats.ks_2samp(TRAIN_A["a"].to_numpy(float), np.array([r[0] for r in rows_a]))
ref_b = stats.ks_2samp(TRAIN_A["b"].to_numpy(float), np.array([r[1] for r in rows_a]))
t.ok(close(m["a"]["statistic"], ref_a.statistic) and close(m["a"]["p_value"], ref_a.pvalue)
     and close(m["b"]["statistic"], ref_b.statistic) and close(m["b"]["p_value"], ref_b.pvalue),
     "stored statistics equal scipy's ks_2samp on the training column and the stored rows",
     "a %r/%r vs %r/%r" % (m["a"]["statistic"], m["a"]["p_value"], ref_a.statistic, ref_a.pvalue))
t.is_([m["b"]["drift_detected"], m["a"]["drift_detected"] == int(ref_a.pvalue < ALPHA)], [1, True],
      "the shifted feature b is drift; a follows p < alpha")
cnt_t = collections.Counter(TRAIN_A["c"])
cnt_i = collections.Counter(r[2] for r in rows_a)
ref_c = stats.chi2_contingency(np.array([[cnt_t[k] for k in "xyz"], [cnt_i[k] for k in "xyz"]]))
t.ok(close(m["c"]["statistic"], ref_c[0]) and close(m["c"]["p_value"], ref_c[1]),
     "the categorical feature's statistic equals scipy's chi2_contingency")
t.is_(plain([m["a"]["window_start"], m["a"]["window_end"]]),
      plain([contributing[0], contributing[-1]]),
      "window_start/window_end are the oldest and newest operation that gave a row")
t.ok(row["finished_at"] is not None and all(abs((x["timestamp"] - now()).total_seconds()) < 120
                                            for x in m.values()),
     "finished_at is set and the metrics carry the current UTC time")

# A PATCH of drift_detection applies from the next run; the window starts
# after the last check.
sql("UPDATE models SET drift_detection = %s WHERE modelid = %s",
    json.dumps([{"is_true": 0, "method": 0}]), A)
new = add_ops(A, [json.dumps([r]) for r in draw(12)], now() - datetime.timedelta(minutes=5))
run2 = request(A)
row, _ = carry_out(run2)
m = metrics(run2)
t.is_([row["status"], m["a"]["method"], m["c"]["method"], m["a"]["n_infer"]],
      ["completed", "mean_shift", "chi2", 12],
      "the next run uses the new method and only the 12 rows since the last check")
t.is_(plain([m["a"]["window_start"], m["a"]["window_end"]]), plain([new[0], new[-1]]),
      "... and its window covers those rows")
ref = stats.ttest_ind(TRAIN_A["a"].to_numpy(float), np.array([r[0] for r in rows_a[-12:]]),
                      equal_var=False)
t.ok(close(m["a"]["statistic"], ref.statistic) and close(m["a"]["p_value"], ref.pvalue),
     "... with the statistic of ttest_ind(equal_var=False) on them")

run3 = request(A)
row, _ = carry_out(run3)
m = metrics(run3)
t.is_(plain([row["status"], m["a"]["n_infer"], m["a"]["window_start"], m["a"]["window_end"]]),
      plain(["completed", 63, contributing[0], new[-1]]),
      "with no new rows since the last check the latest rows are used regardless of the window")
run4 = request(A)
row, _ = carry_out(run4, cfg_with(MLC_DRIFT_MAX_ROWS="20"))
m = metrics(run4)
t.is_(plain([row["status"], m["a"]["n_infer"], m["a"]["window_end"]]),
      plain(["completed", 20, new[-1]]),
      "MLC_DRIFT_MAX_ROWS caps the rows, newest first")

# Failures, with the reason.
B = add_model(FL_A, [{"is_true": 1, "method": 0}], TRAIN_A)
add_ops(B, [json.dumps([r]) for r in draw(5)] + ["junk"] * 8, now() - datetime.timedelta(minutes=3))
row, _ = carry_out(request(B))
t.is_([row["status"], row["reason"]], ["failed", "needs at least 10 inference rows, has 5"],
      "fewer than 10 rows: the run fails with the reason")
t.ok(row["finished_at"] is not None, "... and a finished_at")
NODATA = add_model(FL_A, [{"is_true": 1, "method": 0}], None)
add_ops(NODATA, [json.dumps(draw(12))], now())
row, _ = carry_out(request(NODATA))
t.ok(row["status"] == "failed" and "no training data" in (row["reason"] or ""),
     "no data artifact: the run fails saying so", repr(row))
GONE = add_model(FL_A, [{"is_true": 0, "method": 0}], TRAIN_A, write_file=False)
add_ops(GONE, [json.dumps(draw(12))], now())
row, _ = carry_out(request(GONE))
t.ok(row["status"] == "failed" and "missing from the artifact store" in (row["reason"] or ""),
     "a data artifact whose file is gone: the run fails saying so", repr(row))
CHANGED = add_model(FL_A, [{"is_true": 0, "method": 0}], TRAIN_A)
with open(os.path.join(STORE, CHANGED, "data", "v1-train.csv"), "ab") as f:
    f.write(b"1,2\n")  # the store's file no longer is the one uploaded
add_ops(CHANGED, [json.dumps(draw(12))], now())
row, _ = carry_out(request(CHANGED))
t.ok(row["status"] == "failed" and "does not match its SHA-256" in (row["reason"] or ""),
     "a data artifact whose file changed in the store: the run fails saying so", repr(row))
bad_method = request(A)
sql("UPDATE models SET drift_detection = %s WHERE modelid = %s",
    json.dumps([{"is_true": 0, "method": 9}]), A)
row, _ = carry_out(bad_method)
t.ok(row["status"] == "failed" and "unknown drift detection method 9" in (row["reason"] or ""),
     "an unknown method in drift_detection fails the run", repr(row))
t.is_(metrics(bad_method), {}, "a failed run stores no metrics")

# Claiming: only a waiting run is taken.
taken = request(A)
sql("UPDATE drift_runs SET status = 'running' WHERE run_id = %s", taken)
t.is_(drift.run_one(CONN, CFG, LOG, taken), None, "a run another spooler took is left alone")
t.is_(sql("SELECT status FROM drift_runs WHERE run_id = %s", taken)[0]["status"], "running",
      "... still running")
if PRIVATE:
    t.is_(drift.fail_interrupted(CONN, LOG), 1, "fail_interrupted fails a run left running")
    t.like(sql("SELECT reason FROM drift_runs WHERE run_id = %s", taken)[0]["reason"],
           "^interrupted", "... with a reason")
else:
    sql("UPDATE drift_runs SET status = 'failed', reason = 'test' WHERE run_id = %s", taken)
    t.skip("fail_interrupted fails a run left running", "would touch the instance's runs")
    t.skip("... with a reason", "would touch the instance's runs")

# Leases: a run whose claimant renews its lease is never failed as
# interrupted; the claimant renews while a check outlasts the lease.
if PRIVATE:
    live = request(A)
    sql("UPDATE drift_runs SET status = 'running', claimed_by = 'elsewhere:1:abc', "
        "lease_until = UTC_TIMESTAMP(6) + INTERVAL 1 MINUTE WHERE run_id = %s", live)
    t.is_(drift.fail_interrupted(CONN, LOG), 0, "fail_interrupted leaves a run with a live lease alone")
    sql("UPDATE drift_runs SET lease_until = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND WHERE run_id = %s",
        live)
    t.is_(drift.fail_interrupted(CONN, LOG), 1, "... and fails it once the lease has expired")
    t.like(sql("SELECT reason FROM drift_runs WHERE run_id = %s", live)[0]["reason"],
           "^interrupted: mlc-drift process elsewhere:1:abc stopped", "... naming the claimant")

    sql("UPDATE models SET drift_detection = %s WHERE modelid = %s",
        json.dumps([{"is_true": 0, "method": 2}]), A)   # method 9 from above fails the run
    slow_run = request(A)
    seen = {}
    real_check = drift.check_model

    def slow_check(conn, cfg, modelid, seed=0, log=None):
        first = sql("SELECT lease_until, claimed_by FROM drift_runs WHERE run_id = %s", slow_run)[0]
        time.sleep(1.6)                           # > the lease of 0.6 s
        other = mdb.connect(CFG)
        try:
            seen["failed_meanwhile"] = drift.fail_interrupted(other, LOG)
        finally:
            other.close()
        later = sql("SELECT lease_until FROM drift_runs WHERE run_id = %s", slow_run)[0]
        seen["renewed"] = later["lease_until"] > first["lease_until"]
        seen["claimed_by"] = first["claimed_by"]
        return real_check(conn, cfg, modelid, seed, log)

    drift.check_model = slow_check
    try:
        status = drift.run_one(CONN, cfg_with(MLC_DRIFT_LEASE="0.6"), LOG, slow_run)
    finally:
        drift.check_model = real_check
    t.is_([status, seen.get("failed_meanwhile"), seen.get("renewed"), seen.get("claimed_by")],
          ["completed", 0, True, drift.owner()],
          "a check that outlasts its lease: renewed meanwhile, not failed by another look, completed")
else:
    t.skip("lease checks", "need the private database")

# Featurelist types other than cont/cat are decided from the training data,
# and the metrics rows say so.
TRAIN_T = pd.DataFrame({"num": np.round(rng.normal(0, 1, 200), 6),
                        "txt": rng.choice(["red", "blue"], 200), "label": rng.integers(0, 2, 200)})
T = add_model([{"feature_name": "num", "type": "numeric", "kind": 0},
               {"feature_name": "txt", "type": "", "kind": 0},
               {"feature_name": "label", "type": "cont", "kind": 7}], [{"is_true": 0, "method": 0}], TRAIN_T)
add_ops(T, [json.dumps([[float(rng.normal()), str(rng.choice(["red", "blue"]))] for _ in range(4)])
            for _ in range(5)], now())
run_t = request(T)
row, _ = carry_out(run_t)
m = metrics(run_t)
t.is_([row["status"], sorted(m), m.get("num", {}).get("type"), m.get("num", {}).get("method"),
       m.get("txt", {}).get("type"), m.get("txt", {}).get("method"), m.get("txt", {}).get("n_infer")],
      ["completed", ["num", "txt"], "cont", "mean_shift", "cat", "chi2", 20],
      "types \"numeric\" and \"\" are tested as the training columns say (kind 7 is no input)")
t.like(m.get("num", {}).get("note") or "", 'type "numeric" is neither "cont" nor "cat": taken as continuous',
       "the metrics row's note says how the type was decided")
t.like(m.get("txt", {}).get("note") or "", 'type "" is neither .* taken as categorical',
       "... for the text column too")
t.is_(metrics(run1)["a"]["note"], None, "a declared cont feature that was tested has no note")
t.ok(any("taken as categorical" in line for line in LOG.lines), "the decision is logged too")

# Without a featurelist the training columns but the last are the features.
E = add_model(None, [{"is_true": 0, "method": 2}],
              pd.DataFrame({"u": rng.normal(size=200), "v": rng.choice(["p", "q"], 200),
                            "label": rng.integers(0, 2, 200)}))
add_ops(E, [json.dumps([[float(rng.normal()), str(rng.choice(["p", "q"]))] for _ in range(3)])
            for _ in range(4)] + [json.dumps({"u": 0.5, "v": "p"})], now())
run_e = request(E)
row, _ = carry_out(run_e)
m = metrics(run_e)
t.is_([row["status"], sorted(m), m.get("u", {}).get("method"), m.get("v", {}).get("method"),
       m.get("u", {}).get("n_infer")], ["completed", ["u", "v"], "ks", "chi2", 13],
      "no featurelist: the training columns but the last are compared, typed by their values")

# Scheduling (only on the private database: on the instance's, its own
# spooler may schedule the same models).
if PRIVATE:
    C = add_model(FL_A, [{"is_true": 1, "method": 1}], TRAIN_A)
    add_ops(C, [json.dumps([r]) for r in draw(12)], now() - datetime.timedelta(minutes=2))
    due = drift.due_models(CONN, CFG)
    t.ok(C in due and A not in due and B not in due and NODATA not in due,
         "due: is_true 1 with data and 10 new rows; not is_true 0, not 5 rows, not without data",
         "due %r" % due)
    added = drift.schedule_due(CONN, CFG, LOG)
    runs = sql("SELECT run_id, requested_by FROM drift_runs WHERE modelid = %s", C)
    t.is_([r["requested_by"] for r in runs], ["schedule"], "schedule_due adds one 'schedule' run")
    t.is_(added, 1, "... and counts it")
    drift.schedule_due(CONN, CFG, LOG)
    t.is_(len(sql("SELECT run_id FROM drift_runs WHERE modelid = %s", C)), 1,
          "calling it again adds none while that run is waiting")
    row, _ = carry_out(runs[0]["run_id"])
    m = metrics(runs[0]["run_id"])
    t.is_([row["status"], m["a"]["method"], m["c"]["method"], m["a"]["n_infer"]],
          ["completed", "mmd", "chi2", 12], "the scheduled run completes with the model's method (MMD)")
    later = now() + datetime.timedelta(seconds=3700)
    t.ok(C not in drift.due_models(CONN, CFG, later),
         "an interval later, a model with no new rows since its check is not due")
    add_ops(C, [json.dumps(draw(10))], now())
    t.ok(C in drift.due_models(CONN, CFG, later) and C not in drift.due_models(CONN, CFG),
         "with 10 new rows it is due once the interval has passed, not before")
    t.is_(drift.schedule_due(CONN, CFG, LOG, now() + datetime.timedelta(seconds=10)), 0,
          "schedule_due adds nothing before the interval")
else:
    t.skip("scheduling checks", "need the private database")

# ---- the bulk reader: the same values as one text at a time ----------------------------
#
# Operations in the gateway's form (operations.input_width = the number of
# features) are parsed in bulk; every other form one by one.  Mixed
# together, in every order and with a cut by MLC_DRIFT_MAX_ROWS, the values
# and the window must be those of reading each text alone (drift.compute on
# the texts, newest first), and the rows counted where the API counts them.
M = add_model([{"feature_name": "p"}, {"feature_name": "q"}], [{"is_true": 0, "method": 1}],
              pd.DataFrame({"p": np.arange(50.0), "q": np.arange(50.0) * 2, "y": 0}))
mix_rng = np.random.default_rng(5)
texts = []
for i in range(400):
    kind = i % 9
    a, b = (round(float(v), 6) for v in mix_rng.normal(0, 1, 2))
    texts.append([json.dumps([[a, b]], separators=(",", ":")),           # the gateway's form
                  json.dumps([[a, b], [b, a]]),                            # with blanks, 2 rows
                  json.dumps(json.dumps([[a, b]])),                        # a batch in a string
                  json.dumps({"p": a, "q": b}),                            # an object
                  json.dumps([a, b]),                                      # one flat row
                  "[[%s,null]]" % a,                                       # a null value
                  "[[%s,%s,1]]" % (a, b),                                  # a row too wide
                  "[[1e999,%s]]" % b,                                      # an infinity
                  "[[%s,%s],[%s]]" % (a, b, a)][kind])                    # one row too short
stamps = add_ops(M, texts, now() - datetime.timedelta(hours=1))
widths = [r["input_width"] for r in sql("SELECT input_width FROM operations WHERE modelid = %s "
                                        "ORDER BY operationid", M)]
t.is_(widths[:9], [2, 2, None, None, None, None, 3, 2, None],
      "operations.input_width: the width of a batch of number rows, else NULL")
for cap in (None, 1234, 57):
    cfgc = cfg_with(MLC_DRIFT_MAX_ROWS=str(cap or 100000))
    got, start, end, _ = drift.check_model(CONN, cfgc, M)
    sample = drift.InferenceSample([("p", "cont"), ("q", "cont")], cap)
    first = last = None
    for text, ts in reversed(list(zip(texts, stamps))):
        if sample.full:
            break
        if sample.add_data(text):
            first = ts if first is None or ts < first else first
            last = ts if last is None or ts > last else last
    want = drift.compute(pd.DataFrame({"p": np.arange(50.0), "q": np.arange(50.0) * 2}),
                         sample, [("p", "cont"), ("q", "cont")], 1, 0.05)
    t.is_([[r["n_infer"], r["statistic"], r["p_value"]] for r in got] + plain([start, end]),
          [[r["n_infer"], r["statistic"], r["p_value"]] for r in want] + plain([first, last]),
          "MLC_DRIFT_MAX_ROWS %s: the bulk reader gives the values, order (MMD) and window of "
          "reading each text alone" % cap)
t.is_(drift.recorded_rows(CONN, M), 44 * 11 + 5,
      "recorded_rows: every batch counts its rows (11 in each 9 forms above), whatever their values")


# ---- streaming: 200,000 operations ---------------------------------------------------------

N = 200000
S = add_model([{"feature_name": f, "type": "cont", "kind": 0} for f in ("p", "q", "r")],
              [{"is_true": 0, "method": 2}],
              pd.DataFrame({"p": rng.normal(size=1000), "q": rng.normal(size=1000),
                            "r": rng.normal(size=1000), "t": 0}))
t_start = time.monotonic()
vals = np.round(rng.normal(size=(N, 3)), 6)
base = now() - datetime.timedelta(hours=1)
texts = [json.dumps([row]) for row in vals.tolist()]   # as the predict gateway stores rows
with _admin.cursor() as cur:
    for i in range(0, N, 10000):
        cur.executemany("INSERT INTO operations (ownerid, deployment_id, modelid, data, timestamp) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        [("drift-test", "dep-stream", S, texts[j],
                          base + datetime.timedelta(microseconds=j * 1000))
                         for j in range(i, min(i + 10000, N))])
t.note("inserting %d operations: %.2f s" % (N, time.monotonic() - t_start))

# What holding the rows as Python objects costs, measured on 10,000 of them.
tracemalloc.start()
held = [json.loads(x) for x in texts[:10000]]
naive = tracemalloc.get_traced_memory()[0] / 10000.0
tracemalloc.stop()
del held, texts

# The streaming read, in a child process: how far its resident memory peaks
# (VmHWM, reset through /proc/self/clear_refs) above what it held after a
# warm-up read of 1,000 rows (imports, connection, first buffers); where
# clear_refs cannot be written, tracemalloc's peak (slower).
CHILD = r"""
import json, sys, time, tracemalloc
sys.path.insert(0, sys.argv[1])
from mlcpy import config, db, drift


def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024


cfg = config.load(sys.argv[2])
conn = db.connect(cfg)
feats = [("p", "cont"), ("q", "cont"), ("r", "cont")]
drift.read_inference(conn, sys.argv[3], feats, None, 1000)
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    how, base = "resident memory", status("VmRSS")
except OSError:
    how, base = "tracemalloc peak", 0
    tracemalloc.start()
t0 = time.monotonic()
sample, ws, we = drift.read_inference(conn, sys.argv[3], feats, None, int(sys.argv[4]))
took = time.monotonic() - t0
grew = status("VmHWM") - base if base else tracemalloc.get_traced_memory()[1]
print(json.dumps({"rows": sample.rows, "n": sample.numbers(0).size, "how": how,
                  "newest": float(sample.numbers(2)[0]), "grew": grew, "took": took}))
"""
res = subprocess.run([sys.executable, "-c", CHILD, os.path.join(ROOT, "scripts"), ROOT, S, str(N)],
                     env=ENV, capture_output=True, text=True, timeout=300)
try:
    got = json.loads(res.stdout)
except ValueError:
    got = {}
t.is_([got.get("rows"), got.get("n"), got.get("newest")], [N, N, float(vals[-1][2])],
      "all 200,000 rows are read, newest first", res.stderr[-3000:])
grew = got.get("grew")
grew = float("inf") if grew is None else grew
# 3 features x 8 bytes = 24 bytes a row at best; 64 allows for array growth
# and the fixed buffers (a page of operations, rows not yet converted).
t.ok(grew / N <= 64 and grew / N < naive / 3,
     "reading 200,000 rows grows the %s by %.1f bytes a row (at most 64, and under a third of "
     "the %.0f bytes a row of holding them as Python objects)"
     % (got.get("how", "memory"), grew / N, naive))
t.note("read_inference: %d rows in %.2f s, %s +%.1f MB"
       % (N, got.get("took", -1), got.get("how", "memory"), grew / 1e6))
t_start = time.monotonic()
results, ws, we, _ = drift.check_model(CONN, cfg_with(MLC_DRIFT_MAX_ROWS=str(N)), S)
took = time.monotonic() - t_start
t.is_(plain([r["n_infer"] for r in results] + [ws, we]),
      plain([N, N, N, base, base + datetime.timedelta(microseconds=(N - 1) * 1000)]),
      "a check over 200,000 operations uses them all, window from oldest to newest")
t.note("check_model over %d operations (KS, 3 features): %.2f s" % (N, took))
t_start = time.monotonic()
results, _, _, _ = drift.check_model(CONN, CFG, S)
t.is_([r["n_infer"] for r in results], [100000] * 3, "by default a check reads 100,000 rows")
t.note("check_model with the default MLC_DRIFT_MAX_ROWS: %.2f s" % (time.monotonic() - t_start))

t.note("whole file: %.1f s" % (time.monotonic() - T0))
t.done()
