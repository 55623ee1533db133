#!/usr/bin/python3
# A full disk.  A private mlc-api (the instance's binary, spoken to over
# FastCGI) keeps its state directory - artifact store and spool - on a
# 64 MiB tmpfs, with a private database:
# - an upload beyond the space left is a 507 with a clear detail, and
#   leaves no row, no file in the store and no temporary file;
# - with the disk full to the last byte, uploads, deployments and trainings
#   are refused cleanly (507), with no row and no bundle or temporary file
#   left - no waiting row without its bundle;
# - once space is freed, uploads, deployments and trainings work again,
#   without restarting anything;
# - the invariants of t/lib/mlcfaults.py hold throughout.
# Needs root (mount -t tmpfs); the tmpfs is unmounted at the end.
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import mlctap as t

t.need_instance("MLC_VAR", "MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME", "MLC_ROOT")
import fcgi  # noqa: E402
import mlcapi  # noqa: E402
import mlcfaults as f  # noqa: E402
import pymysql  # noqa: E402

root, var = os.environ["MLC_ROOT"], os.environ["MLC_VAR"]
MiB = 1 << 20
if os.geteuid() != 0:
    t.skip_all("mounting a tmpfs needs root")
dbname = "mlc_t0970_%d" % os.getpid()
why = t.private_database(dbname)
if why:
    t.skip_all("cannot create a private database: %s" % why)
# Recorded as scripts/mlc migrate does, which mlc-api checks at start.
migrations = sorted(n for n in os.listdir(os.path.join(root, "sql")) if n[:3].isdigit() and n.endswith(".sql"))
r = t.db_admin("CREATE TABLE schema_version (version INT NOT NULL PRIMARY KEY, name VARCHAR(255) "
               "NOT NULL, applied_at DATETIME(6) NOT NULL) ENGINE=InnoDB; " +
               " ".join("INSERT INTO schema_version VALUES (%d, '%s', UTC_TIMESTAMP(6));" % (int(n[:3]), n)
                        for n in migrations), dbname)
if r.returncode != 0:
    t.skip_all("cannot record the private database's schema version: %s" % r.stderr.strip())

# Short path: the socket lives below it.
top = tempfile.mkdtemp(prefix="mlc-t0970.", dir="/tmp")
t.defer(os.rmdir, top)
m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", top],
                   capture_output=True, text=True)
if m.returncode != 0:
    t.skip_all("cannot mount a tmpfs: %s" % m.stderr.strip())
t.defer(lambda: subprocess.run(["umount", top], capture_output=True).returncode == 0
        or subprocess.run(["umount", "-l", top], capture_output=True))
store, spool, sock = os.path.join(top, "artifacts"), os.path.join(top, "spool"), os.path.join(top, "api", "mlc-api.sock")
os.makedirs(os.path.dirname(sock))
log = os.path.join(var, "log", "t0970-mlc-api.log")
api = mlcapi.Api(sock, log, own_log=True, MLC_VAR=top, MLC_ARTIFACTS=store, MLC_DB_NAME=dbname,
                 MLC_WORKERS="1", MLC_MAX_UPLOAD=str(64 * MiB))
if not api.wait_up(20, 0.1):
    t.ok(False, "the private mlc-api starts", open(log).read()[-2000:] if os.path.exists(log) else "")
    t.done()

db = pymysql.connect(unix_socket=os.environ["MLC_DB_SOCKET"], user=os.environ["MLC_DB_USER"],
                     password=os.environ.get("MLC_DB_PASSWORD", ""), database=dbname,
                     charset="utf8mb4", autocommit=True, cursorclass=pymysql.cursors.DictCursor)
t.defer(db.close)
if t.auth_on():
    # The private API reads the private database's tokens: one of its own.
    with db.cursor() as cur:
        cur.execute("CALL mlc_token_add('admin', 'admin', NULL)")
        os.environ["MLC_TEST_TOKEN"] = cur.fetchall()[0]["token"]


def rows(sql, *args):
    with db.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def call(path, method="GET", body=None):
    """(status, decoded body) of one request to the private API."""
    return mlcapi.call(sock, path, method, body)


def upload(mid, kind, name, data):
    """(status, decoded body): the form sent in pieces; a worker that
    answers before the end (the disk is full) is read all the same."""
    ctype, head, tail, _ = f.multipart(kind, name, b"")
    body_len = len(head) + len(data) + len(tail)
    req = fcgi.Request("/model/%s/upload" % mid, "POST", sock, content_length=body_len,
                       content_type=ctype)
    try:
        req.send(head)
        for i in range(0, len(data), MiB):
            req.send(data[i:i + MiB])
        req.send(tail)
    except OSError:
        pass
    status, _, out = req.finish()
    try:
        return status, json.loads(out)
    except ValueError:
        return status, out


def versions(mid, kind):
    return [r["version"] for r in rows("SELECT version FROM artifacts WHERE modelid = %s AND "
                                       "filekind = %s ORDER BY version", mid, kind)]


def listing(*parts):
    d = os.path.join(top, *parts)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def store_files(mid):
    return sorted(os.path.relpath(os.path.join(dp, n), os.path.join(store, mid))
                  for dp, _, names in os.walk(os.path.join(store, mid)) for n in names)


def free():
    st = os.statvfs(top)
    return st.f_bavail * st.f_frsize


def check(label):
    f.check(label, db=db, store=store, spool=spool)


def full_507(label, status, body):
    t.is_(status, 507, "%s: 507" % label, body)
    t.like((body or {}).get("detail") if isinstance(body, dict) else repr(body),
           r"No space left on device", "%s: the detail says the device has no space left" % label)


status, body = call("/model/add", "POST", t.minimal_model())
t.is_(status, 201, "the private API on the tmpfs registers a model", body)
mid = (body or {}).get("modelid") if isinstance(body, dict) else None
model_pkl = pickle.dumps({"w": [1, 2, 3]}, protocol=4)
t.is_(upload(mid, "model", "model.pkl", model_pkl)[0], 201, "a model file is stored")
t.is_(upload(mid, "data", "train.csv", b"a,b,target\n1,2,3\n4,5,6\n")[0], 201, "training data is stored")
big = os.urandom(24 * MiB)
t.is_(upload(mid, "code", "code.py", big)[0], 201, "a 24 MiB file is stored")
check("with space left")

# ---- an upload beyond the space left -------------------------------------------------------

left = free()
status, body = upload(mid, "code", "code.py", os.urandom(48 * MiB))
full_507("an upload of 48 MiB with %d MiB left" % (left // MiB), status, body)
t.is_(versions(mid, "code"), [1], "... stores no row")
t.is_(store_files(mid), ["code/v1-code.py", "data/v1-train.csv", "model/v1-model.pkl"],
      "... and nothing in the store")
t.is_(listing("artifacts", ".tmp"), [], "... and leaves no temporary file")
t.ok(free() >= left - MiB, "... the space it took is free again (%d of %d MiB)" % (free() // MiB, left // MiB))
check("after an upload beyond the space left")

# ---- the disk full to the last byte ---------------------------------------------------------

filler = os.path.join(top, "filler")
fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
for size in (MiB, 4096, 1):
    try:
        while os.write(fd, b"\0" * size):
            pass
    except OSError:
        pass
os.close(fd)
t.ok(free() < 64 << 10, "the tmpfs is full (%d bytes left)" % free())
status, body = upload(mid, "model", "model.pkl", model_pkl)
full_507("an upload to a full disk", status, body)
t.is_(versions(mid, "model"), [1], "... stores no row")
t.is_(listing("artifacts", ".tmp"), [], "... and leaves no temporary file")
dep = t.uniq("dep-full")
status, body = call("/deployment/add", "POST", {"modelid": mid, "ownerid": "t0970", "deployment_id": dep,
                                                 "placement": None, "inference_data": 0})
t.is_(status, 507, "a deployment with the spool unwritable is refused with 507", body)
t.like(body.get("detail", "") if isinstance(body, dict) else "", r"job bundle.*No space left on device",
       "... saying the job bundle cannot be written for lack of space")
t.is_(rows("SELECT status FROM deployments WHERE deployment_id = %s", dep), [],
      "... and leaves no deployment row")
t.is_((listing("spool", "tmp"), listing("spool", "new")), ([], []), "... nor any bundle in the spool")
status, body = call("/mltraining/add", "POST", {"modelid": mid})
t.is_(status, 507, "a training with the spool unwritable is refused with 507", body)
t.like(body.get("detail", "") if isinstance(body, dict) else "", r"job bundle.*No space left on device",
       "... saying the job bundle cannot be written for lack of space")
t.is_(rows("SELECT status FROM trainings WHERE modelid = %s", mid), [], "... and leaves no training row")
t.is_((listing("spool", "tmp"), listing("spool", "new")), ([], []), "... nor any bundle in the spool")
check("with the disk full")

# ---- space freed: everything works again ---------------------------------------------------

os.unlink(filler)
status, body = upload(mid, "model", "model.pkl", model_pkl)
t.is_((status, (body or {}).get("version") if isinstance(body, dict) else body), (201, 2),
      "with space freed, an upload is stored again (version 2)")
status, body = call("/deployment/add", "POST", {"modelid": mid, "ownerid": "t0970", "deployment_id": dep,
                                                 "placement": None, "inference_data": 0})
t.is_(status, 201, "... the same deployment is accepted", body)
t.is_(listing("spool", "new"), ["deploy-%s.tar.gz" % dep], "... with its bundle published")
status, body = call("/mltraining/add", "POST", {"modelid": mid})
t.is_(status, 201, "... a training is accepted", body)
tid = (body or {}).get("training_id") if isinstance(body, dict) else None
t.ok("train-%s.tar.gz" % tid in listing("spool", "new"), "... with its bundle published", listing("spool", "new"))
t.is_(api.proc.poll(), None, "the private mlc-api ran through it all without a restart")
check("after space was freed")
t.done()
