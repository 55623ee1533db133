#!/usr/bin/python3
# The mlc-api master and its two worker pools: each pool's socket answers,
# a dead worker is replaced in the pool it came from, and a stopping master
# lets requests in flight finish.  A second master is started on its own
# sockets so the shared instance is not disturbed.
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import fcgi
import mlctap as t

t.need_instance()
root, var = os.environ["MLC_ROOT"], os.environ["MLC_VAR"]
sock = os.path.join(var, "run", "t0200.sock")
slow_sock = os.path.join(var, "run", "t0200-slow.sock")
log_path = os.path.join(var, "log", "t0200-mlc-api.log")
log = open(log_path, "ab")
env = dict(os.environ, MLC_SOCKET=sock, MLC_WORKERS="2", MLC_SLOW_WORKERS="1",
           MLC_SHUTDOWN_TIMEOUT="20")
env.pop("MLC_SLOW_SOCKET", None)


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return sorted(int(p) for p in out.split())


def wait_until(cond, seconds=10):
    end = time.time() + seconds
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


master = subprocess.Popen([os.environ.get("MLC_API_BIN") or os.path.join(root, "app", "mlc-api"), "-c", env["MLC_CONF"]],
                          env=env, stdout=log, stderr=log)
try:
    t.ok(wait_until(lambda: os.path.exists(sock)), "the master opens its FastCGI socket")
    t.ok(os.path.exists(slow_sock), "and the slow pool's socket beside it (MLC_SOCKET with -slow)")
    t.ok(wait_until(lambda: len(children(master.pid)) == 3),
         "the master forks MLC_WORKERS + MLC_SLOW_WORKERS workers (2 + 1)", children(master.pid))
    status, _, body = fcgi.request(sock, "/health")
    t.is_(status, 200, "a worker answers GET /health over FastCGI")
    status, _, body = fcgi.request(slow_sock, "/health")
    t.is_(status, 200, "a slow-pool worker answers too (both pools serve every route)")

    before = children(master.pid)
    os.kill(before[0], signal.SIGKILL)
    t.ok(wait_until(lambda: len(children(master.pid)) == 3 and before[0] not in children(master.pid)),
         "a worker killed with SIGKILL is replaced by a new one")
    statuses = [fcgi.request(sock, "/health")[0] for _ in range(20)]
    t.is_(statuses, [200] * 20, "requests after the replacement all succeed")

    # Kill the slow pool's only worker: its replacement serves the slow
    # socket (else the request below would wait forever).
    with open(log_path, "rb") as f:
        seen = len(f.read())
    for pid in children(master.pid):
        os.kill(pid, signal.SIGKILL)
    t.ok(wait_until(lambda: len(children(master.pid)) == 3 and not set(before) & set(children(master.pid)), 15),
         "every worker killed at once is replaced, three again")
    with open(log_path, "rb") as f:
        said = f.read()[seen:].decode(errors="replace")
    t.is_((said.count("fast worker"), said.count("slow worker")), (2, 1),
          "the master logs two fast workers and one slow worker respawned", said)
    status, _, body = fcgi.request(slow_sock, "/health")
    t.is_(status, 200, "the slow pool answers again after its worker was replaced")

    # A request whose body is only half sent when the master is told to stop
    # must still complete once the rest arrives.
    body = b'{"modelname": "graceful", "modelkind": "regression", "drift_detection": null}'
    slow = fcgi.Request("/model/add", "POST", sock, content_length=len(body))
    slow.send(body[:10])
    time.sleep(0.3)
    master.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    t.ok(master.poll() is None, "the master waits while a request is in flight")
    slow.send(body[10:])
    status, headers, reply = slow.finish()
    t.is_(status, 201, "the in-flight request completes after SIGTERM")
    t.ok(wait_until(lambda: master.poll() is not None, 15), "the master exits once the request is done")
    t.is_(master.returncode, 0, "the master exits with status 0")
    t.ok(not os.path.exists(sock) and not os.path.exists(slow_sock), "both sockets are removed on exit")
finally:
    if master.poll() is None:
        master.kill()
    master.wait()
t.done()
