#!/usr/bin/python3
# Odd strings in every path and query parameter are matched literally:
# SQL quotes, the LIKE wildcards % and _, a NUL byte and 4-byte UTF-8.
# "%" as a model kind, tag, owner or drift feature finds only what is
# literally "%", never everything; an owner called "%" or "_" sees only its
# own deployments.
import os
import re
import sys
import urllib.parse
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_auth("MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME")

ODD = ["' OR '1'='1", "%", "_", "\U0001F600", "a%", "x_y"]
q = lambda s: urllib.parse.quote(s, safe="")  # noqa: E731

# Things named with the odd strings, next to plain ones they must not find.
plain = t.add_model(t.minimal_model(modelkind="plain-kind", modeltags=["plain-tag"]), "setup: a plain model")
named = {}
for s in ODD:
    named[s] = t.add_model(t.minimal_model(modelkind=s, modeltags=[s]), "setup: a model whose kind and tag is %r" % s)
dep, dep_model = t.uniq("dep-odd"), plain["modelid"]
t.db_rows("INSERT INTO deployments (deployment_id, modelid, model_version, ownerid, status, desired, "
          "created_at, updated_at) VALUES (%s, %s, 1, 'plain-owner', 'stopped', 'stopped', UTC_TIMESTAMP(6), "
          "UTC_TIMESTAMP(6))", dep, dep_model)
t.defer(t.db_rows, "DELETE FROM deployments WHERE deployment_id = %s", dep)
for owner in ODD + ["plain-owner"]:
    r = t.post("/deployment/add/operation", json={"deploymentid": dep, "ownerid": owner, "data": [1]})
    t.is_status(r, 201, "setup: an operation of owner %r" % owner)
t.defer(t.db_rows, "DELETE FROM operations WHERE deployment_id = %s", dep)
run = str(uuid.uuid4())
for feature in ODD + ["plain-feature"]:
    t.db_rows("INSERT INTO drift_metrics (run_id, modelid, feature, type, method, drift_detected, n_train, "
              "n_infer, timestamp) VALUES (%s, %s, %s, 'cont', 'ks', 0, 1, 1, UTC_TIMESTAMP(6))",
              run, dep_model, feature)
t.defer(t.db_rows, "DELETE FROM drift_metrics WHERE run_id = %s", run)

for s in ODD:
    r = t.get("/model/getkind/" + q(s))
    t.is_([r.status_code, t.ids(t.body_of(r))], [200, [named[s]["modelid"]]],
          "getkind/%r finds exactly the model of that kind" % s)
    r = t.get("/model/search", params={"tags": s})
    t.is_([r.status_code, t.ids(t.body_of(r))], [200, [named[s]["modelid"]]],
          "search?tags=%r finds exactly the model with that tag" % s)
    r = t.get("/deployment/get/opos/" + q(s))
    t.is_([r.status_code, [o.get("ownerid") for o in t.body_of(r) or []]], [200, [s]],
          "get/opos/%r lists exactly that owner's operation" % s)
    r = t.get("/model/%s/drift" % dep_model, params={"feature": s})
    t.is_([r.status_code, [m.get("feature") for m in t.body_of(r) or []]], [200, [s]],
          "drift?feature=%r lists exactly that feature" % s)
    for path in ("/model/" + q(s), "/model/%s/files" % q(s), "/model/%s/drift" % q(s),
                 "/deployment/get/status/" + q(s), "/mltraining/status/" + q(s),
                 "/mltraining/%s/log" % q(s)):
        t.is_status(t.get(path), 404, "GET %s: no such thing" % path)
    t.is_status(t.delete("/deployment/" + q(s)), 404, "DELETE /deployment/%r: no such deployment" % s)
    t.is_status(t.post("/deployment/%s/predict" % q(s), json={"data": [1]}), 404,
                "predict on deployment %r: no such deployment" % s)
    t.is_status(t.get("/model/%s/files/%s" % (dep_model, q(s))), 422, "files/%r is not a file kind" % s)
    for key in ("skip", "limit"):
        t.is_status(t.get("/model/all", params={key: s}), 422, "%s=%r is refused" % (key, s))
    t.is_status(t.get("/model/%s/files/model" % dep_model, params={"version": s}), 422,
                "version=%r is refused" % s)
    r = t.post("/deployment/add", json={"modelid": dep_model, "placement": None, "deployment_id": s})
    if re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", s):
        # A valid id: the model (which has no model file) is what is wrong.
        t.is_status(r, 409, "deployment_id %r is an id like any other" % s)
    else:
        t.is_status(r, 422, "deployment_id %r is refused" % s)

# A NUL byte: no path value holds one (nginx refuses it with 400 before the
# API sees it; the API's router would match no route), and a query holding
# one is refused.
for path in ("/model/getkind/a%00b", "/deployment/get/opos/a%00", "/mltraining/status/x%00",
             "/model/%s/files/da%%00ta" % dep_model):
    r = t.get(path)
    t.ok(r.status_code in (400, 404), "GET %s (an encoded NUL in the path) finds nothing" % path,
         t.describe(r))
for params in ("tags=a%00", "feature=%00"):
    r = t.get("/model/search?" + params)
    t.is_status(r, 422, "a query with an encoded NUL (%s) is refused" % params)

# Owners named like wildcards see their own things only.
for s in ("%", "_", "' OR '1'='1"):
    _, tok = t.make_token(s, "write")
    r = t.get("/deployment/all", token=tok)
    t.is_([r.status_code, t.body_of(r)], [200, []], "owner %r lists no one else's deployments" % s)
    r = t.get("/mltraining/all", token=tok)
    t.is_([r.status_code, t.body_of(r)], [200, []], "owner %r lists no one else's trainings" % s)
    t.is_status(t.get("/deployment/get/status/" + dep, token=tok), 404,
                "owner %r does not see plain-owner's deployment" % s)
    r = t.get("/deployment/get/opos/" + q(s), token=tok)
    t.is_([r.status_code, [o.get("ownerid") for o in t.body_of(r) or []]], [200, [s]],
          "owner %r reads exactly its own operation" % s)
t.done()
