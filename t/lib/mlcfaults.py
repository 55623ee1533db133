"""mlcfaults - what the fault-injection tests share: the invariants that
must hold after any fault, and the means to cause faults and load.

The invariants (check()):

- every artifacts row has its file in the store, a regular file with the
  row's size and SHA-256 (no committed row without its file);
- every deployment that is waiting or building, and every training that
  is waiting or running, has its job bundle in spool/new/ or spool/cur/
  (no job is lost between the API and the spooler);
- no temporary file in artifacts/.tmp or spool/tmp is left behind by a
  request that is over (a file some live process holds open belongs to a
  request in flight).

Each is one TAP check; a failure lists what breaks it.
"""

import hashlib
import http.client
import os
import socket
import threading
import time
import urllib.parse

import mlctap as t

VAR = os.environ.get("MLC_VAR", "")


def store_dir():
    return os.environ.get("MLC_ARTIFACTS") or os.path.join(VAR, "artifacts")


def spool_dir(var=None):
    return os.path.join(var or VAR, "spool")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _rows(db, sql, *args):
    with db.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


# ---- processes and open files -------------------------------------------------------------


def pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def ppid_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid):
    """The process exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % int(pid)) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, ValueError, IndexError, TypeError):
        return False


def pidfile(name, var=None):
    """The live pid recorded in $MLC_VAR/run/<name>.pid, or None."""
    try:
        with open(os.path.join(var or VAR, "run", name + ".pid")) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def children(pid):
    return sorted(p for p in pids() if ppid_of(p) == pid and alive(p))


def api_workers(master=None):
    master = master or pidfile("mlc-api")
    return children(master) if master else []


def open_files(prefix):
    """{path: [pid, ...]} of the files under prefix that processes hold open."""
    out = {}
    for pid in pids():
        d = "/proc/%d/fd" % pid
        try:
            fds = os.listdir(d)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(d, fd))
            except OSError:
                continue
            if target.startswith(prefix):
                out.setdefault(target, []).append(pid)
    return out


def wait_until(fn, seconds=10.0, step=0.1):
    """fn()'s first true value within the time, else its last value."""
    end = time.monotonic() + seconds
    while True:
        v = fn()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


def age_files(directory, seconds=7200):
    """Backdate the files of a directory (not links), as if they were left
    there long ago: the spooler's cleaner then takes them at once."""
    past = time.time() - seconds
    for name in os.listdir(directory):
        p = os.path.join(directory, name)
        if os.path.isfile(p) and not os.path.islink(p):
            os.utime(p, (past, past))


# ---- the invariants --------------------------------------------------------------------------


def artifact_problems(db=None, store=None):
    db, store = db or t.db(), store or store_dir()
    problems = []
    for r in _rows(db, "SELECT modelid, filekind, version, path, size, sha256 FROM artifacts"):
        what = "%s %s v%s (%s)" % (r["modelid"], r["filekind"], r["version"], r["path"])
        full = os.path.join(store, r["path"])
        try:
            st = os.lstat(full)
        except OSError as e:
            problems.append("%s: no file: %s" % (what, e.strerror))
            continue
        if not os.path.isfile(full) or os.path.islink(full):
            problems.append("%s: not a regular file" % what)
        elif st.st_size != r["size"]:
            problems.append("%s: %d bytes, the row says %d" % (what, st.st_size, r["size"]))
        elif sha256_file(full) != r["sha256"]:
            problems.append("%s: its SHA-256 is not the row's" % what)
    return problems


def job_problems(db=None, spool=None):
    db, spool = db or t.db(), spool or spool_dir()

    def where(name):
        return [d for d in ("new", "cur") if os.path.lexists(os.path.join(spool, d, name))]

    problems = []
    for r in _rows(db, "SELECT deployment_id, status FROM deployments "
                       "WHERE status IN ('waiting', 'building')"):
        name = "deploy-%s.tar.gz" % r["deployment_id"]
        if not where(name):
            problems.append("deployment %s is %s but %s is in neither spool/new nor spool/cur"
                            % (r["deployment_id"], r["status"], name))
    for r in _rows(db, "SELECT training_id, status FROM trainings "
                       "WHERE status IN ('waiting', 'running')"):
        name = "train-%s.tar.gz" % r["training_id"]
        if not where(name):
            problems.append("training %s is %s but %s is in neither spool/new nor spool/cur"
                            % (r["training_id"], r["status"], name))
    return problems


def temp_leftovers(store=None, spool=None):
    """Files in artifacts/.tmp and spool/tmp that no live process holds open."""
    store, spool = store or store_dir(), spool or spool_dir()
    out = []
    for d in (os.path.join(store, ".tmp"), os.path.join(spool, "tmp")):
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            continue
        held = open_files(d + "/")
        out += [os.path.join(d, n) for n in names
                if os.path.isfile(os.path.join(d, n)) and os.path.join(d, n) not in held]
    return out


def check(label, db=None, store=None, spool=None, temp=True):
    """The invariants as TAP checks (three, or two with temp=False);
    returns True when all hold."""
    a = artifact_problems(db, store)
    j = job_problems(db, spool)
    ok = t.ok(not a, "%s: every artifacts row has its file with its size and SHA-256" % label, *a)
    ok &= t.ok(not j, "%s: every waiting or running job has its bundle in the spool" % label, *j)
    if temp:
        # A request that has just ended may still be removing its file.
        left = []
        if not wait_until(lambda: not temp_leftovers(store, spool), 5):
            left = temp_leftovers(store, spool)
        ok &= t.ok(not left, "%s: no temporary file is left behind by a request that is over"
                   % label, *left)
    return ok


# ---- clients ------------------------------------------------------------------------------------


def multipart(kind, name, data, boundary="mlcfaultsboundary7d1e"):
    """(content type, body) of an upload form: file_kind, then file."""
    head = ("--%s\r\nContent-Disposition: form-data; name=\"file_kind\"\r\n\r\n%s\r\n"
            "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n" % (boundary, kind, boundary, name))
    tail = "\r\n--%s--\r\n" % boundary
    return "multipart/form-data; boundary=" + boundary, head.encode(), tail.encode(), data


def _address():
    u = urllib.parse.urlsplit(t.BASE_URL)
    return u.hostname, u.port or 80


class SlowUpload:
    """An upload sent over HTTP/1.0 at the pace the test chooses: start()
    sends the headers and the first piece, send() more, finish() the rest
    and reads the answer: (status or None, body or the error)."""

    def __init__(self, modelid, size, kind="code", name="slow.bin", headers=None):
        ctype, self.head, self.tail, _ = multipart(kind, name, b"")
        self.size, self.sent = size, 0
        self.sock = socket.create_connection(_address(), timeout=60)
        extra = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        self.sock.sendall(("POST /model/%s/upload HTTP/1.0\r\nHost: localhost\r\n"
                           "Content-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
                           % (modelid, ctype, len(self.head) + size + len(self.tail), extra))
                          .encode() + self.head)
        self.data = os.urandom(1 << 16)
        self.error = None

    def send(self, n):
        """Send n more bytes of the file (False once the connection broke)."""
        try:
            while n > 0 and self.sent < self.size:
                k = min(n, len(self.data), self.size - self.sent)
                self.sock.sendall(self.data[:k])
                self.sent += k
                n -= k
            return True
        except OSError as e:
            self.error = e
            return False

    def finish(self):
        if self.error is None:
            self.send(self.size - self.sent)
        try:
            if self.error is None:
                self.sock.sendall(self.tail)
        except OSError as e:
            self.error = e
        out = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                out += chunk
        except OSError as e:
            if not out:
                return None, "%s (while sending: %s)" % (e, self.error)
        finally:
            self.sock.close()
        if not out:
            return None, "no answer (while sending: %s)" % self.error
        head, _, body = out.partition(b"\r\n\r\n")
        try:
            return int(head.split()[1]), body
        except (IndexError, ValueError):
            return None, out[:200]


class Client:
    """One load client's HTTP connection.  Reads go over a kept-alive
    connection; a read that fails on a reused connection (the server closed
    it while idle, which HTTP allows and nginx does on reload) is sent once
    more on a new one, as HTTP clients do, and counted in .retried.  Writes
    go on a fresh connection each (Connection: close), so that none is ever
    sent twice."""

    def __init__(self, timeout=30):
        self.host, self.port = _address()
        self.timeout = timeout
        self.conn, self.used = None, False
        self.retried = 0

    def _open(self):
        self.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.used = False

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def _once(self, method, path, body, headers):
        self.conn.request(method, path, body=body, headers=headers or {})
        resp = self.conn.getresponse()
        data = resp.read()
        self.used = True
        if resp.getheader("Connection", "").lower() == "close" or resp.will_close:
            self.close()
        return resp.status, data

    def request(self, method, path, body=None, headers=None):
        """(status, body) or (None, the exception)."""
        write = method not in ("GET", "HEAD")
        if write:
            headers = dict(headers or {}, Connection="close")
            self._open()
        elif self.conn is None:
            self._open()
        reused = self.used
        try:
            return self._once(method, path, body, headers)
        except (OSError, http.client.HTTPException) as e:
            self.close()
            if write or not reused:
                return None, e
            self.retried += 1
        self._open()
        try:
            return self._once(method, path, body, headers)
        except (OSError, http.client.HTTPException) as e:
            self.close()
            return None, e


class Load:
    """`threads` threads calling op(client, i, results) in turn until
    stop(); each op appends dicts to results (kept in one list)."""

    def __init__(self, ops, threads=4):
        self.ops, self.n = ops, threads
        self.results, self.lock = [], threading.Lock()
        self.halt = threading.Event()
        self.clients = []
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True)
                        for k in range(threads)]

    def _run(self, k):
        client = Client()
        self.clients.append(client)
        i = k
        while not self.halt.is_set():
            op = self.ops[i % len(self.ops)]
            out = []
            try:
                op(client, i, out)
            except Exception as e:  # an op's own bug must show, not hang the test
                out.append({"op": getattr(op, "__name__", "op"), "status": None,
                            "error": "%s: %s" % (type(e).__name__, e)})
            now = time.monotonic()
            with self.lock:
                for r in out:
                    r.setdefault("at", now)
                    self.results.append(r)
            i += self.n
        client.close()

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def stop(self):
        self.halt.set()
        for th in self.threads:
            th.join(120)
        return self.results

    @property
    def retried(self):
        return sum(c.retried for c in self.clients)
