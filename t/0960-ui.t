#!/usr/bin/python3
# The browser pages: /docs (Swagger UI), /redoc (Redoc) and /dashboard,
# served by nginx from the state directory with their libraries, nothing
# from another site.  Plain HTTP checks first, then headless Chromium
# (ui/test/browser-check.mjs, puppeteer-core from ui/node_modules) on a
# deployed model with drift results and a recorded prediction: the route
# list, "Try it out" with a bearer token, Redoc's operations, and the
# dashboard's deployments, drift plots and SHAP chart.  Screenshots are
# kept in $MLC_VAR/screenshots.
import html.parser
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR", "MLC_ROOT")
import mlcmodels as mm
import numpy as np

var, root = os.environ["MLC_VAR"], os.environ["MLC_ROOT"]
ui = os.path.join(root, "ui")
PAGES = ("/docs", "/redoc", "/dashboard")


class Refs(html.parser.HTMLParser):
    """The src and href attributes of a page."""

    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href") and v is not None:
                self.refs.append((tag, v))


# ---- plain HTTP ----
for page in PAGES:
    r = t.get(page, allow_redirects=False)
    t.is_((r.status_code, r.headers.get("Content-Type")), (200, "text/html; charset=utf-8"),
          "GET %s answers 200 with an HTML page" % page)
    csp = r.headers.get("Content-Security-Policy", "")
    t.like(csp, r"default-src 'self';.*script-src 'self';.*connect-src 'self'",
           "%s is sent with a Content-Security-Policy that keeps scripts and requests on this origin" % page)
    parser = Refs()
    parser.feed(r.text)
    refs = [v for _, v in parser.refs]
    foreign = [v for v in refs if not (v.startswith("/") and not v.startswith("//")) and v != "data:,"]
    t.is_(foreign, [], "%s refers only to files of this site (absolute paths)" % page, refs)
    assets = [v for tag, v in parser.refs if tag in ("script", "link") and v.startswith("/ui/")]
    t.ok(len(assets) >= 2, "%s loads its scripts and styles from /ui/ (%s)" % (page, ", ".join(assets)))
    bad = []
    for a in assets:
        ar = t.get(a)
        want = "application/javascript" if a.endswith(".js") else "text/css"
        if ar.status_code != 200 or not (ar.headers.get("Content-Type") or "").startswith(want) or not ar.content:
            bad.append((a, ar.status_code, ar.headers.get("Content-Type")))
    t.is_(bad, [], "every script and style of %s is served, with its type" % page)
    r = t.get(page + "/", allow_redirects=False)
    t.is_((r.status_code, r.headers.get("Location")), (307, page),
          "GET %s/ redirects to %s (307, relative Location)" % (page, page))

# Without the copy in the state directory (no npm when the instance was
# set up), the pages say so; the document is still there.
ui_dir = os.path.join(var, "nginx", "ui")
os.rename(ui_dir, ui_dir + ".away")
try:
    for page in PAGES:
        r = t.get(page)
        t.ok(r.status_code == 404 and "the browser pages (/docs, /redoc, /dashboard) are not installed"
             in ((t.body_of(r) or {}).get("detail") or ""),
             "without the pages' files, GET %s answers 404 saying they are not installed" % page, t.describe(r))
    t.is_(t.get("/openapi.json").status_code, 200, "while /openapi.json still answers")
finally:
    os.rename(ui_dir + ".away", ui_dir)

r = t.get("/docs/API.md")
t.ok(r.status_code == 200 and "## Routes" in r.text, "the text documents stay under /docs/ (GET /docs/API.md)")
t.is_(t.get("/docs/openapi.json").status_code, 200, "and /docs/openapi.json")
for f in ("swagger-ui/LICENSE", "redoc/LICENSE", "chart.js/LICENSE.md"):
    t.is_(t.get("/ui/vendor/" + f).status_code, 200, "the vendored libraries' licences are served too (%s)" % f)
r = t.get("/ui/vendor/nothing.js")
t.is_error(r, 404, "a file that is not there under /ui/ is a plain 404")

# ---- a deployed model with drift results and predictions ----
reg, X, y, names = mm.diabetes_ridge()
owner = t.uniq("ui-owner")
model = t.add_model(t.minimal_model(modelname="ui-ridge", featurelist=mm.featurelist(names),
                                    modeltags=["ui", "dashboard"],
                                    drift_detection=[{"is_true": 1, "method": 2}]),
                    "register a Ridge model with drift detection for the pages")
mid = model["modelid"]
import pickle
mm.upload(mid, "model", "model.pkl", pickle.dumps(reg, protocol=4))
mm.upload(mid, "data", "train.csv", mm.csv_bytes(X, y, names))
dep = t.uniq("ui-dep")
r = mm.deploy(mid, dep, ownerid=owner)
t.is_status(r, 201, "deploy it")
t.is_((mm.wait_status(dep) or {}).get("status"), "deployed", "the deployment comes up")


def wait_run(run_id, seconds=90):
    end = time.time() + seconds
    while time.time() < end:
        rows = t.db_rows("SELECT status FROM drift_runs WHERE run_id = %s", run_id)
        if rows and rows[0]["status"] in ("completed", "failed"):
            return rows[0]["status"]
        time.sleep(0.2)
    return None


rng = np.random.default_rng(11)
shifted = X[rng.choice(len(X), 120)].copy()
shifted[:, 2] += 3 * X[:, 2].std()
runs = []
for batch in (shifted[:60], shifted[60:]):
    for i in range(0, len(batch), 20):
        rr = t.post("/deployment/%s/predict" % dep, json={"data": batch[i:i + 20].tolist()})
    r = t.post("/model/%s/drift/run" % mid)
    runs.append(wait_run((t.body_of(r) or {}).get("run_id", "")))
t.is_(runs, ["completed", "completed"], "two drift runs complete over the recorded predictions")
opid = (t.body_of(rr) or {}).get("operationid")
t.like(opid or "", t.UUID4_RE, "the last predict call is recorded as an operation")

# ---- headless Chromium ----
chromium = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.access(p, os.X_OK)), None)
node = shutil.which("node")
have_modules = os.path.isdir(os.path.join(ui, "node_modules", "puppeteer-core"))
if not (chromium and node and have_modules):
    why = ("no Chromium (the Debian package chromium; mlc test installs it)" if not chromium else
           "no node" if not node else "no ui/node_modules/puppeteer-core (npm ci in ui/ did not run)")
    t.skip("the pages in a browser", why)
    t.done()
    sys.exit(0)

shots = os.path.join(var, "screenshots")
cfg = {"base": t.BASE_URL, "shots": shots, "chromium": chromium, "deployment": dep,
       "model": mid, "drift_model": mid, "operation": opid}
run = subprocess.run([node, os.path.join(ui, "test", "browser-check.mjs"), json.dumps(cfg)],
                     capture_output=True, text=True, cwd=ui, timeout=600)
try:
    out = json.loads(run.stdout.strip().splitlines()[-1])
except (ValueError, IndexError):
    out = {}
t.ok(bool(out), "the browser check ran (Chromium %s)" % out.get("browser"),
     "exit %d" % run.returncode, run.stdout[-3000:], run.stderr[-3000:])
t.note("browser check: " + json.dumps(out, indent=1)[:20000])

# /docs
docs = out.get("docs") or {}
t.is_(docs.get("error"), None, "/docs: Swagger UI loads and renders operations")
paths = set(docs.get("paths") or [])
t.ok("/model/add" in paths and "/deployment/{deployment_id}/predict" in paths,
     "/docs lists the routes (/model/add, /deployment/{deployment_id}/predict, ...: %d operations)" % len(docs.get("paths") or []),
     sorted(paths))
t.is_(docs.get("authorizeButton"), True, "/docs has the Authorize button (bearerAuth)")
t.is_(docs.get("tryItOutStatus"), "200", "\"Try it out\" on GET /health answers 200 from this instance")
t.ok(any(a.get("url") == "/health" and a.get("authorization") == "Bearer ui-test-token"
         for a in docs.get("auth") or []),
     "after Authorize, \"Try it out\" sends the token as Authorization: Bearer", docs.get("auth"), docs.get("authorized"))
t.is_(docs.get("foreign"), [], "/docs asks for nothing from another site")
t.is_(docs.get("pageErrors"), [], "/docs raises no script error")

# /redoc
redoc = out.get("redoc") or {}
t.is_(redoc.get("error"), None, "/redoc: Redoc loads and renders")
t.ok((redoc.get("operations") or 0) >= len(paths) and redoc.get("hasModelAdd"),
     "/redoc shows every operation (%s sections) with its path" % redoc.get("operations"), redoc)
t.is_(redoc.get("foreign"), [], "/redoc asks for nothing from another site")
t.is_(redoc.get("pageErrors"), [], "/redoc raises no script error")

# /dashboard
dash = out.get("dashboard") or {}
t.is_(dash.get("error"), None, "/dashboard loads")
t.is_(dash.get("consoleErrorsBeforeToken"), [], "/dashboard logs no console error")
t.is_(dash.get("pageErrors"), [], "/dashboard raises no script error")
t.is_(dash.get("foreign"), [], "/dashboard asks for nothing from another site")
t.is_(dash.get("errorsShown"), [], "/dashboard shows no error message")
t.like(dash.get("health") or "", r"service ok, database ok, version ", "it shows the service's health")
rows = {d["id"]: d["cells"] for d in dash.get("deployments") or []}
t.ok(dep in rows and "deployed" in rows[dep] and mid in rows[dep] and owner in rows[dep]
     and any(c.startswith("unix:") for c in rows[dep]),
     "the deployment is listed with its model, owner, status deployed and endpoint", rows.get(dep))
mrows = {m["id"]: m["cells"] for m in dash.get("models") or []}
t.ok(mid in mrows and "ui-ridge" in mrows[mid] and "uidashboard" in mrows[mid]
     and "data v1, model v1" in mrows[mid],
     "the model is listed with its tags and its stored files' versions", mrows.get(mid))
t.ok(opid in (dash.get("operations") or []), "the recent operations include the last predict call")
plots = {p["feature"]: p for p in dash.get("driftPlots") or []}
t.is_(sorted(plots), sorted(names), "there is a drift plot per feature", dash.get("driftInfo"))
t.ok(plots and all(p["points"] == 2 and p["type"] == "line" for p in plots.values()),
     "each plot is a line over the two runs", plots)
shap = dash.get("shap") or {}
t.is_((shap.get("type"), sorted(shap.get("labels") or [])), ("bar", sorted(names)),
      "Explain draws the SHAP attributions of the operation's first row as a bar per feature",
      dash.get("shapInfo"))
vals = (shap.get("data") or [[]])[0]
row0 = shifted[100]
base_out = reg.predict(row0.reshape(1, -1))[0]
t.ok(len(vals) == len(names) and all(isinstance(v, (int, float)) for v in vals),
     "the bars are the attributions' numbers", vals)
t.like(dash.get("shapInfo") or "", r"predicted value [-0-9.e]+ = base value [-0-9.e]+ \+",
       "the chart says what is explained (the predicted value = base value + attributions)")
t.ok(abs(sum(vals) + float((dash.get("shapInfo") or "").split("base value ")[-1].split(" ")[0] or 0)
         - base_out) < 1e-6 if vals else False,
     "base value + the bars add up to the model's prediction for that row")
t.is_(dash.get("tokenStored"), "dash-test-token", "the token field keeps the token in sessionStorage")
t.is_(dash.get("docsWithStoredToken"), ["/health Bearer dash-test-token"],
      "/docs in the same tab is authorized with it: \"Try it out\" sends it")
sent = dash.get("tokenSent") or []
t.ok(sent and all(a == "Bearer dash-test-token" for a in sent),
     "with a token, every request of the dashboard carries Authorization: Bearer (%d requests)" % len(sent),
     dash.get("tokenRequests"))

for name in ("docs.png", "redoc.png", "dashboard.png"):
    p = os.path.join(shots, name)
    with open(p, "rb") if os.path.exists(p) else open(os.devnull, "rb") as f:
        head = f.read(8)
    t.ok(head == b"\x89PNG\r\n\x1a\n", "a screenshot of the page is kept: %s" % p)

t.done()
