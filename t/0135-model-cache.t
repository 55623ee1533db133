#!/usr/bin/python3
# The workers' cache of models written as JSON (app/rowcache.c, sql/018):
# a change is seen at once by every worker of every API host.  Two private
# masters on their own sockets play two API hosts on the instance's
# database (three fast workers each), a third runs without the cache
# (MLC_MODEL_CACHE=0) as the reference.  Each change - PATCH on either
# host, UPDATE at the SQL console, DELETE - is followed at once by
# concurrent reads on both hosts, by id and in lists, and every answer must
# show it.  Pages must be byte for byte what the uncached master answers.
import concurrent.futures
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlcapi
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME")
hosts = mlcapi.Hosts("t0135")
start, req = hosts.start, mlcapi.request


a, b, plain = start("a"), start("b"), start("plain", MLC_MODEL_CACHE="0")
hosts.all_up()

kind, tag = t.uniq("cachekind"), t.uniq("cachetag")
model = t.add_model(t.minimal_model(modelkind=kind, modeltags=[tag]), "setup: a model to read")
mid = model["modelid"]
reads = [("/model/" + mid, {}), ("/model/getkind/" + kind, {"limit": "5"}),
         ("/model/search", {"tags": tag, "limit": "5"})]


def names_seen(sock, n=6):
    """n concurrent rounds of every read on sock: the modelname each
    answer shows for the model (None when absent, the status when not 200)."""
    def one(_):
        seen = []
        for path, q in reads:
            status, _, out = req(sock, path, **q)
            if status != 200:
                seen.append(status)
                continue
            doc = json.loads(out)
            rows = doc if isinstance(doc, list) else [doc]
            seen.append(next((m["modelname"] for m in rows if m["modelid"] == mid), None))
        return seen
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return [name for seen in pool.map(one, range(n)) for name in seen]


# Warm every worker's cache on both hosts.
for sock in (a, b):
    names_seen(sock, 9)

# ---- PATCH on one host, read at once on both -------------------------------------
stale = []
for i in range(12):
    writer = (a, b)[i % 2]
    name = "cached-%d" % i
    status, _, out = req(writer, "/model/" + mid, "PATCH", {"modelname": name})
    if status != 200:
        stale.append(("PATCH", status, out[:200]))
        continue
    for sock in (a, b):
        stale += [(i, sock, got) for got in names_seen(sock) if got != name]
t.ok(not stale, "12 PATCHes, alternating hosts: every read right after, on every worker of both "
     "hosts, by id, getkind and search, shows the new name", stale[:5])

# ---- a change made at the SQL console ----------------------------------------------
db = t.db()
cur = db.cursor()
before = t.db_rows("SELECT row_version FROM models WHERE modelid = %s", mid)[0]["row_version"]
cur.execute("UPDATE models SET modelname = 'from the console' WHERE modelid = %s", (mid,))
db.commit()
seen = names_seen(a) + names_seen(b)
t.ok(all(n == "from the console" for n in seen),
     "an UPDATE at the SQL console is seen at once by every read on both hosts",
     [n for n in seen if n != "from the console"][:5])
version = t.db_rows("SELECT row_version FROM models WHERE modelid = %s", mid)[0]["row_version"]
t.ok(version > before, "the console's UPDATE moved row_version on (the database keeps it: "
     "ON UPDATE, no trigger)", before, version)
t.is_(t.db_rows("SELECT COUNT(*) AS n FROM information_schema.triggers "
                "WHERE trigger_schema = DATABASE()")[0]["n"], 0,
      "the schema has no trigger (creating one needs SUPER where binary logging is on)")

# ---- pages: many models changed at once, and a few -----------------------------------
kind2 = t.uniq("cachepage")
for n in range(12):
    t.add_model(t.minimal_model(modelkind=kind2, modelname="p%02d" % n), "setup: page model %d" % n)
urls = [("/model/getkind/" + kind2, {"limit": "5"}), ("/model/getkind/" + kind2, {"limit": "5", "skip": "5"}),
        ("/model/getkind/" + kind2, {"limit": "5", "skip": "10"}), ("/model/getkind/" + kind2, {"limit": "12"}),
        ("/model/getkind/" + kind2, {}), ("/model/getkind/" + kind2, {"limit": "0"}),
        ("/model/search", {"tags": tag, "limit": "1"}), ("/model/all", {"limit": "3"}),
        ("/model/" + mid, {})]


def same_as_plain(what):
    bad = []
    for sock in (a, b):
        for _ in range(4):
            for path, q in urls:
                got, want = req(sock, path, **q), req(plain, path, **q)
                # The request ids differ; status, Link and body must not.
                if (got[0], got[1].get("link"), got[2]) != (want[0], want[1].get("link"), want[2]):
                    bad.append((path, q, got[0], want[0], got[1].get("link"), want[1].get("link")))
    t.ok(not bad, what, bad[:3])


same_as_plain("pages and models from the cached hosts are byte for byte the uncached master's, "
              "Link headers included")
cur.execute("UPDATE models SET modelname = CONCAT('all-', modelname) WHERE modelkind = %s", (kind2,))
db.commit()
same_as_plain("after every model of a page changed: the same answers as without the cache")
cur.execute("UPDATE models SET modelname = CONCAT('some-', modelname) WHERE modelkind = %s "
            "ORDER BY seq LIMIT 3", (kind2,))
db.commit()
same_as_plain("after three models of a page changed: the same answers as without the cache")

# ---- POST /model/add answers with the row as written: the bytes a read gives -----
odd = {"modelname": "caf\u00e9 \"quoted\" \\ tab\t nl\n \u0001 \U0001F600 </script>",
       "modelkind": kind2, "modeltags": ["b", "a", "b", "\u00fcn\u00efcode"],
       "hyperparameter": [{"parameter": "alpha", "value": 0.89}, {"parameter": "n", "value": 1e300},
                          {"parameter": None, "value": -0.0}, {"parameter": "big", "value": 12345678901234567}],
       "modelperformance": [{"metric": "Accuracy", "order": 1, "threshold": 1.5e-7}],
       "trainingresource": None, "runresource": [],
       "featurelist": [{"feature_name": "x/y", "type": "cont", "kind": 0, "units": 1}],
       "inference": [{"type": "string", "value": "\u2028\u2029"}],
       "drift_detection": [{"is_true": 1, "method": 2}]}
for sock in (a, plain):
    status, _, out = req(sock, "/model/add", "POST", odd)
    t.is_(status, 201, "POST /model/add of a model with odd values (%s)" % os.path.basename(sock))
    added = json.loads(out)
    t.defer(lambda i=added["modelid"]: req(plain, "/model/" + i, "DELETE"))
    got = req(plain, "/model/" + added["modelid"])
    t.is_(out, got[2], "its answer is byte for byte what the uncached master reads back (%s)"
          % os.path.basename(sock))

# ---- DELETE on one host ---------------------------------------------------------------
status, _, _ = req(b, "/model/" + mid, "DELETE")
t.is_(status, 200, "DELETE on host b")
seen = names_seen(a) + names_seen(b)
t.ok(all(n in (404, None) for n in seen),
     "right after, host a and host b answer 404 by id and leave the model out of the lists",
     [n for n in seen if n not in (404, None)][:5])
hosts.stop_all()
t.done()
