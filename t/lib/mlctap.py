"""mlctap - TAP output for the end-to-end tests, and the HTTP and database
helpers they share.

A test file does

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
    import mlctap as t
    t.need_instance()
    ...
    t.ok(cond, "what the check proves")
    t.is_(got, expected, "what the check proves")
    t.done()

Every check prints one "ok N - title" / "not ok N - title" line.  A failing
check prints what it got and what it expected as "# " lines on stderr, so
prove shows them even without -v.  The exit code is the number of failed
checks (at most 254), or 255 when the script died or ran a different number
of checks than it planned.  An exception that escapes the test script is
reported as one failed check with its traceback, never as a silent stop.
"""

import atexit
import json
import os
import re
import sys
import traceback
import uuid

_count = 0
_failed = 0
_planned = None
_finished = False
_died = False

# ---- TAP ------------------------------------------------------------------


def _out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def diag(*msgs):
    """Print a diagnostic ("# ..." on stderr, shown by prove)."""
    sys.stdout.flush()
    for msg in msgs:
        for line in str(msg).splitlines() or [""]:
            sys.stderr.write("# " + line + "\n")
    sys.stderr.flush()


def note(*msgs):
    """Print a comment on stdout (shown by prove -v only)."""
    for msg in msgs:
        for line in str(msg).splitlines() or [""]:
            _out("# " + line)


def plan(n):
    """Announce n checks up front (optional: done() prints the plan)."""
    global _planned
    _planned = n
    _out("1..%d" % n)


def _title(name):
    # A '#' would start a TAP directive; keep titles on one line.
    return " ".join(str(name).split()).replace("#", "\\#")


def ok(cond, name, *diagnostics):
    """One check: passes when cond is true.  Returns bool(cond)."""
    global _count, _failed
    _count += 1
    if cond:
        _out("ok %d - %s" % (_count, _title(name)))
        return True
    _failed += 1
    _out("not ok %d - %s" % (_count, _title(name)))
    diag("  Failed test '%s'" % _title(name),
         "  at %s" % _caller())
    for d in diagnostics:
        diag(d)
    return False


def _caller():
    for frame in reversed(traceback.extract_stack()[:-1]):
        if os.path.abspath(frame.filename) != os.path.abspath(__file__):
            return "%s line %d" % (os.path.basename(frame.filename), frame.lineno)
    return "?"


def _show(v):
    if isinstance(v, (dict, list)):
        s = json.dumps(v, sort_keys=True, ensure_ascii=False)
    else:
        s = repr(v)
    return s if len(s) <= 4000 else s[:4000] + "... (%d chars)" % len(s)


def same(a, b):
    """Structural equality that, unlike ==, tells apart the JSON values
    1, 1.0 and true, and "5" from 5: what the API must round-trip exactly."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def is_(got, expected, name, *diagnostics):
    """One check: got equals expected (strictly, see same()); extra
    diagnostics are shown when it fails."""
    return ok(same(got, expected), name,
              "         got: " + _show(got),
              "    expected: " + _show(expected), *diagnostics)


def isnt(got, unexpected, name):
    return ok(not same(got, unexpected), name,
              "         got: " + _show(got),
              "    expected: anything else")


def like(got, pattern, name):
    """One check: got is a string matching the regular expression."""
    matched = isinstance(got, str) and re.search(pattern, got) is not None
    return ok(matched, name,
              "                  " + _show(got),
              "    doesn't match '%s'" % pattern)


def skip(name, reason):
    """Record a check that could not run, visibly."""
    global _count
    _count += 1
    _out("ok %d - %s # SKIP %s" % (_count, _title(name), _title(reason)))


def skip_all(reason):
    """The whole file cannot run here: say why and stop.  Only for what a
    test machine may lack for good (root, a tool); a missing instance is
    bail_out's."""
    global _finished
    _finished = True
    _out("1..0 # SKIP %s" % _title(reason))
    sys.exit(0)


def topology():
    """The topology of the instance under test: "single" (one MariaDB
    server, one mlc-api master) or "galera" (MLC_TEST_TOPOLOGY=galera: a
    three-node Galera cluster and two masters behind one nginx upstream,
    t/lib/galera.py)."""
    return os.environ.get("MLC_TOPOLOGY") or "single"


def single_host_only(reason):
    """The whole file checks what only one host has (the one database
    server, the one mlc-api master, one host's counters): against the
    Galera topology it skips, saying why and where the multi-host
    behaviour is checked instead (docs/SCALING.md lists these files).  On
    the single-host topology it does nothing."""
    if topology() != "single":
        skip_all("single-host only (MLC_TOPOLOGY=%s): %s" % (topology(), reason))


def api_masters():
    """The pids of the instance's mlc-api masters, from their pid files
    under MLC_VAR/run: run/mlc-api.pid, and with the Galera topology the
    second host's run/mlc-api-b.pid too (nginx spreads requests over
    both).  A master without a readable pid file is left out."""
    names = ["mlc-api.pid"] + (["mlc-api-b.pid"] if topology() == "galera" else [])
    pids = []
    for name in names:
        try:
            with open(os.path.join(os.environ["MLC_VAR"], "run", name)) as fh:
                pids.append(int(fh.read().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
    return pids


def api_workers():
    """The pids of the workers of every mlc-api master of the instance
    (api_masters), sorted."""
    import subprocess
    pids = []
    for master in api_masters():
        out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
        pids += [int(p) for p in out.split()]
    return sorted(pids)


def bail_out(reason):
    """The file cannot run as it was started: stop it as failed, and prove
    with it (a skip would let a run without an instance say PASS)."""
    global _finished
    _finished = True
    _out("Bail out! %s" % " ".join(str(reason).split()))
    sys.exit(255)


def no_instance(missing):
    """bail_out for a file started without the instance it needs."""
    script = os.path.relpath(os.path.abspath(sys.argv[0]))
    bail_out("no instance (%s unset): run ./scripts/mlc test %s" % (", ".join(missing), script))


def _exit_code():
    global _finished
    _finished = True
    _run_cleanups()
    db_close()
    if _planned is None:
        _out("1..%d" % _count)
    elif _planned != _count:
        diag("planned %d checks but ran %d" % (_planned, _count))
        return 255
    if _failed:
        diag("%d of %d checks failed" % (_failed, _count))
    if _died:
        return 255
    return min(_failed, 254)


def done():
    """Print the plan if none was given, and exit with the failure count."""
    if not _finished:
        sys.exit(_exit_code())


def _hard_exit(code):
    # From an excepthook or atexit handler SystemExit would not set the
    # status, so leave directly (TAP lines are flushed as they are written).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _excepthook(etype, value, tb):
    global _died
    _died = True
    ok(False, "test script ran to the end (died: %s: %s)" % (etype.__name__, value),
       "".join(traceback.format_exception(etype, value, tb)).rstrip())
    if not _finished:
        _hard_exit(_exit_code())
    _hard_exit(255)


sys.excepthook = _excepthook


@atexit.register
def _at_exit():
    # A script that returned without done() still gets a plan and cleanup.
    if not _finished:
        _hard_exit(_exit_code())


# ---- cleanup -------------------------------------------------------------

_cleanups = []


def wait_for(cond, seconds=30, step=0.1):
    """cond()'s first true value within the time, else its value then."""
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def defer(fn, *args):
    """Run fn(*args) when the test ends (last registered, first run);
    errors are printed and ignored."""
    _cleanups.append((fn, args))


def _run_cleanups():
    while _cleanups:
        fn, args = _cleanups.pop()
        try:
            fn(*args)
        except Exception as e:  # cleanup must not hide the results
            note("cleanup %s failed: %s" % (getattr(fn, "__name__", fn), e))


# ---- the instance under test ----------------------------------------------

BASE_URL = os.environ.get("BASE_URL", "").rstrip("/")


_lock = None


def _take_lock(exclusive):
    """Hold $MLC_VAR/e2e-tests.lock until the process ends: shared for
    ordinary tests, exclusive for those that stop the database or compare
    whole-table listings, so that prove -j cannot run them alongside others."""
    global _lock
    import fcntl
    import time
    var = os.environ.get("MLC_VAR")
    if not var or not os.path.isdir(var):
        return
    _lock = open(os.path.join(var, "e2e-tests.lock"), "a")
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    deadline = time.monotonic() + 300
    while True:
        try:
            fcntl.flock(_lock, mode | fcntl.LOCK_NB)
            return
        except OSError:
            if time.monotonic() > deadline:
                bail_out("waited 300 s for the other end-to-end tests (%s lock)" %
                         ("exclusive" if exclusive else "shared"))
            time.sleep(0.1)


def need_instance(*more_env, exclusive=False):
    """Fail the whole file (Bail out!) unless run against an instance
    (./scripts/mlc test exports BASE_URL and the MLC_* variables), with the
    Python modules the tests use.  exclusive=True makes the file run alone
    (see _take_lock)."""
    missing = [v for v in ("BASE_URL",) + more_env if not os.environ.get(v)]
    if missing:
        no_instance(missing)
    try:
        import requests  # noqa: F401
    except ImportError:
        bail_out("needs the Debian package python3-requests (./scripts/mlc test installs it)")
    _send_test_token()
    if any(v.startswith("MLC_DB_") for v in more_env):
        try:
            import pymysql  # noqa: F401
        except ImportError:
            bail_out("needs the Debian package python3-pymysql (./scripts/mlc test installs it)")
    _take_lock(exclusive)


_session = None

# The admin token "mlc test" makes when the instance runs with MLC_AUTH=on
# (None with auth off): every request below carries it unless told
# otherwise with token=... (None: no Authorization header at all).
TOKEN = os.environ.get("MLC_TEST_TOKEN") or None
_DEFAULT = object()


def auth_on():
    """Does the instance under test want tokens?"""
    return TOKEN is not None


def need_auth(*more_env, exclusive=False):
    """need_instance(), and skip the whole file unless the instance runs
    with MLC_AUTH=on."""
    need_instance(*more_env, exclusive=exclusive)
    if not auth_on():
        skip_all("needs an instance with MLC_AUTH=on (mlc test without MLC_TEST_AUTH=off)")


def bearer(token):
    """The headers that present token."""
    return {"Authorization": "Bearer " + token}


def _send_test_token():
    """With auth on, every request of the requests library to BASE_URL that
    names no Authorization header gets the test's token: tests (and the
    documented client examples they run) stay as a client without auth
    writes them."""
    import requests
    if TOKEN is None or getattr(requests.Session.request, "_mlc_token", False):
        return
    plain = requests.Session.request

    def request(self, method, url, *args, **kw):
        if isinstance(url, str) and BASE_URL and url.startswith(BASE_URL + "/"):
            headers = kw.get("headers") or {}
            if not any(k.lower() == "authorization" for k in headers):
                kw["headers"] = dict(headers, Authorization="Bearer " + TOKEN)
        return plain(self, method, url, *args, **kw)

    request._mlc_token = True
    requests.Session.request = request


def curl_auth():
    """curl arguments that send the test's token (none with auth off)."""
    return ["-H", "Authorization: Bearer " + TOKEN] if TOKEN else []


def http(method, path, token=_DEFAULT, **kw):
    """Send a request to BASE_URL + path with the test's token, or with
    token, or with none (token=None); returns the requests.Response."""
    global _session
    import requests
    if _session is None:
        _session = requests.Session()
    if token is not _DEFAULT:
        headers = dict(kw.pop("headers", None) or {})
        if not any(k.lower() == "authorization" for k in headers):
            # A None value makes requests send no such header at all.
            headers["Authorization"] = "Bearer " + token if token is not None else None
        kw["headers"] = headers
    kw.setdefault("timeout", 30)
    try:
        return _session.request(method, BASE_URL + path, **kw)
    except requests.ConnectionError:
        # A kept-alive connection that nginx closed (tests restart it) may
        # be picked from the pool just before its close arrives: a read is
        # safe to send once more, on a new connection.
        if method not in ("GET", "HEAD"):
            raise
        _session.close()
        return _session.request(method, BASE_URL + path, **kw)


def get(path, **kw):
    return http("GET", path, **kw)


def post(path, **kw):
    return http("POST", path, **kw)


def patch(path, **kw):
    return http("PATCH", path, **kw)


def delete(path, **kw):
    return http("DELETE", path, **kw)


def body_of(resp):
    """The decoded JSON body, or None when it is not JSON."""
    try:
        return resp.json()
    except ValueError:
        return None


def describe(resp):
    """A short account of a response, for diagnostics."""
    text = resp.text if len(resp.text) <= 2000 else resp.text[:2000] + "..."
    return "%s %s -> %d %s\n%s" % (resp.request.method, resp.request.url,
                                   resp.status_code, resp.headers.get("Content-Type"), text)


def is_status(resp, status, name):
    """Check the status code, showing the whole response when it differs."""
    return ok(resp.status_code == status, name,
              "         got: %d" % resp.status_code,
              "    expected: %d" % status,
              describe(resp))


def is_json(resp, name):
    """Check the Content-Type is application/json and the body parses."""
    ctype = resp.headers.get("Content-Type", "")
    return ok(ctype.split(";")[0].strip() == "application/json" and body_of(resp) is not None,
              name, describe(resp))


def is_error(resp, status, name):
    """An error reply: this status, a JSON body with a "detail" and the
    request's id as "request_id" (the same as its X-Request-Id header),
    sent as application/json.  Two checks; returns the body (or {})."""
    is_status(resp, status, name + ": answers %d" % status)
    body = body_of(resp)
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
    rid = resp.headers.get("X-Request-Id")
    ok(ctype == "application/json" and isinstance(body, dict) and "detail" in body
       and rid and body.get("request_id") == rid,
       name + ": the %d body is JSON {\"detail\": ..., \"request_id\": <X-Request-Id>} sent as "
       "application/json" % status, describe(resp), "X-Request-Id: %r" % rid)
    return body if isinstance(body, dict) else {}


def detail_entries(body):
    """The {loc, msg, type} triples of a 422 body, as comparable tuples
    (other keys such as ctx are left out)."""
    out = []
    for e in (body or {}).get("detail") or []:
        if isinstance(e, dict):
            out.append((tuple(e.get("loc") or ()), e.get("msg"), e.get("type")))
        else:
            out.append(("not an object", e, None))
    return out


def is_422(resp, expected, name):
    """A validation error whose detail lists exactly the expected entries
    (loc, msg, type) in any order; msg None means any message.  Three
    checks: status, JSON shape, entries."""
    body = is_error(resp, 422, name)
    got = detail_entries(body)
    want = [(tuple(loc), msg, typ) for loc, msg, typ in expected]
    unmatched = list(got)
    missing = []
    for w in want:
        for g in unmatched:
            if g[0] == w[0] and g[2] == w[2] and (w[1] is None or g[1] == w[1]):
                unmatched.remove(g)
                break
        else:
            missing.append(w)
    return ok(not missing and not unmatched and len(got) == len(want),
              name + ": detail lists exactly %s" % ", ".join(
                  "/".join(str(p) for p in w[0][1:]) or w[0][0] for w in want),
              "     missing: " + _show([list(m) for m in missing]),
              "  unexpected: " + _show([list(u) for u in unmatched]),
              describe(resp))


# ---- models ---------------------------------------------------------------

UUID4_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
# Times end in "+00:00" (not "Z"), which datetime.fromisoformat reads in
# every Python 3 version, as the Python service wrote them.
ISO_UTC_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?\+00:00$"
MODEL_KEYS = ("modelid", "modelname", "modelkind", "hyperparameter", "modelperformance",
              "trainingresource", "runresource", "featurelist", "inference", "modeltags",
              "drift_detection", "created_at", "updated_at")
JSON_COLUMNS = ("hyperparameter", "modelperformance", "trainingresource", "runresource",
                "featurelist", "inference", "modeltags", "drift_detection")


def uniq(prefix="t"):
    """A name no other test (or earlier run) uses."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def minimal_model(**fields):
    """The smallest valid MLModelCreate body, with fields added/replaced."""
    body = {"modelname": uniq("name"), "modelkind": uniq("kind"), "drift_detection": None}
    body.update(fields)
    return body


def add_model(body, name="POST /model/add registers the model"):
    """POST a model that must be accepted: one check (201); returns the
    created model (deleted when the test ends), or raises so the script
    reports why it could not go on."""
    resp = post("/model/add", json=body)
    if not is_status(resp, 201, name):
        raise RuntimeError("could not register a model to test with")
    model = resp.json()
    defer(_forget, model["modelid"])
    return model


def _forget(modelid):
    http("DELETE", "/model/" + modelid, timeout=10)


def list_all(path="/model/all", **params):
    """Every model a list route returns, paging with skip/limit=1000."""
    out, skip = [], 0
    while True:
        resp = get(path, params=dict(params, skip=skip, limit=1000))
        if resp.status_code != 200:
            raise RuntimeError("paging %s failed: %s" % (path, describe(resp)))
        page = resp.json()
        out.extend(page)
        if len(page) < 1000:
            return out
        skip += 1000


def ids(models):
    return [m.get("modelid") for m in models] if isinstance(models, list) else models


# ---- database ---------------------------------------------------------------

_db = None


def db():
    """A connection to the instance's database (autocommit, dict rows)."""
    global _db
    if _db is None:
        import pymysql
        _db = pymysql.connect(unix_socket=os.environ["MLC_DB_SOCKET"],
                              user=os.environ["MLC_DB_USER"],
                              password=os.environ.get("MLC_DB_PASSWORD", ""),
                              database=os.environ["MLC_DB_NAME"],
                              charset="utf8mb4", autocommit=True,
                              cursorclass=pymysql.cursors.DictCursor)
    return _db


def db_admin(sql, database=None, stdin=None):
    """Run SQL (or stdin) as MariaDB's root over the instance's socket."""
    import subprocess
    args = ["/usr/bin/mariadb", "--no-defaults", "--socket=" + os.environ["MLC_DB_SOCKET"], "-uroot"]
    if database:
        args.append(database)
    if sql:
        args += ["-e", sql]
    return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60)


# What the app account (MLC_DB_USER) may do on a database: rows and stored
# procedures, no schema changes (scripts/mlc APP_GRANTS, INSTALL).
APP_GRANTS = "SELECT, INSERT, UPDATE, DELETE, EXECUTE"


def private_database(name):
    """Create database `name` with every sql/ migration applied, granted to
    the instance's user as the app account (APP_GRANTS) and dropped when
    the test ends.  Returns None, or why it could not be created (root's
    socket login refused)."""
    if os.environ.get("MLC_DB_HOST") or not os.access("/usr/bin/mariadb", os.X_OK):
        return "the instance's database is not a local one"
    res = db_admin("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin; "
                   "GRANT %s ON `%s`.* TO '%s'@'localhost'"
                   % (name, APP_GRANTS, name, os.environ["MLC_DB_USER"]))
    if res.returncode != 0:
        return res.stderr.strip()
    defer(db_admin, "DROP DATABASE IF EXISTS `%s`" % name)
    sqldir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sql")
    for f in sorted(os.listdir(sqldir)):
        if f[:3].isdigit() and f.endswith(".sql"):
            with open(os.path.join(sqldir, f)) as fh:
                r = db_admin(None, name, fh.read())
            if r.returncode != 0:
                raise RuntimeError("applying sql/%s failed: %s" % (f, r.stderr))
    return None


def make_token(owner, scope="write", days=None):
    """A new API token (through the SQL procedure, as an administrator
    makes one): returns (id, token)."""
    rows = db_rows("CALL mlc_token_add(%s, %s, %s)", owner, scope, days)
    return rows[0]["id"], rows[0]["token"]


def revoke_token(token_or_id):
    return db_rows("CALL mlc_token_revoke(%s)", str(token_or_id))


def db_rows(sql, *args):
    with db().cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def db_close():
    global _db
    if _db is not None:
        try:
            _db.close()
        except Exception:
            pass
        _db = None


def db_time(dt):
    """A DATETIME(6) value as the API writes it (ISO 8601, UTC, '+00:00')."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00") if dt is not None else None


def iso_micros(s):
    """'2026-11-27T05:32:26.1234+00:00' -> '2026-11-27T05:32:26.123400+00:00'
    so that times written with fewer fraction digits compare with db_time()."""
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?\+00:00$", s or "")
    if not m:
        return s
    return "%s.%s+00:00" % (m.group(1), (m.group(2) or "").ljust(6, "0"))


def api_time(s):
    """An API time as an aware datetime, read the way Python clients do
    (datetime.fromisoformat, which before 3.11 refuses a 'Z')."""
    import datetime
    return datetime.datetime.fromisoformat(s)



def project_version():
    """The version in configure.ac's AC_INIT, which mlc-api reports."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    with open(os.path.join(root, "configure.ac"), encoding="utf-8") as f:
        m = re.search(r"AC_INIT\(\[[^\]]*\],\s*\[([^\]]+)\]", f.read())
    return m.group(1) if m else None
