#!/usr/bin/python3
# The authorization matrix: every route of the route table in app/routes.c
# (read from the C source, so a route added there without a row here fails
# this test), called by every kind of caller, must answer the status of
# its row.  Callers: no token, an unknown, an expired and a revoked token,
# a read token of a third owner, a write token of another owner, a write
# token of the owner of the resources the path names, and an admin token.
# GET routes need a read token, those that change state a write token,
# /metrics an admin's; /health and the job-file routes none.
import os
import re
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_auth("MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME", "MLC_ROOT")

CALLERS = ("none", "unknown", "expired", "revoked", "read", "other", "owner", "admin")

# ---- the route table, from the C source ---------------------------------------

src = open(os.path.join(os.environ["MLC_ROOT"], "app", "routes.c")).read()
table = src[src.index("static const struct mlc_route routes[]"):]
table = table[:table.index("};")]
ROUTES = re.findall(r'\{\s*"([A-Z]+)",\s*"([^"]+)",\s*\w+,\s*[^,{}]+,\s*(MLC_SCOPE_\w+)\s*\}', table)
t.ok(len(ROUTES) >= 20, "the route table of app/routes.c is read (%d routes)" % len(ROUTES))


def allowed(owner, other, read, admin=None):
    """Statuses for the owner, another owner's write token, a third
    owner's read token and an admin (default: the owner's); no token or a
    bad one is 401 on every route but /health."""
    return {"none": 401, "unknown": 401, "expired": 401, "revoked": 401, "read": read,
            "other": other, "owner": owner, "admin": owner if admin is None else admin}


SHARED_READ = allowed(200, 200, 200)        # the shared registry, own lists
OWNED_ROW = allowed(200, 404, 404)          # someone's deployment, training, operations
MODEL_OWNER_READ = allowed(200, 403, 403)   # the model's data files and drift results

# Expected statuses, and how each route is called (path values and body).
# Fixture statuses of the owner's calls: the model has a data file but no
# model or code file, the deployment and the training rows are stopped /
# failed, so that what follows authorization is a fixed answer.
MATRIX = {
    ("GET", "/health"): {c: 200 for c in CALLERS},
    ("POST", "/model/add"): allowed(201, 201, 403),
    ("GET", "/model/all"): SHARED_READ,
    ("GET", "/model/search"): SHARED_READ,
    ("GET", "/model/getkind/{modelkind}"): SHARED_READ,
    ("POST", "/model/{model_id}/upload"): allowed(201, 403, 403),
    ("GET", "/model/{model_id}/files"): SHARED_READ,
    ("GET", "/model/{model_id}/files/{kind}"): MODEL_OWNER_READ,      # kind=data
    ("POST", "/model/{model_id}/drift/run"): allowed(409, 403, 403),  # too few rows
    ("GET", "/model/{model_id}/drift"): MODEL_OWNER_READ,
    ("GET", "/model/{model_id}/drift/summary"): MODEL_OWNER_READ,
    ("GET", "/model/{model_id}"): SHARED_READ,
    ("POST", "/deployment/add"): allowed(409, 409, 403),              # no model file
    ("POST", "/deployment/add/operation"): allowed(201, 404, 403),
    ("GET", "/deployment/all"): SHARED_READ,
    ("GET", "/deployment/get/status/{deployment_id}"): OWNED_ROW,
    ("GET", "/deployment/get/opos/{ownerid}"): OWNED_ROW,
    ("DELETE", "/deployment/{deployment_id}"): allowed(200, 404, 403),
    ("POST", "/deployment/{deployment_id}/predict"): allowed(409, 404, 403),  # stopped
    ("POST", "/mltraining/add"): allowed(409, 403, 403),              # no code file
    ("GET", "/mltraining/all"): SHARED_READ,
    ("GET", "/mltraining/status/{training_id}"): OWNED_ROW,
    ("GET", "/mltraining/{training_id}/log"): OWNED_ROW,
    ("PATCH", "/model/{model_id}"): allowed(200, 403, 403),
    ("DELETE", "/model/{model_id}"): allowed(200, 403, 403),
    # Remote runtimes' job files take their job credential (X-MLC-Job-Token),
    # not a bearer token: without it, 401 from the route itself, whoever asks.
    ("GET", "/deployment/{deployment_id}/bundle"): {c: 401 for c in CALLERS},
    ("GET", "/mltraining/{training_id}/bundle"): {c: 401 for c in CALLERS},
    ("PUT", "/mltraining/{training_id}/model"): {c: 401 for c in CALLERS},
    # Operators' counters: admin tokens only.
    ("GET", "/metrics"): allowed(403, 403, 403, admin=200),
}
# The scope each route's row declares.
SCOPES = {("GET", "/health"): "NONE", ("GET", "/deployment/{deployment_id}/bundle"): "NONE",
          ("GET", "/mltraining/{training_id}/bundle"): "NONE",
          ("PUT", "/mltraining/{training_id}/model"): "NONE", ("GET", "/metrics"): "ADMIN"}
# Calls that use up their fixtures get fresh ones.
DESTRUCTIVE = {("DELETE", "/model/{model_id}"), ("DELETE", "/deployment/{deployment_id}")}

in_table = {(m, p) for m, p, _ in ROUTES}
t.is_(sorted(in_table - set(MATRIX)), [], "every route of the table has its row in the matrix")
t.is_(sorted(set(MATRIX) - in_table), [], "every row of the matrix is a route of the table")
for m, p, scope in ROUTES:
    want = "MLC_SCOPE_" + SCOPES.get((m, p), "READ" if m == "GET" else "WRITE")
    t.is_(scope, want, "%s %s needs scope %s" % (m, p, want[10:].lower()))

# ---- callers -------------------------------------------------------------------

owner = t.uniq("owner")
tokens = {"none": None, "unknown": "mlc_" + uuid.uuid4().hex + uuid.uuid4().hex,
          "admin": t.TOKEN}
_, tokens["owner"] = t.make_token(owner, "write")
_, tokens["other"] = t.make_token(t.uniq("other"), "write")
_, tokens["read"] = t.make_token(t.uniq("third"), "read")
_, tokens["expired"] = t.make_token(owner, "admin")
t.db_rows("UPDATE tokens SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND "
          "WHERE token_hash = SHA2(%s, 256)", tokens["expired"])
_, tokens["revoked"] = t.make_token(owner, "admin")
t.revoke_token(tokens["revoked"])


def fixtures():
    """A model of the owner's with a data file, a stopped deployment of it
    and a failed training, all the owner's."""
    r = t.http("POST", "/model/add", token=tokens["owner"], json=t.minimal_model())
    if r.status_code != 201:
        raise RuntimeError("fixture model: " + t.describe(r))
    mid = r.json()["modelid"]
    t.defer(t.delete, "/model/" + mid)
    r = t.http("POST", "/model/%s/upload" % mid, token=tokens["owner"],
               files={"file": ("d.csv", b"a,b\n1,2\n"), "file_kind": (None, "data")})
    if r.status_code != 201:
        raise RuntimeError("fixture upload: " + t.describe(r))
    dep, tid = t.uniq("mx"), str(uuid.uuid4())
    t.db_rows("INSERT INTO deployments (deployment_id, modelid, model_version, ownerid, status, desired, "
              "created_at, updated_at) VALUES (%s, %s, 1, %s, 'stopped', 'stopped', UTC_TIMESTAMP(6), "
              "UTC_TIMESTAMP(6))", dep, mid, owner)
    t.defer(t.db_rows, "DELETE FROM deployments WHERE deployment_id = %s", dep)
    t.db_rows("INSERT INTO trainings (training_id, modelid, ownerid, status, reason, code_version, "
              "data_version, created_at, updated_at) VALUES (%s, %s, %s, 'failed', 'fixture', 1, 1, "
              "UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))", tid, mid, owner)
    t.defer(t.db_rows, "DELETE FROM trainings WHERE training_id = %s", tid)
    return {"model_id": mid, "deployment_id": dep, "training_id": tid, "ownerid": owner,
            "kind": "data", "modelkind": "matrix-kind"}


def call(method, pattern, fx, token):
    path = re.sub(r"\{(\w+)\}", lambda m: fx[m.group(1)], pattern)
    kw = {}
    if (method, pattern) == ("POST", "/model/add"):
        kw["json"] = t.minimal_model()
    elif pattern.endswith("/upload"):
        kw["files"] = {"file": ("d.csv", b"a,b\n3,4\n"), "file_kind": (None, "data")}
    elif (method, pattern) == ("POST", "/deployment/add"):
        kw["json"] = {"modelid": fx["model_id"], "placement": None, "deployment_id": t.uniq("mxd")}
    elif pattern == "/deployment/add/operation":
        kw["json"] = {"deploymentid": fx["deployment_id"], "data": [1], "result": [2]}
    elif pattern.endswith("/predict"):
        kw["json"] = {"data": [1, 2]}
    elif pattern == "/mltraining/add":
        kw["json"] = {"modelid": fx["model_id"]}
    elif method == "PATCH":
        kw["json"] = {"modelname": "patched"}
    r = t.http(method, path, token=token, **kw)
    if r.status_code == 201 and pattern == "/model/add":
        t.defer(t.delete, "/model/" + r.json()["modelid"])
    return r


shared = fixtures()
for method, pattern, _ in ROUTES:
    want = MATRIX.get((method, pattern))
    if want is None:
        continue
    got = {}
    for caller in CALLERS:
        fx = fixtures() if (method, pattern) in DESTRUCTIVE and want[caller] < 400 else shared
        got[caller] = call(method, pattern, fx, tokens[caller]).status_code
    t.is_(got, want, "%s %s: the status for each caller" % (method, pattern))
t.done()
