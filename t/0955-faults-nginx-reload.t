#!/usr/bin/python3
# nginx reloaded (nginx -s reload with the instance's configuration) three
# times while clients read, add models and upload, and while one large
# upload is under way: no request fails, beyond what nginx documents (an
# idle kept-alive connection is closed, so a read sent on it at that moment
# is sent again on a new connection, as HTTP clients do), no answer is a
# 5xx, the upload that spans the reloads is stored, the service keeps
# answering through the same nginx master, and the invariants of
# t/lib/mlcfaults.py hold.
import hashlib
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_VAR", "MLC_DB_SOCKET", exclusive=True)
import mlcfaults as f  # noqa: E402

var = os.environ["MLC_VAR"]
conf = os.path.join(var, "nginx", "nginx.conf")
if not os.path.isfile(conf):
    t.skip_all("needs the instance's nginx configuration (%s)" % conf)
NGINX = ["nginx", "-p", os.path.join(var, "nginx"), "-c", conf,
         "-e", os.path.join(os.environ.get("MLC_LOG_DIR") or os.path.join(var, "log"), "nginx-error.log")]

master = f.pidfile("nginx")
t.ok(master, "nginx runs (pid file under MLC_VAR/run)")
workers_before = set(f.children(master)) if master else set()
model = t.add_model(t.minimal_model(), "setup: a model to read and upload to")
mid = model["modelid"]
prefix = t.uniq("reload")


def decoded(body):
    try:
        return json.loads(body)
    except (TypeError, ValueError):
        return None


def op_get(c, i, out):
    status, body = c.request("GET", "/model/" + mid)
    out.append({"op": "get", "status": status, "error": None if status else body})


def op_health(c, i, out):
    status, body = c.request("GET", "/health")
    out.append({"op": "health", "status": status, "error": None if status else body})


def op_add(c, i, out):
    name = "%s-%d" % (prefix, i)
    status, body = c.request("POST", "/model/add", json.dumps(t.minimal_model(modelname=name)),
                             {"Content-Type": "application/json"})
    out.append({"op": "add", "name": name, "status": status, "body": body,
                "error": None if status else body})


def op_upload(c, i, out):
    data = os.urandom(64 << 10)
    ctype, head, tail, _ = f.multipart("code", "u%d.bin" % i, data)
    status, body = c.request("POST", "/model/%s/upload" % mid, head + data + tail,
                             {"Content-Type": ctype})
    out.append({"op": "upload", "sha256": hashlib.sha256(data).hexdigest(), "status": status,
                "body": body, "error": None if status else body})


slow = f.SlowUpload(mid, 8 << 20, name="across-reloads.bin")
slow.send(1 << 20)
load = f.Load([op_get, op_add, op_get, op_upload, op_health], threads=6).start()
time.sleep(1)
reloads = []
for k in range(3):
    p = subprocess.run(NGINX + ["-s", "reload"], capture_output=True, text=True, timeout=30)
    reloads.append((p.returncode, p.stderr.strip()))
    slow.send(1 << 20)
    time.sleep(0.7)
time.sleep(1)
results = load.stop()
status, body = slow.finish()
t.is_(reloads, [(0, "")] * 3, "nginx -s reload with the instance's configuration succeeds 3 times")
for r in results:
    if r["op"] == "add" and r["status"] == 201:
        t.defer(t.delete, "/model/" + ((decoded(r["body"]) or {}).get("modelid") or "none"))

codes = {}
for r in results:
    codes[r["status"]] = codes.get(r["status"], 0) + 1
t.note("%d requests, statuses %s; %d reads sent again after nginx closed an idle kept-alive "
       "connection" % (len(results), codes, load.retried))
failed = [r for r in results if r["status"] is None]
t.ok(len(results) > 50 and not failed, "no request failed across 3 reloads (%d requests)" % len(results),
     *["%s: %s" % (r["op"], r["error"]) for r in failed[:10]])
bad = [r for r in results if r["status"] is not None and r["status"] >= 500]
t.ok(not bad, "no answer is a 5xx", *["%s -> %s %s" % (r["op"], r["status"], r.get("body")) for r in bad[:10]])
t.ok(all(r["status"] in (200, 201) for r in results), "every answer is a 200 or 201", codes)
t.is_(status, 201, "the upload under way across the reloads is stored (201)", body)
got = decoded(body) or {}
t.is_(t.db_rows("SELECT size FROM artifacts WHERE fileid = %s", got.get("fileid")),
      [{"size": 8 << 20}], "... with all its bytes")
added = [r for r in results if r["op"] == "add" and r["status"] == 201]
missing = [r["name"] for r in added if not t.db_rows("SELECT 1 FROM models WHERE modelname = %s", r["name"])]
t.ok(added and not missing, "every model add answered 201 (%d) is stored" % len(added), *missing[:10])
t.is_(f.pidfile("nginx"), master, "the nginx master is the same process")
new_workers = f.wait_until(lambda: set(f.children(master)) and not (set(f.children(master)) & workers_before), 30)
t.ok(new_workers, "the old nginx workers have exited and new ones serve",
     workers_before, f.children(master))
t.is_status(t.get("/model/" + mid), 200, "the service keeps answering")
f.check("after the reloads")
t.done()
