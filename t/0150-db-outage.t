#!/usr/bin/python3
# With MariaDB stopped the API answers 503 JSON instead of failing or
# hanging; once MariaDB is back, the very next requests succeed without
# restarting the API, and GET /metrics counts the errors and the
# reconnections.  Then the same under load: clients keep adding
# models, uploading files and reading while MariaDB stops and starts;
# every answer is a 2xx or a 503, no write answered 2xx is missing
# afterwards, and the invariants of t/lib/mlcfaults.py hold.
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t
import mlcfaults as f

t.need_instance("MLC_ROOT", "MLC_VAR", "MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME", exclusive=True)
if os.environ.get("MLC_DB_HOST"):
    t.skip_all("stops the private MariaDB only; this instance uses MLC_DB_HOST=%s" % os.environ["MLC_DB_HOST"])
MLC = os.path.join(os.environ["MLC_ROOT"], "scripts", "mlc")
if not os.access(MLC, os.X_OK):
    t.skip_all("needs %s (db-stop, db-start)" % MLC)


def mlc(cmd):
    p = subprocess.run([MLC, cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=90)
    return p.returncode, p.stdout


def api_pid():
    try:
        with open(os.path.join(os.environ["MLC_VAR"], "run", "mlc-api.pid")) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def metric(text, series):
    """The value of one series (name with its labels) in GET /metrics' text."""
    m = re.search(r"(?m)^%s (\S+)$" % re.escape(series), text or "")
    return float(m.group(1)) if m else None


def db_metrics():
    text = t.get("/metrics", timeout=15).text
    return {k: metric(text, k) for k in ('mlc_db_errors_total{kind="connect"}',
                                         'mlc_db_errors_total{kind="connection_lost"}',
                                         "mlc_db_reconnects_total")}


def unavailable(resp, name):
    body = t.is_error(resp, 503, name)
    t.like(body.get("detail"), r"^database unavailable: \S", name + ": the detail says the database is unavailable")


t.is_status(t.get("/health"), 200, "GET /health answers 200 before MariaDB is stopped")
model = t.add_model(t.minimal_model(), "setup: register a model before the outage")
pid_before = api_pid()
t.ok(pid_before is not None, "the mlc-api master is running (pid file under MLC_VAR/run)")
counted_before = db_metrics()

rc, out = mlc("db-stop")
try:
    t.ok(rc == 0, "scripts/mlc db-stop stops MariaDB", out)
    unavailable(t.get("/health", timeout=15), "GET /health with MariaDB stopped")
    unavailable(t.get("/model/all", timeout=15), "GET /model/all with MariaDB stopped")
    unavailable(t.get("/model/" + model["modelid"], timeout=15), "GET /model/{id} with MariaDB stopped")
    name = t.uniq("outage")
    unavailable(t.post("/model/add", json=t.minimal_model(modelname=name), timeout=15),
                "POST /model/add with MariaDB stopped")
    started = time.monotonic()
    codes = [t.get("/health", timeout=15).status_code for _ in range(20)]
    t.is_(sorted(set(codes)), [503], "20 GET /health in a row all answer 503 while MariaDB is down (every worker)")
    t.ok(time.monotonic() - started < 20, "requests during the outage are answered promptly (20 in under 20 s)",
         "took %.1f s" % (time.monotonic() - started))
    # /metrics is admin-only: with auth on, a worker that has not checked
    # the token within its cache's half second cannot check it now, and
    # says so (503), as every route that needs a token does.  A worker that
    # can answer must report the database down.
    answers = [t.get("/metrics", timeout=15) for _ in range(10)]
    good = [r for r in answers if r.status_code == 200
            and metric(r.text, "mlc_metrics_database_up") == 0.0
            and metric(r.text, 'mlc_worker_restarts_total{pool="fast"}') is not None]
    refused = [r for r in answers if r.status_code == 503
               and "database unavailable" in r.text]
    if t.auth_on():
        t.is_(len(good) + len(refused), 10, "GET /metrics during the outage: 200 with "
              "mlc_metrics_database_up 0 and the counters, or 503 where the token cannot be "
              "checked (auth on); nothing else", [t.describe(r) for r in answers
                                                   if r not in good and r not in refused])
    else:
        t.is_(len(good), 10, "GET /metrics answers 200 during the outage, with "
              "mlc_metrics_database_up 0 and the counters",
              [t.describe(r) for r in answers if r not in good])
finally:
    rc, out = mlc("db-start")
t.ok(rc == 0, "scripts/mlc db-start starts MariaDB again", out)

deadline = time.monotonic() + 20
resp = None
while time.monotonic() < deadline:
    try:
        resp = t.get("/health", timeout=5)
        if resp.status_code == 200:
            break
    except Exception as e:  # the service must not vanish, but keep polling
        t.note("GET /health: %s" % e)
    time.sleep(0.2)
t.ok(resp is not None and resp.status_code == 200,
     "GET /health answers 200 within 20 s of MariaDB starting again", t.describe(resp) if resp is not None else "no answer")
t.is_(t.body_of(resp) if resp is not None else None,
      {"status": "ok", "database": "ok", "version": t.project_version()},
      "GET /health reports the database ok again")

codes = [t.get("/model/all", params={"limit": 1}).status_code for _ in range(20)]
t.is_(sorted(set(codes)), [200], "20 GET /model/all in a row all answer 200 after the outage (every worker reconnected)")
t.is_(t.body_of(t.get("/model/" + model["modelid"])), model, "a model registered before the outage is still there")
t.is_(t.db_rows("SELECT modelid FROM models WHERE modelname = %s", name), [],
      "the POST refused during the outage stored nothing")
after = t.post("/model/add", json=t.minimal_model())
t.is_status(after, 201, "POST /model/add works again after the outage")
if after.status_code == 201:
    t.defer(t.delete, "/model/" + after.json()["modelid"])
t.is_(api_pid(), pid_before, "the API was not restarted (same mlc-api master pid, still running)")
counted = db_metrics()
t.ok(None not in counted.values() and None not in counted_before.values() and
     counted['mlc_db_errors_total{kind="connect"}'] + counted['mlc_db_errors_total{kind="connection_lost"}'] >
     counted_before['mlc_db_errors_total{kind="connect"}'] + counted_before['mlc_db_errors_total{kind="connection_lost"}'],
     "GET /metrics counted the outage's database errors", counted_before, counted)
t.ok(None not in counted.values() and None not in counted_before.values() and
     counted["mlc_db_reconnects_total"] > counted_before["mlc_db_reconnects_total"],
     "and the workers' reconnections", counted_before, counted)

# ---- the same under load ------------------------------------------------------------------

target = t.add_model(t.minimal_model(), "setup: a model to upload to under load")["modelid"]
prefix = t.uniq("load")


def op_add(c, i, out):
    name = "%s-%d" % (prefix, i)
    status, body = c.request("POST", "/model/add", json.dumps(t.minimal_model(modelname=name)),
                             {"Content-Type": "application/json"})
    out.append({"op": "add", "name": name, "status": status, "body": body})


def op_upload(c, i, out):
    data = ("print(%d)\n" % i).encode()
    ctype, head, tail, _ = f.multipart("code", "c%d.py" % i, data)
    status, body = c.request("POST", "/model/%s/upload" % target, head + data + tail,
                             {"Content-Type": ctype})
    out.append({"op": "upload", "sha256": hashlib.sha256(data).hexdigest(), "status": status,
                "body": body})


def op_get(c, i, out):
    status, body = c.request("GET", "/model/" + target)
    out.append({"op": "get", "status": status, "body": body})


def decoded(r):
    try:
        return json.loads(r["body"])
    except (TypeError, ValueError):
        return None


load = f.Load([op_add, op_upload, op_get, op_add], threads=4).start()
time.sleep(1.5)
stop_at = time.monotonic()
rc, out = mlc("db-stop")
t.ok(rc == 0, "under load: scripts/mlc db-stop stops MariaDB", out)
time.sleep(2)
start_at = time.monotonic()
rc, out = mlc("db-start")
t.ok(rc == 0, "under load: scripts/mlc db-start starts MariaDB again", out)
f.wait_until(lambda: t.get("/health", timeout=5).status_code == 200, 20, 0.2)
back_at = time.monotonic()
time.sleep(2)
results = load.stop()
t.db_close()  # the test's own connection went with the server
for r in results:
    if r["op"] == "add" and r["status"] == 201:
        t.defer(t.delete, "/model/" + ((decoded(r) or {}).get("modelid") or "none"))

codes = {}
for r in results:
    codes[r["status"]] = codes.get(r["status"], 0) + 1
t.note("under load: %d requests, statuses %s" % (len(results), codes))
odd = [r for r in results if r["status"] not in (200, 201, 503)]
t.ok(not odd, "under load: every answer is a 2xx or a 503 (%d requests)" % len(results),
     *["%s -> %s %s" % (r["op"], r["status"], r.get("error") or r.get("body")) for r in odd[:10]])
down = [r for r in results if r["status"] == 503]
t.ok(down, "under load: requests during the outage got 503", codes)
t.ok(all((decoded(r) or {}).get("detail", "").startswith("database unavailable") for r in down),
     "under load: every 503 says the database is unavailable",
     *[r["body"] for r in down if not (decoded(r) or {}).get("detail", "").startswith("database unavailable")][:5])
t.ok(any(r["status"] in (200, 201) and r["at"] < stop_at for r in results)
     and any(r["status"] in (200, 201) and r["at"] > back_at for r in results),
     "under load: requests succeeded before the outage and after it")
late = [r for r in results if r["at"] > back_at + 1.0 and r["status"] not in (200, 201)]
t.ok(not late, "under load: once /health answers again, every request succeeds",
     *["%s -> %s" % (r["op"], r["status"]) for r in late[:10]])

added = [r for r in results if r["op"] == "add" and r["status"] == 201]
missing = [r["name"] for r in added
           if t.db_rows("SELECT modelid FROM models WHERE modelname = %s", r["name"])
           != [{"modelid": (decoded(r) or {}).get("modelid")}]]
t.ok(added and not missing, "under load: every model add answered 201 (%d) is stored" % len(added),
     *missing[:10])
stored = [r for r in results if r["op"] == "upload" and r["status"] == 201]
lost = [r for r in stored
        if t.db_rows("SELECT sha256 FROM artifacts WHERE fileid = %s",
                     (decoded(r) or {}).get("fileid")) != [{"sha256": r["sha256"]}]]
t.ok(stored and not lost, "under load: every upload answered 201 (%d) is stored with its bytes"
     % len(stored), *[r["body"] for r in lost[:10]])
refused = [r["name"] for r in results if r["op"] == "add" and r["status"] == 503]
landed = [n for n in refused if t.db_rows("SELECT 1 FROM models WHERE modelname = %s", n)]
t.note("under load: %d model adds refused with 503, %d of them landed all the same (a COMMIT "
       "whose answer was lost when the server went away)" % (len(refused), len(landed)))
f.check("after the outage under load")
t.is_(api_pid(), pid_before, "after the outage under load: the API was not restarted")

t.done()
