#!/usr/bin/python3
# With MariaDB stopped the API answers 503 JSON instead of failing or
# hanging; once MariaDB is back, the very next requests succeed without
# restarting the API.
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

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


def unavailable(resp, name):
    body = t.is_error(resp, 503, name)
    t.like(body.get("detail"), r"^database unavailable: \S", name + ": the detail says the database is unavailable")


t.is_status(t.get("/health"), 200, "GET /health answers 200 before MariaDB is stopped")
model = t.add_model(t.minimal_model(), "setup: register a model before the outage")
pid_before = api_pid()
t.ok(pid_before is not None, "the mlc-api master is running (pid file under MLC_VAR/run)")

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

t.done()
