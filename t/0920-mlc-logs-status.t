#!/usr/bin/python3
# "mlc logs": the end of the right log under $MLC_VAR/log (a runtime's by
# its deployment id, refusing anything that is not one), following it with
# -f; "mlc status": the spool's queue and the deployments that are not
# stopped (id, status, restarts, reason) from the database.
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_ROOT", "MLC_VAR", "MLC_DB_SOCKET")
import mlcmodels as mm

root, var = os.environ["MLC_ROOT"], os.environ["MLC_VAR"]
MLC = os.path.join(root, "scripts", "mlc")
LOG = os.path.join(var, "log")


def mlc(*args, env=None):
    return subprocess.run([MLC] + list(args), capture_output=True, text=True, timeout=120,
                          env=env or os.environ)


def lines_of(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().splitlines()


def mark(path):
    """Append a line of our own to a log; returns it."""
    line = "t/0920 marker %s" % t.uniq("m")
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
    return line


def is_tail(out, path, n, marker):
    """out is n consecutive lines of the log at path, from the marker on
    or ending with it (the services may write more meanwhile)."""
    got, have = out.splitlines(), lines_of(path)
    if len(got) != n or marker not in got:
        return False
    return any(have[k:k + n] == got for k in range(len(have) - n + 1))


# ---- mlc logs NAME ----
for name, f in (("api", "mlc-api.log"), ("spooler", "mlc-spooler.log"), ("drift", "service/mlc-drift.log")):
    path = os.path.join(LOG, f)
    m = mark(path)
    n = min(2, len(lines_of(path)))
    r = mlc("logs", name, "-n", str(n))
    t.ok(r.returncode == 0 and is_tail(r.stdout, path, n, m),
         "mlc logs %s -n %d prints the last %d lines of log/%s" % (name, n, n, f), r.stdout, r.stderr)
r = mlc("logs", "api")
t.ok(r.returncode == 0 and 1 <= len(r.stdout.splitlines()) <= 50,
     "without -n, the last 50 lines at most", len(r.stdout.splitlines()))

probe = "/health?t0920=" + t.uniq("n")
t.get(probe)
time.sleep(1.5)  # the access log is flushed every second
r = mlc("logs", "nginx", "-n", "5")
t.ok(r.returncode == 0 and "==> %s/nginx-access.log <==" % LOG in r.stdout
     and "==> %s/nginx-error.log <==" % LOG in r.stdout and probe in r.stdout,
     "mlc logs nginx prints the end of nginx's error and access logs (with the last request)", r.stdout)

r = mlc("logs", "-n", "1")
t.ok(r.returncode == 0 and all("==> %s/%s <==" % (LOG, f) in r.stdout for f in
                               ("mlc-api.log", "mlc-spooler.log", "service/mlc-drift.log", "nginx-error.log")),
     "mlc logs without a name prints the end of each service's log", r.stdout)

for args in (("bogus",), ("api", "spooler"), ("runtime",), ("api", "-n", "x"), ("api", "-n")):
    r = mlc("logs", *args)
    t.ok(r.returncode != 0 and r.stdout == "" and "mlc: " in r.stderr,
         "mlc logs %s is refused with a message" % " ".join(args), r.stdout, r.stderr)

# ---- mlc logs runtime ID ----
clf, Xi, yi, inames = mm.iris_forest(10)
model = mm.register(clf, Xi, yi, inames, kind="classification")
dep = t.uniq("logs-dep")
t.is_status(mm.deploy(model["modelid"], dep), 201, "deploy a model")
t.is_((mm.wait_status(dep) or {}).get("status"), "deployed", "it is deployed")
rlog = os.path.join(LOG, "runtime-%s.log" % dep)
t.ok(os.path.isfile(rlog), "its runtime writes log/runtime-<id>.log")
m = mark(rlog)
r = mlc("logs", "runtime", dep, "-n", "1")
t.is_((r.returncode, r.stdout), (0, m + "\n"), "mlc logs runtime ID -n 1 prints the last line of that runtime's log")
r = mlc("logs", "runtime", "no-such-dep")
t.ok(r.returncode == 1 and r.stdout == "" and "no log %s/runtime-no-such-dep.log" % LOG in r.stderr,
     "a deployment without a log: exit 1, saying which file is missing", r.stderr)

# Whatever is not a deployment id is refused before any file is opened: the
# ids of the shared fixture (t/fixtures/deployment-ids.txt), path tricks
# included (../x, a/b, ., .., -f, --help).
secret = os.path.join(var, "secret.log")
with open(secret, "w") as f:
    f.write("not for mlc logs\n")
t.defer(os.unlink, secret)
oks, bads = [], []
with open(os.path.join(root, "t", "fixtures", "deployment-ids.txt"), encoding="utf-8") as f:
    for line in f:
        line = line.rstrip("\n")
        if line.startswith("ok\t"):
            oks.append(line[3:])
        elif line.startswith("bad\t"):
            bads.append(line[4:])
wrong = []
for i in bads + ["../secret", "../../log/runtime-" + dep, "x/../../secret", "x\n", "a\nb"]:
    r = mlc("logs", "runtime", i)
    if r.returncode == 0 or r.stdout or "is not a deployment id" not in r.stderr:
        wrong.append((i, r.returncode, r.stdout[:200], r.stderr[:200]))
t.is_(wrong, [], "mlc logs runtime refuses each of %d ids that are not deployment ids, printing nothing" % (len(bads) + 5))
wrong = []
for i in oks:
    r = mlc("logs", "runtime", i)
    if "is not a deployment id" in r.stderr or r.returncode != 1:
        wrong.append((i, r.returncode, r.stderr[:200]))
t.is_(wrong, [], "and takes each of the %d valid ids of the fixture (no such log: exit 1)" % len(oks))

# ---- mlc logs -f ----
path = os.path.join(LOG, "mlc-api.log")
proc = subprocess.Popen([MLC, "logs", "api", "-f", "-n", "0"], stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL, text=True)
t.defer(lambda: proc.poll() is None and proc.kill())
time.sleep(1)
m = mark(path)
seen, end = "", time.time() + 15
while time.time() < end and m not in seen:
    ready, _, _ = select.select([proc.stdout], [], [], 0.5)
    if ready:
        seen += proc.stdout.readline()
t.ok(m in seen, "mlc logs api -f prints lines as they are written", seen)
t.ok(proc.poll() is None, "and keeps following until stopped")
proc.terminate()
proc.wait(timeout=10)

# ---- mlc status ----
failing = mm.register(clf, Xi, yi, inames, kind="classification",
                      requirements="surely-not-installed-pkg>=1.0\n")
bad_dep = t.uniq("status-bad")
t.is_status(mm.deploy(failing["modelid"], bad_dep), 201, "deploy a model whose requirement is not installed")
st = mm.wait_status(bad_dep) or {}
t.is_(st.get("status"), "failed", "that deployment fails")
t.db_rows("UPDATE deployments SET restarts = 3 WHERE deployment_id = %s", bad_dep)

r = mlc("status")
t.is_(r.returncode, 0, "mlc status succeeds", r.stderr)
out = r.stdout.splitlines()
t.ok(any(l.startswith("mlc-api: running (pid ") for l in out) and "health: ok at " + t.BASE_URL in out,
     "it shows the processes and the health as before", r.stdout)
n_new = len(os.listdir(os.path.join(var, "spool", "new")))
n_cur = len(os.listdir(os.path.join(var, "spool", "cur")))
t.ok("spool: %d waiting (new/), %d claimed (cur/)" % (n_new, n_cur) in out,
     "it shows the spool's queue", r.stdout)
row = next((l.split() for l in out if l.split()[:1] == [dep]), None)
t.is_(row, [dep, "deployed", "0"], "a deployed deployment's line: id, status, restarts", r.stdout)
row = next((l for l in out if l.split()[:1] == [bad_dep]), "")
t.like(row, r"^  %s +failed +3  requirement 'surely-not-installed-pkg' is not installed" % bad_dep,
       "a failed one's line: id, failed, the restarts recorded in the database, the reason")
t.ok(any(l.split()[:4] == ["ID", "STATUS", "RESTARTS", "REASON"] for l in out), "the columns have a header")

# The queue counts the files in spool/new and spool/cur (not tmp/): an
# instance directory of its own, the same database.
fake = tempfile.mkdtemp(prefix="mlc-t0920.", dir="/tmp")
t.defer(shutil.rmtree, fake, True)
for d, names in (("new", ["a.tar.gz", "b.tar.gz", "c.tar.gz"]), ("cur", ["d.tar.gz"]), ("tmp", ["e", "f"])):
    os.makedirs(os.path.join(fake, "spool", d))
    for n in names:
        open(os.path.join(fake, "spool", d, n), "w").close()
r = mlc("status", env=dict(os.environ, MLC_VAR=fake))
t.ok(r.returncode == 0 and "spool: 3 waiting (new/), 1 claimed (cur/)" in r.stdout.splitlines()
     and any(l.split()[:2] == [bad_dep, "failed"] for l in r.stdout.splitlines()),
     "3 bundles in new/ and 1 in cur/ are shown as 3 waiting and 1 claimed", r.stdout)
r = mlc("status", env=dict(os.environ, MLC_VAR=fake, MLC_DB_SOCKET=os.path.join(fake, "no.sock")))
t.ok(r.returncode == 0 and "deployments: the database is not reachable" in r.stdout.splitlines(),
     "without a database, mlc status says so and still succeeds", r.stdout, r.stderr)

t.done()
