#!/usr/bin/python3
# Privilege separation between the service user (mlc-api, mlc-drift) and
# the root spooler.  The service user cannot redirect the spooler: it may
# write only the spool intake, and a state directory the spooler uses
# that becomes a symbolic link (to a directory holding canary files) or
# another user's is refused with one log line, nothing outside MLC_VAR
# changes, no deployment is failed, and the spooler goes on once the
# directory is put back.  A spool bundle that is a symbolic link, a hard
# link or a FIFO fails its deployment and leaves its target alone.  Other
# local users cannot read the config file (database password) or stored
# artifacts, while nginx still serves downloads.
#
# The instance runs everything as root, so the service user is a
# throwaway system user given to a private spooler (own state directory
# and database, as in t/0400), and "other users" are nobody and the
# runtime user, through setpriv.
import hashlib
import io
import json
import os
import pickle
import pwd
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import mlctap as t  # noqa: E402

t.need_instance("MLC_DB_SOCKET", "MLC_VAR", "MLC_ROOT", "MLC_DB_NAME", "MLC_DB_USER")
import mlcspool  # noqa: E402

mlcspool.need(tools=("/usr/bin/bwrap", "/usr/bin/setpriv", "/usr/sbin/useradd"),
               root="needs root (owners, setpriv, the spooler's sandbox)")
from sklearn.linear_model import Ridge  # noqa: E402

import mlcmodels as mm  # noqa: E402

ROOT = os.environ["MLC_ROOT"]
SPOOLER = os.path.join(ROOT, "scripts", "mlc-spooler")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from mlcpy import unixhttp  # noqa: E402

INSTANCE_VAR = os.environ["MLC_VAR"]
TAG = uuid.uuid4().hex[:6]
NOBODY = pwd.getpwnam("nobody")


def as_user(uid, gid, argv, **kw):
    """Run argv as uid:gid with no supplementary groups."""
    return subprocess.run(["/usr/bin/setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
                           "--clear-groups", "--"] + argv, capture_output=True, text=True,
                          timeout=60, **kw)


def unreadable_by(uid, gid, path):
    r = as_user(uid, gid, ["/bin/cat", path])
    return r.returncode != 0 and "Permission denied" in r.stderr


# ---- other users cannot read the config file and the artifacts -----------------

conf = os.environ.get("MLC_CONF") or os.path.join(ROOT, "conf", "mlconnector.conf")
runtime_pw = pwd.getpwnam(os.environ.get("MLC_RUNTIME_USER") or "mlc-runtime")
t.is_(os.stat(conf).st_mode & 0o007, 0, "the config file is closed to other users (mode %04o)"
      % (os.stat(conf).st_mode & 0o7777))
t.ok(unreadable_by(NOBODY.pw_uid, NOBODY.pw_gid, conf),
     "nobody cannot read the config file (it holds MLC_DB_PASSWORD)")
t.ok(unreadable_by(runtime_pw.pw_uid, runtime_pw.pw_gid, conf),
     "the runtime user cannot read the config file")

store = os.environ.get("MLC_ARTIFACTS") or os.path.join(INSTANCE_VAR, "artifacts")
model = t.add_model(t.minimal_model(), "a model to store a training data file for")
csv = b"a,b,target\n1,2,3\n4,5,6\n"
mm.upload(model["modelid"], "data", "secret.csv", csv)
rel = t.db_rows("SELECT path FROM artifacts WHERE modelid = %s AND filekind = 'data'",
                model["modelid"])[0]["path"]
stored = os.path.join(store, rel)
st, dst, sst = os.stat(stored), os.stat(os.path.dirname(stored)), os.stat(store)
t.is_("%04o" % (st.st_mode & 0o7777), "0640", "a stored artifact is mode 0640")
t.is_(["%04o" % (dst.st_mode & 0o7777), dst.st_gid, st.st_gid], ["2750", sst.st_gid, sst.st_gid],
      "its directory is 2750 and both have the store's group (setgid)")
t.ok(unreadable_by(NOBODY.pw_uid, NOBODY.pw_gid, stored),
     "nobody cannot read the stored training data")
t.ok(unreadable_by(runtime_pw.pw_uid, runtime_pw.pw_gid, stored),
     "the runtime user cannot read the stored training data")
r = t.get("/model/%s/files/data" % model["modelid"])
t.ok(r.status_code == 200 and r.content == csv,
     "nginx still sends the file (its workers run with the store's group)", t.describe(r))

# ---- a service user, a private spooler -------------------------------------------

SVC = "mlc-t430-" + TAG
res = subprocess.run(["/usr/sbin/useradd", "--system", "--no-create-home", "--home-dir",
                      "/nonexistent", "--shell", "/usr/sbin/nologin", SVC], capture_output=True,
                     text=True)
if res.returncode != 0:
    t.skip_all("cannot create a throwaway service user: %s" % res.stderr.strip())
t.defer(lambda: subprocess.run(["/usr/sbin/userdel", SVC], capture_output=True))
svc = pwd.getpwnam(SVC)

WORK = tempfile.mkdtemp(prefix="ps-work.", dir=INSTANCE_VAR)   # outside the private MLC_VAR
os.chmod(WORK, 0o755)
VAR, DB_NAME = mlcspool.private_state("ps")
ENV = dict(os.environ, MLC_VAR=VAR, MLC_DB_NAME=DB_NAME, MLC_SPOOL_POLL="0.1",
           MLC_RECONCILE_INTERVAL="0.3", MLC_SERVICE_USER=SVC)
ENV.pop("MLC_ARTIFACTS", None)
ENV.pop("MLC_SOCKET", None)
DB = mlcspool.Database(DB_NAME)
sql, row, wait_for = DB.sql, DB.row, mlcspool.wait_for


def insert(dep_id):
    sql("INSERT INTO deployments (deployment_id, modelid, model_version, ownerid, backend, "
        "status, desired, created_at, updated_at) VALUES (%s, %s, 1, 'tester', 'local', "
        "'waiting', 'running', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))", dep_id, str(uuid.uuid4()))


RIDGE_PKL = pickle.dumps(Ridge().fit([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], [1.0, 2.0, 3.0]))


def bundle_bytes(dep_id):
    job = {"type": "deploy", "deployment_id": dep_id, "modelid": str(uuid.uuid4()),
           "model_version": 1, "files": {"model": {
               "name": "model.pkl", "sha256": hashlib.sha256(RIDGE_PKL).hexdigest(),
               "size": len(RIDGE_PKL), "version": 1}}}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for n, data in (("job.json", json.dumps(job).encode()), ("model.pkl", RIDGE_PKL)):
            ti = tarfile.TarInfo(n)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def deploy(dep_id, owner=None):
    """A row and its bundle, published into spool/new/ as mlc-api does."""
    insert(dep_id)
    name = "deploy-%s.tar.gz" % dep_id
    tmp = os.path.join(VAR, "spool", "tmp", name)
    with open(tmp, "wb") as f:
        f.write(bundle_bytes(dep_id))
    if owner is not None:
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
    os.rename(tmp, os.path.join(VAR, "spool", "new", name))


def Spooler():
    """mlc-spooler in the background, its log outside the state directory."""
    return mlcspool.Background(os.path.join(WORK, "spooler-%d.log" % time.monotonic_ns()), ENV)


def cleanup():
    subprocess.run([SPOOLER, "--stop-runtimes"], env=ENV, capture_output=True, timeout=120)
    shutil.rmtree(VAR, ignore_errors=True)
    shutil.rmtree(WORK, ignore_errors=True)


t.defer(cleanup)


def owner_mode(path):
    st = os.lstat(path)
    return "%s %04o" % (pwd.getpwuid(st.st_uid).pw_name, st.st_mode & 0o7777)


sp = Spooler()
wait_for(lambda: sp.lines("started (pid"), 20)
want = {"": "root 0755", "spool": "root 0755", "spool/tmp": SVC + " 0750",
        "spool/new": SVC + " 0750", "spool/cur": "root 0700", "deployments": "root 0755",
        "training": "root 0755", "run": "root 0755", "run/training": "root 0700",
        "log": "root 0755", "artifacts": SVC + " 2750"}
t.is_({k: owner_mode(os.path.join(VAR, k) if k else VAR) for k in want}, want,
      "the spooler lays out MLC_VAR: root's directories, the intake and the store the "
      "service user's", sp.output())

# What the service user can and cannot do there (the attack that used to
# work: replacing deployments/ with a symbolic link).
probe = r"""
import json, os, sys
var, res = sys.argv[1], {}
def attempt(name, fn):
    try:
        fn()
        res[name] = "ok"
    except OSError as e:
        res[name] = e.strerror
def create(path):
    return lambda: open(path, "x").close()
attempt("rename deployments/", lambda: os.rename(var + "/deployments", var + "/deployments.x"))
attempt("symlink in MLC_VAR", lambda: os.symlink("/etc", var + "/deployments.x"))
attempt("rename spool/new/", lambda: os.rename(var + "/spool/new", var + "/spool/new.x"))
for d in ("spool/cur", "run", "log", "deployments", "training"):
    attempt("create in " + d + "/", create(var + "/" + d + "/probe"))
attempt("write spool/tmp/", create(var + "/spool/tmp/probe"))
attempt("publish into spool/new/", lambda: os.rename(var + "/spool/tmp/probe",
                                                      var + "/spool/new/.probe"))
print(json.dumps(res))
"""
r = as_user(svc.pw_uid, svc.pw_gid, ["/usr/bin/python3", "-c", probe, VAR])
try:
    got = json.loads(r.stdout)
except ValueError:
    got = {"error": r.stdout + r.stderr}
denied = "Permission denied"
t.is_(got, {"rename deployments/": denied, "symlink in MLC_VAR": denied,
            "rename spool/new/": denied, "create in spool/cur/": denied,
            "create in run/": denied, "create in log/": denied,
            "create in deployments/": denied, "create in training/": denied,
            "write spool/tmp/": "ok", "publish into spool/new/": "ok"},
      "the service user can only write and publish bundles, not replace or add anything "
      "the spooler uses")
for leftover in (os.path.join(VAR, "spool", "new", ".probe"),
                 os.path.join(VAR, "spool", "tmp", "probe")):
    if os.path.exists(leftover):
        os.unlink(leftover)

base_id = "base-" + TAG
deploy(base_id, owner=svc)
wait_for(lambda: row(base_id).get("status") in ("deployed", "failed"), 60)
r0 = row(base_id)
t.is_(r0.get("status"), "deployed", "a bundle written by the service user deploys",
      r0.get("reason"))
base_pid = r0.get("runtime_pid")


def base_ok(dep_dir=None):
    d = dep_dir or os.path.join(VAR, "deployments", base_id)
    h = unixhttp.health(os.path.join(d, "runtime.sock"), timeout=5) or {}
    r = row(base_id)
    return (h.get("status") == "ok" and r.get("status") == "deployed"
            and r.get("runtime_pid") == base_pid)


# ---- state directories replaced by symbolic links ------------------------------------


def snapshot(d):
    out = {}
    for dirpath, dirnames, filenames in os.walk(d):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            data = open(p, "rb").read() if os.path.isfile(p) else None
            out[os.path.relpath(p, d)] = (st.st_mode, st.st_uid, data)
    return out


def canary_dir(name):
    """Outside MLC_VAR: what the spooler would remove or use if it followed
    the link (a deployment directory no row wants, a training directory,
    a bundle, a runtime log, a lock)."""
    d = tempfile.mkdtemp(prefix="canary-%s." % name.replace("/", "-"), dir=WORK)
    for rel, data in (("keep.txt", b"canary"), ("orphan-%s/model.pkl" % TAG, b"pkl"),
                      ("orphan-%s/runtime.state" % TAG, b"{}"),
                      ("deploy-orphan-%s.tar.gz" % TAG, b"not a bundle"),
                      ("runtime-orphan-%s.log" % TAG, b"log"),
                      ("training/orphan-%s/code.py" % TAG, b"print(1)"),
                      ("cur/deploy-orphan2-%s.tar.gz" % TAG, b"x")):
        p = os.path.join(d, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    return d


for name in ("deployments", "run", "log", "spool/cur", "spool", "training", "run/training"):
    path = os.path.join(VAR, name)
    canary = canary_dir(name)
    before = snapshot(canary)
    n_refused = len(sp.lines("refusing to use the state directory"))
    n_recovered = len(sp.lines("recovered from: refusing"))
    os.rename(path, path + ".real")
    os.symlink(canary, path)
    refused = wait_for(lambda: len(sp.lines("refusing to use the state directory")) > n_refused,
                       10)
    time.sleep(1.0)  # several ticks and reconcile passes
    lines = sp.lines("refusing to use the state directory")[n_refused:]
    real_dep = os.path.join(VAR, "deployments.real" if name == "deployments" else "deployments",
                            base_id)
    t.ok(refused and len(lines) == 1 and
         "%s is a symbolic link (to %s), not a directory" % (path, canary) in lines[0],
         "%s/ -> a directory outside: the spooler refuses, in one log line saying why"
         % name, lines)
    t.ok(snapshot(canary) == before, "%s/ -> elsewhere: nothing there was removed or changed"
         % name)
    t.ok(base_ok(real_dep), "%s/ -> elsewhere: the deployment stays deployed and serving" % name,
         row(base_id))
    os.unlink(path)
    os.rename(path + ".real", path)
    t.ok(wait_for(lambda: len(sp.lines("recovered from: refusing")) > n_recovered, 10),
         "%s/ put back: the spooler says it recovered" % name)

# Another owner: the old layout gave the service user MLC_VAR and spool/cur.
for name in ("deployments", "spool/cur", ""):
    path = os.path.join(VAR, name) if name else VAR
    n_refused = len(sp.lines("refusing to use the state directory"))
    n_recovered = len(sp.lines("recovered from: refusing"))
    os.chown(path, svc.pw_uid, svc.pw_gid)
    refused = wait_for(lambda: len(sp.lines("refusing to use the state directory")) > n_refused,
                       10)
    lines = sp.lines("refusing to use the state directory")[n_refused:]
    t.ok(refused and "%s is owned by uid %d (%s), not uid 0 (root)" % (path, svc.pw_uid, SVC)
         in lines[0], "%s owned by the service user: refused, saying so" % (name or "MLC_VAR"),
         lines)
    os.chown(path, 0, 0)
    t.ok(wait_for(lambda: len(sp.lines("recovered from: refusing")) > n_recovered, 10),
         "%s owned by root again: recovered" % (name or "MLC_VAR"))
t.ok(base_ok(), "after all that the deployment is still the same runtime, serving")

# ---- bad bundles in the intake --------------------------------------------------------

secret = os.path.join(WORK, "root-secret")
with open(secret, "wb") as f:
    f.write(b"root's file")
os.chmod(secret, 0o600)
secret_before = snapshot(WORK)[os.path.relpath(secret, WORK)]
link_id, hard_id, fifo_id, nobody_id = ("link-" + TAG, "hard-" + TAG, "fifo-" + TAG,
                                        "nobody-" + TAG)
for dep_id in (link_id, hard_id, fifo_id):
    insert(dep_id)
new = os.path.join(VAR, "spool", "new")
os.symlink(secret, os.path.join(new, "deploy-%s.tar.gz" % link_id))
os.link(secret, os.path.join(new, "deploy-%s.tar.gz" % hard_id))
os.mkfifo(os.path.join(new, "deploy-%s.tar.gz" % fifo_id))
deploy(nobody_id, owner=NOBODY)
final = {d: wait_for(lambda: row(d).get("status") in ("deployed", "failed") and row(d), 30)
         for d in (link_id, hard_id, fifo_id, nobody_id)}
t.like(final[link_id].get("reason"), r"^bundle rejected: deploy-%s\.tar\.gz is a symbolic link "
       r"\(to %s\), not a regular file$" % (link_id, re.escape(secret)),
       "a bundle that is a symbolic link to a root file: failed, saying so")
t.like(final[hard_id].get("reason"), r"^bundle rejected: deploy-%s\.tar\.gz has 2 hard links"
       % hard_id, "a bundle that is a hard link to a root file: failed, saying so")
t.like(final[fifo_id].get("reason"), r"^bundle rejected: deploy-%s\.tar\.gz is a FIFO" % fifo_id,
       "a bundle that is a FIFO: failed at once (nothing blocks)")
t.like(final[nobody_id].get("reason"), r"^bundle rejected: deploy-%s\.tar\.gz is owned by uid "
       r"65534 \(nobody\)" % nobody_id, "a bundle of a third user: failed, saying so")
t.is_(snapshot(WORK)[os.path.relpath(secret, WORK)], secret_before,
      "the root file the links pointed at is unchanged (content, mode, owner)")
t.is_(os.stat(secret).st_nlink, 1, "the hard link is gone from the spool, the file is not")
t.ok(wait_for(lambda: not any(os.listdir(os.path.join(VAR, "spool", d))
                              for d in ("new", "cur")), 10), "the refused bundles left the spool",
     [os.listdir(os.path.join(VAR, "spool", d)) for d in ("new", "cur")])
after_id = "after-" + TAG
deploy(after_id, owner=svc)
t.is_(wait_for(lambda: row(after_id).get("status") in ("deployed", "failed") and
               row(after_id).get("status"), 60), "deployed",
      "the spooler goes on deploying after all this")

# ---- at start ------------------------------------------------------------------------

t.is_(sp.stop(), 0, "the spooler stops cleanly")
t.note(sp.output())
dep_path = os.path.join(VAR, "deployments")
canary = canary_dir("start")
before = snapshot(canary)
os.rename(dep_path, dep_path + ".real")
os.symlink(canary, dep_path)
p = subprocess.run([SPOOLER, "--once"], env=ENV, capture_output=True, text=True, timeout=60)
t.is_(p.returncode, 1, "a spooler started on a symbolic link exits 1")
t.like(p.stderr.strip(), r"mlc-spooler: refusing to start: %s is a symbolic link \(to %s\), not "
       r"a directory; root daemons never follow" % (re.escape(dep_path), re.escape(canary)),
       "... saying why")
t.is_(len(p.stderr.strip().splitlines()), 1, "... in one line", p.stderr)
p = subprocess.run([SPOOLER, "--stop-runtimes"], env=ENV, capture_output=True, text=True,
                   timeout=60)
t.ok(p.returncode == 1 and "refusing to use the state directory" in p.stderr,
     "--stop-runtimes refuses too", p.stderr)
t.ok(snapshot(canary) == before, "nothing behind the link changed")
t.ok(base_ok(os.path.join(dep_path + ".real", base_id)), "the runtimes were left alone",
     row(base_id))
os.unlink(dep_path)
os.rename(dep_path + ".real", dep_path)
sp = Spooler()
t.ok(wait_for(lambda: sp.lines("started (pid"), 20) and base_ok(),
     "put back, a spooler starts and adopts the serving runtime")
sql("UPDATE deployments SET desired = 'stopped', status = 'stopping' WHERE deployment_id = %s",
    base_id)
t.ok(wait_for(lambda: row(base_id).get("status") == "stopped", 20) and
     not os.path.exists(os.path.join(VAR, "deployments", base_id)),
     "and it removes a stopped deployment's files as before")
t.note(sp.output())
t.done()
