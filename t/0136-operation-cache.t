#!/usr/bin/python3
# The workers' cache of operations written as JSON (app/rowcache.c,
# MLC_OPERATION_CACHE) behind GET /deployment/get/opos/{ownerid}: each page's
# operationids and row_versions come from the database, so an operation
# recorded through one API host is listed at once by every worker of
# another, one changed at the console is shown changed, and one deleted is
# never shown.  Two private masters on their own sockets play two API hosts
# on the instance's database (three fast workers each); a third runs without
# the cache (MLC_OPERATION_CACHE=0) as the reference: pages must be byte for
# byte what it answers, Link headers included.
import concurrent.futures
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlcapi
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME")
hosts = mlcapi.Hosts("t0136")
start, req = hosts.start, mlcapi.request


a, b, plain = start("a"), start("b"), start("plain", MLC_OPERATION_CACHE="0")
hosts.all_up()

# ---- setup: a deployment and 30 operations of one owner -------------------------------
owner, dep = t.uniq("opcache-owner"), t.uniq("opcache-dep")
model = t.add_model(t.minimal_model(), "setup: a model for the deployment")
db = t.db()
cur = db.cursor()
cur.execute("INSERT INTO deployments (deployment_id, modelid, model_version, ownerid, placement, "
            "inference_data, status, desired, created_at, updated_at) VALUES (%s, %s, 1, %s, NULL, 0, "
            "'stopped', 'stopped', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))", (dep, model["modelid"], owner))
t.defer(t.db_rows, "DELETE FROM deployments WHERE deployment_id = %s", dep)
t.defer(t.db_rows, "DELETE FROM operations WHERE ownerid = %s", owner)
cur.execute("INSERT INTO operations (ownerid, deployment_id, modelid, data, result, timestamp) "
            "SELECT %s, %s, %s, CONCAT('[[', seq, ', \"caf\u00e9\"]]'), CONCAT('[', seq, ']'), "
            "UTC_TIMESTAMP(6) FROM seq_1_to_30", (owner, dep, model["modelid"]))
db.commit()
path = "/deployment/get/opos/" + owner
pages = [{"limit": "10"}, {"limit": "10", "skip": "10"}, {"limit": "10", "skip": "25"},
         {"limit": "25"}, {"limit": "1"}, {"limit": "1000"}, {"limit": "0"}, {"skip": "40", "limit": "5"},
         {}]


def ids_seen(sock, q, n=6):
    """n concurrent reads of one page on sock: the operationids of each
    answer (the status when not 200)."""
    def one(_):
        status, _, out = req(sock, path, **q)
        return [o["operationid"] for o in json.loads(out)] if status == 200 else status
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def same_as_plain(what):
    bad = []
    for sock in (a, b):
        for _ in range(4):
            for q in pages:
                got, want = req(sock, path, **q), req(plain, path, **q)
                # The request ids differ; status, Link and body must not.
                if (got[0], got[1].get("link"), got[2]) != (want[0], want[1].get("link"), want[2]):
                    bad.append((q, got[0], want[0], got[1].get("link"), want[1].get("link")))
    t.ok(not bad, what, bad[:3])


# Warm every worker's cache on both hosts, then compare.
for sock in (a, b):
    for q in pages:
        ids_seen(sock, q, 9)
same_as_plain("opos pages from the cached hosts are byte for byte the uncached master's, "
              "Link headers included")

# ---- recorded on one host, listed at once on the other -----------------------------------
stale = []
for i in range(8):
    writer, reader = (a, b) if i % 2 == 0 else (b, a)
    status, _, out = req(writer, "/deployment/add/operation", "POST",
                         {"ownerid": owner, "deploymentid": dep, "modelid": model["modelid"],
                          "data": [[i, 0.5]], "result": [i]})
    if status != 201:
        stale.append(("POST", status, out[:200]))
        continue
    new = json.loads(out)["operationid"]
    for sock in (reader, writer):
        for q in ({"limit": "10"}, {"limit": "25"}):
            stale += [(i, q, got[:2] if isinstance(got, list) else got)
                      for got in ids_seen(sock, q) if not isinstance(got, list) or got[0] != new]
t.ok(not stale, "8 operations recorded, alternating hosts: every read right after, on every worker "
     "of both hosts, lists the new one first", stale[:5])
same_as_plain("after them: the same pages as without the cache")

# ---- changed at the SQL console: shown as it is now, at once -----------------------------
# MLConnector never changes an operation; an administrator may (to redact
# what a call recorded).  Every worker of both hosts has the rows cached.
for sock in (a, b):
    ids_seen(sock, {"limit": "10"}, 9)
redacted = t.db_rows("SELECT operationid, operation_uuid FROM operations WHERE ownerid = %s "
                     "ORDER BY operationid DESC LIMIT 1 OFFSET 1", owner)[0]
cur.execute("UPDATE operations SET data = '\"redacted\"', result = '[null]' WHERE operationid = %s",
            (redacted["operationid"],))
db.commit()


def redacted_seen(sock):
    status, _, out = req(sock, path, limit="10")
    rows = {o["operationid"]: o for o in json.loads(out)} if status == 200 else {}
    row = rows.get(redacted["operation_uuid"], {})
    return json.dumps([row.get("data"), row.get("result")])


with concurrent.futures.ThreadPoolExecutor(6) as pool:
    seen = [got for sock in (a, b) for got in pool.map(lambda _: redacted_seen(sock), range(9))]
t.is_(set(seen), {'["redacted", [null]]'},
      "an operation changed at the console: every read on every worker of both hosts shows "
      "the change at once")
t.ok(t.db_rows("SELECT row_version > timestamp AS moved FROM operations WHERE operationid = %s",
               redacted["operationid"])[0]["moved"],
     "the database moved the row's row_version with the UPDATE")
same_as_plain("after the change: the same pages as without the cache")

# ---- deleted at the SQL console: never shown again -----------------------------------------
gone = [r["operation_uuid"] for r in
        t.db_rows("SELECT operation_uuid FROM operations WHERE ownerid = %s "
                  "ORDER BY operationid DESC LIMIT 3 OFFSET 2", owner)]
cur.execute("DELETE FROM operations WHERE ownerid = %s AND operation_uuid IN (%s, %s, %s)",
            (owner, *gone))
db.commit()
shown = [(os.path.basename(sock), q) for sock in (a, b) for q in ({"limit": "10"}, {"limit": "1000"})
         for got in ids_seen(sock, q) if not isinstance(got, list) or set(got) & set(gone)]
t.ok(not shown, "three operations deleted at the console: no read on any worker of either host "
     "shows them", shown[:5])
same_as_plain("after the deletes: the same pages as without the cache")

# ---- a whole page deleted: an empty list, no stale rows ------------------------------------
cur.execute("DELETE FROM operations WHERE ownerid = %s", (owner,))
db.commit()
left = [(os.path.basename(sock), got) for sock in (a, b) for got in ids_seen(sock, {"limit": "10"})
        if got != []]
t.ok(not left, "every operation of the owner deleted: both hosts answer [] at once", left[:3])

hosts.stop_all()
t.done()
