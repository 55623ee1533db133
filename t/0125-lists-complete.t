#!/usr/bin/python3
# Lists are complete.  Routes the published API documents without paging
# (getkind, search, opos, and our own lists) return every match unless asked
# for less; limit is honoured as given, or refused when MLC_MAX_LIMIT is set
# and it is above it, never quietly reduced; a page cut by limit names the
# next one in a Link header.  Lists stream from the database: a worker's
# memory does not grow with the list, and a list the database fails to
# finish never reaches the client as a shorter well-formed list.
import json
import os
import select
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import fcgi
import mlcapi
import mlctap as t

# It compares whole-table listings with the table and watches the workers'
# database connections, so it runs alone.
t.need_instance("MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME", "MLC_VAR", exclusive=True)
import requests

var = os.environ["MLC_VAR"]
log_dir = os.environ.get("MLC_LOG_DIR") or os.path.join(var, "log")


def listing(resp, name):
    """The list a 200 answer carries (checked), or []."""
    body = t.body_of(resp)
    if resp.status_code == 200 and isinstance(body, list):
        return body
    t.ok(False, name + " (a 200 JSON list)", t.describe(resp))
    return []


def next_url(resp):
    """The target of the reply's Link rel="next", or None."""
    link = resp.links.get("next")
    return link["url"] if link else None


def follow(path, params=None, name="paging"):
    """Every row of a list, following Link rel="next" from the first page;
    returns (rows, page sizes, the Link targets)."""
    rows, sizes, links = [], [], []
    resp = t.get(path, params=params)
    while True:
        page = listing(resp, name)
        rows += page
        sizes.append(len(page))
        url = next_url(resp)
        if not url or len(links) > 200:
            return rows, sizes, links
        links.append(url)
        resp = t.get(url)


def link_query(url):
    return urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True)


# ---- 250 models of one kind, sharing one tag ---------------------------------

# A kind and a tag with characters that must be escaped in a URL: the Link
# of a cut page has to carry them back correctly.
kind = "many kind \u00fc+" + t.uniq()
tag = "shared tag & \u00fc+=?" + t.uniq()
other_tag = "other " + t.uniq()
with t.db().cursor() as cur:
    cur.execute("INSERT INTO models (modelid, modelname, modelkind, modeltags, created_at, updated_at) "
                "SELECT UUID(), CONCAT('m-', seq), %s, JSON_ARRAY(%s), UTC_TIMESTAMP(6), "
                "UTC_TIMESTAMP(6) FROM seq_1_to_250", (kind, tag))
    cur.execute("INSERT INTO model_tags (tag, model_seq, modelid) "
                "SELECT %s, seq, modelid FROM models WHERE modelkind = %s", (tag, kind))
t.defer(t.db_rows, "DELETE FROM models WHERE modelkind = %s", kind)
mine = [r["modelid"] for r in t.db_rows("SELECT modelid FROM models WHERE modelkind = %s ORDER BY seq", kind)]
t.is_(len(mine), 250, "setup: 250 models of one kind with one shared tag")
kind_path = "/model/getkind/" + urllib.parse.quote(kind, safe="")

resp = t.get(kind_path)
t.is_(t.ids(listing(resp, "getkind")), mine, "GET /model/getkind returns all 250 models of the kind, in order")
t.is_(next_url(resp), None, "... and, not being cut, has no Link header")
resp = t.get("/model/search", params={"tags": tag})
t.is_(t.ids(listing(resp, "search")), mine, "GET /model/search returns all 250 models having the tag")
t.is_(next_url(resp), None, "... with no Link header")
t.is_(t.ids(listing(t.get("/model/search", params=[("tags", tag), ("tags", other_tag)]), "search 2")), mine,
      "search by that tag and an unused one returns the 250 too")

everything = [r["modelid"] for r in t.db_rows("SELECT modelid FROM models ORDER BY seq")]
resp = t.get("/model/all", params={"limit": 250})
t.is_(t.ids(listing(resp, "all 250")), everything[:250], "GET /model/all?limit=250 returns 250 models")

# /model/all keeps the documented default page of 100, and says when more follow.
resp = t.get("/model/all")
first = listing(resp, "all default")
t.is_(t.ids(first), everything[:100], "GET /model/all without limit returns the first 100 models")
t.is_(next_url(resp), "/model/all?skip=100&limit=100",
      "... with Link: </model/all?skip=100&limit=100>; rel=\"next\"")
t.like(resp.headers.get("Link", ""), r'^<[^>]+>; rel="next"$', "the Link header has the RFC 8288 form")
rows, sizes, links = follow("/model/all")
t.is_(t.ids(rows), everything, "following Link rel=next from the default page lists every model once, in order")
t.ok(all(s == 100 for s in sizes[:-1]) and 0 < sizes[-1] <= 100,
     "every page but the last holds 100 models, and the last page has no Link", sizes)

# Cut pages of a route without a default limit: the Link keeps the path as
# sent and every other query parameter (repeated tags included).
rows, sizes, links = follow(kind_path, {"limit": 100}, "getkind pages")
t.is_((t.ids(rows), sizes), (mine, [100, 100, 50]), "getkind?limit=100 pages 100, 100, 50 through Link")
t.is_(links, [kind_path + "?skip=100&limit=100", kind_path + "?skip=200&limit=100"],
      "the Links keep the percent-encoded path and set skip and limit")
params = [("tags", tag), ("limit", 100), ("tags", other_tag), ("skip", 0)]
rows, sizes, links = follow("/model/search", params, "search pages")
t.is_((t.ids(rows), sizes), (mine, [100, 100, 50]), "search?tags=T&tags=U&limit=100 pages 100, 100, 50 through Link")
t.is_([link_query(u) for u in links],
      [[("tags", tag), ("tags", other_tag), ("skip", "100"), ("limit", "100")],
       [("tags", tag), ("tags", other_tag), ("skip", "200"), ("limit", "100")]],
      "the search Links keep both tags, in order, encoded so they decode to the same values")
t.ok(all(u.startswith("/model/search?") and " " not in u and "&amp;" not in u for u in links),
     "the Links are relative URLs without raw spaces", links)

# The next page is looked up, not guessed: a page ending at the last row has no Link.
resp = t.get(kind_path, params={"skip": 240, "limit": 10})
t.is_((t.ids(listing(resp, "last page")), next_url(resp)), (mine[240:], None),
      "skip=240&limit=10 returns the last 10 models and no Link")
resp = t.get(kind_path, params={"skip": 239, "limit": 10})
t.is_((t.ids(listing(resp, "second to last")), next_url(resp)), (mine[239:249], kind_path + "?skip=249&limit=10"),
      "skip=239&limit=10 leaves one model over: Link to skip=249")
resp = t.get(kind_path, params={"limit": 0})
t.is_((listing(resp, "limit 0"), next_url(resp)), ([], None), "limit=0 returns [] without a Link")
t.is_(listing(t.get(kind_path, params={"skip": 1000}), "past the end"), [], "skip past the end returns []")

# ---- 10,000 operations of one owner ---------------------------------------------

owner = t.uniq("owner")
with t.db().cursor() as cur:
    cur.execute("INSERT INTO operations (ownerid, deployment_id, modelid, data, result, timestamp) "
                "SELECT %s, 'dep-lists', 'model-lists', CONCAT('[', seq, ']'), '[0]', UTC_TIMESTAMP(6) "
                "FROM seq_1_to_10000", (owner,))
t.defer(t.db_rows, "DELETE FROM operations WHERE ownerid = %s", owner)
# The API shows operation_uuid as operationid; the integer key orders them.
ops = [r["operation_uuid"] for r in
       t.db_rows("SELECT operation_uuid FROM operations WHERE ownerid = %s ORDER BY operationid DESC",
                 owner)]
t.is_(len(ops), 10000, "setup: 10,000 operations of one owner")

resp = t.get("/deployment/get/opos/" + owner)
got = [o.get("operationid") for o in listing(resp, "opos")]
t.is_(len(got), 10000, "GET /deployment/get/opos returns all 10,000 operations")
t.ok(got == ops, "... newest first, each once", got[:3], ops[:3])
t.is_(next_url(resp), None, "... with no Link header")
t.is_(resp.headers.get("Content-Length"), None, "the list is streamed (no Content-Length)")

resp = t.get("/deployment/get/opos/" + owner, params={"limit": 5000})
page = listing(resp, "opos limit 5000")
t.is_(len(page), 5000, "limit=5000 (no MLC_MAX_LIMIT) returns 5000 operations: limit is not capped")
t.is_(next_url(resp), "/deployment/get/opos/%s?skip=5000&limit=5000" % owner, "... and links to skip=5000")
resp = t.get(next_url(resp) or "/nowhere")
t.is_(([o.get("operationid") for o in listing(resp, "opos second half")], next_url(resp)), (ops[5000:], None),
      "the linked page returns the other 5000 and no Link")

# ---- a private mlc-api: MLC_MAX_LIMIT, memory, a database failing mid-list --------

# One worker of its own, spoken to over FastCGI directly: its limit setting
# differs from the shared instance's, and its memory and its database
# connection can be watched without nginx in the way.  AddressSanitizer
# keeps freed memory in a quarantine (256 MiB by default) before reusing
# it, which would make even a streamed list look like it grows the worker
# by its size; this worker gets a small quarantine so that its peak
# resident size shows what the code holds, not what ASan holds back.
sock = os.path.join(var, "run", "t0125.sock")
api_log = os.path.join(log_dir, "t0125-mlc-api.log")
api = mlcapi.Api(sock, api_log, drop=("MLC_SLOW_SOCKET",), MLC_WORKERS="1", MLC_SLOW_WORKERS="1",
                 MLC_MAX_LIMIT="200", ASAN_OPTIONS=":".join(filter(None, [
                     os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=4"])))
master = api.proc
api.wait_up(10)


def fetch(path, query=""):
    r = fcgi.Request(path, "GET", sock, query=query)
    status, headers, body = r.finish()
    return status, headers, body, r.ended


def worker_pid():
    out = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True).stdout.split()
    return out[0] if out else None


status, headers, body, _ = fetch("/model/all", "limit=201")
detail = (json.loads(body or b"{}").get("detail") or [{}])[0] if status == 422 else {}
t.is_((status, detail), (422, {"loc": ["query", "limit"], "msg": "ensure this value is less than or equal to 200",
                               "type": "value_error.number.not_le", "ctx": {"limit_value": 200}}),
      "with MLC_MAX_LIMIT=200, limit=201 is a 422 at [query, limit] (not a shorter list)")
status, headers, body, _ = fetch("/model/all", "limit=200")
t.is_((status, len(json.loads(body or b"null") or [])), (200, 200), "limit=200 (the maximum) returns 200 models")
status, headers, body, _ = fetch(kind_path)
t.is_((status, len(json.loads(body or b"null") or []), headers.get("link")),
      (200, 200, '<%s?skip=200&limit=200>; rel="next"' % kind_path),
      "with a maximum set, a list without limit returns that many and links to the rest")

# Big rows: 96 operations of about 1 MiB each.
big_owner = t.uniq("big-owner")
with t.db().cursor() as cur:
    cur.execute("INSERT INTO operations (ownerid, deployment_id, modelid, data, result, timestamp) "
                "SELECT %s, 'dep-big', 'model-big', CONCAT('[\"', seq, REPEAT('x', 1048576), '\"]'), "
                "'[0]', UTC_TIMESTAMP(6) FROM seq_1_to_96", (big_owner,))
t.defer(t.db_rows, "DELETE FROM operations WHERE ownerid = %s", big_owner)
big_path = "/deployment/get/opos/" + big_owner


def vm(pid, key):
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


# A first request brings the worker to its working size (connection,
# statement cache, one big row's buffers), then its peak is reset.
status, _, body, _ = fetch(big_path, "limit=1")
t.is_((status, len(json.loads(body or b"null") or [])), (200, 1), "setup: one big operation through the private worker")
pid = worker_pid()
try:
    with open("/proc/%s/clear_refs" % pid, "w") as f:
        f.write("5")  # VmHWM := VmRSS
except OSError as e:
    t.note("cannot reset the peak RSS (%s); measuring from the peak so far" % e)
base = vm(pid, "VmHWM")
status, headers, body, ended = fetch(big_path)
peak = vm(pid, "VmHWM")
rows = json.loads(body) if status == 200 else []
t.is_((status, len(rows), ended), (200, 96, True), "the 96 big operations (%d MiB) arrive whole" % (len(body) >> 20))
grew = peak - base
t.ok(len(body) > 90 << 20 and grew * 1024 < len(body) // 4,
     "the worker's peak RSS grew by %d KiB for a %d MiB list: far less than the list (one row at a time)"
     % (grew, len(body) >> 20))
del body, rows

# The database fails in the middle of a list.  The worker cannot send a
# status any more; the client must not get a well-formed shorter list.
# Not reading the reply holds the worker (and so the statement) mid-list
# until the database has been interrupted.


def statement_id(pattern, timeout=10):
    """The processlist id of the connection running a statement like pattern."""
    end = time.time() + timeout
    while time.time() < end:
        rows = t.db_rows("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE %s "
                         "AND ID <> CONNECTION_ID()", pattern)
        if rows:
            return rows[0]["ID"]
        time.sleep(0.01)
    return None


for how in ("KILL QUERY", "KILL CONNECTION"):
    req = fcgi.Request(big_path, "GET", sock)
    # Once the first bytes of the reply arrive, rows are streaming (a kill
    # before the first row would be retried on a new connection, or be an
    # ordinary error reply).
    select.select([req.sock], [], [], 10)
    sid = statement_id("%FROM operations WHERE ownerid%")
    if sid is None:
        t.skip("%s mid-list: the client gets a cut-off reply" % how, "the statement was not seen running")
        req.sock.close()
        continue
    t.db_rows(how + " %s" % sid)
    status, headers, body = req.finish()
    ended = req.ended
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    t.ok(status == 200 and body.startswith(b"[{") and parsed is None and not ended,
         "%s in the middle of a list: the reply (%d KiB) is an unterminated JSON list, and the FastCGI "
         "connection ends without its end-request record" % (how, len(body) >> 10),
         "status %r, ended %r, parsed %s" % (status, ended, type(parsed).__name__))
    status, _, body, ended = fetch(big_path, "limit=2")
    t.is_((status, len(json.loads(body or b"null") or []), ended), (200, 2, True),
          "after %s the worker's next list is whole (its database connection is usable)" % how)

# The reader goes away in the middle of a list: the worker stops writing,
# the rest of the result is read and dropped, and its connection serves
# the next request.
req = fcgi.Request(big_path, "GET", sock)
select.select([req.sock], [], [], 10)
req.sock.recv(4096)
req.sock.close()
status, _, body, ended = fetch(big_path, "limit=2")
t.is_((status, len(json.loads(body or b"null") or []), ended), (200, 2, True),
      "after a reader left in the middle of a list, the worker's next list is whole")

with open(api_log, errors="replace") as f:
    log = f.read()
t.like(log, r"response cut off: the database failed after \d+ rows of a list",
       "the worker logs the list it cut off")
t.like(log, r"list not delivered: the connection to nginx failed after \d+ rows",
       "the worker logs the list its reader left")

# The same through nginx: the database connection of whichever worker runs
# the list is killed while it streams.  The client may see the connection
# end early or an unparseable body, or (when the kill came before the first
# row) an error status, or (when it came too late) the whole list: never a
# shorter list.
outcomes = []
for attempt in range(5):
    result = {}

    def client():
        try:
            r = requests.get(t.BASE_URL + big_path, timeout=60)
            result["status"] = r.status_code
            result["body"] = r.content
        except requests.RequestException as e:
            result["error"] = e.__class__.__name__

    th = threading.Thread(target=client)
    th.start()
    sid = statement_id("%FROM operations WHERE ownerid%", timeout=5)
    if sid is not None:
        try:
            t.db_rows("KILL CONNECTION %s" % sid)
        except Exception:
            pass  # it finished in between
    th.join()
    if "error" in result:
        outcomes.append("cut off (%s)" % result["error"])
    elif result["status"] != 200:
        outcomes.append("error %d" % result["status"])
    else:
        try:
            n = len(json.loads(result["body"]))
            outcomes.append("whole" if n == 96 else "SHORT LIST of %d" % n)
        except ValueError:
            outcomes.append("unparseable body")
    if outcomes[-1].startswith(("cut off", "unparseable")):
        break
t.ok(not any(o.startswith("SHORT") for o in outcomes),
     "through nginx, a list whose database connection is killed never arrives as a shorter list", outcomes)
if any(o.startswith(("cut off", "unparseable")) for o in outcomes):
    t.note("through nginx, the killed list reached the client cut off: %s" % outcomes[-1])
else:
    t.skip("through nginx, the killed list reached the client cut off",
           "the kill never landed mid-list: %s" % ", ".join(outcomes))

t.done()
