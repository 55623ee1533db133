#!/usr/bin/python3
"""soak.py - the load and the sampling of bench/soak.sh.

    soak.py BASE_URL MLC_VAR SECONDS CONNECTIONS OUT_DIR

Sets up a few models (one deployed for predicts), then CONNECTIONS threads,
each with its own kept-alive HTTP connection, send a mix of requests for
SECONDS: reads (a model, a page of models, a tag search, a deployment's
status), writes (add and delete models of their own), uploads (16 KiB files,
the model replaced every 40 uploads so the store stays flat), predicts, and
deploy/delete churn (at most SOAK_CHURN threads at a time deploy a model,
wait until it serves, predict once, delete it).  Every SOAK_SAMPLE seconds
a sampler records the resident memory (VmRSS) and open file descriptors of
every process of the instance: mlc-api master and workers, nginx master and
workers, mariadbd, mlc-spooler, mlc-drift and the model runtimes.

Prints a report and writes OUT_DIR/soak.json.  Exits 0 whatever it
measures (it is a benchmark), 1 only when the setup fails.  Loopback only.
"""
import http.client
import json
import os
import pickle
import random
import sys
import threading
import time
import urllib.parse

from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

BASE, VAR, SECONDS, CONNECTIONS, OUT = (sys.argv[1], sys.argv[2], float(sys.argv[3]),
                                        int(sys.argv[4]), sys.argv[5])
SAMPLE_EVERY = float(os.environ.get("SOAK_SAMPLE") or 10)
CHURN_SLOTS = int(os.environ.get("SOAK_CHURN") or 2)
URL = urllib.parse.urlsplit(BASE)
if URL.hostname not in ("127.0.0.1", "localhost"):
    sys.exit("soak: BASE_URL must be on loopback (got %s)" % BASE)


# ---- HTTP ----------------------------------------------------------------------------------


class Conn:
    """One kept-alive connection; a request that fails on a connection the
    server closed while idle is sent again once on a new one."""

    def __init__(self):
        self.c = None

    def request(self, method, path, body=None, headers=None, timeout=60):
        for attempt in (0, 1):
            if self.c is None:
                self.c = http.client.HTTPConnection(URL.hostname, URL.port or 80, timeout=timeout)
                fresh = True
            else:
                fresh = False
            try:
                self.c.request(method, path, body=body, headers=headers or {})
                r = self.c.getresponse()
                data = r.read()
                if r.will_close:
                    self.close()
                return r.status, data
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if fresh or attempt:
                    return None, str(e).encode()
        return None, b"unreachable"

    def json(self, method, path, obj):
        return self.request(method, path, json.dumps(obj), {"Content-Type": "application/json"})

    def close(self):
        if self.c is not None:
            self.c.close()
        self.c = None


def must(status, data, what, want=(200, 201)):
    if status not in want:
        sys.exit("soak: setup failed: %s answered %s: %s" % (what, status, data[:300]))
    return json.loads(data) if data else None


def multipart(kind, name, data, boundary="soakboundary5c2f"):
    body = ("--%s\r\nContent-Disposition: form-data; name=\"file_kind\"\r\n\r\n%s\r\n"
            "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n" % (boundary, kind, boundary, name)).encode()
    return body + data + ("\r\n--%s--\r\n" % boundary).encode(), \
        {"Content-Type": "multipart/form-data; boundary=" + boundary}


# ---- setup ----------------------------------------------------------------------------------

d = load_diabetes()
NAMES = list(d.feature_names)
PICKLE = pickle.dumps(Ridge(alpha=1.0).fit(d.data, d.target), protocol=4)
ROWS = [row.tolist() for row in d.data[:200]]
FEATURES = ([{"feature_name": n, "type": "cont", "kind": 0, "units": None} for n in NAMES]
            + [{"feature_name": "target", "type": "cont", "kind": 1, "units": None}])
RUN = "soak%d" % os.getpid()
PLACEMENT = {"clusterID": "*", "node": "*", "continuum": False}


def model_body(name, tags=("soak",)):
    return {"modelname": name, "modelkind": "soak", "featurelist": FEATURES,
            "modeltags": list(tags), "drift_detection": None}


def register(conn, name, with_pickle):
    m = must(*conn.json("POST", "/model/add", model_body(name, ("soak", "soak-a"))), "POST /model/add")
    if with_pickle:
        body, h = multipart("model", "model.pkl", PICKLE)
        must(*conn.request("POST", "/model/%s/upload" % m["modelid"], body, h), "upload model.pkl")
    return m["modelid"]


def wait_status(conn, dep, want=("deployed", "failed"), seconds=120):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        status, data = conn.request("GET", "/deployment/get/status/" + dep)
        if status == 200 and json.loads(data)["status"] in want:
            return json.loads(data)["status"]
        time.sleep(0.2)
    return None


setup = Conn()
READ_IDS = [register(setup, "%s-read-%d" % (RUN, i), False) for i in range(50)]
PREDICT_MODEL = register(setup, RUN + "-predict", True)
CHURN_MODEL = register(setup, RUN + "-churn", True)
PREDICT_DEP = RUN + "-predict"
must(*setup.json("POST", "/deployment/add", {"modelid": PREDICT_MODEL, "ownerid": "soak",
                                             "deployment_id": PREDICT_DEP, "inference_data": 0,
                                             "placement": PLACEMENT}),
     "POST /deployment/add")
if wait_status(setup, PREDICT_DEP) != "deployed":
    sys.exit("soak: setup failed: the predict deployment did not start")
setup.close()

# ---- the load ---------------------------------------------------------------------------------

lock = threading.Lock()
stats = {}  # op -> {"n", "lat": [], "codes": {}, "errors": 0}
churn = threading.Semaphore(CHURN_SLOTS)
halt = threading.Event()


def record(op, status, seconds):
    with lock:
        s = stats.setdefault(op, {"n": 0, "lat": [], "codes": {}, "errors": 0})
        s["n"] += 1
        s["lat"].append(seconds)
        key = str(status) if status is not None else "conn-error"
        s["codes"][key] = s["codes"].get(key, 0) + 1
        if status is None or status >= 500:
            s["errors"] += 1


def timed(op, conn, method, path, body=None, headers=None, ok=(200, 201)):
    t0 = time.monotonic()
    status, data = conn.request(method, path, body, headers)
    record(op, status, time.monotonic() - t0)
    return status, data


class Worker:
    def __init__(self, k):
        self.k, self.conn, self.rng = k, Conn(), random.Random(k)
        self.own, self.upload_model, self.uploads, self.cycles = [], None, 0, 0

    def op_read(self):
        which = self.rng.random()
        if which < 0.5:
            timed("GET /model/{id}", self.conn, "GET", "/model/" + self.rng.choice(READ_IDS))
        elif which < 0.7:
            timed("GET /model/all?limit=20", self.conn, "GET",
                  "/model/all?limit=20&skip=%d" % self.rng.randrange(0, 40))
        elif which < 0.85:
            timed("GET /model/search?tags=soak-a", self.conn, "GET", "/model/search?tags=soak-a&limit=20")
        else:
            timed("GET /deployment/get/status/{id}", self.conn, "GET",
                  "/deployment/get/status/" + PREDICT_DEP)

    def op_write(self):
        if len(self.own) >= 10:
            mid = self.own.pop(0)
            timed("DELETE /model/{id}", self.conn, "DELETE", "/model/" + mid)
            return
        status, data = timed("POST /model/add", self.conn, "POST", "/model/add",
                             json.dumps(model_body("%s-w%d-%d" % (RUN, self.k, self.rng.randrange(1 << 30)))),
                             {"Content-Type": "application/json"})
        if status == 201:
            self.own.append(json.loads(data)["modelid"])

    def op_upload(self):
        if self.upload_model is None or self.uploads >= 40:
            if self.upload_model:
                timed("DELETE /model/{id}", self.conn, "DELETE", "/model/" + self.upload_model)
            status, data = timed("POST /model/add", self.conn, "POST", "/model/add",
                                 json.dumps(model_body("%s-u%d" % (RUN, self.k))),
                                 {"Content-Type": "application/json"})
            self.upload_model = json.loads(data)["modelid"] if status == 201 else None
            self.uploads = 0
            return
        body, h = multipart("code", "code.py", os.urandom(16 << 10))
        timed("POST /model/{id}/upload (16 KiB)", self.conn, "POST",
              "/model/%s/upload" % self.upload_model, body, h)
        self.uploads += 1

    def op_predict(self):
        timed("POST /deployment/{id}/predict", self.conn, "POST", "/deployment/%s/predict" % PREDICT_DEP,
              json.dumps({"data": self.rng.choice(ROWS), "explain": False}),
              {"Content-Type": "application/json"})

    def op_churn(self):
        if not churn.acquire(blocking=False):
            return self.op_read()
        try:
            self.cycles += 1
            dep = "%s-c%d-%d" % (RUN, self.k, self.cycles)
            t0 = time.monotonic()
            status, _ = timed("POST /deployment/add", self.conn, "POST", "/deployment/add",
                              json.dumps({"modelid": CHURN_MODEL, "ownerid": "soak-churn",
                                          "deployment_id": dep, "inference_data": 0,
                                          "placement": PLACEMENT}),
                              {"Content-Type": "application/json"})
            if status != 201:
                return
            st = wait_status(self.conn, dep, seconds=90)
            record("deploy cycle: add -> deployed", 200 if st == "deployed" else 599,
                   time.monotonic() - t0)
            if st == "deployed":
                timed("POST /deployment/{id}/predict", self.conn, "POST", "/deployment/%s/predict" % dep,
                      json.dumps({"data": ROWS[0], "explain": False}), {"Content-Type": "application/json"})
            timed("DELETE /deployment/{id}", self.conn, "DELETE", "/deployment/" + dep)
        finally:
            churn.release()

    def run(self):
        mix = ([self.op_read] * 40 + [self.op_write] * 15 + [self.op_upload] * 10
               + [self.op_predict] * 30 + [self.op_churn] * 5)
        while not halt.is_set():
            self.rng.choice(mix)()
        for mid in self.own + ([self.upload_model] if self.upload_model else []):
            self.conn.request("DELETE", "/model/" + mid)
        self.conn.close()


# ---- sampling ----------------------------------------------------------------------------------


def pidfile(name):
    try:
        with open(os.path.join(VAR, "run", name + ".pid")) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def proc_table():
    """{pid: ppid} of every process."""
    out = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    out[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    return out


def descendants(table, pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in table.items() if pp == p]
        out += kids
        todo += kids
    return out


def rss_fds(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            rss = next((int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:")), 0)
        return rss, len(os.listdir("/proc/%d/fd" % pid))
    except (OSError, ValueError):
        return None


def runtime_pids():
    """{deployment id: runtime pid} of the deployed runtimes, from the
    instance's database."""
    try:
        import pymysql
        db = pymysql.connect(unix_socket=os.path.join(VAR, "run", "mysqld.sock"),
                             user=os.environ.get("MLC_DB_USER", "mlc"),
                             password=os.environ.get("MLC_DB_PASSWORD", "mlc"),
                             database=os.environ.get("MLC_DB_NAME", "mlconnector"))
        with db.cursor() as cur:
            cur.execute("SELECT deployment_id, runtime_pid FROM deployments WHERE status = 'deployed' "
                        "AND runtime_pid IS NOT NULL")
            pids = dict(cur.fetchall())
        db.close()
        return pids
    except Exception:
        return {}


def sample():
    table = proc_table()
    roles = {}

    def add(role, pids):
        got = [x for x in (rss_fds(p) for p in pids) if x]
        roles[role] = {"procs": len(got), "rss_kb": sum(r for r, _ in got), "fds": sum(n for _, n in got)}

    api = pidfile("mlc-api")
    add("mlc-api master", [api] if api else [])
    add("mlc-api workers", [c for c, pp in table.items() if pp == api] if api else [])
    ngx = pidfile("nginx")
    add("nginx master", [ngx] if ngx else [])
    add("nginx workers", [c for c, pp in table.items() if pp == ngx] if ngx else [])
    db = pidfile("mysqld")
    add("mariadbd", [db] if db else [])
    sp = pidfile("mlc-spooler")
    add("mlc-spooler", [sp] if sp else [])
    dr = pidfile("mlc-drift")
    add("mlc-drift", [dr] if dr else [])
    rts = runtime_pids()
    add("runtimes (all)", [p for r in rts.values() for p in [r] + descendants(table, r)])
    pred = [rts[PREDICT_DEP]] if PREDICT_DEP in rts else []
    add("predict runtime", [p for r in pred for p in [r] + descendants(table, r)])
    return roles


samples = []


def sampler(start):
    while True:
        samples.append({"t": round(time.monotonic() - start, 1), "roles": sample()})
        if halt.wait(SAMPLE_EVERY):
            break
    samples.append({"t": round(time.monotonic() - start, 1), "roles": sample()})


# ---- run ----------------------------------------------------------------------------------------

start = time.monotonic()
workers = [Worker(k) for k in range(CONNECTIONS)]
threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
samp = threading.Thread(target=sampler, args=(start,), daemon=True)
samp.start()
for th in threads:
    th.start()
time.sleep(SECONDS)
halt.set()
for th in threads:
    th.join(180)
elapsed = time.monotonic() - start
samp.join(30)
c = Conn()
c.request("DELETE", "/deployment/" + PREDICT_DEP)
for mid in READ_IDS + [PREDICT_MODEL, CHURN_MODEL]:
    c.request("DELETE", "/model/" + mid)
c.close()

# ---- report ----------------------------------------------------------------------------------


def pct(values, p):
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


total = sum(s["n"] for op, s in stats.items() if not op.startswith("deploy cycle"))
every = [x for op, s in stats.items() if not op.startswith("deploy cycle") for x in s["lat"]]
fivexx = sum(n for s in stats.values() for code, n in s["codes"].items()
             if code.isdigit() and int(code) >= 500)
connerr = sum(s["codes"].get("conn-error", 0) for s in stats.values())
other = sum(n for s in stats.values() for code, n in s["codes"].items()
            if code.isdigit() and not 200 <= int(code) < 300 and int(code) < 500)
print("\nMLConnector soak: %s, %d connections, %.0f s (asked %.0f s), %d CPUs, load average before "
      "the report %s" % (BASE, CONNECTIONS, elapsed, SECONDS, os.cpu_count(),
                         " ".join("%.2f" % x for x in os.getloadavg())))
print("total: %d requests, %.0f req/s, p50 %.1f ms, p99 %.1f ms; 5xx: %d; connection errors: %d; "
      "other non-2xx: %d\n" % (total, total / elapsed, pct(every, 50) * 1000, pct(every, 99) * 1000,
                              fivexx, connerr, other))
print("%-40s %8s %8s %9s %9s  %s" % ("request", "count", "req/s", "p50 ms", "p99 ms", "statuses"))
for op in sorted(stats):
    s = stats[op]
    print("%-40s %8d %8.1f %9.1f %9.1f  %s" % (op, s["n"], s["n"] / elapsed, pct(s["lat"], 50) * 1000,
                                             pct(s["lat"], 99) * 1000,
                                             " ".join("%s:%d" % kv for kv in sorted(s["codes"].items()))))


def series(role, key):
    return [s["roles"].get(role, {}).get(key, 0) for s in samples]


print("\nprocesses, sampled every %.0f s (%d samples): first / after warm-up / last / max; "
      "RSS in MiB, fds open" % (SAMPLE_EVERY, len(samples)))
print("%-18s %5s  %-34s %-30s" % ("role", "procs", "RSS MiB", "fds"))
warm = min(len(samples) - 1, max(1, len(samples) // 5))
for role in samples[0]["roles"] if samples else []:
    rss, fds, procs = series(role, "rss_kb"), series(role, "fds"), series(role, "procs")
    print("%-18s %5s  %-34s %-30s" % (
        role, "%d-%d" % (min(procs), max(procs)),
        "%.1f / %.1f / %.1f / %.1f" % (rss[0] / 1024, rss[warm] / 1024, rss[-1] / 1024, max(rss) / 1024),
        "%d / %d / %d / %d" % (fds[0], fds[warm], fds[-1], max(fds))))

with open(os.path.join(OUT, "soak.json"), "w") as f:
    json.dump({"base": BASE, "connections": CONNECTIONS, "seconds": elapsed, "total": total,
               "fivexx": fivexx, "conn_errors": connerr, "other_non2xx": other,
               "ops": {op: {"n": s["n"], "p50": pct(s["lat"], 50), "p99": pct(s["lat"], 99),
                            "codes": s["codes"]} for op, s in stats.items()},
               "samples": samples}, f, indent=1)
print("\nsamples and figures: %s" % os.path.join(OUT, "soak.json"))
