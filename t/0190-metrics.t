#!/usr/bin/python3
# The signals operators read: GET /metrics in the Prometheus text format
# (requests by route and status, latencies, predict and explain latency
# per deployment, uploads, what the database and the spool hold, worker
# restarts - counters that survive the death of every worker), and request
# ids: X-Request-Id on every answer (the workers', and nginx's own 413),
# the same id in every error body, in the JSON access log line, in the
# spooler's line for the job a request made and in the runtime's line for
# a predict call it refused.
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

# Exclusive: the counts below are compared exactly, and every worker of
# the instance is killed once.
t.need_instance("MLC_DB_SOCKET", "MLC_VAR", exclusive=True)
# GET /metrics is one mlc-api master's counters (each API host is scraped
# on its own, docs/SCALING.md); the checks below count this file's
# requests exactly in one scrape, and kill one master's workers.
t.single_host_only("GET /metrics counts one mlc-api master's requests, and nginx spreads this "
                   "file's requests over two masters, so the exact counts it compares are not "
                   "one scrape's (each API host is scraped on its own)")
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    t.skip_all("needs the Debian package python3-prometheus-client")
import mlcmodels as mm

var = os.environ["MLC_VAR"]
LOG = os.path.join(var, "log")
ID_RE = r"^[0-9a-f]{32}$"


def scrape(name="GET /metrics"):
    """{(family, sample name, frozenset(labels)): value} of one scrape."""
    resp = t.get("/metrics")
    if resp.status_code != 200:
        raise RuntimeError("%s failed: %s" % (name, t.describe(resp)))
    out = {}
    for fam in text_string_to_metric_families(resp.text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def val(m, name, **labels):
    return m.get((name, frozenset(labels.items())), 0.0)


def series(m, name):
    return {k[1]: v for k, v in m.items() if k[0] == name}


# ---- the format --------------------------------------------------------------

resp = t.get("/metrics")
t.is_status(resp, 200, "GET /metrics answers 200")
t.is_(resp.headers.get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8",
      "it is the Prometheus text format 0.0.4")
try:
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    parsed = True
except Exception as e:  # the parser's own complaint is the diagnostic
    families, parsed = {}, False
    t.diag("parse error: %s" % e)
t.ok(parsed, "prometheus_client's parser reads the whole answer", resp.text[:2000])
want = {"mlc_http_requests": "counter", "mlc_http_request_duration_seconds": "histogram",
        "mlc_predict_duration_seconds": "histogram", "mlc_explain_duration_seconds": "histogram",
        "mlc_worker_restarts": "counter", "mlc_db_errors": "counter",
        "mlc_db_reconnects": "counter", "mlc_upload_received_bytes": "counter",
        "mlc_upload_stored_bytes": "counter", "mlc_deployments": "gauge",
        "mlc_trainings": "gauge", "mlc_drift_runs": "gauge", "mlc_drift_detected_runs": "gauge",
        "mlc_spool_bundles": "gauge", "mlc_metrics_database_up": "gauge",
        "mlc_api_start_time_seconds": "gauge"}
t.is_({n: families[n].type if n in families else None for n in want}, want,
      "every documented family is there with its type")
t.ok(all(f.documentation for f in families.values()), "every family has a HELP text")
t.is_(resp.headers.get("X-Route"), None, "the route header the access log reads is not sent to clients")

# ---- requests, by route and status -------------------------------------------

before = scrape()
for _ in range(5):
    t.get("/health")
t.get("/no/such/route")
t.get("/model/" + str(uuid.uuid4()))
after = scrape()
health = dict(method="GET", route="/health")
t.is_(val(after, "mlc_http_requests_total", status="200", **health) -
      val(before, "mlc_http_requests_total", status="200", **health), 5.0,
      "5 GET /health add 5 to requests{route=\"/health\",status=\"200\"}")
t.is_(val(after, "mlc_http_requests_total", method="(any)", route="(none)", status="404") -
      val(before, "mlc_http_requests_total", method="(any)", route="(none)", status="404"), 1.0,
      "a path no route matches counts under route \"(none)\", status 404")
t.is_(val(after, "mlc_http_requests_total", method="GET", route="/model/{model_id}", status="404") -
      val(before, "mlc_http_requests_total", method="GET", route="/model/{model_id}", status="404"),
      1.0, "an unknown model counts under its route template, not its path")
t.is_(val(after, "mlc_http_requests_total", method="GET", route="/metrics", status="200") -
      val(before, "mlc_http_requests_total", method="GET", route="/metrics", status="200"), 1.0,
      "a scrape counts itself once it has answered")
buckets = sorted((float(dict(k)["le"]), v) for k, v in series(after, "mlc_http_request_duration_seconds_bucket").items()
                 if dict(k).get("route") == "/health")
t.ok(buckets and buckets[-1][0] == float("inf") and
     all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])),
     "the /health latency buckets are cumulative up to +Inf", buckets)
t.is_(buckets[-1][1] if buckets else None, val(after, "mlc_http_request_duration_seconds_count", **health),
      "the +Inf bucket equals the count")
t.is_(val(after, "mlc_http_request_duration_seconds_count", **health) -
      val(before, "mlc_http_request_duration_seconds_count", **health), 5.0,
      "and the count moved by the 5 requests")
t.ok(0 < val(after, "mlc_http_request_duration_seconds_sum", **health) < 60,
     "the sum is in seconds")

# ---- what the database and the spool hold --------------------------------------

drift_model = str(uuid.uuid4())
run_id = str(uuid.uuid4())
t.db_rows("INSERT INTO drift_runs (run_id, modelid, status, created_at, finished_at) "
          "VALUES (%s, %s, 'completed', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))", run_id, drift_model)
t.defer(t.db_rows, "DELETE FROM drift_runs WHERE modelid = %s", drift_model)
for feature, drifted in (("a", 1), ("b", 1), ("c", 0)):
    t.db_rows("INSERT INTO drift_metrics (run_id, modelid, feature, type, method, drift_detected, "
              "n_train, n_infer, timestamp) VALUES (%s, %s, %s, 'cont', 'ks', %s, 10, 10, "
              "UTC_TIMESTAMP(6))", run_id, drift_model, feature, drifted)
t.defer(t.db_rows, "DELETE FROM drift_metrics WHERE modelid = %s", drift_model)
m = scrape()
db = {r["status"]: r["n"] for r in t.db_rows("SELECT status, COUNT(*) AS n FROM deployments GROUP BY status")}
t.is_({dict(k)["status"]: v for k, v in series(m, "mlc_deployments").items()},
      {s: float(db.get(s, 0)) for s in ("waiting", "building", "deployed", "failed", "stopping", "stopped")},
      "mlc_deployments lists every status with the database's count")
db = {r["status"]: r["n"] for r in t.db_rows("SELECT status, COUNT(*) AS n FROM trainings GROUP BY status")}
t.is_({dict(k)["status"]: v for k, v in series(m, "mlc_trainings").items()},
      {s: float(db.get(s, 0)) for s in ("waiting", "running", "completed", "failed")},
      "mlc_trainings lists every status with the database's count")
t.is_(val(m, "mlc_drift_runs", model=drift_model, status="completed"), 1.0,
      "mlc_drift_runs counts a model's runs by status")
t.is_(val(m, "mlc_drift_detected_runs", model=drift_model), 1.0,
      "mlc_drift_detected_runs counts the run once, however many of its features drifted")
t.is_(val(m, "mlc_metrics_database_up"), 1.0, "mlc_metrics_database_up is 1")
spool = {q: float(len([n for n in os.listdir(os.path.join(var, "spool", q)) if not n.startswith(".")]))
         for q in ("new", "cur")}
t.is_({dict(k)["queue"]: v for k, v in series(m, "mlc_spool_bundles").items()}, spool,
      "mlc_spool_bundles counts the bundles in spool/new/ and spool/cur/")

# ---- request ids ---------------------------------------------------------------

resp = t.get("/health")
t.like(resp.headers.get("X-Request-Id"), ID_RE, "a 200 carries X-Request-Id (32 hex digits)")
other = t.get("/health")
t.ok(other.headers.get("X-Request-Id") != resp.headers.get("X-Request-Id"),
     "every request has an id of its own")

resp = t.get("/no/such/route")
rid = resp.headers.get("X-Request-Id")
body = t.is_error(resp, 404, "GET /no/such/route")
t.like(rid, ID_RE, "the 404 for a path without a route carries X-Request-Id")
t.is_(body.get("request_id"), rid, "its body's request_id is the header's id")
no_route_id = rid

missing = str(uuid.uuid4())
resp = t.get("/model/" + missing)
model_404_id = resp.headers.get("X-Request-Id")
t.is_(t.body_of(resp), {"detail": "model '%s' not found" % missing, "request_id": model_404_id},
      "a handler's 404 is {detail, request_id}")

resp = t.http("POST", "/model/add", data=b'{"modelname": (1, 2)}', headers={"Content-Type": "application/json"})
body = t.is_error(resp, 422, "POST /model/add with malformed JSON")
t.ok(isinstance(body.get("detail"), list) and body.get("request_id") == resp.headers.get("X-Request-Id")
     and re.match(ID_RE, body.get("request_id") or ""),
     "a 422 keeps its detail list and adds the request_id of X-Request-Id", t.describe(resp))

resp = t.http("PUT", "/health")
body = t.is_error(resp, 405, "PUT /health")
t.is_(body.get("request_id"), resp.headers.get("X-Request-Id"), "a 405 names its request too")


def raw_request(text):
    """Send text as is to nginx; (status, headers dict, body)."""
    url = urllib.parse.urlsplit(t.BASE_URL)
    with socket.create_connection((url.hostname, url.port), timeout=30) as s:
        s.sendall(text.encode())
        data = b""
        # Read the answer only: nginx may linger before it closes a
        # connection whose body it did not read.
        while True:
            head, sep, payload = data.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m and len(payload) >= int(m.group(1)):
                    break
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, payload


# nginx refuses a body over client_max_body_size from the Content-Length
# alone, before any worker sees the request.
status, headers, payload = raw_request("POST /model/add HTTP/1.1\r\nHost: mlc\r\n"
                                       "Content-Type: application/json\r\n"
                                       "Content-Length: 999999999999\r\nConnection: close\r\n\r\n")
try:
    body = json.loads(payload)
except ValueError:
    body = {}
t.is_((status, body.get("detail")), (413, "request body exceeds the configured size limit"),
      "nginx itself answers 413 to a body over its limit")
t.like(headers.get("x-request-id"), ID_RE, "nginx's own 413 carries X-Request-Id")
t.is_(body.get("request_id"), headers.get("x-request-id"), "and its JSON body the same request_id")
nginx_413_id = headers.get("x-request-id")


def access_lines(ids, seconds=10):
    """The access log's entries (parsed) of the given request ids; waits
    for nginx's buffer (flushed every second)."""
    end = time.time() + seconds
    found = {}
    while time.time() < end:
        with open(os.path.join(LOG, "nginx-access.log"), encoding="utf-8") as f:
            for line in f:
                if not line.startswith("{"):
                    continue
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("request_id") in ids:
                    found[e["request_id"]] = e
        if len(found) == len(ids):
            break
        time.sleep(0.2)
    return found


log = access_lines({no_route_id, model_404_id, nginx_413_id})
e = log.get(model_404_id) or {}
t.is_({k: e.get(k) for k in ("method", "uri", "route", "status", "owner")},
      {"method": "GET", "uri": "/model/" + missing, "route": "/model/{model_id}", "status": 404,
       "owner": "admin" if t.auth_on() else ""},
      "the access log line of a request has its id, method, uri, route template, status and the "
      "token's owner (with auth on; the test's token is admin's)",
      json.dumps(e))
t.ok(isinstance(e.get("bytes"), int) and e["bytes"] > 0 and isinstance(e.get("latency"), (int, float))
     and re.match(r"^\d{4}-\d\d-\d\dT", e.get("time", "")),
     "and the bytes sent, the latency in seconds and the time", json.dumps(e))
e = log.get(no_route_id) or {}
t.is_((e.get("status"), e.get("route")), (404, ""), "a request without a route is logged with route \"\"")
e = log.get(nginx_413_id) or {}
t.is_((e.get("status"), e.get("method")), (413, "POST"), "nginx's own 413 has its access log line too")

# ---- uploads, deployments and predict calls --------------------------------------

before = scrape()
reg, X, y, names = mm.diabetes_ridge()
model = mm.register(reg, X, y, names, with_data=False)
files = t.body_of(t.get("/model/%s/files" % model["modelid"])) or []
after = scrape()
stored = sum(f.get("size", 0) for f in files if f.get("filekind") == "model")
t.is_(val(after, "mlc_upload_stored_bytes_total", kind="model") -
      val(before, "mlc_upload_stored_bytes_total", kind="model"), float(stored),
      "mlc_upload_stored_bytes_total{kind=\"model\"} grows by the stored file's size")
t.ok(val(after, "mlc_upload_received_bytes_total") - val(before, "mlc_upload_received_bytes_total") > stored,
     "mlc_upload_received_bytes_total grows by the whole body (file and multipart framing)")

dep = t.uniq("dep-metrics")
resp = mm.deploy(model["modelid"], dep)
t.is_status(resp, 201, "POST /deployment/add")
deploy_id = resp.headers.get("X-Request-Id")
st = mm.wait_status(dep)
t.is_((st or {}).get("status"), "deployed", "the deployment comes up")


def log_has(path, text, seconds=10):
    end = time.time() + seconds
    while time.time() < end:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                if text in f.read():
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


t.ok(deploy_id and log_has(os.path.join(LOG, "mlc-spooler.log"),
                           "deployment %s: building (model version 1, request %s)" % (dep, deploy_id)),
     "the spooler's line about building the deployment names the request that asked for it",
     "request %s" % deploy_id)

r = t.post("/deployment/%s/predict" % dep, json={"data": X[0].tolist()})
t.is_status(r, 200, "a predict call answers 200")
r = t.post("/deployment/%s/predict" % dep, json={"data": X[0].tolist(), "explain": True})
body = t.is_error(r, 409, "explain without the model's training data")
pid = r.headers.get("X-Request-Id")
t.is_(body.get("request_id"), pid, "the relayed refusal names the request")
t.ok(pid and log_has(os.path.join(LOG, "runtime-%s.log" % dep), "request %s: 409 " % pid),
     "the runtime's log line about the refusal names the same request (X-Request-Id on the call)")
m = scrape()
t.is_(val(m, "mlc_predict_duration_seconds_count", deployment=dep), 1.0,
      "mlc_predict_duration_seconds counts the deployment's predict call")
t.is_(val(m, "mlc_explain_duration_seconds_count", deployment=dep), 1.0,
      "mlc_explain_duration_seconds counts its explain call apart")
t.ok(val(m, "mlc_deployments", status="deployed") >= 1, "mlc_deployments counts it as deployed")

# ---- counters survive the workers ------------------------------------------------

with open(os.path.join(var, "run", "mlc-api.pid")) as f:
    master = int(f.read().split()[0])


def workers():
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return sorted(int(p) for p in out.split())


before = scrape()
victims = workers()
t.ok(len(victims) >= 2, "the master has its workers (%d)" % len(victims))
for p in victims:
    os.kill(p, signal.SIGKILL)
end = time.time() + 30
while time.time() < end and (len(workers()) < len(victims) or set(workers()) & set(victims)):
    time.sleep(0.2)
t.ok(len(workers()) == len(victims) and not set(workers()) & set(victims),
     "every worker killed with SIGKILL is replaced")
after = scrape("GET /metrics after the restarts")
restarts = sum(series(after, "mlc_worker_restarts_total").values()) - \
    sum(series(before, "mlc_worker_restarts_total").values())
t.is_(restarts, float(len(victims)), "mlc_worker_restarts_total grew by the workers killed")
t.ok(val(after, "mlc_http_requests_total", status="200", **health) >=
     val(before, "mlc_http_requests_total", status="200", **health) > 0,
     "the request counters kept what the dead workers had counted")
t.ok(val(after, "mlc_predict_duration_seconds_count", deployment=dep) == 1.0,
     "and so did the per-deployment latencies")
t.is_(val(after, "mlc_api_start_time_seconds"), val(before, "mlc_api_start_time_seconds"),
      "the master (and its start time) stayed")

t.done()
