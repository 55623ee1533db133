#!/usr/bin/python3
# GET /model/search at and beyond its tag limit: 64 tags (the documented
# maximum) search, 65 are a 422 at ["query","tags"], 1,000 are a 422 of the
# query string; none of them takes a worker down.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_VAR")
var = os.environ["MLC_VAR"]


def workers():
    """Every mlc-api worker of the instance (of both masters on the Galera
    topology)."""
    return t.api_workers()


before = workers()
tag = t.uniq("tag")
m = t.add_model(t.minimal_model(modeltags=[tag]), "setup: register a model with one tag")
MAX_ITEMS = [(("query", "tags"), "ensure this value has at most 64 items", "value_error.list.max_items")]

for n in (1, 62, 63, 64):
    params = [("tags", tag)] + [("tags", t.uniq("other")) for _ in range(n - 1)]
    r = t.get("/model/search", params=params)
    t.is_status(r, 200, "search with %d tags answers 200" % n)
    t.is_(t.ids(t.body_of(r) or []), [m["modelid"]], "search with %d tags finds the model" % n)
    r = t.get("/model/search", params=params + [("limit", 1), ("skip", 0)])
    t.is_(t.ids(t.body_of(r) or []), [m["modelid"]],
          "search with %d tags and a page (probe and page statements) finds the model" % n)

for n in (65, 100, 256):
    t.is_422(t.get("/model/search", params=[("tags", tag)] * n), MAX_ITEMS,
             "search with %d tags" % n)

# "tags=a&" 1,000 times: 7 KB, inside nginx's 8 KiB request line.
r = t.get("/model/search", params=[("tags", "a")] * 1000)
t.is_422(r, [(("query",), "query string has more than 256 parameters", "value_error.query")],
         "search with 1,000 tags (the query string's limit comes first)")

codes = [t.get("/health").status_code for _ in range(20)]
t.is_(sorted(set(codes)), [200], "GET /health keeps answering 200 afterwards")
t.is_status(t.get("/model/all", params={"limit": 1}), 200, "GET /model/all keeps answering")
t.is_(workers(), before, "no worker died: the mlc-api master has the same children")
t.done()
