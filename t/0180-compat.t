#!/usr/bin/python3
# What clients of the Python (FastAPI) MLConnector rely on beyond the
# published document: operationid as a UUID string, times that
# datetime.fromisoformat reads (+00:00), the DELETE /model message, 307
# redirects for a trailing slash (FastAPI's redirect_slashes), and CORS
# as FastAPI's CORSMiddleware answers it (MLC_CORS_ORIGINS, which
# "mlc test" sets to http://allowed.example).
import datetime
import json
import os
import re
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME")

UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def iso_ok(s):
    """s ends in +00:00 and datetime.fromisoformat reads it as UTC."""
    if not isinstance(s, str) or not re.match(t.ISO_UTC_RE, s):
        return False
    try:
        return datetime.datetime.fromisoformat(s).utcoffset() == datetime.timedelta(0)
    except ValueError:
        return False


# ---- operationid is a UUID string ---------------------------------------------------
owner = t.uniq("owner")
dep = t.uniq("dep-compat")
# A stopped deployment row is all an operation needs; the spooler leaves
# it alone.
dep_model = str(uuid.uuid4())
t.db_rows("INSERT INTO deployments (deployment_id, modelid, model_version, ownerid, status, desired, "
          "created_at, updated_at) VALUES (%s, %s, 1, %s, 'stopped', 'stopped', UTC_TIMESTAMP(6), "
          "UTC_TIMESTAMP(6))", dep, dep_model, owner)
t.defer(t.db_rows, "DELETE FROM deployments WHERE deployment_id = %s", dep)
t.defer(t.db_rows, "DELETE FROM operations WHERE ownerid = %s", owner)

ops = []
for ts in ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05.25+02:00"):
    r = t.post("/deployment/add/operation", json={"ownerid": owner, "deploymentid": dep, "modelid": dep_model,
                                                  "data": [1, 2], "result": [3], "timestamp": ts})
    t.is_status(r, 201, "POST /deployment/add/operation (timestamp %s) answers 201" % ts)
    ops.append(t.body_of(r) or {})
t.ok(all(isinstance(o.get("operationid"), str) and re.match(t.UUID4_RE, o["operationid"]) for o in ops),
     "POST /deployment/add/operation answers with operationid as a UUID string", ops)
t.isnt(ops[0].get("operationid"), ops[1].get("operationid"), "each operation gets its own operationid")
t.is_([o.get("timestamp") for o in ops], ["2026-01-02T03:04:05.000000+00:00", "2026-01-02T01:04:05.250000+00:00"],
      "a timestamp sent with Z or an offset comes back in UTC as +00:00")
t.ok(all(iso_ok(o.get("timestamp")) for o in ops), "operation timestamps parse with datetime.fromisoformat")
rows = t.db_rows("SELECT operationid, operation_uuid FROM operations WHERE ownerid = %s ORDER BY operationid",
                 owner)
t.is_([r["operation_uuid"] for r in rows], [o.get("operationid") for o in ops],
      "the UUID is operations.operation_uuid, written with the row")
t.ok(all(isinstance(r["operationid"], int) for r in rows), "operations.operationid stays the integer key")

# A row inserted without a UUID, as from the SQL console, gets one from MariaDB.
t.db_rows("INSERT INTO operations (ownerid, deployment_id, modelid, data, timestamp) "
          "VALUES (%s, %s, 'm', '[5]', UTC_TIMESTAMP(6))", owner, dep)
listed = t.body_of(t.get("/deployment/get/opos/" + owner)) or []
t.is_([o.get("operationid") for o in listed][1:], [o.get("operationid") for o in reversed(ops)],
      "GET /deployment/get/opos lists the same UUIDs, newest first")
t.like(listed[0].get("operationid") if listed else None, UUID_RE,
       "an operation inserted without a UUID shows the one MariaDB gave it")
t.ok(listed and all(iso_ok(o.get("timestamp")) for o in listed), "opos timestamps end in +00:00", listed)

# ---- timestamps ---------------------------------------------------------------------
model = t.add_model(t.minimal_model(), "register a model")
t.ok(iso_ok(model.get("created_at")) and iso_ok(model.get("updated_at")),
     "created_at and updated_at of a model end in +00:00 and parse with datetime.fromisoformat", model)
now = datetime.datetime.now(datetime.timezone.utc)
try:
    skew = abs((datetime.datetime.fromisoformat(model["created_at"]) - now).total_seconds())
except (KeyError, TypeError, ValueError):
    skew = None
t.ok(skew is not None and skew < 120, "the parsed created_at is an aware UTC time close to now", skew)
st = t.body_of(t.get("/deployment/get/status/" + dep)) or {}
t.ok(iso_ok(st.get("created_at")) and iso_ok(st.get("updated_at")), "deployment times end in +00:00", st)
up = t.post("/model/%s/upload" % model["modelid"],
            files={"file": ("train.csv", b"a,b\n1,2\n"), "file_kind": (None, "data")})
t.is_status(up, 201, "upload a data file")
t.ok(iso_ok((t.body_of(up) or {}).get("created_at")), "a file's created_at ends in +00:00", t.body_of(up))

# ---- DELETE /model/{id} --------------------------------------------------------------
victim = t.add_model(t.minimal_model(), "register a model to delete")
r = t.delete("/model/" + victim["modelid"])
t.is_status(r, 200, "DELETE /model/{id} answers 200")
t.is_((t.body_of(r) or {}).get("message"), "Model was deleted successfully",
      "its body has the Python service's message")
t.is_({k: (t.body_of(r) or {}).get(k) for k in ("detail", "modelid")},
      {"detail": "model deleted", "modelid": victim["modelid"]}, "and still detail and modelid")

# ---- trailing slashes: 307 to the path without ---------------------------------------


def raw(method, path, **kw):
    return t.http(method, path, allow_redirects=False, **kw)


r = raw("GET", "/model/all/?skip=0&limit=1")
t.is_status(r, 307, "GET /model/all/ answers 307")
t.is_(r.headers.get("Location"), "/model/all?skip=0&limit=1", "Location is the path without the slash, query kept")
t.is_(r.text, "", "a redirect has an empty body")
r = t.get("/model/all/", params={"limit": 1})
t.ok(r.status_code == 200 and isinstance(t.body_of(r), list) and [h.status_code for h in r.history] == [307],
     "requests follows it to the list", t.describe(r))
for method, path in (("GET", "/deployment/all/"), ("GET", "/health/"), ("POST", "/model/add/"),
                     ("DELETE", "/model/%s/" % victim["modelid"]),
                     ("GET", "/model/%s/files/data/" % model["modelid"]),
                     ("PUT", "/mltraining/all/")):
    r = raw(method, path)
    t.is_([r.status_code, r.headers.get("Location")], [307, path.rstrip("/")],
          "%s %s redirects to %s (any method, any route)" % (method, path, path.rstrip("/")))
r = raw("GET", "/model/all///")
t.is_([r.status_code, r.headers.get("Location")], [307, "/model/all"], "every trailing slash goes")
r = raw("GET", "/model/search/?tags=a%20b&tags=c+d")
t.is_(r.headers.get("Location"), "/model/search?tags=a%20b&tags=c+d", "the query string is kept as sent")
for path in ("/", "//", "/nope/", "//model/all/", "/model//", "/model/a%2Fb/"):
    r = raw("GET", path)
    t.is_error(r, 404, "GET %s has no route either way" % path)
    t.ok("Location" not in r.headers, "GET %s has no Location" % path)
r = raw("GET", "/model/all")
t.is_status(r, 200, "the canonical path answers as before")

body = t.minimal_model(modelname="via-redirect")
r = t.post("/model/add/", json=body)
t.ok(r.status_code == 201 and [h.status_code for h in r.history] == [307]
     and (t.body_of(r) or {}).get("modelname") == "via-redirect",
     "requests follows POST /model/add/ to a 201, method and body kept", t.describe(r))
if r.status_code == 201:
    t.defer(t.http, "DELETE", "/model/" + r.json()["modelid"])
cp = subprocess.run(["curl", "-s", "-L", "-o", "-", "-w", "\n%{http_code} %{num_redirects}",
                     "-H", "Content-Type: application/json", "--data-binary",
                     json.dumps(t.minimal_model(modelname="via-curl")), t.BASE_URL + "/model/add/"]
                    + t.curl_auth(),
                    capture_output=True, text=True, timeout=60)
out, _, status = cp.stdout.rpartition("\n")
try:
    created = json.loads(out)
except ValueError:
    created = {}
t.is_([status, created.get("modelname")], ["201 1", "via-curl"],
      "curl -L follows POST /model/add/ to a 201 with the body", cp.stdout + cp.stderr)
if created.get("modelid"):
    t.defer(t.http, "DELETE", "/model/" + created["modelid"])

# ---- CORS ----------------------------------------------------------------------------
configured = os.environ.get("MLC_CORS_ORIGINS", "")
allowed = (re.split(r"[\s,]+", configured.strip()) or [""])[0]
if not t.ok(allowed and allowed != "*", "MLC_CORS_ORIGINS lists origins (mlc test sets it)", configured):
    t.done()
EXPOSE = {"Link", "X-Total-Count", "X-Request-Id", "X-Checksum-SHA256", "Location", "Retry-After",
          "WWW-Authenticate"}
CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
                "Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age")


def cors_ok(r, what):
    exposed = {h.strip().lower() for h in r.headers.get("Access-Control-Expose-Headers", "").split(",")}
    t.ok(r.headers.get("Access-Control-Allow-Origin") == allowed
         and "origin" in r.headers.get("Vary", "").lower()
         and {h.lower() for h in EXPOSE} <= exposed,
         "%s: Allow-Origin echoes the origin, Vary: Origin, the headers clients read are exposed" % what,
         dict(r.headers))


def no_cors(r, what):
    t.is_([h for h in CORS_HEADERS if h in r.headers], [], "%s: no CORS headers" % what)


A = {"Origin": allowed}
cors_ok(t.get("/model/all", headers=A), "GET /model/all from the allowed origin")
no_cors(t.get("/model/all"), "GET /model/all without Origin")
r = t.get("/model/all", headers={"Origin": "http://evil.example"})
t.is_status(r, 200, "a disallowed origin still gets its answer (the browser withholds it)")
no_cors(r, "GET /model/all from a disallowed origin")
no_cors(t.get("/model/all", headers={"Origin": allowed + ".evil.example"}), "an origin that only starts alike")
r = t.get("/nope", headers=A)
t.is_status(r, 404, "an unknown route from the allowed origin is 404")
cors_ok(r, "the 404")
r = t.post("/model/add", json={}, headers=A)
t.is_status(r, 422, "an invalid body from the allowed origin is 422")
cors_ok(r, "the 422")
r = t.http("PUT", "/model/all", headers=A)
t.is_status(r, 405, "a wrong method from the allowed origin is 405")
cors_ok(r, "the 405")
r = raw("GET", "/model/all/", headers=A)
t.is_status(r, 307, "a trailing slash from the allowed origin is 307")
cors_ok(r, "the 307")

pre = {"Origin": allowed, "Access-Control-Request-Method": "POST",
       "Access-Control-Request-Headers": "content-type, x-custom-thing"}
r = t.http("OPTIONS", "/model/add", headers=pre)
t.is_status(r, 200, "a preflight from the allowed origin answers 200 (no credentials asked)")
t.is_(r.headers.get("Access-Control-Allow-Origin"), allowed, "the preflight names the origin")
t.like(r.headers.get("Access-Control-Allow-Methods", ""), r"\bPOST\b", "and allows POST on /model/add")
hdrs = [h.strip().lower() for h in r.headers.get("Access-Control-Allow-Headers", "").split(",")]
t.ok({"authorization", "content-type", "x-custom-thing"} <= set(hdrs),
     "Allow-Headers has Authorization, Content-Type and the requested header", hdrs)
t.like(r.headers.get("Access-Control-Max-Age", ""), r"^\d+$", "the preflight has a Max-Age")
r = t.http("OPTIONS", "/model/" + model["modelid"],
           headers={"Origin": allowed, "Access-Control-Request-Method": "PATCH"})
t.is_(r.headers.get("Access-Control-Allow-Methods"), "GET, PATCH, DELETE", "a preflight lists the path's methods")
r = t.http("OPTIONS", "/model/add/", headers=pre)
t.ok(r.status_code == 200 and "POST" in r.headers.get("Access-Control-Allow-Methods", ""),
     "a preflight of a trailing-slash path allows the methods of the path it redirects to", t.describe(r))
r = t.http("OPTIONS", "/model/add", headers=dict(pre, **{"Access-Control-Request-Headers": "x a, x-b,,x(c)"}))
t.is_(r.headers.get("Access-Control-Allow-Headers"), "Authorization, Content-Type, x-b",
      "malformed requested header names are not echoed")
r = t.http("OPTIONS", "/model/add", headers=dict(pre, Origin="http://evil.example"))
t.is_(t.is_error(r, 400, "a preflight from a disallowed origin").get("detail"), "Disallowed CORS origin",
      "it says 'Disallowed CORS origin', as Starlette does")
no_cors(r, "the refused preflight")
r = t.http("OPTIONS", "/model/all")
t.is_error(r, 405, "OPTIONS without Origin keeps its 405")
t.is_(r.headers.get("Allow"), "GET, PATCH, DELETE", "with Allow")
no_cors(r, "OPTIONS without Origin")
r = t.http("OPTIONS", "/model/all", headers=A)
t.is_status(r, 405, "OPTIONS with Origin but no Access-Control-Request-Method is no preflight: 405")
cors_ok(r, "that 405")

# Downloads are sent by nginx (X-Accel-Redirect): the headers must survive.
path = "/model/%s/files/data" % model["modelid"]
r = t.get(path, headers=A)
t.is_([r.status_code, r.text], [200, "a,b\n1,2\n"], "a download from the allowed origin")
cors_ok(r, "the download")
t.ok(r.headers.get("X-Checksum-SHA256"), "the download keeps X-Checksum-SHA256")
no_cors(t.get(path), "a download without Origin")

t.done()
