#!/usr/bin/python3
# Drift runs that cannot pile up and cannot be failed under a running
# check: concurrent POST /model/{id}/drift/run queue one waiting run; the
# mlc-drift daemon runs under its memory limit and not as root; a manual
# `mlc-drift --once` beside it fails only runs whose lease expired; a
# training CSV larger than MLC_DRIFT_TRAIN_ROWS is sampled, and the results
# say so.
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR", "MLC_ROOT", exclusive=True)
import mlcmodels as mm
import numpy as np
import requests

root, var = os.environ["MLC_ROOT"], os.environ["MLC_VAR"]
mlc = os.path.join(root, "scripts", "mlc")
pidfile = os.path.join(var, "run", "mlc-drift.pid")
MEMORY = int(os.environ.get("MLC_DRIFT_MEMORY") or 2 << 30)
TRAIN_ROWS = int(os.environ.get("MLC_DRIFT_TRAIN_ROWS") or 100000)


def mlc_cmd(*args):
    return subprocess.run([mlc] + list(args), capture_output=True, text=True, timeout=180)


def alive(pid):
    """Running, and not a zombie (where no init reaps, exited children linger)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return not any(ln.startswith("State:") and "Z" in ln.split()[1] for ln in f)
    except OSError:
        return False


def drift_pid():
    try:
        pid = int(open(pidfile).read().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def stop_drift():
    pid = drift_pid()
    if pid:
        os.kill(pid, signal.SIGTERM)
        for _ in range(300):
            if not alive(pid):
                break
            time.sleep(0.1)
    return pid


def wait_run(run_id, seconds=90):
    end = time.time() + seconds
    while time.time() < end:
        rows = t.db_rows("SELECT status, reason FROM drift_runs WHERE run_id = %s", run_id)
        if rows and rows[0]["status"] in ("completed", "failed"):
            return rows[0]
        time.sleep(0.2)
    return None


def add_ops(modelid, n=12):
    rng = np.random.default_rng(3)
    with t.db().cursor() as cur:
        cur.executemany("INSERT INTO operations (ownerid, deployment_id, modelid, data, result, "
                        "timestamp) VALUES ('drift-durable', 'dep-durable', %s, %s, NULL, "
                        "UTC_TIMESTAMP(6))",
                        [(modelid, json.dumps([float(rng.normal())])) for _ in range(n)])
    t.defer(t.db_rows, "DELETE FROM operations WHERE modelid = %s", modelid)


def csv_rows(n, seed=1):
    rng = np.random.default_rng(seed)
    out = io.StringIO()
    out.write("x,target\n")
    for v in rng.normal(size=n).round(6):
        out.write("%r,1\n" % float(v))
    return out.getvalue().encode()


def drift_model(rows=40):
    m = t.add_model(t.minimal_model(featurelist=[{"feature_name": "x", "type": "cont", "kind": 0},
                                                 {"feature_name": "target", "type": "cont",
                                                  "kind": 1}],
                                    drift_detection=[{"is_true": 0, "method": 2}]),
                    "register a model for drift checks")
    mm.upload(m["modelid"], "data", "train.csv", csv_rows(rows))
    add_ops(m["modelid"])
    return m["modelid"]


t.defer(mlc_cmd, "up")   # whatever happens below, leave mlc-drift running

# ---- the daemon: memory limit, user --------------------------------------------------

pid = drift_pid()
t.ok(pid, "mlc-drift runs (pid file %s)" % pidfile)
limits = open("/proc/%d/limits" % pid).read() if pid else ""
line = [ln for ln in limits.splitlines() if ln.startswith("Max address space")]
t.is_(line[0].split()[3:5] if line else None, [str(MEMORY), str(MEMORY)],
      "mlc-drift's address space is limited to MLC_DRIFT_MEMORY (soft and hard)", line)
status = open("/proc/%d/status" % pid).read() if pid else ""
uids = [ln.split()[1:] for ln in status.splitlines() if ln.startswith(("Uid:", "Gid:"))]
t.ok(uids and all(u != "0" for ids in uids for u in ids),
     "mlc-drift runs without root: real, effective, saved and filesystem uid and gid are not 0",
     uids)
groups = [ln.split()[1:] for ln in status.splitlines() if ln.startswith("Groups:")]
t.ok(groups and "0" not in groups[0], "... and root's group is not among its groups", groups)
caps = [ln.split()[1] for ln in status.splitlines() if ln.startswith("CapEff:")]
t.is_(caps, ["0000000000000000"], "... and it holds no capabilities")

# ---- one waiting run per model ----------------------------------------------------------

mid = drift_model()
stop_drift()          # nobody claims the run while the requests race
t.ok(drift_pid() is None, "mlc-drift is stopped for the race")
N = 8
answers = [None] * N
barrier = threading.Barrier(N)


def ask(i):
    with requests.Session() as s:
        barrier.wait()
        answers[i] = s.post(t.BASE_URL + "/model/%s/drift/run" % mid, timeout=30)


threads = [threading.Thread(target=ask, args=(i,)) for i in range(N)]
for th in threads:
    th.start()
for th in threads:
    th.join()
t.is_(sorted({a.status_code for a in answers if a is not None}), [202],
      "%d concurrent POST /model/{id}/drift/run all answer 202" % N)
ids = {(t.body_of(a) or {}).get("run_id") for a in answers if a is not None}
t.is_(len(ids), 1, "... every one with the same run_id", ids)
runs = t.db_rows("SELECT run_id, status FROM drift_runs WHERE modelid = %s", mid)
t.is_([(r["run_id"], r["status"]) for r in runs], [(next(iter(ids)), "waiting")],
      "... and the database holds that one waiting run")
again = t.post("/model/%s/drift/run" % mid)
t.is_((again.status_code, (t.body_of(again) or {}).get("run_id"),
       (t.body_of(again) or {}).get("status")), (202, next(iter(ids)), "waiting"),
      "asking again later answers with the waiting run")
try:
    t.db_rows("INSERT INTO drift_runs (run_id, modelid, status, requested_by, created_at) "
              "VALUES (%s, %s, 'waiting', 'api', UTC_TIMESTAMP(6))", str(uuid.uuid4()), mid)
    t.ok(False, "the database refuses a second waiting run of a model (unique key)")
except Exception as e:
    t.like(str(e), "Duplicate entry", "the database refuses a second waiting run of a model "
           "(unique key)")
waiting_run = next(iter(ids))

# ---- leases: a manual --once beside a run in progress ------------------------------------

other = drift_model()
held, expired = str(uuid.uuid4()), str(uuid.uuid4())
t.db_rows("INSERT INTO drift_runs (run_id, modelid, status, requested_by, claimed_by, lease_until, "
          "created_at) VALUES (%s, %s, 'running', 'api', 'elsewhere:4242:feedc0ffee00', "
          "UTC_TIMESTAMP(6) + INTERVAL 10 MINUTE, UTC_TIMESTAMP(6))", held, other)
t.db_rows("INSERT INTO drift_runs (run_id, modelid, status, requested_by, claimed_by, lease_until, "
          "created_at) VALUES (%s, %s, 'running', 'api', 'gone:4243:feedc0ffee01', "
          "UTC_TIMESTAMP(6) - INTERVAL 1 SECOND, UTC_TIMESTAMP(6))", expired, other)
t.defer(t.db_rows, "UPDATE drift_runs SET status = 'failed', reason = 'test' WHERE run_id = %s",
        held)
once = subprocess.run(["/usr/bin/python3", os.path.join(root, "scripts", "mlc-drift"), "--once"],
                      capture_output=True, text=True, timeout=180)
t.is_(once.returncode, 0, "mlc-drift --once by hand exits 0", once.stderr[-2000:])
st = {r["run_id"]: r for r in t.db_rows("SELECT run_id, status, reason, claimed_by FROM drift_runs "
                                        "WHERE run_id IN (%s, %s, %s)", held, expired, waiting_run)}
t.is_(st.get(held, {}).get("status"), "running",
      "a run whose claimant still holds its lease is left running by a manual --once")
t.is_(st.get(expired, {}).get("status"), "failed", "a run whose lease expired is failed")
t.like(st.get(expired, {}).get("reason") or "", r"^interrupted: mlc-drift process gone:4243:\S+ "
       r"stopped during the check", "... with a reason naming the claimant")
t.is_(st.get(waiting_run, {}).get("status"), "completed",
      "the waiting run is carried out by the manual --once", st.get(waiting_run))
t.like(st.get(waiting_run, {}).get("claimed_by") or "", r"^[^:]+:\d+:[0-9a-f]{12}$",
       "... which recorded itself as the claimant (host:pid:random)")
t.like(once.stderr, r"started \(pid \d+, as (?!root)\S+ \(uid [1-9]\d*",
       "the manual run dropped root too, and says as whom")

# The daemon started again leaves the held run alone too.
r = mlc_cmd("up")
t.is_(r.returncode, 0, "mlc up starts mlc-drift again", r.stderr[-2000:])
time.sleep(3)
t.is_(t.db_rows("SELECT status FROM drift_runs WHERE run_id = %s", held)[0]["status"], "running",
      "the daemon, at its start, leaves a run with a live lease running")
t.db_rows("UPDATE drift_runs SET lease_until = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND "
          "WHERE run_id = %s", held)

# ---- the training sample ---------------------------------------------------------------------

big = drift_model(rows=TRAIN_ROWS + 20000)
resp = t.post("/model/%s/drift/run" % big)
t.is_status(resp, 202, "a drift run of a model with %d training rows is queued" % (TRAIN_ROWS + 20000))
st = wait_run((t.body_of(resp) or {}).get("run_id", ""), 180)
t.is_((st or {}).get("status"), "completed", "the run completes", st)
res = t.body_of(t.get("/model/%s/drift" % big)) or []
t.is_([(m.get("feature"), m.get("n_train")) for m in res], [("x", TRAIN_ROWS)],
      "the check compares MLC_DRIFT_TRAIN_ROWS (%d) training rows" % TRAIN_ROWS)
t.like((res[0].get("note") if res else None) or "",
       r"training data sampled: %d of its %d rows, uniformly at random" % (TRAIN_ROWS, TRAIN_ROWS + 20000),
       "the result's note says the training data was sampled, and from how many rows")
small = drift_model(rows=50)
resp = t.post("/model/%s/drift/run" % small)
st = wait_run((t.body_of(resp) or {}).get("run_id", ""))
res = t.body_of(t.get("/model/%s/drift" % small)) or []
t.is_([(m.get("n_train"), m.get("note")) for m in res], [(50, None)],
      "a training set under the cap is compared whole, with no note")
t.done()
