#!/usr/bin/python3
# Uploads under stress: concurrent uploads of one kind, a client that gives
# up half way, bodies over the limit, a full disk, and a worker whose memory
# does not grow with the size of the file.
import hashlib
import os
import pickle
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import fcgi
import mlcapi
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR")
import requests

BASE = t.BASE_URL
var = os.environ["MLC_VAR"]
store = os.environ.get("MLC_ARTIFACTS") or os.path.join(var, "artifacts")
limit = int(os.environ.get("MLC_MAX_UPLOAD", "536870912"))
pkl = pickle.dumps(list(range(1000)), protocol=4)


def multipart(boundary, kind, payload, filename="m.pkl"):
    head = ("--%s\r\nContent-Disposition: form-data; name=\"file_kind\"\r\n\r\n%s\r\n"
            "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n" % (boundary, kind, boundary, filename)).encode()
    return head, payload, ("\r\n--%s--\r\n" % boundary).encode()


def tmp_files():
    d = os.path.join(store, ".tmp")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def no_tmp_files_within(seconds):
    """Whether the store's temporary files are all gone within seconds."""
    end = time.time() + seconds
    while tmp_files():
        if time.time() > end:
            return False
        time.sleep(0.1)
    return True


model = t.add_model(t.minimal_model(), "a model to upload to")
mid = model["modelid"]
up = "/model/%s/upload" % mid

# Eight uploads of the same kind at once get eight distinct versions.
results = []


def one(i):
    r = requests.post(BASE + up, files={"file": ("c%d.pkl" % i, pkl), "file_kind": (None, "model")})
    results.append((r.status_code, (t.body_of(r) or {}).get("version")))


threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
for th in threads:
    th.start()
for th in threads:
    th.join()
t.is_(sorted(s for s, _ in results), [201] * 8, "eight concurrent uploads all succeed")
t.is_(sorted(v for _, v in results), list(range(1, 9)), "concurrent uploads get versions 1 to 8, none twice")

# A client that stops half way through the body leaves nothing behind.
before = t.db_rows("SELECT COUNT(*) AS n FROM artifacts WHERE modelid = %s", mid)[0]["n"]
head, payload, tail = multipart("abortXYZ", "model", pkl + os.urandom(4 << 20))
host, port = BASE.split("//")[1].split(":")
s = socket.create_connection((host, int(port)))
auth = "Authorization: Bearer %s\r\n" % t.TOKEN if t.TOKEN else ""
s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=abortXYZ\r\n"
           "%sContent-Length: %d\r\n\r\n" % (up, auth, len(head) + len(payload) + len(tail))).encode())
s.sendall(head + payload[:len(payload) // 2])
time.sleep(0.5)
s.close()
t.ok(no_tmp_files_within(5), "an upload abandoned half way leaves no temporary file", tmp_files())
after = t.db_rows("SELECT COUNT(*) AS n FROM artifacts WHERE modelid = %s", mid)[0]["n"]
t.is_(after, before, "an upload abandoned half way adds no row")
t.is_status(requests.get(BASE + "/health"), 200, "the service still answers after the abandoned upload")

# Over the limit: nginx refuses a declared length over MLC_MAX_UPLOAD ...
s = socket.create_connection((host, int(port)))
s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
           "%sContent-Length: %d\r\nConnection: close\r\n\r\n" % (up, auth, limit + 1)).encode())
reply = b""
s.settimeout(10)
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        reply += d
except socket.timeout:
    pass
s.close()
t.like(reply.split(b"\r\n", 1)[0].decode(), r" 413 ", "a declared body over MLC_MAX_UPLOAD is refused with 413")
t.like(reply.decode("latin-1"), r'\{"detail":', "the 413 body is JSON")

# ... and the worker itself refuses it too (for nginx setups without the limit).
sock = os.environ.get("MLC_SOCKET") or os.path.join(var, "api", "mlc-api.sock")
status, headers, body = fcgi.request(sock, up, "POST", b"x" * 10,
                                     content_type="multipart/form-data; boundary=b")
t.is_(status, 422, "the worker parses a small malformed body (sanity check of the direct path)")
req = fcgi.Request(up, "POST", sock, content_length=limit + 1, content_type="multipart/form-data; boundary=b")
status, headers, body = req.finish()
t.is_(status, 413, "the worker refuses a Content-Length over MLC_MAX_UPLOAD with 413")

# A chunked upload (no Content-Length) that grows past the limit is cut off.
def gen():
    h, p, tl = multipart("chunkB", "model", b"")
    yield h + pkl
    sent = 0
    block = b"\0" * (1 << 20)
    while sent <= limit:
        yield block
        sent += len(block)
    yield tl


resp = requests.post(BASE + up, data=gen(), headers={"Content-Type": "multipart/form-data; boundary=chunkB"})
t.is_(resp.status_code, 413, "a chunked upload growing past the limit is refused with 413")
# nginx answers the client first; the worker notices the cut and removes
# its temporary file right after.
t.ok(no_tmp_files_within(5), "the refused chunked upload left no temporary file", tmp_files())

# A full disk: a second master whose store is a 1 MiB tmpfs.
mnt = os.path.join(var, "t0310-small")
os.makedirs(mnt, exist_ok=True)
mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt],
                         capture_output=True).returncode == 0
if not mounted:
    t.skip("an upload to a full disk answers 507", "cannot mount a tmpfs here (needs root)")
    t.skip("the full-disk upload leaves no file", "cannot mount a tmpfs here (needs root)")
else:
    sock2 = os.path.join(var, "run", "t0310.sock")
    api = mlcapi.Api(sock2, os.path.join(var, "log", "t0310-mlc-api.log"), drop=("MLC_SLOW_SOCKET",),
                     MLC_ARTIFACTS=mnt, MLC_WORKERS="1", MLC_SLOW_WORKERS="1")
    try:
        api.wait_up(5)
        h, p, tl = multipart("fullB", "model", pkl + b"\0" * (2 << 20))
        status, headers, body = fcgi.request(sock2, up, "POST", h + p + tl,
                                             content_type="multipart/form-data; boundary=fullB")
        t.ok(status == 507, "an upload to a full disk answers 507", status, body[:300])
        left = [os.path.join(d, f) for d, _, fs in os.walk(mnt) for f in fs]
        t.is_(left, [], "the full-disk upload leaves no file")
    finally:
        api.stop()
        subprocess.run(["umount", mnt])

# Memory: a worker's resident size does not grow with the file's size.
def worker_rss():
    # Every worker of the instance (of both masters on the Galera topology).
    pids = t.api_workers()
    total = {}
    for pid in pids:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    total[pid] = int(line.split()[1])
    return total


size = min(limit - (1 << 20), 24 << 20)
h, p, tl = multipart("bigB", "data", b"")
rows = b"a,b,c\n" + b"1,2,3\n" * (size // 6)
big = h + rows + tl
before = worker_rss()
resp = requests.post(BASE + up, data=big, headers={"Content-Type": "multipart/form-data; boundary=bigB"})
t.is_status(resp, 201, "a %d MiB upload succeeds" % (len(rows) >> 20))
t.is_((t.body_of(resp) or {}).get("sha256"), hashlib.sha256(rows).hexdigest(), "the large upload's SHA-256 matches")
after = worker_rss()
growth = max((after.get(k, 0) - before.get(k, 0)) for k in after) if after else 0
t.ok(growth < 8 * 1024, "no worker's peak RSS grew by 8 MiB or more for a %d MiB upload (grew %d KiB)"
     % (len(rows) >> 20, growth))
t.done()
