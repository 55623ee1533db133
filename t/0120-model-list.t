#!/usr/bin/python3
# GET /model/all, /model/getkind/{modelkind} and /model/search: what each
# returns, in which order, and how skip/limit page through it.
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

# It compares whole-table listings with the table, so it runs alone.
t.need_instance("MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME", exclusive=True)


def ge0(loc):
    return (["query", loc], "ensure this value is greater than or equal to 0", "value_error.number.not_ge")


def not_int(loc):
    return (["query", loc], "value is not a valid integer", "type_error.integer")


def listing(resp, name):
    """The list a 200 answer carries (checked), or []."""
    body = t.body_of(resp)
    good = resp.status_code == 200 and isinstance(body, list)
    if not good:
        t.ok(False, name + " (a 200 JSON list)", t.describe(resp))
    return body if good else []


kind = t.uniq("kind")
t1, t2, t3 = t.uniq("tag1"), t.uniq("tag2"), t.uniq("tag3")
a = t.add_model(t.minimal_model(modelname="a", modelkind=kind, modeltags=[t1]), "setup: register model A (kind K, tag T1)")
b = t.add_model(t.minimal_model(modelname="b", modelkind=kind, modeltags=[t2]), "setup: register model B (kind K, tag T2)")
c = t.add_model(t.minimal_model(modelname="c", modelkind=kind, modeltags=[t1, t2]), "setup: register model C (kind K, tags T1 and T2)")
d = t.add_model(t.minimal_model(modelname="d", modelkind=kind.upper(), modeltags=[t3]), "setup: register model D (kind K in upper case, tag T3)")
e = t.add_model(t.minimal_model(modelname="e", modelkind=kind + "-x"), "setup: register model E (kind K-x)")

# ---- /model/all --------------------------------------------------------------

resp = t.get("/model/all")
t.is_status(resp, 200, "GET /model/all answers 200")
t.is_json(resp, "GET /model/all sends a JSON list as application/json")
everything = t.list_all()
in_db = [r["modelid"] for r in t.db_rows("SELECT modelid FROM models ORDER BY seq")]
t.is_(t.ids(everything), in_db, "GET /model/all pages through every model in insertion order")
mine = [m for m in everything if m["modelid"] in {a["modelid"], b["modelid"], c["modelid"]}]
t.is_(mine, [a, b, c], "the listed models are the full objects POST /model/add returned, in the order added")

pos = t.db_rows("SELECT COUNT(*) AS n FROM models WHERE seq < (SELECT seq FROM models WHERE modelid = %s)",
                a["modelid"])[0]["n"]
t.is_(t.ids(listing(t.get("/model/all", params={"skip": pos, "limit": 2}), "skip/limit")),
      [a["modelid"], b["modelid"]], "skip=N limit=2 returns the two models after the first N")
t.is_(t.ids(listing(t.get("/model/all", params={"skip": pos + 1, "limit": 2}), "skip/limit")),
      [b["modelid"], c["modelid"]], "skip=N+1 limit=2 starts one model later")
t.is_(listing(t.get("/model/all", params={"limit": 0}), "limit=0"), [], "limit=0 returns 200 []")
t.is_(listing(t.get("/model/all", params={"skip": 10 ** 9}), "skip past end"), [],
      "skip past the last model returns 200 []")

# More than 1000 models, written straight into the table, show the default
# page size (100) and that a limit above 1000 is honoured, not capped.
bulk = t.uniq("bulk")
with t.db().cursor() as cur:
    cur.execute("INSERT INTO models (modelid, modelname, modelkind, created_at, updated_at) "
                "SELECT UUID(), CONCAT(%s, '-', seq), %s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) "
                "FROM seq_1_to_1001", (bulk, bulk))
t.defer(t.db_rows, "DELETE FROM models WHERE modelkind = %s", bulk)
default_page = listing(t.get("/model/all"), "default page")
t.is_(len(default_page), 100, "without skip/limit GET /model/all returns the first 100 models")
t.is_(t.ids(default_page), t.ids(listing(t.get("/model/all", params={"skip": 0, "limit": 100}), "explicit page")),
      "the default page is skip=0 limit=100")
t.is_(len(listing(t.get("/model/all", params={"limit": 1000}), "limit=1000")), 1000,
      "limit=1000 returns 1000 models")
resp = t.get("/model/all", params={"limit": 5000})
t.is_status(resp, 200, "limit=5000 is not an error (200)")
total = t.db_rows("SELECT COUNT(*) AS n FROM models")[0]["n"]
t.is_(len(listing(resp, "limit=5000")), min(total, 5000), "limit=5000 returns every model (more than 1000), not 1000")

t.is_422(t.get("/model/all", params={"limit": -1}), [ge0("limit")], "GET /model/all?limit=-1 is refused")
t.is_422(t.get("/model/all", params={"skip": -5}), [ge0("skip")], "GET /model/all?skip=-5 is refused")
t.is_422(t.get("/model/all", params={"limit": "ten"}), [not_int("limit")], "GET /model/all?limit=ten is refused")
t.is_422(t.get("/model/all", params={"limit": "1.5"}), [not_int("limit")], "GET /model/all?limit=1.5 is refused")
t.is_422(t.get("/model/all?limit="), [not_int("limit")], "GET /model/all?limit= (empty) is refused")
t.is_422(t.get("/model/all", params={"skip": "x", "limit": -1}), [not_int("skip"), ge0("limit")],
         "invalid skip and limit together are both reported")

# ---- /model/getkind/{modelkind} -----------------------------------------------

t.is_(listing(t.get("/model/getkind/" + kind), "getkind"), [a, b, c],
      "GET /model/getkind/K returns exactly the models of kind K, in the order added")
t.is_(t.ids(listing(t.get("/model/getkind/" + kind.upper()), "getkind upper")), [d["modelid"]],
      "the kind must match exactly: upper case K finds only the upper-case model")
t.is_(t.ids(listing(t.get("/model/getkind/" + kind + "-x"), "getkind K-x")), [e["modelid"]],
      "a kind that merely starts with K is a different kind")
resp = t.get("/model/getkind/" + t.uniq("nokind"))
t.is_status(resp, 200, "GET /model/getkind for an unused kind answers 200")
t.is_(t.body_of(resp), [], "GET /model/getkind for an unused kind returns []")
odd_kind = "kind with space & ünï/" + t.uniq()
odd = t.add_model(t.minimal_model(modelkind=odd_kind.replace("/", "")), "setup: register a model whose kind has a space, '&' and non-ASCII letters")
t.is_(t.ids(listing(t.get("/model/getkind/" + urllib.parse.quote(odd["modelkind"], safe="")), "getkind encoded")),
      [odd["modelid"]], "GET /model/getkind decodes a percent-encoded kind (space, '&', UTF-8)")

# ---- /model/search -----------------------------------------------------------


def search(params, name):
    return t.ids(listing(t.get("/model/search", params=params), name))


t.is_(search([("tags", t1)], "search T1"), [a["modelid"], c["modelid"]],
      "search by one tag returns the models having it, in the order added")
t.is_(search([("tags", t1), ("tags", t2)], "search T1 T2"), [a["modelid"], b["modelid"], c["modelid"]],
      "search by two tags returns models having any of them, each once")
t.is_(search([("tags", t3), ("tags", t.uniq("unused"))], "search T3 unused"), [d["modelid"]],
      "an unused tag next to a used one changes nothing")
resp = t.get("/model/search", params={"tags": t.uniq("unused")})
t.is_status(resp, 200, "search by an unused tag answers 200")
t.is_(t.body_of(resp), [], "search by an unused tag returns []")
t.is_(listing(t.get("/model/search", params=[("tags", t1), ("tags", t2)]), "full objects"), [a, b, c],
      "search returns the full model objects")
t.is_(search([("tags", t1), ("tags", t2), ("skip", 1), ("limit", 1)], "search paging"), [b["modelid"]],
      "search honours skip and limit (skip=1 limit=1 gives the second match)")
t.is_(search([("tags", t1), ("tags", t2), ("limit", 0)], "search limit 0"), [], "search with limit=0 returns []")
t.is_422(t.get("/model/search", params=[("tags", t1), ("limit", -1)]), [ge0("limit")],
         "search with limit=-1 is refused")

t.is_(search([], "search without tags"), t.ids(t.list_all()),
      "search without tags returns every model (no default page of 100)")
t.is_(search({"skip": pos, "limit": 3}, "search without tags, paged"),
      t.ids(listing(t.get("/model/all", params={"skip": pos, "limit": 3}), "all paged")),
      "search without tags pages like GET /model/all")

weird = ["two words ünï & co " + t.uniq(), "c++ " + t.uniq(), "a=b;c?d#e/" + t.uniq()]
w = t.add_model(t.minimal_model(modeltags=weird), "setup: register a model with tags holding spaces, '&', '+', '=', '#', '/' and UTF-8")
for tag in weird:
    t.is_(search([("tags", tag)], "search weird"), [w["modelid"]],
          "search finds the tag %r sent form-encoded (space as '+', '&' as %%26)" % tag)
    t.is_(t.ids(listing(t.get("/model/search?tags=" + urllib.parse.quote(tag, safe="")), "search %20")),
          [w["modelid"]], "search finds the tag %r sent with %%20 for spaces" % tag)

t.done()
