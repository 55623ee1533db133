#!/usr/bin/python3
# Slow peers do not take the API down: predicts on a model that sleeps,
# uploads that send a byte a second (or nothing), and a data link whose
# server trickles each fill the slow pool, while /health and the
# registry's reads (the fast pool) still answer within a second.  The slow
# requests themselves end: a deployment takes at most
# MLC_PREDICT_MAX_PER_DEPLOYMENT calls at once (429 beyond), nginx at most
# MLC_CLIENT_MAX_SLOW slow requests per client address (429 beyond),
# crawling and stalled uploads are cut off (408, no file left), a data
# link is given up after MLC_LINK_TIMEOUT (504), and a model that does not
# answer within MLC_PREDICT_TIMEOUT gets 504 and a failed operation row.
import http.server
import json
import os
import pickle
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import fcgi
import mlcapi
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR", "MLC_ROOT", exclusive=True)
import mlcmodels as mm
import requests

need = ("MLC_SLOW_WORKERS", "MLC_PREDICT_MAX_PER_DEPLOYMENT", "MLC_CLIENT_MAX_SLOW",
        "MLC_UPLOAD_IDLE_TIMEOUT", "MLC_UPLOAD_MIN_RATE", "MLC_LINK_TIMEOUT")
if not all(os.environ.get(k, "").isdigit() for k in need):
    t.skip_all("needs the small limits scripts/mlc test sets (%s)" % ", ".join(need))
SLOW = int(os.environ["MLC_SLOW_WORKERS"])
PER_DEP = int(os.environ["MLC_PREDICT_MAX_PER_DEPLOYMENT"])
PER_CLIENT = int(os.environ["MLC_CLIENT_MAX_SLOW"])
IDLE = int(os.environ["MLC_UPLOAD_IDLE_TIMEOUT"])
RATE = int(os.environ["MLC_UPLOAD_MIN_RATE"])
LINK_TIMEOUT = int(os.environ["MLC_LINK_TIMEOUT"])
FAST = int(os.environ.get("MLC_WORKERS") or 0) or 4 * os.cpu_count()
BASE = t.BASE_URL
host, port = BASE.split("//")[1].split(":")
port = int(port)
var, root = os.environ["MLC_VAR"], os.environ["MLC_ROOT"]
store = os.environ.get("MLC_ARTIFACTS") or os.path.join(var, "artifacts")
t.note("pools: %d fast and %d slow workers; %d calls per deployment, %d slow requests per client"
       % (FAST, SLOW, PER_DEP, PER_CLIENT))


# A model whose predict sleeps for the first value of the first row
# (seconds) and answers each row's first value.  It unpickles, inside the
# runtime, through eval: no module of the tests needs to be importable there.
class Sleepy:
    def __reduce__(self):
        return (eval, ("type('Sleepy', (), {'predict': lambda self, X: "
                       "(__import__('time').sleep(float(X[0][0])), [float(r[0]) for r in X])[1]})()",
                       {}))


def sleepy_deployment(**kw):
    model = mm.register(Sleepy(), None, None, ["seconds"], with_data=False,
                        pickled=pickle.dumps(Sleepy(), protocol=4))
    r = mm.deploy(model["modelid"], **kw)
    if r.status_code != 201:
        raise RuntimeError("deploy failed: %s" % t.describe(r))
    return model, r.json()["deployment_id"]


def wait_deployed(dep):
    st = mm.wait_status(dep)
    if (st or {}).get("status") != "deployed":
        raise RuntimeError("deployment %s did not come up: %s" % (dep, st))


model_a, dep_a = sleepy_deployment()
model_b, dep_b = sleepy_deployment()
model_l, dep_l = sleepy_deployment(inference_data=1)
for d in (dep_a, dep_b, dep_l):
    wait_deployed(d)
mid = model_a["modelid"]

r = requests.post(BASE + "/deployment/%s/predict" % dep_a, json={"data": [0.1]}, timeout=30)
t.is_((r.status_code, (t.body_of(r) or {}).get("prediction")), (200, [0.1]),
      "the sleeping model answers a call that sleeps 0.1 s", t.describe(r))


def timed_get(path):
    t0 = time.monotonic()
    try:
        status = requests.get(BASE + path, timeout=10).status_code
    except requests.RequestException as e:
        status = repr(e)
    return status, time.monotonic() - t0


READS = ("/health", "/model/all?limit=5", "/model/" + mid, "/deployment/all?limit=5")


def reads_answer(while_what, rounds=3, gap=0.3):
    """Each read answers 200 within 1 s, a few times over."""
    slow = []
    for i in range(rounds):
        for path in READS:
            status, took = timed_get(path)
            if status != 200 or took >= 1.0:
                slow.append((path, status, round(took, 3)))
        time.sleep(gap)
    t.is_(slow, [], "while %s, GET %s each answer 200 within 1 s (%d rounds)"
          % (while_what, ", ".join(p.split("?")[0] for p in READS), rounds))


class Call(threading.Thread):
    """One request in a thread of its own: status, body, headers, seconds."""

    def __init__(self, method, path, **kw):
        super().__init__(daemon=True)
        self.args, self.kw = (method, BASE + path), dict(kw, timeout=kw.get("timeout", 60))
        self.status, self.body, self.headers, self.took = None, None, {}, None
        self.start()

    def run(self):
        t0 = time.monotonic()
        try:
            r = requests.request(*self.args, **self.kw)
            self.status, self.body, self.headers = r.status_code, t.body_of(r), r.headers
        except requests.RequestException as e:
            self.body = repr(e)
        self.took = time.monotonic() - t0

    def result(self, seconds=60):
        self.join(seconds)
        return self.status


def predict_call(dep, body):
    return Call("POST", "/deployment/%s/predict" % dep, json=body)


# ---- (a) predicts that sleep ----------------------------------------------
HOLD = 3.0
on_a = [predict_call(dep_a, {"data": [HOLD]}) for _ in range(PER_DEP)]
time.sleep(0.8)
extra = predict_call(dep_a, {"data": [0]})
extra.result(10)
t.is_(extra.status, 429, "a call beyond the %d a deployment takes at once answers 429" % PER_DEP,
      extra.body)
t.like((extra.body or {}).get("detail", "") if isinstance(extra.body, dict) else "",
       r"MLC_PREDICT_MAX_PER_DEPLOYMENT", "the 429 says which limit it hit")
t.is_(extra.headers.get("Retry-After"), "1", "the 429 carries Retry-After: 1")
t.ok(extra.took is not None and 0.2 < extra.took < 1.0,
     "the 429 comes after a quarter second's wait for a slot, not after the model (%.2f s)"
     % (extra.took or -1))
# More calls in flight than both pools have workers: the rest wait in the
# slow socket's queue.
n_b = FAST + SLOW - PER_DEP + 1
on_b = [predict_call(dep_b, {"data": [HOLD]}) for _ in range(n_b)]
time.sleep(0.3)
reads_answer("%d predicts hang (more than the %d workers of both pools)" % (PER_DEP + n_b, FAST + SLOW))
for c in on_a + on_b:
    c.result(4 * HOLD + 30)
t.is_([(c.status, (c.body or {}).get("prediction")) for c in on_a], [(200, [HOLD])] * PER_DEP,
      "the deployment's %d calls in flight each answer 200 after their %g s" % (PER_DEP, HOLD))
got_b = sorted(c.status for c in on_b if c.status is not None)
t.ok(len(got_b) == n_b and set(got_b) <= {200, 429} and 200 in got_b,
     "the other deployment's %d calls each answer 200 or 429 (none waits forever or fails)" % n_b,
     [(c.status, c.body) for c in on_b])
t.ok(all(c.took < 3 * HOLD + 10 for c in on_a + on_b),
     "every call ended within three model sleeps", [round(c.took or -1, 2) for c in on_a + on_b])
r = requests.post(BASE + "/deployment/%s/predict" % dep_a, json={"data": [0]}, timeout=10)
t.is_(r.status_code, 200, "afterwards the deployment takes calls again (its slots were given back)")
burst = [predict_call(dep_a, {"data": [0.02]}) for _ in range(PER_DEP + 3)]
t.is_([c.result(30) for c in burst], [200] * (PER_DEP + 3),
      "a burst of %d quick calls on one deployment all answer 200: a call waits briefly for a slot "
      "before it is refused" % (PER_DEP + 3), [c.body for c in burst if c.status != 200])


# ---- (b) uploads that crawl or stall ----------------------------------------
def tmp_files():
    d = os.path.join(store, ".tmp")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def multipart(boundary):
    return ("--%s\r\nContent-Disposition: form-data; name=\"file_kind\"\r\n\r\ndata\r\n"
            "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n%s\r\n--%s--\r\n"
            % (boundary, boundary, "a,b\n" + "1,2\n" * 200, boundary)).encode()


class SlowUpload(threading.Thread):
    """An upload over a raw socket that sends its body one byte a second
    (chunked: one byte per chunk), or nothing at all after the headers
    (stall).  reply: what the server sent before closing; took: seconds
    from the first body byte (or the headers) to the reply or close."""

    def __init__(self, chunked=False, stall=False):
        super().__init__(daemon=True)
        self.chunked, self.stall = chunked, stall
        self.reply, self.took, self.sent = b"", None, 0
        self.body = multipart("slowB")
        self.sock = socket.create_connection((host, port))
        head = ("POST /model/%s/upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                "Content-Type: multipart/form-data; boundary=slowB\r\n" % mid)
        if t.TOKEN:
            head += "Authorization: Bearer %s\r\n" % t.TOKEN
        head += "Transfer-Encoding: chunked\r\n" if chunked else "Content-Length: %d\r\n" % len(self.body)
        self.sock.sendall((head + "\r\n").encode())
        self.start()

    def run(self):
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < 40:
                if not self.stall and self.sent < len(self.body):
                    b = self.body[self.sent:self.sent + 1]
                    self.sock.sendall(b"1\r\n" + b + b"\r\n" if self.chunked else b)
                    self.sent += 1
                ready, _, _ = select.select([self.sock], [], [], 1.0)
                if ready:
                    break
            self.sock.settimeout(10)
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.reply += data
        except OSError:
            pass
        self.took = time.monotonic() - t0
        self.sock.close()

    def status(self):
        line = self.reply.split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) > 1 and line[1].isdigit() else None


before_rows = t.db_rows("SELECT COUNT(*) AS n FROM artifacts WHERE modelid = %s", mid)[0]["n"]
# The stalled ones first: they reach the first free workers, whose own
# idle deadline then comes before nginx's (a few seconds later).
stalled = [SlowUpload(stall=True) for _ in range(PER_CLIENT - 6)]
crawling = [SlowUpload(chunked=i % 2 == 1) for i in range(6)]
time.sleep(0.5)
over = predict_call(dep_a, {"data": [0]})
over.result(10)
t.is_(over.status, 429, "with %d slow requests of this address in flight, nginx refuses one more "
      "with 429 (MLC_CLIENT_MAX_SLOW)" % PER_CLIENT, over.body)
t.like((over.body or {}).get("detail", "") if isinstance(over.body, dict) else "",
       r"too many uploads, predictions", "nginx's 429 is JSON saying why")
reads_answer("six uploads send one byte a second and %d send nothing" % len(stalled), rounds=4)
for u in crawling + stalled:
    u.join(60)
t.is_([u.status() for u in crawling], [408] * len(crawling),
      "uploads that crawl at one byte a second are cut off with 408 (chunked or not)",
      [u.reply[:300] for u in crawling])
t.like(b"".join(u.reply for u in crawling[:1]).decode("latin-1"),
       r"below the minimum of %d bytes/s" % RATE, "the 408 says the upload was below the minimum rate")
t.ok(all(u.took < 2 * IDLE + 8 for u in crawling),
     "each crawling upload ended within its deadline of about %d s after it reached a worker" % IDLE,
     [round(u.took or -1, 1) for u in crawling])
t.ok(all(u.status() == 408 or (u.status() is None and u.took is not None) for u in stalled)
     and all(u.took < 2 * IDLE + 12 for u in stalled),
     "uploads that send nothing are cut off too (408, or closed by nginx)",
     [(u.status(), round(u.took or -1, 1), u.reply[:200]) for u in stalled])
t.ok(any(b"no part of the request body arrived for %d s" % IDLE in u.reply for u in stalled),
     "a stalled upload's 408 says that nothing arrived for MLC_UPLOAD_IDLE_TIMEOUT seconds",
     [u.reply[:300] for u in stalled])
deadline = time.time() + 10
while tmp_files() and time.time() < deadline:
    time.sleep(0.1)
t.is_(tmp_files(), [], "the abandoned uploads left no temporary file")
t.is_(t.db_rows("SELECT COUNT(*) AS n FROM artifacts WHERE modelid = %s", mid)[0]["n"], before_rows,
      "and no artifact row")
with open(os.path.join(var, "log", "mlc-api.log"), encoding="utf-8", errors="replace") as f:
    log = f.read()
t.like(log, r"warn req=\S+ POST /model/%s/upload: the request body arrived at \d+ bytes/s" % mid,
       "the worker logs each abandoned upload")
r = requests.post(BASE + "/model/%s/upload" % mid, files={"file": ("ok.csv", b"a,b\n1,2\n"),
                                                           "file_kind": (None, "data")}, timeout=30)
t.is_status(r, 201, "an upload at full speed afterwards succeeds")


# ---- (c) a data link whose server trickles ----------------------------------
class Trickle(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"seconds\n" + b"0\n" * 1000
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(len(body)):
                if stop_trickle.is_set():
                    break
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass

    def log_message(self, *a):
        pass


stop_trickle = threading.Event()
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
srv.daemon_threads = True
threading.Thread(target=srv.serve_forever, daemon=True).start()
link = "http://127.0.0.1:%d/data.csv" % srv.server_address[1]
try:
    on_link = [predict_call(dep_l, {"data_link": link}) for _ in range(PER_DEP)]
    time.sleep(0.5)
    reads_answer("%d predicts wait for a data link that sends a byte every 0.5 s" % PER_DEP)
    for c in on_link:
        c.result(LINK_TIMEOUT + 30)
    t.is_([c.status for c in on_link], [504] * PER_DEP,
          "each call on the trickling data link answers 504", [c.body for c in on_link])
    t.like(((on_link[0].body or {}) if isinstance(on_link[0].body, dict) else {}).get("detail", ""),
           r"data_link did not finish sending within %d s" % LINK_TIMEOUT,
           "the 504 says the data link took longer than MLC_LINK_TIMEOUT")
    t.ok(all(LINK_TIMEOUT - 0.5 <= (c.took or 0) < LINK_TIMEOUT + 5 for c in on_link),
         "the fetch was given up after MLC_LINK_TIMEOUT (%d s) in total, though bytes kept coming"
         % LINK_TIMEOUT, [round(c.took or -1, 2) for c in on_link])
finally:
    stop_trickle.set()
    srv.shutdown()


# ---- (d) a model slower than MLC_PREDICT_TIMEOUT -----------------------------
# A second master with a 2 s predict timeout, on sockets of its own.
sock = os.path.join(var, "run", "t0220.sock")
api = mlcapi.Api(sock, os.path.join(var, "log", "t0220-mlc-api.log"), drop=("MLC_SLOW_SOCKET",),
                 MLC_WORKERS="1", MLC_SLOW_WORKERS="1", MLC_PREDICT_TIMEOUT="2")
try:
    slow_sock = os.path.join(var, "run", "t0220-slow.sock")
    for _ in range(200):
        if os.path.exists(sock) and os.path.exists(slow_sock):
            break
        time.sleep(0.05)
    t.ok(os.path.exists(slow_sock), "a master started with only MLC_SOCKET set puts its slow socket "
         "beside it (t0220-slow.sock), not on the instance's")
    owner = t.uniq("t0220-owner")
    t0 = time.monotonic()
    status, _, reply = fcgi.request(slow_sock, "/deployment/%s/predict" % dep_a, "POST",
                                    json.dumps({"data": [4], "ownerid": owner}).encode())
    took = time.monotonic() - t0
    body = json.loads(reply or b"{}")
    t.is_(status, 504, "a call the model takes 4 s over answers 504 with MLC_PREDICT_TIMEOUT=2", reply)
    t.ok(1.5 < took < 3.5, "after about 2 s (%.2f s)" % took)
    t.like(body.get("detail", ""), r"deployment '%s' did not answer within 2 s" % dep_a,
           "the 504 names the deployment and the timeout")
    t.like(body.get("operationid", ""), t.UUID4_RE, "the 504 carries the operation's id")
    rows = t.db_rows("SELECT ownerid, deployment_id, modelid, data, result FROM operations "
                     "WHERE operation_uuid = %s", body.get("operationid", ""))
    row = rows[0] if rows else {}
    t.is_((row.get("ownerid"), row.get("deployment_id"), row.get("modelid")), (owner, dep_a, mid),
          "the timed-out call is recorded as an operation of its owner, deployment and model")
    t.is_(json.loads(row.get("data") or "null"), [[4]], "with the rows sent to the model")
    res = json.loads(row.get("result") or "null") or {}
    t.is_((res.get("error"), res.get("status")), (body.get("detail"), 504),
          "and a result saying it failed: {\"error\": <the 504's detail>, \"status\": 504}", res)
    ops = t.body_of(t.get("/deployment/get/opos/" + owner)) or []
    t.is_([o.get("operationid") for o in ops], [body.get("operationid")],
          "GET /deployment/get/opos lists the failed call")
finally:
    api.stop()
t.ok(not os.path.exists(sock) and not os.path.exists(os.path.join(var, "run", "t0220-slow.sock")),
     "the second master removed both its sockets")
t.done()
