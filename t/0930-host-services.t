#!/usr/bin/python3
# A hosting machine runs its own nginx and MariaDB for other sites: "mlc up"
# on such a host leaves them exactly as they are (same processes, still
# running).  Where the host's services are not running, the test starts them
# itself (it only ever stops what it started).
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance()

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MLC = os.path.join(ROOT, "scripts", "mlc")

SERVICES = {
    # name: (pid file of the distribution's service, command that checks it answers)
    "nginx": ("/run/nginx.pid", None),
    "mariadb": ("/run/mysqld/mysqld.pid", ["mariadb-admin", "--no-defaults",
                                           "--socket=/run/mysqld/mysqld.sock", "ping"]),
}


def pid_of(pidfile):
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def service(name, action):
    return subprocess.run(["service", name, action], capture_output=True, text=True, timeout=120)


if os.geteuid() != 0 or not shutil.which("service"):
    t.skip_all("needs root and the service command to start the host's nginx and MariaDB")

started = []
before = {}
for name, (pidfile, check) in SERVICES.items():
    pid = pid_of(pidfile)
    if pid is None:
        r = service(name, "start")
        for _ in range(100):
            pid = pid_of(pidfile)
            if pid:
                break
            time.sleep(0.1)
        if pid is None:
            t.diag("could not start the host's %s (%s); left alone" % (name, (r.stdout + r.stderr).strip()))
            continue
        started.append(name)
        t.defer(service, name, "stop")
    before[name] = pid

if not before:
    t.skip_all("neither the host's nginx nor its MariaDB could be started here")

r = subprocess.run([MLC, "up"], capture_output=True, text=True, timeout=600)
t.is_(r.returncode, 0, "mlc up succeeds on a host whose nginx and MariaDB run", r.stderr[-2000:])
t.like(r.stdout, r"BASE_URL=http://", "mlc up prints BASE_URL")
time.sleep(0.5)
after = {name: pid_of(SERVICES[name][0]) for name in before}
t.is_(after, before, "the host's %s keep running, as the same processes" % " and ".join(sorted(before)))
if "mariadb" in before:
    r = subprocess.run(SERVICES["mariadb"][1], capture_output=True, text=True, timeout=30)
    t.is_(r.returncode, 0, "the host's MariaDB still answers on its own socket", r.stderr)
t.is_(t.get("/health").status_code, 200, "and the instance answers")
t.note("started by this test (and stopped again): %s" % (", ".join(started) or "none"))
t.done()
