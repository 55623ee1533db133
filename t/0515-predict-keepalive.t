#!/usr/bin/python3
# The prediction path's connections and its operation rows:
# - each API worker keeps its connection to a runtime alive across
#   requests (the runtime counts the connections it accepted);
# - a runtime killed between requests: calls answer 200 or 503 (never a
#   500 or 502), the kept connections to the dead runtime are replaced, and
#   there is exactly one operation row per 200;
# - a runtime that dies while running a call: 502 (the model ran), the
#   call is recorded once as failed and is not sent again;
# - API workers killed (SIGKILL) under load: every 200's operation row is
#   in the database (nothing acknowledged is lost).
import json
import os
import pickle
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

# Exclusive: it kills API workers of the shared instance.
t.need_instance("MLC_DB_SOCKET", "MLC_VAR", exclusive=True)
import mlcmodels as mm  # noqa: E402
import requests  # noqa: E402

var = os.environ["MLC_VAR"]

# A model whose predict() returns the row's second value, and, when the
# first value is 1, writes a marker to the runtime's log and ends its
# process mid-call (the runtime dies with the request read and run).
DYING = r'''
import os, sys


class Dying:
    def predict(self, X):
        if int(X[0][0]) == 1:
            sys.stderr.write("dying-model-ran %s\n" % X[0][1])
            sys.stderr.flush()
            os._exit(7)
        return [float(row[1]) for row in X]


model = Dying()
'''


class Pickled:
    def __reduce__(self):
        return (eval, ("(lambda ns: (exec(%r, ns), ns['model'])[1])({'__name__': 'dying'})" % DYING,))


def deployed(model):
    r = mm.deploy(model["modelid"])
    dep = (t.body_of(r) or {}).get("deployment_id")
    st = mm.wait_status(dep) if dep else None
    if (st or {}).get("status") != "deployed":
        t.bail_out("deployment did not come up: %s %s" % (t.describe(r), st))
    return dep


def sock(dep):
    return os.path.join(var, "deployments", dep, "runtime.sock")


def accepted(dep):
    """Connections the runtime accepted so far (this call's included)."""
    try:
        status, body = mm.unix_http(sock(dep))
        return json.loads(body).get("connections") if status == 200 else None
    except (OSError, ValueError):
        return None


def rows_of(dep):
    return t.db_rows("SELECT operation_uuid, result FROM operations WHERE deployment_id = %s "
                     "ORDER BY operationid", dep)


def runtime_pid(dep):
    rows = t.db_rows("SELECT runtime_pid FROM deployments WHERE deployment_id = %s", dep)
    return rows[0]["runtime_pid"] if rows else None


def workers():
    """Every mlc-api worker of the instance (of both masters on the Galera
    topology)."""
    return t.api_workers()


def predict(dep, row, session=None):
    return (session or requests).post(t.BASE_URL + "/deployment/%s/predict" % dep,
                                      json={"data": row}, timeout=60)


model = mm.register(None, None, None, ["mode", "x"], with_data=False,
                    pickled=pickle.dumps(Pickled(), protocol=4))
dep = deployed(model)
nworkers = len(workers())

# ---- kept-alive connections ----
before = accepted(dep)
codes = [predict(dep, [0, i]).status_code for i in range(60)]
after = accepted(dep)
t.is_(codes, [200] * 60, "60 calls in a row answer 200")
t.ok(before is not None and after is not None and after - before - 1 <= nworkers,
     "the runtime accepted at most one connection per API worker for them "
     "(%s new connections, %d workers)" % (None if after is None or before is None else after - before - 1,
                                           nworkers))
t.is_(len(rows_of(dep)), 60, "one operation row per call")

def dead(pid):
    """Gone or a zombie: its connections are closed."""
    try:
        with open("/proc/%d/stat" % int(pid)) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def runtime_processes(dep):
    """Live processes serving dep (the sandbox's and the runtime's own):
    the runtime in the sandbox dies after the pid killed, not with it."""
    want = ("--dir\0%s\0" % os.path.join(var, "deployments", dep)).encode()
    found = []
    for name in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                if want in f.read() + b"\0" and not dead(name):
                    found.append(int(name))
        except (OSError, ValueError):
            pass
    return found


# ---- a runtime killed between requests ----
pid = runtime_pid(dep)
t.ok(pid and mm.pid_alive(pid), "the runtime runs (pid %s)" % pid)
serving = runtime_processes(dep)
os.kill(int(pid), signal.SIGKILL)
end = time.time() + 10
while time.time() < end and not all(dead(p) for p in serving):
    time.sleep(0.01)
t.ok(serving and all(dead(p) for p in serving), "the runtime's processes are gone", serving)
seen, oks, end = {}, 0, time.time() + 90
while time.time() < end:
    r = predict(dep, [0, 1.5])
    seen[r.status_code] = seen.get(r.status_code, 0) + 1
    if r.status_code == 200:
        oks += 1
        if oks >= 10:
            break
    else:
        time.sleep(0.2)
t.ok(set(seen) <= {200, 503}, "calls after the runtime died answer 200 or 503 only (the kept "
     "connections to the dead runtime are not used)", seen)
t.is_(oks, 10, "and 200 again once it is back")
t.isnt(runtime_pid(dep), pid, "the runtime was restarted")
t.is_(len(rows_of(dep)), 60 + oks, "one operation row per 200, none for the 503s")

# ---- a runtime that dies while running a call ----
log_path = os.path.join(var, "log", "runtime-%s.log" % dep)
for i in range(nworkers * 2):
    predict(dep, [0, 2.5])   # every worker has a kept connection to this runtime
n_rows = len(rows_of(dep))
r = predict(dep, [1, 4242.5])
body = t.is_error(r, 502, "a runtime that dies while running the call: 502 (the model ran)")
t.like(body.get("detail") or "", r"closed the connection without answering|failed while answering",
       "the detail says the runtime went away mid-call")
ops = rows_of(dep)
t.is_(len(ops), n_rows + 1, "the call is recorded once")
t.is_(json.loads(ops[-1]["result"]).get("status") if ops else None, 502, "as a failed call")
time.sleep(1)
try:
    with open(log_path, encoding="utf-8", errors="replace") as f:
        ran = len(re.findall(r"dying-model-ran 4242\.5", f.read()))
except OSError as e:
    ran = "no log: %s" % e
t.is_(ran, 1, "the model ran once: the call was not sent again")

# ---- workers killed under load ----
end = time.time() + 90
while time.time() < end and predict(dep, [0, 1.0]).status_code != 200:
    time.sleep(0.2)
n_rows = len(rows_of(dep))
acked, statuses, stop = [], {}, threading.Event()
lock = threading.Lock()


def client():
    s = requests.Session()
    while not stop.is_set():
        try:
            r = predict(dep, [0, 3.0], s)
        except requests.RequestException:
            s = requests.Session()
            continue
        with lock:
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if 200 <= r.status_code < 300:
                acked.append(r.json().get("operationid"))


threads = [threading.Thread(target=client) for _ in range(6)]
for th in threads:
    th.start()
killed = 0
for _ in range(3):
    time.sleep(0.7)
    for w in workers()[:4]:
        try:
            os.kill(w, signal.SIGKILL)
            killed += 1
        except OSError:
            pass
time.sleep(0.7)
stop.set()
for th in threads:
    th.join()
t.ok(killed >= 3 and len(acked) >= 20, "%d workers killed under load; %d calls acknowledged" % (killed, len(acked)),
     statuses)
stored = {r["operation_uuid"] for r in rows_of(dep)}
missing = [o for o in acked if o not in stored]
t.is_(missing, [], "every acknowledged call's operation row is stored")
t.ok(len(stored) - n_rows >= len(acked), "at least one row per acknowledged call (%d rows, %d acknowledged)"
     % (len(stored) - n_rows, len(acked)))
t.ok(len(set(acked)) == len(acked), "no operation id acknowledged twice")
end = time.time() + 30
while time.time() < end and len(workers()) < nworkers:
    time.sleep(0.2)
t.is_(len(workers()), nworkers, "the master replaced the killed workers")
t.is_status(predict(dep, [0, 5.0]), 200, "and the deployment answers")

t.done()
