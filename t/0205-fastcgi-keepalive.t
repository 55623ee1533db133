#!/usr/bin/python3
# Kept-alive FastCGI connections: nginx keeps its connections to the fast
# pool open between requests, and each mlc-api worker serves several such
# connections while it goes on accepting new ones, so idle kept connections
# never leave a new one waiting; a worker closes a connection only when its
# peer did, when the peer sent garbage, or when the worker stops.
import json
import os
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import fcgi
import mlcapi
import mlctap as t

t.need_instance()
var = os.environ["MLC_VAR"]


def connections(pool):
    text = t.get("/metrics").text
    m = re.search(r'^mlc_fastcgi_connections_total\{pool="%s"\} (\d+)$' % pool, text, re.M)
    return int(m.group(1)) if m else None


# ---- through nginx ----------------------------------------------------------
before = connections("fast")
t.ok(before is not None, "/metrics counts the connections each pool accepted")
statuses = [t.get("/health").status_code for _ in range(200)]
t.is_(set(statuses), {200}, "200 requests through nginx, one after another, all answered")
after = connections("fast")
# nginx opens a connection only when none of its worker's kept ones is
# free: a handful for 200 sequential requests (there were 200 before).
t.ok(after is not None and after - before <= 20,
     "nginx keeps its connections to the fast pool: %s new for 200 requests + 1"
     % (None if after is None else after - before))

# Writes on kept connections, in parallel from several clients: no request
# is lost or answered twice, none gets nginx's 502.
kind = t.uniq("ka")
results = []


def writer(n):
    import requests
    s = requests.Session()
    for i in range(n):
        r = s.post(t.BASE_URL + "/model/add", headers={"Authorization": "Bearer " + t.TOKEN}
                   if t.TOKEN else {}, json=t.minimal_model(modelkind=kind), timeout=30)
        results.append(r.status_code)
        r = s.get(t.BASE_URL + "/model/getkind/" + kind + "?limit=1",
                  headers={"Authorization": "Bearer " + t.TOKEN} if t.TOKEN else {}, timeout=30)
        results.append(r.status_code)


threads = [threading.Thread(target=writer, args=(25,)) for _ in range(8)]
for th in threads:
    th.start()
for th in threads:
    th.join()
t.is_(sorted(set(results)), [200, 201] if 201 in results else [200],
      "400 writes and reads from 8 kept-alive clients: only 2xx (%d answers)" % len(results))
listed = t.get("/model/getkind/" + kind + "?limit=1000")
t.is_(len(listed.json()), 200, "each of the 200 models was added exactly once")
for m in listed.json():
    t.delete("/model/" + m["modelid"])

# ---- one worker, many connections (a master of its own) --------------------
sock = os.path.join(var, "run", "t0205.sock")
api = mlcapi.Api(sock, os.path.join(var, "log", "t0205-mlc-api.log"), MLC_WORKERS="1",
                 MLC_SLOW_WORKERS="1", MLC_SHUTDOWN_TIMEOUT="20")
t.ok(api.wait_up(30), "a second mlc-api with one fast worker is up")
time.sleep(0.3)

conns = [fcgi.Conn(sock) for _ in range(6)]
got = []
for rnd in range(3):
    for c in conns:
        got.append(c.request("/health")[0])
t.is_(got, [200] * 18, "one worker serves 6 kept connections, 3 requests each, interleaved")

# The starvation case: the only worker holds 6 idle kept connections; a
# new connection is still answered at once.
started = time.monotonic()
status, _, _ = fcgi.request(sock, "/health")
took = time.monotonic() - started
t.ok(status == 200 and took < 2, "a new connection is served while the worker holds 6 idle "
     "kept ones (%s in %.2f s)" % (status, took))

# A peer that closes its kept connection frees it; the others go on.
conns[0].close()
conns[1].close()
t.is_([c.request("/health")[0] for c in conns[2:]], [200] * 4,
      "connections closed by their peer are dropped, the others still served")

# Garbage on one kept connection: the worker closes that one only.
bad = conns[2]
bad.send_raw(b"\x07\x63this is not FastCGI at all" * 10)
t.ok(bad.closed_by_peer(5), "a connection that sends garbage is closed by the worker")
t.is_([c.request("/health")[0] for c in conns[3:]], [200] * 3,
      "the worker still serves its other connections after the garbage")

# A request split over several writes with pauses on a kept connection.
c = conns[3]
body = json.dumps(t.minimal_model(modelkind=t.uniq("ka-split"))).encode()
env = {"REQUEST_METHOD": "POST", "REQUEST_URI": "/model/add", "QUERY_STRING": "",
       "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body))}
if t.TOKEN:
    env["HTTP_AUTHORIZATION"] = "Bearer " + t.TOKEN
import struct
raw = (fcgi._record(fcgi.BEGIN_REQUEST, struct.pack(">HB5x", 1, 1))
       + fcgi._record(fcgi.PARAMS, fcgi._params(env)) + fcgi._record(fcgi.PARAMS, b"")
       + fcgi._record(fcgi.STDIN, body) + fcgi._record(fcgi.STDIN, b""))
c.send_raw(raw[:20])
time.sleep(0.2)
c.send_raw(raw[20:-8])
time.sleep(0.2)
c.send_raw(raw[-8:])
status, _, out = c.reply()
t.is_(status, 201, "a POST whose records arrive in pieces on a kept connection is served")
status, _, _ = c.request("/health")
t.is_(status, 200, "the connection is still usable after it")

# A request answered before its body was read (a refused token, a body
# that is not JSON): the rest of the body is not taken for the next request.
big = b'{"modelname": "' + b"x" * 200000 + b'"}'
status, _, _ = c.request("/model/add", "POST", body=big, token="not-a-token")
t.ok(status in (401, 403) or not t.TOKEN, "a POST with a refused token on a kept connection: %s"
     % status)
status, _, _ = c.request("/model/add", "POST", body=b"[" * 300000)
t.ok(status is not None and 400 <= status < 500, "a POST of 300 KB of garbage JSON: %s" % status)
t.is_([c.request("/health")[0] for _ in range(3)], [200] * 3,
      "the connection still serves the next requests, the unread bodies skipped")

# Stopping: a master whose worker holds idle kept connections stops at once
# (it closes them), not after nginx's keepalive timeout or its own
# MLC_SHUTDOWN_TIMEOUT, even while requests keep coming on one of them; a
# request already sent is answered first.
slow_client = conns[4]
hammered = []


def hammer(conn):
    # One request after another on a kept connection, until it is closed.
    while True:
        status = conn.request("/health")[0]
        if status is None:
            return
        hammered.append(status)


th = threading.Thread(target=hammer, args=(conns[5],), daemon=True)
th.start()
t.wait_for(lambda: len(hammered) > 20, 10)
api.proc.send_signal(signal.SIGTERM)
started = time.monotonic()
try:
    api.proc.wait(15)
except Exception:
    pass
took = time.monotonic() - started
t.ok(api.proc.poll() is not None and took < 10,
     "SIGTERM with idle kept connections open: the master is gone in %.1f s" % took)
t.ok(slow_client.closed_by_peer(2), "the worker closed the idle kept connections on its way out")
th.join(5)
t.ok(not th.is_alive() and set(hammered) == {200},
     "a client sending request after request on a kept connection does not hold the stop "
     "off; it got %d answers, all 200, then the close" % len(hammered))
t.ok(not os.path.exists(sock), "the master removed its socket")
for c in conns:
    c.close()

# ---- a new connection wakes one idle worker --------------------------------
# nginx opens a connection to the slow pool for every request.  Idle
# workers wait for one as exclusive waiters: the connection wakes one of
# them, not the whole pool (each woken worker costs a switch to it and an
# accept that finds nothing).
sock = os.path.join(var, "run", "t0205b.sock")
slow_sock = os.path.join(var, "run", "t0205b-slow.sock")
api = mlcapi.Api(sock, os.path.join(var, "log", "t0205-mlc-api.log"), MLC_WORKERS="1",
                 MLC_SLOW_WORKERS="6")
t.ok(api.wait_up(30) and t.wait_for(lambda: os.path.exists(slow_sock), 10),
     "an mlc-api with six slow workers is up")


def switches():
    out = {}
    for name in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % name) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) != api.proc.pid:
                    continue
            with open("/proc/%s/status" % name) as f:
                out[name] = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", f.read(), re.M)[1])
        except (OSError, ValueError, IndexError):
            pass
    return out


t.wait_for(lambda: len(switches()) == 7, 10)
time.sleep(0.5)
before = switches()
answers = [fcgi.request(slow_sock, "/health")[0] for _ in range(100)]
after = switches()
t.is_(set(answers), {200}, "100 requests on new connections to the slow pool, one after another")
woken = sorted(after.get(pid, 0) - n for pid, n in before.items())
t.ok(len(woken) == 7 and sum(1 for d in woken if d < 50) >= 4,
     "most workers were not woken by them (voluntary switches of the 7 workers: %s)" % woken)
api.stop()

t.done()
