#!/usr/bin/python3
# mlc-spooler and mlc-runtime without the C API: deployments rows are made
# with PyMySQL and job bundles with tarfile, then the spooler (--once, or
# running in the background) must bring each deployment to the right state:
# models load and answer on their unix socket, bad bundles and pickles fail
# with a reason a person can act on, the sandbox holds, stops remove the
# process and its files, and crashes of the spooler or of runtimes heal.
#
# The spooler runs on a private state directory and a private database
# (created on the instance's MariaDB through root's socket login), so that
# the instance's own spooler and these tests never see each other's rows.
import hashlib
import io
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import mlctap as t  # noqa: E402
import mlcspool as sp  # noqa: E402

sp.need(tools=("/usr/bin/bwrap", "/usr/bin/setpriv"),
        root="the spooler drops runtimes to MLC_RUNTIME_USER, which needs root")
try:
    import pymysql  # noqa: F401
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_diabetes, load_iris
    from sklearn.linear_model import LogisticRegression, Ridge
except ImportError as e:
    t.bail_out("needs python3-pymysql, python3-numpy, python3-pandas, python3-sklearn (%s)" % e)
if hasattr(t, "_take_lock"):
    t._take_lock(False)  # not alongside tests that stop the database

ROOT = os.environ["MLC_ROOT"]
SPOOLER = os.path.join(ROOT, "scripts", "mlc-spooler")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from mlcpy import config as mconfig  # noqa: E402
from mlcpy import unixhttp  # noqa: E402
from mlcpy import sandbox as msandbox  # noqa: E402

INSTANCE_VAR = os.environ["MLC_VAR"]
VAR, DB_NAME = sp.private_state("su")
SOCK = os.environ["MLC_DB_SOCKET"]
TAG = uuid.uuid4().hex[:8]

# ---- the private database -----------------------------------------------------

ENV = dict(os.environ, MLC_VAR=VAR, MLC_DB_NAME=DB_NAME, MLC_SPOOL_POLL="0.1",
           MLC_RECONCILE_INTERVAL="0.5", MLC_RUNTIME_BACKOFF="0.2")
# This spooler has no remote backend configured (a row asking for one fails).
for _key in ("MLC_KUBECONFIG", "MLC_NORTHBOUND_URL"):
    ENV.pop(_key, None)
CFG = mconfig.load(ROOT, ENV)
DB = sp.Database(DB_NAME)
sql, row, wait_for = DB.sql, DB.row, sp.wait_for


def insert(dep_id, status="waiting", desired="running", backend="local"):
    sql("INSERT INTO deployments (deployment_id, modelid, model_version, ownerid, backend, "
        "status, desired, created_at, updated_at) VALUES (%s, %s, 1, 'tester', %s, %s, %s, "
        "UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))", dep_id, str(uuid.uuid4()), backend, status, desired)


def ask_stop(dep_id):
    """What the C worker's DELETE does."""
    sql("UPDATE deployments SET desired = 'stopped', status = IF(status = 'stopped', 'stopped', "
        "'stopping'), updated_at = UTC_TIMESTAMP(6) WHERE deployment_id = %s", dep_id)


# ---- bundles ------------------------------------------------------------------

KINDS = {"model.pkl": "model", "data.csv": "data", "requirements.txt": "env"}


def job_for(dep_id, files):
    job = {"type": "deploy", "deployment_id": dep_id, "modelid": str(uuid.uuid4()),
           "model_version": 1, "ownerid": "tester", "placement": None, "inference_data": 0,
           "modelkind": "test", "featurelist": None, "files": {},
           "created_at": "2026-01-01T00:00:00Z"}
    for name, data in files.items():
        job["files"][KINDS[name]] = {"name": name, "sha256": hashlib.sha256(data).hexdigest(),
                                     "size": len(data), "version": 1}
    return job


def spool(dep_id, files, job=None, extra_members=(), publish=True):
    """Write deploy-<id>.tar.gz into spool/tmp and rename it into spool/new,
    as the C worker does.  extra_members: (TarInfo, bytes or None)."""
    job = job if job is not None else job_for(dep_id, files)
    for d in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(VAR, "spool", d), exist_ok=True)
    name = "deploy-%s.tar.gz" % dep_id
    tmp = os.path.join(VAR, "spool", "tmp", name)
    with tarfile.open(tmp, "w:gz") as tar:
        members = [("job.json", json.dumps(job).encode())] + list(files.items())
        for n, data in members:
            ti = tarfile.TarInfo(n)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        for ti, data in extra_members:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    if publish:
        os.rename(tmp, os.path.join(VAR, "spool", "new", name))
    return name


def deploy(dep_id, files, **kw):
    insert(dep_id)
    spool(dep_id, files, **kw)


def bundle_left(dep_id):
    name = "deploy-%s.tar.gz" % dep_id
    return [d for d in ("tmp", "new", "cur") if os.path.exists(os.path.join(VAR, "spool", d, name))]


# ---- models and pickles ----------------------------------------------------------

X_diab, y_diab = load_diabetes(return_X_y=True)
RIDGE = Ridge(alpha=0.5).fit(X_diab, y_diab)
RIDGE_PKL = pickle.dumps(RIDGE)
iris = load_iris(as_frame=True)
IRIS_X = iris.data
IRIS_Y = np.array(iris.target_names)[iris.target]
IRIS = LogisticRegression(max_iter=500).fit(IRIS_X, IRIS_Y)
IRIS_PKL = pickle.dumps(IRIS)


class Code:
    """Unpickling this runs `code` (in a fresh namespace), then yields the
    model pickled in `then` - what a malicious upload can do."""

    def __init__(self, code, then=RIDGE_PKL):
        self.expr = "(exec(%r, {}), __import__('pickle').loads(%r))[1]" % (code, then)

    def __reduce__(self):
        return (eval, (self.expr,))


def code_pkl(code, then=RIDGE_PKL):
    return pickle.dumps(Code(code, then))


# ---- processes --------------------------------------------------------------------


def spooler_once(**env):
    p = subprocess.run([SPOOLER, "--once"], env=dict(ENV, **env), capture_output=True,
                       text=True, timeout=120)
    t.note(p.stderr)
    return p


def Background(**env):
    """mlc-spooler running as scripts/mlc starts it (new session)."""
    return sp.Background(os.path.join(VAR, "spooler-%d.log" % time.monotonic_ns()),
                         dict(ENV, **env), stop_timeout=20)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except (OSError, TypeError):
        return False


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().decode().split("\0")
    except OSError:
        return []


def status_line(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None


def dep_dir(dep_id):
    return os.path.join(VAR, "deployments", dep_id)


def sock_of(dep_id):
    return os.path.join(dep_dir(dep_id), "runtime.sock")


def health(dep_id):
    return unixhttp.health(sock_of(dep_id), timeout=5)


def predict(dep_id, data, explain=None, conn=None):
    body = {"data": data} if explain is None else {"data": data, "explain": explain}
    return unixhttp.request(sock_of(dep_id), "POST", "/predict", body, timeout=10, conn=conn)


def cleanup():
    subprocess.run([SPOOLER, "--stop-runtimes"], env=ENV, capture_output=True, timeout=120)
    shutil.rmtree(VAR, ignore_errors=True)


t.defer(cleanup)


def ids(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


# ---- deploy: Ridge and an iris classifier -------------------------------------------

ridge_id, iris_id = ids("ridge"), ids("iris")
csv = pd.DataFrame(X_diab[:50]).to_csv(index=False).encode()
unfit_id = ids("unfit")
deploy(ridge_id, {"model.pkl": RIDGE_PKL, "data.csv": csv})
deploy(iris_id, {"model.pkl": IRIS_PKL})
deploy(unfit_id, {"model.pkl": pickle.dumps(Ridge())})
started = time.monotonic()
p = spooler_once()
t.is_(p.returncode, 0, "mlc-spooler --once exits 0")
r = row(ridge_id)
t.is_(r.get("status"), "deployed", "Ridge: deployed")
t.is_(r.get("endpoint"), "unix:" + sock_of(ridge_id), "Ridge: endpoint is unix:<absolute socket>")
ridge_pid = r.get("runtime_pid")
t.ok(alive(ridge_pid) and "--dir" in cmdline(ridge_pid) and dep_dir(ridge_id) in cmdline(ridge_pid),
     "Ridge: runtime_pid is a live mlc-runtime for its directory", cmdline(ridge_pid))
st_sock = os.stat(sock_of(ridge_id))
t.ok(st_sock.st_mode & 0o777 == 0o660, "Ridge: the socket is mode 0660 (no other local user can call the model)")
if os.getuid() == 0:
    import pwd
    try:
        svc_gid = pwd.getpwnam(os.environ.get("MLC_SERVICE_USER") or "mlconnector").pw_gid
    except KeyError:
        svc_gid = None
    t.ok(svc_gid is None or st_sock.st_gid == svc_gid,
         "Ridge: its group is the API's (MLC_SERVICE_USER's)", st_sock.st_gid, svc_gid)
else:
    t.skip("Ridge: its group is the API's", "not root")
t.is_(bundle_left(ridge_id), [], "Ridge: the bundle left the spool")
h = health(ridge_id) or {}
conns = h.pop("connections", None)
t.is_(h, {"status": "ok", "deployment_id": ridge_id, "model": "Ridge", "n_features": 10,
          "feature_names": None}, "Ridge: GET /health over the unix socket")
t.ok(isinstance(conns, int) and conns >= 1, "Ridge: /health counts the connections accepted", conns)
rows = X_diab[:5].tolist()
st, body = predict(ridge_id, rows)
t.is_([st, body], [200, {"prediction": RIDGE.predict(np.array(rows)).tolist()}],
      "Ridge: POST /predict returns what model.predict returns in-process")
st, body = predict(ridge_id, rows[:1], explain=True)
t.is_([st, sorted(body)], [409, ["detail"]],
      "Ridge: explain true without training data in the bundle is a 409")
st, body = predict(ridge_id, [[1, 2, 3]])
t.is_(st, 422, "Ridge: a row of the wrong width is a 422")
t.like(body.get("detail") if isinstance(body, dict) else body, r"expects 10 features",
       "Ridge: the 422 says how many features the model expects")
st, body = predict(ridge_id, [1.0] * 10)
t.is_(st, 422, "Ridge: a 1-D list is a 422 (the gateway sends rows)")
conn = unixhttp.UnixHTTPConnection(sock_of(ridge_id), timeout=10)
answers = [predict(ridge_id, [rows[i]], conn=conn)[0] for i in range(3)]
t.ok(answers == [200, 200, 200] and conn.sock is not None,
     "Ridge: three requests on one kept-alive connection", answers)
conn.close()

r = row(iris_id)
t.is_(r.get("status"), "deployed", "iris: deployed")
h = health(iris_id) or {}
t.is_([h.get("model"), h.get("n_features"), h.get("feature_names")],
      ["LogisticRegression", 4, list(IRIS_X.columns)], "iris: /health names the features")
sample = IRIS_X.iloc[[0, 60, 120]]
st, body = predict(iris_id, sample.values.tolist())
t.is_([st, body], [200, {"prediction": IRIS.predict(sample).tolist()}],
      "iris: class labels (numpy strings) come back as JSON strings")
st, body = predict(unfit_id, [[1.0, 2.0]])
t.is_(st, 500, "a model raising in predict: 500")
t.like(body.get("detail") if isinstance(body, dict) else body, r"NotFittedError",
       "a model raising in predict: the detail names the exception")
t.note("three deployments took %.1f s" % (time.monotonic() - started))

# ---- the sandbox --------------------------------------------------------------------

pw_uid = int(subprocess.run(["id", "-u", CFG.get("MLC_RUNTIME_USER")], capture_output=True,
                            text=True).stdout.strip() or -1)
t.is_(os.stat("/proc/%d" % ridge_pid).st_uid, pw_uid, "sandbox: the runtime runs as MLC_RUNTIME_USER")
t.is_([status_line(ridge_pid, "CapEff"), status_line(ridge_pid, "CapBnd"),
       status_line(ridge_pid, "NoNewPrivs")], ["0000000000000000", "0000000000000000", "1"],
      "sandbox: no capabilities, not even in the bounding set; no_new_privs")
with open("/proc/%d/limits" % ridge_pid) as f:
    limits = f.read()
t.like(limits, r"Max address space\s+%d\s+%d" % (2 << 30, 2 << 30),
       "sandbox: RLIMIT_AS is MLC_RUNTIME_MEMORY (2 GiB), hard and soft")
with open("/proc/%d/environ" % ridge_pid, "rb") as f:
    environ = f.read().decode()
t.ok("MLC_DB" not in environ and "MLC_VAR" not in environ,
     "sandbox: the runtime inherits none of the spooler's MLC_* environment")
with open("/proc/%d/cgroup" % ridge_pid) as f:
    cg = f.read()
cpu_groups = [ln for ln in cg.splitlines() if ln.split(":")[1] in ("cpu", "cpu,cpuacct", "")
              and ln.endswith("/" + msandbox.cgroup_leaf("mlc-dep-", ridge_id))]
if cpu_groups:
    leaf = "/sys/fs/cgroup/" + ("cpu" if ":cpu:" in cpu_groups[0] else "") + \
        cpu_groups[0].split(":", 2)[2]
    quota = open(leaf + "/cpu.cfs_quota_us").read().strip() if os.path.exists(
        leaf + "/cpu.cfs_quota_us") else open(leaf + "/cpu.max").read().split()[0]
    t.is_(quota, "100000", "sandbox: the runtime is in its own CPU cgroup, quota 1 CPU")
else:
    t.ok(os.getpriority(os.PRIO_PROCESS, ridge_pid) >= 10,
         "sandbox: without a cpu cgroup the runtime runs at nice 10", cg)

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(5)
port = listener.getsockname()[1]
accepted = []
listening = threading.Event()
listening.set()


def accept_loop():
    listener.settimeout(0.5)
    while listening.is_set():
        try:
            accepted.append(listener.accept()[0])
        except OSError:
            pass


threading.Thread(target=accept_loop, daemon=True).start()
probe_id = ids("probe")
targets = {
    "tmp-dotdot": "/tmp/../escape-" + TAG,
    "deployments": os.path.join(VAR, "deployments", "escape-" + TAG),
    "var": os.path.join(VAR, "escape-" + TAG),
    "instance-var": os.path.join(INSTANCE_VAR, "escape-" + TAG),
    "root": os.path.join(ROOT, "escape-" + TAG),
    "scripts": os.path.join(ROOT, "scripts", "escape-" + TAG),
    "etc": "/etc/escape-" + TAG,
    "tmp": "/tmp/escape-" + TAG,
}
conf_path = os.path.join(ROOT, "conf", "mlconnector.conf")
probe_code = """
import json, os, socket
res = {}
def attempt(name, fn):
    try:
        fn()
        res[name] = "ok"
    except Exception as e:
        res[name] = "%%s: %%s" %% (type(e).__name__, e)
def tcp():
    socket.create_connection(("127.0.0.1", %(port)d), timeout=3).close()
def write(path):
    def f():
        with open(path, "w") as fh:
            fh.write("escaped")
    return f
def db():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    s.connect(%(db)r)
attempt("tcp", tcp)
for key, path in %(targets)r.items():
    attempt("write " + key, write(path))
attempt("read conf", lambda: open(%(conf)r).read())
attempt("db socket", db)
attempt("list other deployment", lambda: os.listdir(%(other)r))
def forks():
    kids = []
    try:
        for i in range(1000):
            pid = os.fork()
            if pid == 0:
                os.execv("/bin/sleep", ["sleep", "30"])
            kids.append(pid)
    except OSError as e:
        res["fork error"] = str(e)
    res["forks"] = len(kids)
    for pid in kids:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
forks()
res["uid"] = os.getuid()
res["pids"] = len([p for p in os.listdir("/proc") if p.isdigit()])
with open("/tmp/probe.json", "w") as fh:
    json.dump(res, fh)
""" % {"port": port, "db": SOCK, "targets": targets, "conf": conf_path,
       "other": dep_dir(ridge_id)}
deploy(probe_id, {"model.pkl": code_pkl(probe_code)})
spooler_once()
t.is_(row(probe_id).get("status"), "deployed", "sandbox: the probing pickle deployed (it ran)")
try:
    # The deployment directory is read-only in the sandbox: the probe left
    # its findings in its own /tmp, which root sees through /proc.
    with open("/proc/%d/root/tmp/probe.json" % row(probe_id).get("runtime_pid", 0)) as f:
        probe = json.load(f)
except (OSError, ValueError) as e:
    probe = {"error": str(e)}
t.note(json.dumps(probe, indent=1))
t.like(probe.get("tcp", ""), r"^(ConnectionRefusedError|OSError|TimeoutError)",
       "sandbox: a TCP connection to 127.0.0.1 fails inside the sandbox")
listening.clear()
t.is_(len(accepted), 0, "sandbox: the host listener on 127.0.0.1 saw no connection")
for key, path in targets.items():
    if key == "tmp":
        t.ok(not os.path.exists(path), "sandbox: the sandbox's /tmp is private (nothing in the "
             "host's /tmp)", probe.get("write tmp"))
        continue
    t.ok(probe.get("write " + key, "ok") != "ok" and not os.path.exists(path),
         "sandbox: writing %s (%s) fails" % (key, path), probe.get("write " + key))
t.ok(os.path.exists(conf_path) and probe.get("read conf", "ok") != "ok",
     "sandbox: conf/mlconnector.conf cannot be read", probe.get("read conf"))
t.ok(probe.get("db socket", "ok") != "ok", "sandbox: the database socket is out of reach",
     probe.get("db socket"))
t.ok(probe.get("list other deployment", "ok") != "ok",
     "sandbox: another deployment's directory is invisible", probe.get("list other deployment"))
t.ok(probe.get("uid") == pw_uid and probe.get("pids", 99) <= 2,
     "sandbox: unprivileged, in its own pid namespace", probe)
t.ok(probe.get("forks", 1000) < CFG.number("MLC_RUNTIME_PIDS", int),
     "sandbox: a fork bomb stops below MLC_RUNTIME_PIDS (%s processes)" % probe.get("forks"),
     probe.get("fork error"))
listener.close()

# ---- failures with reasons ------------------------------------------------------------

boom_id, mem_id, req_id, warn_id = ids("boom"), ids("mem"), ids("req"), ids("warn")
evil_id, link_id, sha_id, kube_id = ids("evil"), ids("link"), ids("sha"), ids("kube")
deploy(boom_id, {"model.pkl": code_pkl("raise ValueError('boom')")})
deploy(mem_id, {"model.pkl": code_pkl("x = bytearray(3 << 30)")})
deploy(req_id, {"model.pkl": RIDGE_PKL,
                "requirements.txt": b"scikit-learn>=1.0\nnosuchpkg-%s>=1.0\n" % TAG.encode()})
deploy(warn_id, {"model.pkl": RIDGE_PKL, "requirements.txt": b"numpy==1.0.0\nscikit-learn\n"})
evil = tarfile.TarInfo("../evil-" + TAG)
evil.size = 4
deploy(evil_id, {"model.pkl": RIDGE_PKL}, extra_members=[(evil, b"evil")])
link = tarfile.TarInfo("data.csv")
link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
deploy(link_id, {"model.pkl": RIDGE_PKL}, extra_members=[(link, None)])
bad_job = job_for(sha_id, {"model.pkl": RIDGE_PKL})
bad_job["files"]["model"]["sha256"] = "0" * 64
deploy(sha_id, {"model.pkl": RIDGE_PKL}, job=bad_job)
insert(kube_id, backend="kubernetes")
spool(kube_id, {"model.pkl": RIDGE_PKL})
train_name = "train-%s.tar.gz" % ids("train")
with open(os.path.join(VAR, "spool", "new", train_name), "wb") as f:
    f.write(b"not handled yet")
spooler_once()
t.ok(os.path.exists(os.path.join(VAR, "spool", "new", train_name)),
     "a training bundle without its trainings row waits in spool/new/ (until rejected after 60 s)")
r = row(boom_id)
t.is_([r.get("status"), r.get("reason")], ["failed", "model failed to load: ValueError: boom"],
      "a pickle raising on load: failed with the exception as reason")
t.ok(not os.path.exists(dep_dir(boom_id)) and r.get("runtime_pid") is None,
     "a pickle raising on load: no process, no files left")
t.like(row(mem_id).get("reason"), r"^model failed to load: MemoryError: .*memory limit is 2048 MiB",
       "a pickle allocating 3 GiB: failed, the reason names the memory limit")
r = row(req_id)
t.is_(r.get("status"), "failed", "missing requirement: failed")
t.like(r.get("reason"), r"requirement 'nosuchpkg-%s' is not installed" % TAG,
       "missing requirement: the reason names it")
r = row(warn_id)
t.is_(r.get("status"), "deployed", "version mismatch: still deployed")
t.like(r.get("warnings"), r"numpy==1\.0\.0.*numpy 1\.\d+", "version mismatch: recorded in warnings")
r = row(evil_id)
t.is_(r.get("status"), "failed", "bundle with a '..' member: failed")
t.like(r.get("reason"), r"bundle rejected: member '\.\./evil-", "bundle with a '..' member: "
       "the reason names the member")
t.ok(not os.path.exists(os.path.join(VAR, "deployments", "..", "evil-" + TAG)) and
     not os.path.exists(os.path.join(VAR, "evil-" + TAG)), "bundle with a '..' member: "
     "nothing written outside")
t.like(row(link_id).get("reason"), r"member 'data\.csv' is a symbolic link",
       "bundle with a symlink member: failed, named")
t.like(row(sha_id).get("reason"), r"'model\.pkl' does not match its SHA-256",
       "bundle whose model does not match its SHA-256: failed")
t.like(row(kube_id).get("reason"), r"backend 'kubernetes' is not available: set MLC_KUBECONFIG",
       "a deployment for a backend this spooler lacks: failed, named")
t.is_([bundle_left(x) for x in (boom_id, evil_id, sha_id)], [[], [], []],
      "failed bundles leave the spool")

# A 'building' deployment whose bundle is gone was interrupted for good.
lost_id = ids("lost")
insert(lost_id, status="building")
spooler_once()
r = row(lost_id)
t.is_([r.get("status"), r.get("reason")], ["failed", "interrupted while building; deploy again"],
      "building with no bundle anywhere: failed, deploy again")

# ---- stopping ------------------------------------------------------------------------

# A bundle whose deployment was stopped before the spooler saw it.
early_id = ids("early")
insert(early_id, status="stopping", desired="stopped")
spool(early_id, {"model.pkl": RIDGE_PKL})
spooler_once()
t.is_(row(early_id).get("status"), "stopped", "stopped before its bundle was claimed: stopped")
t.ok(not os.path.exists(dep_dir(early_id)) and bundle_left(early_id) == [],
     "stopped before its bundle was claimed: no runtime, no files, bundle dropped")

bg = Background()
warn_pid = row(warn_id).get("runtime_pid")
ask_stop(warn_id)
t0 = time.monotonic()
done = wait_for(lambda: row(warn_id).get("status") == "stopped", 10, 0.05)
took = time.monotonic() - t0
r = row(warn_id)
t.ok(done and took < 5, "DELETE: stopped within seconds (%.2f s)" % took, r)
t.ok(not alive(warn_pid), "DELETE: the runtime process is gone")
t.ok(not os.path.exists(dep_dir(warn_id)), "DELETE: its directory is removed")
t.is_([r.get("endpoint"), r.get("runtime_pid")], [None, None], "DELETE: endpoint and pid cleared")

# ---- restarts -----------------------------------------------------------------------------

# A spooler restart does not touch serving runtimes.
before = {x: row(x).get("runtime_pid") for x in (ridge_id, iris_id)}
t.is_(bg.stop(), 0, "SIGTERM: the spooler exits 0")
bg = Background()
time.sleep(1.5)  # a few reconcile passes
after = {x: row(x).get("runtime_pid") for x in (ridge_id, iris_id)}
t.ok(before == after and all(alive(p) for p in after.values()) and health(ridge_id),
     "spooler restart: runtimes keep their pids and keep serving", before, after)

# A runtime killed from outside is restarted.
os.kill(ridge_pid, signal.SIGKILL)
new_pid = wait_for(lambda: (row(ridge_id).get("runtime_pid") or ridge_pid) != ridge_pid
                   and row(ridge_id)["runtime_pid"], 20)
r = row(ridge_id)
t.ok(new_pid and alive(new_pid) and r.get("status") == "deployed" and health(ridge_id),
     "runtime killed: restarted, deployed again and answering", r)
t.is_(r.get("restarts"), 1, "runtime killed: counted as one restart")

# The spooler killed while a deployment is building: the next one finishes it.
slow_id = ids("slow")
deploy(slow_id, {"model.pkl": code_pkl("import time; time.sleep(4)")})
pid_file = os.path.join(dep_dir(slow_id), "runtime.pid")
started = wait_for(lambda: row(slow_id).get("status") == "building" and os.path.exists(pid_file),
                   15, 0.02)
bg.stop(signal.SIGKILL)
t.ok(started and row(slow_id).get("status") == "building",
     "spooler kill -9: it had started the runtime and was building")
with open(pid_file) as f:
    slow_pid = int(f.read())
bg = Background()
final = wait_for(lambda: row(slow_id).get("status") in ("deployed", "failed"), 30)
r = row(slow_id)
t.is_(r.get("status"), "deployed", "spooler kill -9 mid-deploy: the next spooler ends it "
      "deployed (not stuck in building)")
# (The bundle goes right after the row says deployed.)
gone = wait_for(lambda: bundle_left(slow_id) == [], 5, 0.05)
t.ok(gone and r.get("runtime_pid") == slow_pid and alive(slow_pid),
     "spooler kill -9 mid-deploy: the runtime already starting was adopted, bundle consumed",
     r, slow_pid, bundle_left(slow_id), alive(slow_pid))

# The same, killed before the runtime was started: the bundle is processed again.
slow2_id = ids("slow2")
os.makedirs(os.path.join(VAR, "spool", "cur"), exist_ok=True)
insert(slow2_id, status="building")
name = spool(slow2_id, {"model.pkl": RIDGE_PKL}, publish=False)
os.rename(os.path.join(VAR, "spool", "tmp", name), os.path.join(VAR, "spool", "cur", name))
wait_for(lambda: row(slow2_id).get("status") in ("deployed", "failed"), 30)
t.is_(row(slow2_id).get("status"), "deployed", "a bundle left in cur/ by a dead spooler is "
      "processed again: deployed")

# A runtime that keeps crashing ends failed with its last words.
crash_id = ids("crash")
# It dies a second after its socket listens, so a slow start on a busy
# machine still reaches /health first (a crash before that is another
# failure, tested elsewhere).  The socket is the one the spooler bound and
# passed as MLC_LISTEN_FD (it was made outside the sandbox's network
# namespace, so /proc/net/unix inside does not list it): it listens once
# SO_ACCEPTCONN is set.
crash_code = ("import os, socket, sys, threading, time\n"
              "def listening():\n"
              "    fd = os.environ.get('MLC_LISTEN_FD')\n"
              "    if fd:\n"
              "        s = socket.socket(fileno=os.dup(int(fd)))\n"
              "        try:\n"
              "            return s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)\n"
              "        finally:\n"
              "            s.close()\n"
              "    with open('/proc/self/net/unix') as f:\n"
              "        return 'runtime.sock' in f.read()\n"
              "def die():\n"
              "    for _ in range(1200):\n"
              "        try:\n"
              "            if listening():\n"
              "                break\n"
              "        except OSError:\n"
              "            pass\n"
              "        time.sleep(0.05)\n"
              "    time.sleep(1.0)\n"
              "    sys.stderr.write('simulated crash %s\\n')\n"
              "    sys.stderr.flush()\n"
              "    os._exit(9)\n"
              "threading.Thread(target=die, daemon=True).start()\n" % TAG)
deploy(crash_id, {"model.pkl": code_pkl(crash_code)})
final = wait_for(lambda: row(crash_id).get("status") == "failed", 60, 0.2)
r = row(crash_id)
t.is_(r.get("status"), "failed", "crash loop: failed after MLC_RUNTIME_MAX_RESTARTS restarts")
t.like(r.get("reason"), r"^runtime keeps crashing: simulated crash %s" % TAG,
       "crash loop: the reason carries the runtime's last stderr line")
t.ok(not os.path.exists(dep_dir(crash_id)) and r.get("restarts") == CFG.number(
     "MLC_RUNTIME_MAX_RESTARTS", int) - 1, "crash loop: failed at crash number "
     "MLC_RUNTIME_MAX_RESTARTS after %s restarts, files removed" % r.get("restarts"), r)
t.is_(bg.stop(), 0, "the background spooler stops cleanly")

# mlc down / mlc up: --stop-runtimes, then a spooler resumes them uncounted.
pids = {x: row(x).get("runtime_pid") for x in (ridge_id, iris_id, slow_id)}
p = subprocess.run([SPOOLER, "--stop-runtimes"], env=ENV, capture_output=True, text=True,
                   timeout=60)
t.ok(p.returncode == 0 and not any(alive(x) for x in pids.values()),
     "--stop-runtimes: every runtime is gone", p.stderr)
t.is_(row(ridge_id).get("status"), "deployed", "--stop-runtimes: the database is untouched")
restarts = {x: row(x).get("restarts") for x in pids}
# A sandbox whose first process never got to exec the runtime (what bwrap
# leaves when its parent dies at the wrong moment) is a stray to remove.
block_r, block_w = os.pipe()
ghost = subprocess.Popen(["/usr/bin/bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--as-pid-1",
                          "--block-fd", str(block_r), "--", "/usr/bin/python3", "-I",
                          os.path.join(ROOT, "scripts", "mlc-runtime"), "--dir",
                          dep_dir(ids("ghost"))], pass_fds=(block_r,), start_new_session=True)
os.close(block_r)
ghost_kids = wait_for(lambda: open("/proc/%d/task/%d/children" % (ghost.pid, ghost.pid)).read()
                      .split(), 10, 0.02)
spooler_once()
ok = all(row(x).get("status") == "deployed" and alive(row(x).get("runtime_pid")) and health(x)
         for x in pids)
t.ok(ok, "after --stop-runtimes a spooler brings every deployment back")
t.is_({x: row(x).get("restarts") for x in pids}, restarts, "resuming does not count as a crash")
t.ok(ghost_kids and not alive(int(ghost_kids[0])),
     "a sandbox stuck before exec'ing the runtime is found and killed", ghost_kids)
os.close(block_w)
ghost.wait(timeout=10)
t.done()
