#!/usr/bin/python3
# POST /mltraining/add through to a retrained model: the training code runs
# in the sandbox on the model's training data, the model it writes becomes
# the model's next version (through the upload route, so its SHA-256 is the
# one downloaded), a deployment made afterwards serves it; scripts that
# fail, write no model, run too long, try the network or write something
# that is no model end failed with a reason and leave no process behind;
# the request errors; train bundles hold only their own members; the
# sandbox seen from outside; a spooler killed mid-training; a waiting
# training whose bundle is lost.  The timeout case needs a short
# MLC_TRAIN_TIMEOUT (e.g. 20) exported to the instance and to this test.
import datetime
import hashlib
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

# Exclusive: it kills and restarts the instance's spooler.
t.need_instance("MLC_DB_SOCKET", "MLC_VAR", "MLC_ROOT", exclusive=True)
import mlcmodels as mm
import mlcspool as sp

import pandas as pd  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402

root, var = os.environ["MLC_ROOT"], os.environ["MLC_VAR"]
mlc = os.path.join(root, "scripts", "mlc")
pidfile = os.path.join(var, "run", "mlc-spooler.pid")
timeout = float(os.environ.get("MLC_TRAIN_TIMEOUT") or 600)

TRAIN_CODE = b'''
import os, pickle, sys
import pandas as pd
from sklearn.linear_model import Ridge

assert os.environ["MLC_DATA"] == sys.argv[1], (os.environ["MLC_DATA"], sys.argv)
df = pd.read_csv(sys.argv[1])
X, y = df.drop(columns=["target"]), df["target"]
print("retraining Ridge(alpha=0.3) for model %s on %d rows" % (os.environ["MLC_MODEL_ID"], len(df)))
reg = Ridge(alpha=0.3).fit(X.values, y.values)
with open(os.environ["MLC_OUTPUT"], "wb") as f:
    pickle.dump(reg, f)
print("wrote", os.environ["MLC_OUTPUT"])
'''


def job_dir(tid):
    return os.path.join(var, "training", tid)


def procs_of(tid):
    """Pids of processes whose command line mentions the training's job
    directory (its script, or something the script started from there)."""
    d = job_dir(tid).encode()
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open("/proc/%s/cmdline" % name, "rb") as f:
                    if d in f.read():
                        out.append(int(name))
            except OSError:
                pass
    return out


def training_model(code, with_data=True):
    """A registered Ridge model (version 1, with training data) and code."""
    model = mm.register(reg, X, y, names, with_data=with_data)
    if code is not None:
        mm.upload(model["modelid"], "code", "code.py", code)
    return model


def start(modelid, **body):
    return t.post("/mltraining/add", json=dict({"modelid": modelid}, **body))


def wait_training(tid, want=("completed", "failed"), seconds=90):
    end = time.time() + seconds
    last = None
    while time.time() < end:
        r = t.get("/mltraining/status/" + tid)
        if r.status_code == 200:
            last = r.json()
            if last["status"] in want:
                return last
        time.sleep(0.2)
    return last


def training_log(tid):
    return (t.body_of(t.get("/mltraining/%s/log" % tid)) or {}).get("log") or ""


def seconds_between(a, b):
    try:
        parse = t.api_time
        return round((parse(b) - parse(a)).total_seconds(), 2)
    except (TypeError, ValueError):
        return None


def spooler_pid():
    try:
        return int(open(pidfile).read().strip())
    except (OSError, ValueError):
        return None


def mlc_cmd(*args):
    return subprocess.run([mlc] + list(args), capture_output=True, text=True, timeout=180)


# ---- train bundles: only their own members ----
sys.path.insert(0, os.path.join(root, "scripts"))
from mlcpy import bundle as mbundle  # noqa: E402


def train_bundle(members, job=None):
    """A train bundle in a scratch file: job.json listing code and data,
    plus the given (name, bytes) members."""
    files = dict(members)
    job = job or {"type": "train", "training_id": "tb", "modelid": "m", "files": {
        k: {"name": n, "sha256": hashlib.sha256(files.get(n, b"")).hexdigest(),
            "size": len(files.get(n, b"")), "version": 1}
        for k, n in (("code", "code.py"), ("data", "data.csv"))}}
    fd, path = tempfile.mkstemp(suffix=".tar.gz", dir=var)
    os.close(fd)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [("job.json", json.dumps(job).encode())] + list(members):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return path


def unpack_error(path):
    """What unpacking the bundle as a train job says: "accepted" or why not."""
    dest = path + ".d"
    try:
        mbundle.unpack(path, dest, "train", "tb", 1 << 20)
        return "accepted"
    except mbundle.BundleError as e:
        return str(e)
    finally:
        os.unlink(path)
        shutil.rmtree(dest, ignore_errors=True)


good = [("code.py", b"print(1)\n"), ("data.csv", b"a,b\n1,2\n")]
t.is_(unpack_error(train_bundle(good)), "accepted",
      "a train bundle of job.json, code.py and data.csv is accepted")
t.like(unpack_error(train_bundle(good + [("model.pkl", b"x")])),
       r"member 'model\.pkl' does not belong in this bundle",
       "a train bundle carrying model.pkl is rejected")
t.like(unpack_error(train_bundle(good[:1])), r"data file 'data\.csv' listed in job\.json is missing",
       "a train bundle without its data.csv is rejected")
t.like(unpack_error(train_bundle(good, {"type": "deploy", "training_id": "tb", "files": {}})),
       r"job\.json type is 'deploy'", "a deploy job.json in a train bundle is rejected")

reg, X, y, names = mm.diabetes_ridge()
csv = mm.csv_bytes(X, y, names)
frame = pd.read_csv(io.BytesIO(csv))
expected = Ridge(alpha=0.3).fit(frame.drop(columns=["target"]).values, frame["target"].values)
t.defer(mlc_cmd, "up")  # whatever happens below, leave the instance running

# ---- a real retraining ----
model = training_model(TRAIN_CODE)
mid = model["modelid"]
placement = {"clusterID": "*", "node": "n1", "continuum": "Edge"}
t.is_422(start(mid, placement={"node": 5}, redeploy="maybe"),
         [(("body", "placement", "node"), "str type expected", "type_error.str"),
          (("body", "redeploy"), "value could not be parsed to a boolean", "type_error.bool")],
         "a number for placement.node and redeploy \"maybe\" are refused")
r = start(mid, placement=placement, redeploy="no")
t.is_status(r, 201, "POST /mltraining/add answers 201")
body = t.body_of(r) or {}
tid = body.get("deployment_id")
t.is_({k: body.get(k) for k in ("modelid", "placement", "status", "redeploy")},
      {"modelid": mid, "placement": placement, "status": "waiting", "redeploy": False},
      "the answer names the model, the placement and status waiting (redeploy \"no\" stored as false)")
t.ok(tid and tid == body.get("training_id"), "deployment_id is the training's id", body)
st = wait_training(tid)
t.is_((st or {}).get("status"), "completed", "the training completes", st)
t.is_((st or {}).get("produced_version"), 2, "it produced model version 2")
t.ok((st or {}).get("started_at") and (st or {}).get("finished_at") and st.get("reason") is None,
     "started_at and finished_at are set, no reason", st)
if t.auth_on():
    toks = t.db_rows("SELECT ownerid, scope, expires_at IS NOT NULL AS expires, revoked_at IS NOT NULL "
                     "AS revoked FROM tokens WHERE note LIKE %s", "training %s:%%" % tid)
    owner = t.db_rows("SELECT ownerid FROM models WHERE modelid = %s", mid)[0]["ownerid"]
    t.is_(toks, [{"ownerid": owner, "scope": "write", "expires": 1, "revoked": 1}],
          "the upload used a short-lived write token of the model's owner, revoked once stored")
files = t.body_of(t.get("/model/%s/files" % mid)) or []
v2 = [f for f in files if f.get("filekind") == "model" and f.get("version") == 2]
t.is_(len(v2), 1, "GET /model/{id}/files lists model version 2", files)
dl = t.get("/model/%s/files/model" % mid)
t.is_status(dl, 200, "GET /model/{id}/files/model downloads the newest model")
t.is_((v2 or [{}])[0].get("sha256"), hashlib.sha256(dl.content).hexdigest(),
      "the listed SHA-256 of version 2 is that of the downloaded bytes")
got = pickle.loads(dl.content)
t.ok(abs(got.predict(X[:5]) - expected.predict(X[:5])).max() < 1e-9,
     "the stored model predicts like Ridge(alpha=0.3) retrained in-process")
log = training_log(tid)
t.like(log, r"retraining Ridge\(alpha=0\.3\) for model %s on 442 rows" % mid,
       "GET /mltraining/{id}/log has the script's output")
t.ok(not os.path.exists(job_dir(tid)), "the job directory is removed")
listed = t.body_of(t.get("/mltraining/all", params={"limit": 1000})) or []
t.ok(tid in [x.get("training_id") for x in listed], "GET /mltraining/all lists the training")

dep = t.uniq("dep-trained")
r = mm.deploy(mid, dep)
t.is_((t.body_of(r) or {}).get("model_version"), 2, "a deployment made afterwards pins version 2")
st = mm.wait_status(dep)
t.is_((st or {}).get("status"), "deployed", "it deploys")
r = t.post("/deployment/%s/predict" % dep, json={"data": X[:3].tolist()})
pred = (t.body_of(r) or {}).get("prediction")
t.ok(r.status_code == 200 and pred is not None and
     max(abs(a - b) for a, b in zip(pred, expected.predict(X[:3]))) < 1e-9,
     "the deployment predicts what the retrained model predicts in-process", t.describe(r))
t.is_status(t.delete("/deployment/" + dep), 200, "the deployment stops")

# ---- request errors ----
t.is_error(start("00000000-0000-4000-8000-000000000000"), 404, "training an unknown model")
nocode = training_model(None)
r = start(nocode["modelid"])
t.is_error(r, 409, "training a model without code")
t.like((t.body_of(r) or {}).get("detail", ""), r"no code file", "the 409 names the missing code")
nodata = training_model(TRAIN_CODE, with_data=False)
r = start(nodata["modelid"])
t.is_error(r, 409, "training a model without training data")
t.like((t.body_of(r) or {}).get("detail", ""), r"no data file", "the 409 names the missing data")
slow = training_model(b"import time\ntime.sleep(2)\n")
first, second = start(slow["modelid"]), start(slow["modelid"])
t.is_status(first, 201, "a first training of a model is accepted")
t.is_error(second, 400, "a second training while the first is waiting or running")
t.like((t.body_of(second) or {}).get("detail", ""), (t.body_of(first) or {}).get("training_id", "?"),
       "the 400 names the training in the way")

# ---- failures, each with a reason and nothing left behind ----
listener = sp.Listener()
port, accepted = listener.port, listener.accepted
cases = [
    ("exits with status 3", b"import sys\nprint('reading data')\n"
     b"sys.stderr.write('the data has no column target\\n')\nsys.exit(3)\n",
     r"^the training script exited with status 3: the data has no column target$"),
    ("writes no model", b"print('forgot to save')\n",
     r"^the training script wrote no model \(expected \$MLC_OUTPUT\)$"),
    ("writes two pickles but not MLC_OUTPUT",
     b"import pickle\nfor n in ('a.pkl', 'b.pkl'):\n    pickle.dump({}, open(n, 'wb'))\n",
     r"^the training script wrote no model \(expected \$MLC_OUTPUT\); it wrote several"),
    ("writes a pickle that does not load",
     b"import os, pickle\nclass Bad:\n    def __reduce__(self):\n"
     b"        return (int, ('not a number',))\n"
     b"pickle.dump(Bad(), open(os.environ['MLC_OUTPUT'], 'wb'))\n",
     r"^the model the training script wrote cannot be loaded: ValueError: invalid literal"),
    ("writes something without predict()",
     b"import os, pickle\npickle.dump({'w': 1}, open(os.environ['MLC_OUTPUT'], 'wb'))\n",
     r"^the training script wrote a dict, which is not a model"),
    ("tries the network",
     ("import socket\n"
      "try:\n    socket.create_connection(('127.0.0.1', %d), timeout=5)\n"
      "except OSError as e:\n    print('127.0.0.1:', e, flush=True)\n"
      "socket.create_connection(('8.8.8.8', 53), timeout=5)\n" % port).encode(),
     r"^the training script exited with status 1: OSError: \[Errno 101\] Network is unreachable$"),
]
if timeout <= 60:
    cases.append(("runs longer than MLC_TRAIN_TIMEOUT",
                  b"import os, subprocess, sys, time\n"
                  b"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', "
                  b"os.getcwd()])\nprint('sleeping', flush=True)\ntime.sleep(%d)\n"
                  % (int(timeout) + 60),
                  r"^training exceeded MLC_TRAIN_TIMEOUT \(%g s\)$" % timeout))
else:
    t.skip("a training running longer than MLC_TRAIN_TIMEOUT is killed",
           "MLC_TRAIN_TIMEOUT is %g s here; run with MLC_TRAIN_TIMEOUT=20" % timeout)
started = []
for what, code, pattern in cases:
    m = training_model(code)
    r = start(m["modelid"])
    started.append((what, pattern, (t.body_of(r) or {}).get("training_id"), time.time()))
for what, pattern, tid_, t0 in started:
    st = wait_training(tid_, seconds=timeout + 60) if tid_ else None
    t.is_((st or {}).get("status"), "failed", "a script that %s: failed" % what, st)
    t.like((st or {}).get("reason") or "", pattern, "a script that %s: the reason says so" % what)
    t.ok(tid_ and not procs_of(tid_) and not os.path.exists(job_dir(tid_)),
         "a script that %s: no process and no job directory left" % what, procs_of(tid_ or "?"))
    if what == "tries the network":
        t.like(training_log(tid_), r"127\.0\.0\.1: \[Errno 111\] Connection refused",
               "the network: 127.0.0.1 refuses inside the sandbox (its own empty loopback)")
        took = seconds_between((st or {}).get("started_at"), (st or {}).get("finished_at"))
        t.ok(took is not None and took < 4.5,
             "the network: the script failed at once (%s s), not after a connect timeout" % took)
        t.is_(len(accepted), 0, "the network: the host's listener on 127.0.0.1 saw no connection")
    if what.startswith("runs longer"):
        t.like(training_log(tid_), r"sleeping", "a timed-out training keeps its output in the log")
listener.close()

# The model is deleted while its training runs: the upload is refused.
gone = mm.register(reg, X, y, names)
mm.upload(gone["modelid"], "code", "code.py", b"import time\ntime.sleep(3)\n" + TRAIN_CODE)
r = start(gone["modelid"])
gid = (t.body_of(r) or {}).get("training_id")
wait_training(gid, ("running", "completed", "failed"), 30)
t.is_status(t.delete("/model/" + gone["modelid"]), 200, "a model can be deleted while it trains")
st = wait_training(gid)
t.is_((st or {}).get("status"), "failed", "its training fails")
t.like((st or {}).get("reason") or "", r"^the API refused the trained model \(HTTP 404\): model '%s' "
       r"not found" % gone["modelid"], "the reason carries the API's answer")

# ---- the sandbox, seen from outside; a spooler killed mid-training ----
escape = os.path.join(root, "escape-%d" % os.getpid())
loop = (("try:\n    open(%r, 'w')\nexcept OSError as e:\n    print('outside:', e)\n" % escape).encode()
        + b"import time\nfor i in range(8):\n    print('step', i, flush=True)\n    time.sleep(1)\n"
        + TRAIN_CODE)
m = training_model(loop)
r = start(m["modelid"])
kid = (t.body_of(r) or {}).get("training_id")
end = time.time() + 30
while time.time() < end and "step 2" not in training_log(kid):
    time.sleep(0.2)
t.like(training_log(kid), r"step 1", "the log is updated while the training runs")
# Read-only where the project sits on the real root, denied under a 0700
# directory such as /root, absent under /tmp (the sandbox has its own /tmp).
t.like(training_log(kid), r"outside: \[Errno (30\] Read-only file system|13\] Permission denied|2\] No such file or directory)",
       "the script cannot write outside its job directory")
t.ok(not os.path.exists(escape), "no file appeared in the project directory")
script = [p for p in procs_of(kid) if b"code.py" in open("/proc/%d/cmdline" % p, "rb").read()
          and open("/proc/%d/cmdline" % p, "rb").read().startswith(b"/usr/bin/python3")]


def proc_file(pid, name):
    try:
        with open("/proc/%d/%s" % (pid, name)) as f:
            return f.read()
    except OSError:
        return ""


status = proc_file(script[0], "status") if script else ""
fields = dict(ln.split(":", 1) for ln in status.splitlines() if ":" in ln)
t.ok(script and fields.get("Uid", "0").split()[0] != "0" and len(fields.get("NSpid", "").split()) == 2
     and fields["NSpid"].split()[1] == "1",
     "the script runs unprivileged as pid 1 of its own pid namespace", script, fields.get("Uid"),
     fields.get("NSpid"))
limits = [ln for ln in proc_file(script[0], "limits").splitlines()
          if ln.startswith("Max address space")] if script else []
t.ok(limits and limits[0].split()[3].isdigit(), "the script has a memory limit", limits)
t.ok(script and os.readlink("/proc/%d/ns/net" % script[0]) != os.readlink("/proc/self/ns/net"),
     "the script has a network namespace of its own")
cg = proc_file(script[0], "cgroup") if script else ""
# The sandbox's group is named by a hash of the training id (no id can name a cgroup file).
leaf = "/mlc-train-" + hashlib.sha256(kid.encode()).hexdigest()[:16]
t.ok(script and leaf in cg or (script and os.getpriority(os.PRIO_PROCESS, script[0]) >= 10),
     "the script runs under a CPU and task limit (a cgroup of its own, or nice 10)", cg)
pid = spooler_pid()
os.kill(pid, signal.SIGKILL)
while mm.pid_alive(pid):
    time.sleep(0.05)
t.is_(wait_training(kid, ("running",), 1)["status"], "running",
      "with the spooler killed the training row still says running")
up = mlc_cmd("up")
t.is_(up.returncode, 0, "mlc up restarts the spooler", up.stderr)
st = wait_training(kid, seconds=60)
t.ok((st or {}).get("status") in ("completed", "failed"),
     "a spooler killed mid-training and restarted ends the training completed or failed", st)
t.is_((st or {}).get("status"), "completed", "(it ran again from the start and completed)",
      (st or {}).get("reason"))
t.like(training_log(kid), r"run 2 of at most 3", "the log says it is the second run")
t.ok(not procs_of(kid) and not os.path.exists(job_dir(kid)),
     "nothing of the killed run is left", procs_of(kid))

# A waiting training whose bundle is gone fails (after a grace period,
# shortened here by backdating the row).
pid = spooler_pid()
os.kill(pid, signal.SIGKILL)
while mm.pid_alive(pid):
    time.sleep(0.05)
m = training_model(TRAIN_CODE)
r = start(m["modelid"])
lid = (t.body_of(r) or {}).get("training_id")
os.unlink(os.path.join(var, "spool", "new", "train-%s.tar.gz" % lid))
with t.db().cursor() as cur:
    cur.execute("UPDATE trainings SET updated_at = updated_at - INTERVAL 5 MINUTE "
                "WHERE training_id = %s", (lid,))
mlc_cmd("up")
st = wait_training(lid, seconds=30)
t.is_((st or {}).get("status"), "failed", "a waiting training whose bundle is gone fails")
t.like((st or {}).get("reason") or "", r"bundle never reached the spool.*start it again",
       "the reason says to start it again")
t.done()
