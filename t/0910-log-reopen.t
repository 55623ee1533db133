#!/usr/bin/python3
# Log rotation on the running instance, as logrotate does it: the log file
# is moved away and the process gets SIGHUP.  mlc-api's master and every
# worker go on in a new file at the same path, with the same pids, and a
# stream of requests meanwhile sees no failure; mlc-spooler and mlc-drift
# reopen theirs too.
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import fcgi
import mlctap as t

t.need_instance("MLC_VAR", exclusive=True)
var = os.environ["MLC_VAR"]
logdir, rundir = os.path.join(var, "log"), os.path.join(var, "run")


def read_pid(name):
    with open(os.path.join(rundir, name + ".pid")) as f:
        return int(f.read().strip())


def alive(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return "\nState:\tZ" not in f.read()
    except OSError:
        return False


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return sorted(int(p) for p in out.split())


def lines(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def wait_until(cond, seconds=10):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def reopened_by(path, marker="reopened the log file"):
    """The pids (mlc-api's "pid=N" field) of the lines saying so."""
    pids = set()
    for line in lines(path):
        if marker in line:
            for field in line.split():
                if field.startswith("pid="):
                    pids.add(int(field[4:]))
    return pids


# ---- mlc-api: master and workers --------------------------------------------

master = read_pid("mlc-api")
workers = children(master)
t.ok(alive(master) and len(workers) >= 2,
     "the instance's mlc-api master (run/mlc-api.pid) runs with the workers of both pools", workers)

log = os.path.join(logdir, "mlc-api.log")
rotated = log + ".t0910"
t.ok(os.path.isfile(log), "mlc-api writes log/mlc-api.log")

# Requests from four clients at once, for the whole rotation, and a fifth
# on the slow pool's socket (nginx sends it only uploads, predictions and
# deployment stops): a worker reopens the file when it takes a request, so
# every worker of both pools must get some.
results, errors, stop = [], [], threading.Event()
slow_sock = os.path.join(os.path.dirname(os.environ["MLC_SOCKET"]), "mlc-api-slow.sock")


def client():
    import requests
    with requests.Session() as s:
        while not stop.is_set():
            try:
                results.append(s.get(t.BASE_URL + "/health", timeout=10).status_code)
            except requests.RequestException as e:
                errors.append(repr(e))


def slow_client():
    while not stop.is_set():
        try:
            results.append(fcgi.request(slow_sock, "/health")[0])
        except OSError as e:
            errors.append(repr(e))
        time.sleep(0.01)


threads = [threading.Thread(target=client) for _ in range(4)] + [threading.Thread(target=slow_client)]
for th in threads:
    th.start()
try:
    time.sleep(0.5)
    os.rename(log, rotated)
    os.kill(master, signal.SIGHUP)
    t.ok(wait_until(lambda: master in reopened_by(log), 10),
         "after the move and SIGHUP the master writes to a new log/mlc-api.log")
    first = (lines(log) or [""])[0]
    t.like(first, r"pid=%d info req=- reopened the log file %s$" % (master, re.escape(log)),
           "the new file starts with the master's line saying it reopened the file")
    # Each worker takes the signal when it next waits for work: at once when
    # idle (with nginx keeping its connections, some see no request at all).
    t.ok(wait_until(lambda: set(workers) <= reopened_by(log), 15),
         "every worker reopens it too, idle ones included",
         "workers %s, lines from %s" % (workers, sorted(reopened_by(log))))
    time.sleep(0.5)
finally:
    stop.set()
    for th in threads:
        th.join()

t.ok(len(results) >= 100, "the clients sent requests all along (%d)" % len(results))
t.is_(errors, [], "no request failed to get an answer during the rotation")
t.is_(sorted(set(results)), [200], "every GET /health during the rotation answered 200")
t.ok(alive(master), "the master is still running after SIGHUP")
t.is_(children(master), workers, "the workers are the same processes (same pids)")
t.is_(sorted(reopened_by(rotated)), [],
      "nothing said 'reopened' into the moved file: every process switched cleanly")
t.ok(any("pid=%d" % master in line for line in lines(rotated)),
     "the moved file keeps what was logged before (the master's start line)")

# A second rotation works the same way.
os.rename(log, rotated + ".2")
os.kill(master, signal.SIGHUP)
t.ok(wait_until(lambda: master in reopened_by(log), 10),
     "a second SIGHUP reopens again, after another move")
t.is_(t.get("/health").status_code, 200, "the API still answers after the second rotation")

# ---- mlc-spooler and mlc-drift ----------------------------------------------

for name in ("mlc-spooler", "mlc-drift"):
    # mlc-drift runs as the service user and logs where that user may
    # create files: log/service/.
    path = os.path.join(logdir, *(("service",) if name == "mlc-drift" else ()), name + ".log")
    try:
        pid = read_pid(name)
    except (OSError, ValueError) as e:
        t.ok(False, "%s reopens its log on SIGHUP" % name, "no pid in run/%s.pid: %s" % (name, e))
        continue
    os.rename(path, path + ".t0910")
    os.kill(pid, signal.SIGHUP)
    t.ok(wait_until(lambda: any("reopened the log file %s" % path in line
                                for line in lines(path)), 10),
         "%s starts a new log/%s.log after the move and SIGHUP" % (name, name),
         "\n".join(lines(path)[-5:]))
    time.sleep(0.3)
    t.ok(alive(pid) and read_pid(name) == pid, "%s keeps running (same pid)" % name)

t.done()
