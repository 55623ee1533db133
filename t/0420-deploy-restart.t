#!/usr/bin/python3
# Deployments across restarts and crashes: the job bundle's members, a
# spooler killed mid-deploy, a spooler restart that leaves runtimes alone,
# mlc down + mlc up bringing deployments back, and the sandbox keeping an
# uploaded pickle away from the network and the rest of the machine.
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_VAR", "MLC_ROOT", exclusive=True)
import mlcmodels as mm

root, var = os.environ["MLC_ROOT"], os.environ["MLC_VAR"]
mlc = os.path.join(root, "scripts", "mlc")
pidfile = os.path.join(var, "run", "mlc-spooler.pid")


def spooler_pid():
    try:
        return int(open(pidfile).read().strip())
    except (OSError, ValueError):
        return None


def kill_spooler():
    pid = spooler_pid()
    if pid and mm.pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not mm.pid_alive(pid):
                break
            time.sleep(0.05)


def mlc_cmd(*args):
    return subprocess.run([mlc] + list(args), capture_output=True, text=True, timeout=180)


def runtime_pid(dep):
    rows = t.db_rows("SELECT runtime_pid FROM deployments WHERE deployment_id = %s", dep)
    return rows[0]["runtime_pid"] if rows else None


reg, X, y, names = mm.diabetes_ridge()
model = mm.register(reg, X, y, names, requirements="numpy\n")
t.defer(mlc_cmd, "up")   # whatever happens below, leave the instance running

# The bundle, read back while no spooler claims it.
kill_spooler()
dep = t.uniq("dep-bundle")
r = mm.deploy(model["modelid"], dep)
t.is_status(r, 201, "a deployment is accepted while the spooler is down")
bundle = os.path.join(var, "spool", "new", "deploy-%s.tar.gz" % dep)
t.ok(os.path.exists(bundle), "its job bundle waits in spool/new")
with tarfile.open(bundle) as tar:
    members = sorted(m.name for m in tar.getmembers())
    regular = all(m.isreg() for m in tar.getmembers())
    job = json.load(tar.extractfile("job.json"))
t.is_(members, ["data.csv", "job.json", "model.pkl", "requirements.txt"],
      "the bundle holds exactly job.json, model.pkl, data.csv and requirements.txt")
t.ok(regular, "every bundle member is a regular file")
t.is_((job.get("type"), job.get("deployment_id"), job.get("modelid"), job.get("model_version")),
      ("deploy", dep, model["modelid"], 1), "job.json names the job, deployment, model and version")
t.is_([f["feature_name"] for f in job.get("featurelist") or []], names + ["target"],
      "job.json carries the featurelist")
t.is_(sorted(job.get("files", {})), ["data", "env", "model"], "job.json lists the bundled files")
t.is_(mm.wait_status(dep, ("waiting",), 2)["status"], "waiting", "without a spooler the deployment stays waiting")
t.is_(os.listdir(os.path.join(var, "spool", "tmp")), [], "nothing is left in spool/tmp")

# Restarting the spooler finishes the waiting job.
mlc_cmd("up")
st = mm.wait_status(dep)
t.is_((st or {}).get("status"), "deployed", "a restarted spooler deploys what waited")
pid_before = runtime_pid(dep)

# A spooler killed while deploying: the job still ends.
dep2 = t.uniq("dep-kill")
r = mm.deploy(model["modelid"], dep2)
time.sleep(0.15)
kill_spooler()
mlc_cmd("up")
st = mm.wait_status(dep2)
t.ok((st or {}).get("status") in ("deployed", "failed"),
     "a spooler killed mid-deploy and restarted ends the job deployed or failed", st)
t.is_(runtime_pid(dep), pid_before, "restarting the spooler did not restart serving runtimes")
t.ok(mm.pid_alive(pid_before), "the first runtime kept running through the spooler restarts")

# mlc down stops runtimes; mlc up brings them back.
sock = (st or {}).get("endpoint", "unix:")[5:]
down = mlc_cmd("down")
t.is_(down.returncode, 0, "mlc down succeeds", down.stderr)
t.ok(not mm.pid_alive(pid_before), "mlc down stops the runtimes")
up = mlc_cmd("up")
t.is_(up.returncode, 0, "mlc up succeeds", up.stderr)
t.db_close()
st = mm.wait_status(dep, ("deployed",), 60)
ok = False
for _ in range(300):
    try:
        ok = mm.unix_http((st or {}).get("endpoint", "unix:")[5:])[0] == 200
    except OSError:
        ok = False
    if ok:
        break
    time.sleep(0.1)
t.ok(ok, "after mlc down and mlc up the runtime answers health again without user action")

# ---- the sandbox ----
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
listener.settimeout(0.5)
port = listener.getsockname()[1]


class Connects:
    def __reduce__(self):
        return (socket.create_connection, (("127.0.0.1", port), 2))


escape = os.path.join(root, "sandbox-escape-%d" % os.getpid())
secret = os.path.join(root, "conf", "mlconnector.conf")


class Writes:
    def __reduce__(self):
        return (open, (escape, "w"))


class Reads:
    def __reduce__(self):
        return (open, (secret, "r"))


for what, obj in (("opens a TCP connection to 127.0.0.1", Connects()),
                  ("writes a file into the project directory", Writes()),
                  ("reads the service's configuration", Reads())):
    m = mm.register(reg, X, y, names, pickled=pickle.dumps(obj, protocol=4))
    r = mm.deploy(m["modelid"])
    st = mm.wait_status(t.body_of(r)["deployment_id"]) if r.status_code == 201 else None
    t.is_((st or {}).get("status"), "failed", "a pickle that %s fails to load in the sandbox" % what,
          (st or {}).get("reason"))
    t.note("reason: %s" % (st or {}).get("reason"))
try:
    conn, _ = listener.accept()
    reached = True
    conn.close()
except socket.timeout:
    reached = False
t.ok(not reached, "no connection from the sandbox reached the host's loopback listener")
t.ok(not os.path.exists(escape), "no file appeared outside the deployment directory")
t.done()
