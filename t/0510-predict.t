#!/usr/bin/python3
# POST /deployment/{id}/predict: the API document's iris example, SHAP
# explanations that add up, batches, rows by name, input errors, a runtime
# that dies mid-request, and CSV data links (served here, and refused when
# they point inside the network).
import fcntl
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import fcgi
import mlcapi
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR", "MLC_ROOT")
import mlcmodels as mm
import numpy as np

var, root = os.environ["MLC_VAR"], os.environ["MLC_ROOT"]


def slot_file(dep):
    """mlc-api's predict slot file of the deployment (app/pool.c)."""
    return os.path.join(var, "run", "slots", "predict-" + dep)


def predict(dep, body, **kw):
    return t.post("/deployment/%s/predict" % dep, json=body, **kw)


def deployed(model, dep=None, **kw):
    r = mm.deploy(model["modelid"], dep, **kw)
    dep = (t.body_of(r) or {}).get("deployment_id")
    st = mm.wait_status(dep) if dep else None
    if (st or {}).get("status") != "deployed":
        raise RuntimeError("deployment did not come up: %s" % st)
    return dep


# ---- the API document's iris example (section 4.1) ----
clf, Xi, yi, inames = mm.iris_forest(100)
iris = mm.register(clf, Xi, yi, inames, kind="classification")
t.http("DELETE", "/deployment/dep-iris-001")
dep_iris = deployed(iris, "dep-iris-001", ownerid="agent-iris")
out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-X", "POST",
                      t.BASE_URL + "/deployment/dep-iris-001/predict", "-H",
                      "Content-Type: application/json", "-d",
                      '{\n"data": (5.1, 3.5, 1.4, 0.2),\n"explain": true\n}'] + t.curl_auth(),
                     capture_output=True, text=True)
body, status = out.stdout.rsplit("\n", 1)
t.is_(status, "422", "the document's literal curl example (a Python tuple) answers 422")
t.like(body, r"JSON lists are written with \[ \]", "the 422 says that JSON lists use [ ]")

r = predict(dep_iris, {"data": [5.1, 3.5, 1.4, 0.2], "explain": True})
t.is_status(r, 200, "the iris example with data [5.1, 3.5, 1.4, 0.2] answers 200")
a = t.body_of(r) or {}
t.is_(a.get("prediction"), [0], "it predicts class 0")
ex = a.get("explanation") or {}
t.is_((ex.get("method"), len(ex.get("feature_importance") or [])), ("shap", 4),
      "the explanation is SHAP with 4 attributions")
t.is_(ex.get("feature_names"), inames, "attributions are named by the featurelist")
t.like(str(ex.get("output")), r"^probability of class 0$", "it explains the probability of class 0")
p0 = clf.predict_proba(np.array([[5.1, 3.5, 1.4, 0.2]]))[0][0]
t.ok(abs(ex.get("output_value", -1) - p0) < 1e-12, "the explained output is the model's probability")
t.ok(abs(ex.get("base_value", 0) + sum(ex.get("feature_importance") or [9]) - p0) < 1e-9,
     "base_value + sum(feature_importance) equals the explained output within 1e-9")
t.like(a.get("operationid"), t.UUID4_RE, "the answer carries the operation's id, a UUID string")

# ---- Ridge on diabetes: batches, linear values, rows by name ----
reg, X, y, names = mm.diabetes_ridge()
ridge = mm.register(reg, X, y, names)
owner = t.uniq("owner")
dep = deployed(ridge, ownerid=owner)
r = predict(dep, {"data": X[:50].tolist(), "explain": True})
t.is_status(r, 200, "a batch of 50 rows answers 200")
a = t.body_of(r) or {}
pred = np.array(a.get("prediction") or [0] * 50)
t.ok(np.max(np.abs(pred - reg.predict(X[:50]))) < 1e-9, "batch predictions equal the model's in-process ones")
ex = a.get("explanation") or {}
fi = np.array(ex.get("feature_importance") or np.zeros((50, 10)))
t.is_(fi.shape, (50, 10), "a batch has one attribution list per row")
eff = np.array(ex.get("base_value", [0] * 50)) + fi.sum(axis=1) - reg.predict(X[:50])
t.ok(np.max(np.abs(eff)) < 1e-9, "every row's values add up to its prediction (efficiency)")
# For a linear model phi_i = coef_i (x_i - m_i): the difference between two
# rows' values is coef_i times the difference of the inputs, whatever m is.
t.ok(np.max(np.abs((fi[1:] - fi[0]) - reg.coef_ * (X[1:50] - X[0]))) < 1e-9,
     "linear values are coef_i * (x_i - background mean_i)")
r = predict(dep, {"data": dict(zip(names, X[3].tolist()))})
t.ok(r.status_code == 200 and abs(r.json()["prediction"][0] - reg.predict(X[3:4])[0]) < 1e-9,
     "a row given as an object keyed by feature name predicts the same")
r = predict(dep, {"data": [dict(zip(names, X[i].tolist())) for i in (4, 5)]})
t.is_(len((t.body_of(r) or {}).get("prediction") or []), 2, "a batch of objects predicts every row")
last_opid = (t.body_of(r) or {}).get("operationid")
ops = t.body_of(t.get("/deployment/get/opos/" + owner, params={"limit": 1000})) or []
t.is_(len(ops), 3, "every predict call is recorded as an operation of the deployment's owner")
t.ok(all(isinstance(o.get("operationid"), str) and re.match(t.UUID4_RE, o["operationid"]) for o in ops),
     "opos shows each recorded operation's operationid as a UUID string", ops)
t.is_(ops[0].get("operationid") if ops else None, last_opid,
      "the operationid a predict answers with is the one opos lists for it (newest first)")
t.is_((ops[-1].get("data") or [[]])[0], X[0].tolist(), "the operation keeps the input rows")
t.is_(len(ops[-1].get("result") or []), 50, "and the predictions")
predict(dep, {"data": X[0].tolist(), "ownerid": owner + "-other"})
t.is_(len(t.body_of(t.get("/deployment/get/opos/" + owner + "-other")) or []), 1,
      "an ownerid in the body records the operation under that owner")

# ---- input errors ----
t.is_422(predict(dep, {"data": [1, 2, 3]}), [(("body", "data"), None, "value_error.row_length")],
         "a row of the wrong length")
t.is_422(predict(dep, {"data": [X[0].tolist(), [1, 2]]}), [(("body", "data", 1), None, "value_error.row_length")],
         "a batch row of the wrong length is named by its index")
bad = X[0].tolist()
bad[2] = "high"
t.is_422(predict(dep, {"data": bad}), [(("body", "data", "bmi"), None, "type_error.float")],
         "a non-numeric value of a cont feature is named")
row = dict(zip(names, X[0].tolist()))
del row["bp"]
row["colour"] = 1
t.is_422(predict(dep, {"data": row}), [(("body", "data", "bp"), None, "value_error.missing"),
                                        (("body", "data", "colour"), None, "value_error.extra")],
         "a missing and an unknown feature name")
t.is_422(predict(dep, {"explain": True}), [(("body", "data"), "field required", "value_error.missing")],
         "a body without data")
t.is_422(predict(dep, {"data": "5.1, 3.5"}), [(("body", "data"), None, "type_error.list")],
         "data that is a string")

# ---- featurelists with values the document only gives as examples ----
# The gateway reads the model's featurelist at every call, so patching it
# changes how the next call's rows are checked (the runtime keeps its own).
mpath = "/model/" + ridge["modelid"]
fl = mm.featurelist(names)
row = X[0].tolist()
keyed = dict(zip(names, row))


def with_featurelist(featurelist, what):
    """Give the deployment this featurelist.  A deployment keeps the one
    its model had when it was created (a PATCH of the model does not reach
    it), so the copy in its row is set as well, as deploying the patched
    model again would."""
    r = t.patch(mpath, json={"featurelist": featurelist})
    if r.status_code != 200:
        raise RuntimeError("cannot patch the featurelist (%s): %s" % (what, t.describe(r)))
    t.db_rows("UPDATE deployments SET features = %s WHERE deployment_id = %s",
              None if featurelist is None else json.dumps(featurelist), dep)


def row_shape(what):
    return [(("body", "data"), "rows keyed by feature name need the model's input features, but " + what
             + "; send rows as lists in feature order", "value_error.row_shape")]


with_featurelist([dict(f, type="numeric") for f in fl[:-1]] + [dict(fl[-1], kind=7)],
                 "type numeric, target of kind 7")
t.ok(abs(((t.body_of(predict(dep, {"data": keyed})) or {}).get("prediction") or [0])[0]
         - reg.predict(X[:1])[0]) < 1e-9,
     "inputs of type \"numeric\" and a target of kind 7: an object row predicts (kind 7 is not an input)")
t.is_422(predict(dep, {"data": row + [1.0]}), [(("body", "data"), "row has 11 values; the model takes 10 features",
                                                 "value_error.row_length")],
         "an entry of kind 7 does not count as an input")
t.is_status(predict(dep, {"data": row[:2] + ["a string"] + row[3:]}), 502,
            "a string for a feature of type \"numeric\" is left to the model (which fails: 502), not refused")
with_featurelist(fl[:3] + [dict(fl[3], feature_name=None)] + fl[4:], "a nameless input")
t.is_422(predict(dep, {"data": keyed}),
         row_shape("its featurelist entry 3 is an input (kind 0) without a feature_name"),
         "an input entry without a feature_name: an object row is refused, saying why")
t.is_status(predict(dep, {"data": row}), 200, "while a list row of all 10 values predicts")
t.is_422(predict(dep, {"data": row[:9]}), [(("body", "data"), "row has 9 values; the model takes 10 features",
                                            "value_error.row_length")],
         "the nameless input still counts: a row of 9 values is refused")
with_featurelist(fl[:3] + [dict(fl[3], feature_name=names[0])] + fl[4:], "a name twice")
t.is_422(predict(dep, {"data": keyed}), row_shape("its featurelist names the input feature 'age' twice"),
         "a name given to two inputs: an object row is refused, saying why")
t.is_status(predict(dep, {"data": row}), 200, "while a list row predicts")
with_featurelist([dict(f, kind=2) for f in fl], "no inputs")
t.is_422(predict(dep, {"data": keyed}), row_shape("its featurelist has no input features (entries of kind 0)"),
         "a featurelist without inputs: an object row is refused, saying why")
t.is_status(predict(dep, {"data": row}), 200, "while a list row predicts")
with_featurelist(None, "none")
t.is_422(predict(dep, {"data": [keyed, keyed]}),
         [(("body", "data", i), "rows keyed by feature name need the model's input features, but the model "
           "has no featurelist; send rows as lists in feature order", "value_error.row_shape") for i in (0, 1)],
         "no featurelist: object rows are refused, saying why")
with_featurelist(fl, "restored")

# ---- one rule for the input features: the gateway and the runtime ----
# The API computes a deployment's input features once (app/featurelist.c)
# and hands them to the runtime in its bundle (job.json "features"): an
# input whose name is empty or given twice stays an input (rows are lists
# of all of them), and the names key nothing, at the gateway (object rows
# refused, saying why) and in the runtime (explanations are not labelled
# with them).
for what, fnames, why in [
        ("a name given twice", names[:3] + [names[0]] + names[4:],
         "its featurelist names the input feature 'age' twice"),
        ("an empty name", names[:3] + [""] + names[4:],
         "its featurelist entry 3 is an input (kind 0) without a feature_name")]:
    m = mm.register(reg, X, y, names)
    patched = mm.featurelist(fnames)
    t.is_status(t.patch("/model/" + m["modelid"], json={"featurelist": patched}), 200,
                "%s: the model's featurelist is patched before it is deployed" % what)
    d = deployed(m)
    stored = t.db_rows("SELECT features FROM deployments WHERE deployment_id = %s", d)[0]["features"]
    t.is_(json.loads(stored), patched, "%s: the deployment keeps the featurelist it was created with" % what)
    with open(os.path.join(var, "deployments", d, "job.json"), encoding="utf-8") as f:
        carried = json.load(f).get("features")
    t.is_(carried, {"inputs": [{"name": n or None, "type": "cont"} for n in fnames], "named": False, "why": why},
          "%s: the runtime's job.json carries the input features the API computed" % what)
    t.is_422(predict(d, {"data": dict(zip(names, X[0].tolist()))}), row_shape(why),
             "%s: an object row is refused, saying why" % what)
    r = predict(d, {"data": X[:2].tolist(), "explain": True})
    a = t.body_of(r) or {}
    t.ok(r.status_code == 200 and np.max(np.abs(np.array(a.get("prediction") or [0, 0]) - reg.predict(X[:2])))
         < 1e-9, "%s: rows as lists of every input predict" % what, t.describe(r))
    t.is_((a.get("explanation") or {}).get("feature_names"), ["x%d" % i for i in range(10)],
          "%s: the runtime does not label its explanations with names that key nothing" % what)
    had_slots = os.path.exists(slot_file(d))
    t.is_status(t.delete("/deployment/" + d), 200, "%s: stop it" % what)
    t.is_((had_slots, os.path.lexists(slot_file(d))), (True, False),
          "%s: its predict slot file, made by its calls, went with it" % what)
t.is_error(predict("no-such-deployment", {"data": [1]}), 404, "predict on an unknown deployment")
nodata = mm.register(reg, X, y, names, with_data=False)
dep_nodata = deployed(nodata)
t.is_error(predict(dep_nodata, {"data": X[0].tolist(), "explain": True}), 409,
           "explanations without training data")
t.is_status(predict(dep_nodata, {"data": X[0].tolist()}), 200, "predictions without training data still work")
# A call in flight holds a byte of the slot file (an open file description
# lock): the file stays while it is held, and goes at a reconcile after.
held = os.open(slot_file(dep_nodata), os.O_RDWR | os.O_NOFOLLOW)
fcntl.fcntl(held, fcntl.F_OFD_SETLK, struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 1, 1, 0).ljust(32, b"\0"))
t.is_status(t.delete("/deployment/" + dep_nodata), 200, "stop it")
time.sleep(2.5)  # one reconcile pass (MLC_RECONCILE_INTERVAL 2 s)
t.ok(os.path.exists(slot_file(dep_nodata)), "its slot file stays while a slot in it is held")
os.close(held)
t.ok(t.wait_for(lambda: not os.path.lexists(slot_file(dep_nodata)), 15),
     "and goes once no slot is held")
t.is_error(predict(dep_nodata, {"data": X[0].tolist()}), 409, "predict on a stopped deployment")

# ---- a runtime that dies mid-request ----
# Explaining 100 iris rows with a 100-tree forest keeps the runtime busy
# for about a third of a second on a quiet machine: the runtime is killed
# once it has spent 30 ms of CPU on the call (its idle CPU does not move),
# so the kill lands in the middle however fast or slow the machine is.
pid = t.db_rows("SELECT runtime_pid FROM deployments WHERE deployment_id = %s", dep_iris)[0]["runtime_pid"]
want_dir = ("--dir\0%s\0" % os.path.join(var, "deployments", dep_iris)).encode()


def runtime_cpu_ticks():
    """utime + stime of the processes serving dep_iris (the sandbox's and
    the runtime's own), from /proc."""
    ticks = 0
    for name in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                if want_dir not in f.read() + b"\0":
                    continue
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return ticks


holder = {}
idle = runtime_cpu_ticks()
th = threading.Thread(target=lambda: holder.update(
    r=predict(dep_iris, {"data": Xi[:100].tolist(), "explain": True}, timeout=60)))
th.start()
busy = t.wait_for(lambda: runtime_cpu_ticks() - idle >= 0.03 * os.sysconf("SC_CLK_TCK")
                  or not th.is_alive(), 30, 0.005)
t.ok(busy and th.is_alive(), "the runtime is busy with the call (%d ticks of CPU) before it is killed"
     % (runtime_cpu_ticks() - idle))
os.kill(pid, signal.SIGKILL)
th.join()
r = holder.get("r")
t.ok(r is not None and r.status_code in (502, 503), "a runtime killed mid-request gives a clean 502/503",
     r is not None and t.describe(r))
t.like((t.body_of(r) or {}).get("detail", "") if r is not None else "", r"dep-iris-001",
       "the failure is JSON naming the deployment")
codes = []
end = time.time() + 60
while time.time() < end:
    r = predict(dep_iris, {"data": [5.1, 3.5, 1.4, 0.2]})
    codes.append(r.status_code)
    if r.status_code == 200:
        break
    time.sleep(0.2)
t.is_(codes[-1], 200, "once the runtime is back the next call works")
t.ok(all(c in (200, 502, 503) for c in codes), "meanwhile calls answer 502/503, never hang", sorted(set(codes)))

# ---- data links ----
csv = mm.csv_bytes(X[:25], y[:25], names)


srv = mm.CSVServer({"/train.csv": csv})
port = srv.port
link_model = mm.register(reg, X, y, names)
dep_link = deployed(link_model, inference_data="1", ownerid=owner + "-link")  # "1" as pydantic 2 took it
allowed = "127.0.0.1" in os.environ.get("MLC_LINK_ALLOW_HOSTS", "").split(",")
if not allowed:
    t.skip("a data link to a CSV served locally predicts every row", "MLC_LINK_ALLOW_HOSTS lacks 127.0.0.1")
else:
    r = predict(dep_link, {"data_link": "http://127.0.0.1:%d/train.csv" % port})
    p = np.array((t.body_of(r) or {}).get("prediction") or [0])
    t.ok(r.status_code == 200 and p.shape == (25,) and np.max(np.abs(p - reg.predict(X[:25]))) < 1e-9,
         "a data link to a CSV served locally predicts every row", t.describe(r))
    ops = t.body_of(t.get("/deployment/get/opos/" + owner + "-link")) or [{}]
    t.is_(len(ops[0].get("data") or []), 25, "the link's rows are recorded as the operation's data")
    t.is_422(predict(dep_link, {"data_link": "http://127.0.0.1:%d/missing.csv" % port}),
             [(("body", "data_link"), None, "value_error.url.status")], "a link that answers 404")
t.is_422(predict(dep_link, {"data_link": "file:///etc/passwd"}),
         [(("body", "data_link"), None, "value_error.url")], "a file:// link is refused")
t.is_422(predict(dep, {"data_link": "http://127.0.0.1:%d/train.csv" % port}),
         [(("body", "data_link"), None, "value_error.inference_data")],
         "a data link to a deployment that takes inline data")

# A second master without an allow-list: loopback and private links refused.
sock2 = os.path.join(var, "run", "t0510.sock")
api = mlcapi.Api(sock2, os.path.join(var, "log", "t0510-mlc-api.log"), drop=("MLC_SLOW_SOCKET",),
                 MLC_WORKERS="1", MLC_SLOW_WORKERS="1", MLC_LINK_ALLOW_HOSTS="")
try:
    api.wait_up(5)
    for link in ("http://127.0.0.1:%d/train.csv" % port, "http://10.255.255.1/x.csv",
                 "http://[::1]:%d/train.csv" % port):
        status, _, reply = fcgi.request(sock2, "/deployment/%s/predict" % dep_link, "POST",
                                        json.dumps({"data_link": link}).encode())
        t.ok(status == 422 and b"private address" in reply,
             "a data link to %s is refused without contacting it" % link, status, reply[:300])
finally:
    api.stop()
    srv.shutdown()
t.done()
