#!/usr/bin/python3
# Several spoolers on one database: two mlc-spooler processes (MLC_SPOOLER_ID
# a and b, each with its own MLC_VAR, sharing one spool directory as two
# hosts would share it over a network file system) work through 200 deploy
# jobs.  Each job is claimed in the database (SELECT ... FOR UPDATE SKIP
# LOCKED) and its bundle through spool/new -> spool/cur, the real path; only
# the job's work is the test hook quick-jobs (scripts/mlcpy/testhooks.py):
# it writes one line to $MLC_VAR/quick-jobs.log and fails the row with
# "quick job run by <spooler>".  Every job must run exactly once, and when
# spooler a is killed (SIGKILL) holding claims, b takes them over once the
# lease has passed, not before.
import collections
import os
import shutil
import signal
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import mlctap as t  # noqa: E402
import mlcspool as sp  # noqa: E402

sp.need(tools=("/usr/bin/unshare",),
        root="the spooler runs as root, and the shared spool is a bind mount")
try:
    import pymysql  # noqa: F401
except ImportError as e:
    t.bail_out("needs python3-pymysql (%s)" % e)

ROOT = os.environ["MLC_ROOT"]
SPOOLER = os.path.join(ROOT, "scripts", "mlc-spooler")
LEASE = 3.0
BASE, DB_NAME = sp.private_state("sc")
t.defer(lambda: shutil.rmtree(BASE, ignore_errors=True))

SHARED = os.path.join(BASE, "shared-spool")
os.makedirs(SHARED, mode=0o755)
for d in ("tmp", "new", "cur", "rejected"):
    os.makedirs(os.path.join(SHARED, d), mode=0o755)
DB = sp.Database(DB_NAME)
db, sql, wait_for = DB.db, DB.sql, sp.wait_for


class Spooler(sp.Background):
    """mlc-spooler with its own MLC_VAR whose spool/ is the shared one (a
    bind mount in a mount namespace of its own, gone with the process)."""

    def __init__(self, sid, seconds):
        self.sid = sid
        self.var = os.path.join(BASE, "var-" + sid)
        os.makedirs(os.path.join(self.var, "spool"), mode=0o755, exist_ok=True)
        os.chmod(self.var, 0o755)
        self.arm(seconds)
        env = dict(os.environ, MLC_VAR=self.var, MLC_DB_NAME=DB_NAME, MLC_SPOOLER_ID=sid,
                   MLC_SPOOLER_LEASE=str(LEASE), MLC_SPOOL_POLL="0.1",
                   MLC_RECONCILE_INTERVAL="0.5", MLC_TEST_HOOKS="1")
        for key in ("MLC_KUBECONFIG", "MLC_NORTHBOUND_URL"):
            env.pop(key, None)
        super().__init__(
            os.path.join(BASE, "spooler-%s-%d.log" % (sid, time.monotonic_ns())), env,
            argv=["/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
                  'mount --bind "$1" "$2/spool" && exec /usr/bin/python3 "$3"', "sh", SHARED,
                  self.var, SPOOLER])

    def arm(self, seconds):
        with open(os.path.join(self.var, "test-quick-jobs"), "w") as f:
            f.write(str(seconds))

    def started(self):
        return "started (pid" in self.output()

    def runs(self):
        try:
            with open(os.path.join(self.var, "quick-jobs.log")) as f:
                return [line.split()[0] for line in f if line.strip()]
        except FileNotFoundError:
            return []


def add_jobs(n, prefix):
    """n deployments as POST /deployment/add leaves them: a waiting row and
    its bundle published in spool/new/."""
    ids = ["%s-%03d-%s" % (prefix, i, uuid.uuid4().hex[:6]) for i in range(n)]
    with db().cursor() as cur:
        cur.executemany(
            "INSERT INTO deployments (deployment_id, modelid, model_version, ownerid, backend, "
            "status, desired, created_at, updated_at) VALUES (%s, %s, 1, 'tester', 'local', "
            "'waiting', 'running', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
            [(i, str(uuid.uuid4())) for i in ids])
    for i in ids:
        name = "deploy-%s.tar.gz" % i
        tmp = os.path.join(SHARED, "tmp", "%s.%d" % (name, os.getpid()))
        with open(tmp, "wb") as f:
            f.write(b"not read by the quick-jobs hook")
        os.rename(tmp, os.path.join(SHARED, "new", name))
    return ids


def outcome(ids):
    marks = ", ".join(["%s"] * len(ids))
    return {r["deployment_id"]: r for r in sql(
        "SELECT deployment_id, status, reason, claimed_by, lease_until FROM deployments "
        "WHERE deployment_id IN (" + marks + ")", *ids)}


def all_done(ids):
    rows = outcome(ids)
    return len(rows) == len(ids) and all(r["status"] == "failed" for r in rows.values())


a, b = Spooler("a", 0.05), Spooler("b", 0.05)
t.ok(wait_for(lambda: a.started() and b.started(), 30),
     "two spoolers start on one database (each under its own MLC_SPOOLER_ID)",
     a.output()[-2000:], b.output()[-2000:])

# ---- 100 jobs, both spoolers working ----------------------------------------------
first = add_jobs(100, "one")
t0 = time.monotonic()
done = wait_for(lambda: all_done(first), 60)
t.ok(done, "100 jobs: every one ends (%.1f s)" % (time.monotonic() - t0),
     collections.Counter(r["status"] for r in outcome(first).values()))
runs = collections.Counter(a.runs() + b.runs())
t.is_(sorted(i for i in first if runs[i] != 1), [],
      "100 jobs: each ran exactly once (quick-jobs.log of both spoolers)",
      {i: runs[i] for i in first if runs[i] != 1})
rows = outcome(first)
t.ok(all(r["reason"] == "quick job run by %s" % r["claimed_by"] for r in rows.values()),
     "100 jobs: each row was finished by the spooler that holds its claim")
share = collections.Counter(r["claimed_by"] for r in rows.values())
t.ok(share["a"] > 0 and share["b"] > 0, "100 jobs: both spoolers took some (%s)" % dict(share))
t.is_(sorted(os.listdir(os.path.join(SHARED, "new")) + os.listdir(os.path.join(SHARED, "cur"))),
      [], "100 jobs: no bundle is left in spool/new or spool/cur")

# ---- a job held by a third spooler (alive: its lease runs) ---------------------------
ghost, = add_jobs(1, "ghost")
sql("UPDATE deployments SET claimed_by = 'c', lease_until = UTC_TIMESTAMP(6) + INTERVAL 1 HOUR "
    "WHERE deployment_id = %s", ghost)
time.sleep(2.0)
r = outcome([ghost])[ghost]
t.ok(r["status"] == "waiting" and r["claimed_by"] == "c" and os.path.exists(
     os.path.join(SHARED, "new", "deploy-%s.tar.gz" % ghost)),
     "a job another live spooler holds: neither a nor b touches its row or its bundle", r)
sql("UPDATE deployments SET lease_until = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND "
    "WHERE deployment_id = %s", ghost)
t.ok(wait_for(lambda: all_done([ghost]), 20), "... once its lease has passed, it is taken over "
     "and run (by %s)" % outcome([ghost])[ghost]["claimed_by"])
first.append(ghost)

# ---- 100 more: a takes its time and is killed holding claims ---------------------
a.arm(600)  # a's jobs now take 10 minutes: killed before any of them ends
second = add_jobs(100, "two")
held = wait_for(lambda: [i for i, r in outcome(second).items() if r["claimed_by"] == "a"
                         and r["status"] == "waiting"] if
                wait_for(lambda: all(r["claimed_by"] for r in outcome(second).values()), 20)
                else [], 20)
in_cur = wait_for(lambda: [i for i in held if os.path.exists(
    os.path.join(SHARED, "cur", "deploy-%s.tar.gz" % i))], 10)
t.ok(held and in_cur, "spooler a holds %d of the jobs (%d of their bundles in spool/cur)"
     % (len(held or []), len(in_cur or [])))
a.stop(signal.SIGKILL)
killed_at = time.monotonic()
t.ok(a.p.returncode == -signal.SIGKILL, "spooler a is killed (SIGKILL)", a.p.returncode)
time.sleep(1.0)
rows = outcome(held)
t.ok(all(r["claimed_by"] == "a" and r["status"] == "waiting" for r in rows.values()),
     "within its lease nobody touches a's jobs",
     {i: (r["claimed_by"], r["status"]) for i, r in rows.items()
      if r["claimed_by"] != "a" or r["status"] != "waiting"})
done = wait_for(lambda: all_done(second), 60)
took = time.monotonic() - killed_at
t.ok(done, "after the lease spooler b ends a's jobs too (%.1f s after the kill; lease %g s)"
     % (took, LEASE), collections.Counter(r["status"] for r in outcome(second).values()))
rows = outcome(held)
t.ok(all(r["claimed_by"] == "b" and r["reason"] == "quick job run by b" for r in rows.values()),
     "a's jobs were taken over and run by b",
     {i: (r["claimed_by"], r["reason"]) for i, r in rows.items() if r["claimed_by"] != "b"})
t.like(b.output(), r"taken over from spooler 'a' \(its lease expired\)", "b's log says so")
runs = collections.Counter(a.runs() + b.runs())
t.is_(sorted(i for i in first + second if runs[i] != 1), [],
      "200 jobs: each ran exactly once, the kill notwithstanding",
      {i: runs[i] for i in first + second if runs[i] != 1})
t.ok(not [i for i in held if i in a.runs()], "none of a's claimed jobs ran on a")
t.is_(sorted(os.listdir(os.path.join(SHARED, "new")) + os.listdir(os.path.join(SHARED, "cur"))),
      [], "no bundle is left in spool/new or spool/cur")
t.is_(b.stop(), 0, "spooler b stops cleanly")
t.done()
