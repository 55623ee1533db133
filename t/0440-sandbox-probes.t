#!/usr/bin/python3
# The sandbox against hostile pickles and training scripts: each probe is
# a model whose unpickling (or a training script that) tries escapes and
# prints what it could do as one "PROBE {json}" line, which the runtime's
# log (or the training's log) keeps.  Every escape must fail; a fork bomb,
# memory spread over several processes, a full disk and a flood of output
# stay inside their sandbox, which fails or keeps serving with a clear
# reason, while the instance's API and database keep answering and
# nothing outside the sandbox changes.
#
# Like t/0400, a private spooler runs on a private state directory and a
# private database, with small limits: 512 MiB of memory, 64 tasks, a
# 1 MiB runtime log, 16 MiB for a training's files, 8 MiB of /tmp.
import base64
import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tarfile
import io
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import mlctap as t  # noqa: E402
import mlcspool as sp  # noqa: E402

sp.need(tools=("/usr/bin/bwrap", "/usr/bin/setpriv"),
        root="the spooler drops sandboxes to MLC_RUNTIME_USER, which needs root",
        more_env=("BASE_URL",))
try:
    import pymysql  # noqa: F401
    import requests  # noqa: F401
    import seccomp  # noqa: F401
    import numpy as np
    from sklearn.linear_model import Ridge
except ImportError as e:
    t.skip_all("needs python3-pymysql, python3-requests, python3-seccomp, python3-sklearn (%s)"
               % e)
t._take_lock(False)

ROOT = os.environ["MLC_ROOT"]
SPOOLER = os.path.join(ROOT, "scripts", "mlc-spooler")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from mlcpy import config as mconfig, sandbox as msandbox, unixhttp  # noqa: E402

INSTANCE_VAR = os.environ["MLC_VAR"]
VAR, DB_NAME = sp.private_state("sp")
SOCK = os.environ["MLC_DB_SOCKET"]
TAG = uuid.uuid4().hex[:8]
MEMORY, PIDS, LOG_MAX, DISK, TMP = 512 << 20, 64, 1 << 20, 16 << 20, 8 << 20
CHILD = 200 << 20  # memory of each of 4 processes: 4 * CHILD > MEMORY > CHILD + a runtime

ENV = dict(os.environ, MLC_VAR=VAR, MLC_DB_NAME=DB_NAME, MLC_SPOOL_POLL="0.1",
           MLC_RECONCILE_INTERVAL="0.5", MLC_RUNTIME_BACKOFF="0.2",
           MLC_RUNTIME_MAX_RESTARTS="2", MLC_RUNTIME_START_TIMEOUT="20",
           MLC_RUNTIME_MEMORY=str(MEMORY), MLC_RUNTIME_PIDS=str(PIDS),
           MLC_RUNTIME_LOG_MAX=str(LOG_MAX), MLC_TRAIN_DISK=str(DISK),
           MLC_RUNTIME_TMP_SIZE=str(TMP), MLC_TRAIN_TIMEOUT="60", MLC_TRAIN_MAX_JOBS="3")
CFG = mconfig.load(ROOT, ENV)
CG = msandbox.Cgroups(1, PIDS, MEMORY, VAR)
HAVE_MEMCG = "memory" in CG.bases
HAVE_PIDS = "pids" in CG.bases
NO_MEMCG = ("no writable memory cgroup here (cgroup v1 memory controller or cgroup v2 "
            "memory.max): only RLIMIT_AS applies, per process")
DB = sp.Database(DB_NAME)
sql, row, training, wait_for = DB.sql, DB.row, DB.training, sp.wait_for


def bundle(path, job, files):
    """Write the bundle into spool/tmp and rename it to `path`, as the API does."""
    tmp = os.path.join(spool_dir("tmp"), os.path.basename(path))
    with tarfile.open(tmp, "w:gz") as tar:
        for n, data in [("job.json", json.dumps(job).encode())] + list(files.items()):
            ti = tarfile.TarInfo(n)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    os.rename(tmp, path)


def spool_dir(d):
    path = os.path.join(VAR, "spool", d)
    os.makedirs(path, exist_ok=True)
    return path


def file_spec(name, data):
    return {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
            "version": 1}


def deploy(dep_id, model_pkl):
    sql("INSERT INTO deployments (deployment_id, modelid, model_version, ownerid, backend, "
        "status, desired, created_at, updated_at) VALUES (%s, %s, 1, 'tester', 'local', "
        "'waiting', 'running', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))", dep_id, str(uuid.uuid4()))
    job = {"type": "deploy", "deployment_id": dep_id, "modelid": str(uuid.uuid4()),
           "model_version": 1, "ownerid": "tester", "files": {
               "model": file_spec("model.pkl", model_pkl)}}
    bundle(os.path.join(spool_dir("new"), "deploy-%s.tar.gz" % dep_id), job,
           {"model.pkl": model_pkl})


def train(tid, code):
    modelid = str(uuid.uuid4())
    data = b"a,b,target\n1,2,3\n4,5,6\n"
    sql("INSERT INTO trainings (training_id, modelid, redeploy, status, code_version, "
        "data_version, created_at, updated_at) VALUES (%s, %s, 0, 'waiting', 1, 1, "
        "UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))", tid, modelid)
    job = {"type": "train", "training_id": tid, "modelid": modelid, "files": {
        "code": file_spec("code.py", code), "data": file_spec("data.csv", data)}}
    bundle(os.path.join(spool_dir("new"), "train-%s.tar.gz" % tid), job,
           {"code.py": code, "data.csv": data})


def ask_stop(dep_id):
    sql("UPDATE deployments SET desired = 'stopped', status = IF(status = 'stopped', 'stopped', "
        "'stopping'), updated_at = UTC_TIMESTAMP(6) WHERE deployment_id = %s", dep_id)


def dep_dir(dep_id):
    return os.path.join(VAR, "deployments", dep_id)


def log_of(dep_id):
    try:
        with open(os.path.join(VAR, "log", "runtime-%s.log" % dep_id), "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def probe_result(text):
    lines = [ln for ln in text.splitlines() if ln.startswith("PROBE ")]
    try:
        return json.loads(lines[-1][6:]) if lines else {}
    except ValueError:
        return {}


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except (OSError, TypeError):
        return False


def sandbox_pids():
    """Processes of the runtime user whose command line mentions VAR."""
    uid = int(subprocess.run(["id", "-u", CFG.get("MLC_RUNTIME_USER")], capture_output=True,
                             text=True).stdout.strip() or -1)
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat("/proc/" + name).st_uid != uid or not alive(int(name)):
                    continue
                with open("/proc/%s/cmdline" % name, "rb") as f:
                    if VAR.encode() in f.read():
                        out.append(int(name))
            except OSError:
                pass
    return out


def host_ok():
    """The instance's API (through nginx) and its database answer."""
    try:
        api = t.get("/health", timeout=10).status_code == 200
    except Exception:
        api = False
    try:
        database = sql("SELECT 1 AS one")[0]["one"] == 1
    except Exception:
        database = False
    return api and database


class Code:
    """Unpickling runs `code`, then yields the model pickled in `then`."""

    def __init__(self, code, then):
        self.expr = "(exec(%r, {}), __import__('pickle').loads(%r))[1]" % (code, then)

    def __reduce__(self):
        return (eval, (self.expr,))


class Tiny:
    """A model with predict() that needs no scikit-learn (a small runtime)."""

    def __reduce__(self):
        return (eval, ("type('Tiny', (), {'predict': lambda self, X: [0.0 for _ in X]})()",))


RIDGE = Ridge(alpha=0.5).fit(np.arange(12.0).reshape(4, 3), [1.0, 2.0, 3.0, 4.0])
RIDGE_PKL = pickle.dumps(RIDGE)
TINY_PKL = pickle.dumps(Tiny())


def code_pkl(code, then=TINY_PKL):
    return pickle.dumps(Code(code, then))


def cleanup():
    subprocess.run([SPOOLER, "--stop-runtimes"], env=ENV, capture_output=True, timeout=120)
    if not os.environ.get("MLC_KEEP_TEST_VAR"):
        shutil.rmtree(VAR, ignore_errors=True)


t.defer(cleanup)


def Background():
    return sp.Background(os.path.join(VAR, "spooler-%d.log" % time.monotonic_ns()), ENV)


def ids(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


# ---- the probe --------------------------------------------------------------------

# A binary that makes an i386 (int 0x80) or an x32 system call: the filter
# must not be bypassed through another architecture's numbers.
X86_SOURCE = r"""
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    long r;
    if (argc > 1 && argv[1][0] == 'x') {
        r = syscall(0x40000000L | SYS_getpid);
    } else {
        __asm__ volatile ("int $0x80" : "=a"(r) : "a"(20L) : "memory");
    }
    printf("%ld\n", r);
    return 0;
}
"""
x86_helper = ""
if shutil.which("gcc"):
    src = os.path.join(VAR, "x86.c")
    with open(src, "w") as f:
        f.write(X86_SOURCE)
    res = subprocess.run(["gcc", "-O0", "-o", src[:-2], src], capture_output=True, text=True)
    if res.returncode == 0:
        with open(src[:-2], "rb") as f:
            x86_helper = base64.b64encode(f.read()).decode()

# A listener on the host's loopback that nothing in a sandbox may reach.
listener = sp.Listener()
accepted = listener.accepted

PROBE = r'''
import base64, ctypes, errno, json, os, socket, subprocess, sys, time
P = json.loads(PARAMS)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
res = {}

def attempt(name, fn):
    try:
        v = fn()
        res[name] = "ok" if v is None else "ok: %s" % (v,)
    except OSError as e:
        res[name] = "%s: %s" % (errno.errorcode.get(e.errno, e.errno), e.strerror)
    except Exception as e:
        res[name] = "%s: %s" % (type(e).__name__, e)

def sc(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r

def clone(flags):
    r = sc(56, flags | 17, 0, 0, 0, 0)   # clone(flags | SIGCHLD)
    if r == 0:
        os._exit(0)
    os.waitpid(r, 0)

# x86_64 system call numbers
attempt("unshare user", lambda: sc(272, 0x10000000))
attempt("unshare mount", lambda: sc(272, 0x00020000))
attempt("unshare net", lambda: sc(272, 0x40000000))
attempt("clone user", lambda: clone(0x10000000))
attempt("clone3", lambda: sc(435, 0, 0))
attempt("setns", lambda: sc(308, 0, 0))
attempt("mount", lambda: sc(165, ctypes.addressof(ctypes.create_string_buffer(b"none")),
                            ctypes.addressof(ctypes.create_string_buffer(b"/tmp")),
                            ctypes.addressof(ctypes.create_string_buffer(b"tmpfs")), 0, 0))
attempt("fsopen", lambda: sc(430, ctypes.addressof(ctypes.create_string_buffer(b"tmpfs")), 0))
attempt("keyctl", lambda: sc(250, 0, -3, 1))         # KEYCTL_GET_KEYRING_ID session
attempt("add_key", lambda: sc(248, 0, 0, 0, 0, -3))
attempt("bpf", lambda: sc(321, 0, 0, 0))
attempt("io_uring_setup", lambda: sc(425, 1, 0))
attempt("userfaultfd", lambda: sc(323, 0))
attempt("perf_event_open", lambda: sc(298, 0, 0, -1, -1, 0))
attempt("personality", lambda: sc(135, 0x0040000))  # READ_IMPLIES_EXEC
attempt("init_module", lambda: sc(175, 0, 0, 0))
attempt("kexec_load", lambda: sc(246, 0, 0, 0, 0))
attempt("unshare tool", lambda: subprocess.run(["/usr/bin/unshare", "-Ur", "true"],
                                               capture_output=True).returncode)
# A sibling: ptrace and process_vm_readv.
kid = os.fork()
if kid == 0:
    time.sleep(30)
    os._exit(0)
attempt("ptrace sibling", lambda: sc(101, 16, kid, 0, 0))        # PTRACE_ATTACH
attempt("process_vm_readv sibling", lambda: sc(310, kid, 0, 0, 0, 0, 0))
os.kill(kid, 9)
os.waitpid(kid, 0)
# Other address families: vsock reaches the hypervisor whatever the netns.
attempt("vsock", lambda: socket.socket(40, socket.SOCK_STREAM).close())
attempt("packet", lambda: socket.socket(17, socket.SOCK_RAW).close())
attempt("netlink audit", lambda: socket.socket(16, socket.SOCK_RAW, 9).close())
# The file system.
attempt("list /sys", lambda: os.listdir("/sys"))
attempt("list /root", lambda: os.listdir("/root"))
attempt("list /home", lambda: os.listdir("/home"))
attempt("list /run", lambda: sorted(os.listdir("/run")))
attempt("list /etc", lambda: sorted(os.listdir("/etc")))
attempt("read /etc/shadow", lambda: open("/etc/shadow").read())
attempt("read /proc/1/environ", lambda: open("/proc/1/environ", "rb").read().decode())
attempt("read other model", lambda: len(open(P["other_model"], "rb").read()))
attempt("list other deployment", lambda: os.listdir(os.path.dirname(P["other_model"])))
for name, path in P["write"].items():
    def w(path=path):
        with open(path, "w") as fh:
            fh.write("escaped")
    attempt("write " + name, w)
# Sockets of the host: the database, the API's FastCGI workers, another
# runtime, the loopback.
for name, path in P["unix"].items():
    def c(path=path):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(3)
        s.connect(path)
    attempt("connect " + name, c)
for name, port in P["tcp"].items():
    attempt("tcp " + name, lambda port=port: socket.create_connection(("127.0.0.1", port),
                                                                      timeout=3).close())
# /tmp is a tmpfs of fixed size (files of 256 KiB: a runtime's single
# files are capped by RLIMIT_FSIZE as well).
def fill(d):
    n = 0
    try:
        while n < 1 << 30:
            with open("%s/fill.%d" % (d, n), "wb") as fh:
                fh.write(b"x" * (256 << 10))
            n += 1
    finally:
        for i in range(n + 1):
            try:
                os.unlink("%s/fill.%d" % (d, i))
            except OSError:
                pass
attempt("fill /tmp", lambda: fill("/tmp"))
# /dev/shm likewise (POSIX semaphores: multiprocessing, joblib).
attempt("fill /dev/shm", lambda: fill("/dev/shm"))
# i386 and x32 system calls.
if P.get("x86"):
    with open("/tmp/x86", "wb") as fh:
        fh.write(base64.b64decode(P["x86"]))
    os.chmod("/tmp/x86", 0o755)
    for arch in ("i386", "x32"):
        attempt(arch, lambda arch=arch: subprocess.run(["/tmp/x86", arch[0]],
                                                       capture_output=True).returncode)
with open("/proc/self/status") as fh:
    st = dict(ln.split(":", 1) for ln in fh if ":" in ln)
res["self"] = {"uid": os.getuid(), "CapEff": st["CapEff"].strip(),
               "CapBnd": st["CapBnd"].strip(), "NoNewPrivs": st["NoNewPrivs"].strip(),
               "Seccomp": st["Seccomp"].strip(), "pid": os.getpid()}
print("PROBE " + json.dumps(res), flush=True)
'''


def probe_code(params):
    return "PARAMS = %r\n" % json.dumps(params) + PROBE


bg = Background()
t.ok(host_ok(), "the instance's API and database answer before the probes")

victim_id = ids("victim")
deploy(victim_id, RIDGE_PKL)
wait_for(lambda: row(victim_id).get("status") in ("deployed", "failed"), 60)
t.is_(row(victim_id).get("status"), "deployed", "a plain model deploys under the probe limits",
      row(victim_id).get("reason"))
t.ok("serial mode" not in log_of(victim_id),
     "its runtime log has no warning from joblib about /dev/shm (semaphores work)",
     log_of(victim_id)[-1000:])
victim_sha = hashlib.sha256(open(os.path.join(dep_dir(victim_id), "model.pkl"), "rb")
                            .read()).hexdigest()
victim_sock = os.path.join(dep_dir(victim_id), "runtime.sock")
# mlc-api's two FastCGI sockets, in the instance's api/ by default; the
# slow pool's is MLC_SLOW_SOCKET, else MLC_SOCKET with -slow before .sock.
FASTCGI = os.environ.get("MLC_SOCKET") or os.path.join(INSTANCE_VAR, "api", "mlc-api.sock")
FASTCGI_SLOW = os.environ.get("MLC_SLOW_SOCKET") or (
    FASTCGI[:-len(".sock")] + "-slow.sock" if FASTCGI.endswith(".sock") else FASTCGI + "-slow")
t.ok(all(os.path.exists(p) for p in (FASTCGI, FASTCGI_SLOW)),
     "the instance's FastCGI sockets are there on the host (%s, %s)" % (FASTCGI, FASTCGI_SLOW))

escape = {"project": os.path.join(ROOT, "escape-" + TAG),
          "instance var": os.path.join(INSTANCE_VAR, "escape-" + TAG),
          "var": os.path.join(VAR, "escape-" + TAG),
          "deployments": os.path.join(VAR, "deployments", "escape-" + TAG),
          "etc": "/etc/escape-" + TAG, "usr": "/usr/escape-" + TAG, "root": "/escape-" + TAG,
          "dev": "/dev/escape-" + TAG}


def params(work_dir):
    return {"other_model": os.path.join(dep_dir(victim_id), "model.pkl"),
            "write": dict(escape, **{"own directory": os.path.join(work_dir, "w-" + TAG)}),
            "unix": P_UNIX,
            "tcp": {"nginx": int(os.environ.get("MLC_PORT", "0") or 0),
                    "host listener": listener.port},
            "x86": x86_helper}


P_UNIX = {"database": SOCK, "fastcgi": FASTCGI, "fastcgi slow": FASTCGI_SLOW,
          "other runtime": victim_sock}


def blocked(probe, key, errnos=("EPERM",)):
    v = probe.get(key, "missing")
    return any(v.startswith(e + ":") for e in errnos)


def check_escapes(probe, who):
    """The assertions shared by the runtime and the training probes."""
    t.ok(probe, "%s: the probe ran and reported" % who)
    me = probe.get("self", {})
    t.is_([me.get("CapEff"), me.get("CapBnd"), me.get("NoNewPrivs"), me.get("Seccomp")],
          ["0000000000000000", "0000000000000000", "1", "2"],
          "%s: no capabilities (bounding set included), no_new_privs, a seccomp filter" % who)
    for key in ("unshare user", "unshare mount", "unshare net", "clone user", "setns", "mount",
                "fsopen", "keyctl", "add_key", "bpf", "io_uring_setup", "userfaultfd",
                "perf_event_open", "personality", "init_module", "kexec_load",
                "ptrace sibling", "process_vm_readv sibling"):
        t.ok(blocked(probe, key), "%s: %s is denied (EPERM)" % (who, key), probe.get(key))
    t.ok(blocked(probe, "clone3", ("ENOSYS",)),
         "%s: clone3 does not exist (ENOSYS), so clone's flags are checked" % who,
         probe.get("clone3"))
    t.ok(probe.get("unshare tool", "ok: 0") != "ok: 0",
         "%s: unshare -Ur (a new user namespace) fails" % who, probe.get("unshare tool"))
    for key in ("vsock", "packet"):
        t.ok(blocked(probe, key, ("EAFNOSUPPORT",)), "%s: a %s socket is refused" % (who, key),
             probe.get(key))
    t.ok(blocked(probe, "netlink audit", ("EPROTONOSUPPORT",)),
         "%s: netlink other than routing is refused" % who, probe.get("netlink audit"))
    for key in ("list /sys", "list /root", "list /home", "read /etc/shadow"):
        t.ok(blocked(probe, key, ("ENOENT",)), "%s: %s: there is none" % (who, key[5:]),
             probe.get(key))
    t.ok(blocked(probe, "read other model", ("ENOENT",)) and
         blocked(probe, "list other deployment", ("ENOENT",)),
         "%s: another deployment's files are not there" % who, probe.get("read other model"))
    environ = probe.get("read /proc/1/environ", "")
    t.ok(environ.startswith("ok") and "MLC_DB" not in environ and "PASSWORD" not in environ
         and "MLC_VAR" not in environ,
         "%s: /proc/1/environ is the sandbox's own minimal environment" % who, environ)
    etc = probe.get("list /etc", "")
    t.ok(etc.startswith("ok") and "shadow" not in etc and "mysql" not in etc
         and "ssh" not in etc, "%s: /etc holds only the synthetic files" % who, etc)
    for name in escape:
        t.ok(not probe.get("write " + name, "ok").startswith("ok") and
             not os.path.exists(escape[name]),
             "%s: writing %s (%s) fails, nothing appears" % (who, name, escape[name]),
             probe.get("write " + name))
    for name in ("database", "fastcgi", "fastcgi slow", "other runtime"):
        t.ok(blocked(probe, "connect " + name, ("ENOENT",)),
             "%s: the %s socket is not there (%s)" % (who, name, P_UNIX[name]),
             probe.get("connect " + name))
    for name in ("nginx", "host listener"):
        t.ok(blocked(probe, "tcp " + name, ("ECONNREFUSED",)),
             "%s: TCP to the host's 127.0.0.1 (%s) is refused (its own loopback)" % (who, name),
             probe.get("tcp " + name))
    t.ok(blocked(probe, "fill /tmp", ("ENOSPC",)),
         "%s: /tmp fills up (ENOSPC at MLC_RUNTIME_TMP_SIZE)" % who, probe.get("fill /tmp"))
    t.ok(blocked(probe, "fill /dev/shm", ("ENOSPC",)),
         "%s: /dev/shm is writable and fills up (ENOSPC at MLC_RUNTIME_TMP_SIZE)" % who,
         probe.get("fill /dev/shm"))
    if x86_helper:
        for arch in ("i386", "x32"):
            t.is_(probe.get(arch), "ok: %d" % -signal.SIGSYS,
                  "%s: an %s system call kills the process (SIGSYS)" % (who, arch))
    else:
        t.skip("%s: i386 and x32 system calls" % who, "no gcc to build the helper")


# ---- a runtime's probe -------------------------------------------------------------

probe_id = ids("probe")
deploy(probe_id, code_pkl(probe_code(params(dep_dir(probe_id))), then=RIDGE_PKL))
wait_for(lambda: row(probe_id).get("status") in ("deployed", "failed"), 60)
t.is_(row(probe_id).get("status"), "deployed", "the probing pickle deployed (it ran)",
      row(probe_id).get("reason"), log_of(probe_id)[-2000:])
probe = probe_result(log_of(probe_id))
t.note(json.dumps(probe, indent=1))
check_escapes(probe, "runtime")
t.ok(blocked(probe, "write own directory", ("EROFS",)),
     "runtime: its deployment directory is read-only", probe.get("write own directory"))
t.is_(probe.get("list /run"), "ok: ['mlc-scripts']", "runtime: /run holds only its own code")
t.is_(len(accepted), 0, "the host's loopback listener saw no connection")

# The cgroup of a deployment whose id is the name of a cgroup file.
named_id = "cgroup.procs"
deploy(named_id, TINY_PKL)
wait_for(lambda: row(named_id).get("status") in ("deployed", "failed"), 60)
r = row(named_id)
t.is_(r.get("status"), "deployed", "a deployment named cgroup.procs deploys", r.get("reason"))
cg = open("/proc/%d/cgroup" % (r.get("runtime_pid") or 0)).read() if alive(
    r.get("runtime_pid") or 0) else ""
leaf = msandbox.cgroup_leaf("mlc-dep-", named_id)
if HAVE_PIDS:
    line = [ln for ln in cg.splitlines() if ln.split(":")[1] in ("pids", "")]
    path = line[0].split(":", 2)[2] if line else ""
    t.ok(path.endswith("/" + leaf), "a deployment named cgroup.procs gets a group of its own "
         "(%s), not the parent's cgroup.procs" % leaf, cg)
    base = CG.bases["pids"]
    t.is_(open(os.path.join(base, CG.name, leaf, "pids.max")).read().strip(), str(PIDS),
          "... with its task limit")
else:
    t.skip("a deployment named cgroup.procs gets a group of its own", "no writable pids cgroup")

# ---- resources ------------------------------------------------------------------------

# A fork bomb: every child forks for ever.  It stays below the task limit,
# the host keeps answering, and stopping the deployment ends all of it.
bomb_id = ids("bomb")
bomb = ("import os, time\n"
        "if os.fork() == 0:\n"
        "    end = time.time() + 120\n"
        "    while time.time() < end:\n"
        "        try:\n"
        "            os.fork()\n"
        "        except OSError:\n"
        "            time.sleep(0.05)\n"
        "    os._exit(0)\n"
        "time.sleep(3)\n")
deploy(bomb_id, code_pkl(bomb))
wait_for(lambda: len(sandbox_pids()) > 10, 30)
time.sleep(2)
tasks = len(sandbox_pids())
t.ok(tasks <= PIDS + 8, "fork bomb: at most MLC_RUNTIME_PIDS (%d) of its processes (%d, plus "
     "the other runtimes)" % (PIDS, tasks))
t.ok(host_ok(), "fork bomb: the instance's API and database keep answering")
t.ok((unixhttp.health(victim_sock, timeout=10) or {}).get("status") == "ok",
     "fork bomb: another deployment keeps answering")
wait_for(lambda: row(bomb_id).get("status") in ("deployed", "failed"), 60)
r = row(bomb_id)
if r.get("status") == "failed" and HAVE_PIDS:
    t.like(r.get("reason") or "", r"task limit \(%d, MLC_RUNTIME_PIDS\)" % PIDS,
           "fork bomb: the runtime could not start a thread to answer; the reason names the "
           "task limit")
ask_stop(bomb_id)
wait_for(lambda: row(bomb_id).get("status") in ("stopped", "failed"), 60)
gone = wait_for(lambda: not [p for p in sandbox_pids() if bomb_id.encode() in
                             open("/proc/%d/cmdline" % p, "rb").read()], 30)
t.ok(gone and row(bomb_id).get("status") in ("stopped", "failed"),
     "fork bomb: stopping the deployment ends every process of it", row(bomb_id))

# Memory spread over several processes: each alone is under RLIMIT_AS, all
# together are over the sandbox's memory cgroup.
spread = ("import os, time\n"
          "kids = []\n"
          "for i in range(4):\n"
          "    pid = os.fork()\n"
          "    if pid == 0:\n"
          "        buf = bytes([1]) * %d\n"
          "        time.sleep(60)\n"
          "        os._exit(0)\n"
          "    kids.append(pid)\n"
          "for pid in kids:\n"
          "    os.waitpid(pid, 0)\n" % CHILD)
mem_id = ids("mem")
if HAVE_MEMCG:
    deploy(mem_id, code_pkl(spread))
    wait_for(lambda: row(mem_id).get("status") in ("deployed", "failed"), 90)
    r = row(mem_id)
    t.is_(r.get("status"), "failed", "memory spread over 4 processes: the deployment fails", r)
    t.like(r.get("reason") or "", r"out of memory \(limit 512 MiB, MLC_RUNTIME_MEMORY\)",
           "memory spread: the reason says out of memory and names the limit")
    t.ok(host_ok(), "memory spread: the instance's API and database keep answering")
    t.ok(wait_for(lambda: not [p for p in sandbox_pids() if mem_id.encode() in
                               open("/proc/%d/cmdline" % p, "rb").read()], 20),
         "memory spread: no process of it is left")
else:
    t.skip("memory spread over several processes is capped", NO_MEMCG)

# The same once serving: the runtime is restarted (with the usual back-off)
# and, crashing again, fails with the reason.
late_id = ids("late")
late = ("import threading\n"
        "def hog():\n" + "".join("    " + ln + "\n" for ln in
                                  ["import os, time", "time.sleep(2)"] + spread.splitlines()[1:])
        + "threading.Thread(target=hog, daemon=True).start()\n")
if HAVE_MEMCG:
    deploy(late_id, code_pkl(late))
    served = wait_for(lambda: row(late_id).get("status") == "deployed", 60)
    wait_for(lambda: row(late_id).get("status") == "failed", 90)
    r = row(late_id)
    t.ok(served and r.get("status") == "failed" and r.get("restarts") == 1,
         "memory spread while serving: restarted once, then failed (MLC_RUNTIME_MAX_RESTARTS "
         "2)", r)
    t.like(r.get("reason") or "",
           r"^runtime keeps crashing: out of memory \(limit 512 MiB, MLC_RUNTIME_MEMORY\)$",
           "memory spread while serving: the reason says out of memory")
else:
    t.skip("memory spread while serving ends the sandbox", NO_MEMCG)

# A flood of output: 1 GiB to stdout.  The log stays within
# MLC_RUNTIME_LOG_MAX, the runtime keeps serving, and the log is cut back
# to its tail.
flood_id = ids("flood")
flood = ("import os\n"
         "chunk = b'x' * 65535 + b'\\n'\n"
         "ok = failed = 0\n"
         "for i in range(16384):\n"
         "    try:\n"
         "        ok += os.write(1, chunk)\n"
         "    except OSError:\n"
         "        failed += 1\n")
deploy(flood_id, code_pkl(flood))
wait_for(lambda: row(flood_id).get("status") in ("deployed", "failed"), 60)
r = row(flood_id)
size = os.path.getsize(os.path.join(VAR, "log", "runtime-%s.log" % flood_id))
t.is_(r.get("status"), "deployed", "1 GiB of output: the runtime still deploys", r.get("reason"))
t.ok(size <= LOG_MAX, "1 GiB of output: its log holds at most MLC_RUNTIME_LOG_MAX (%d bytes)"
     % size)
cut = wait_for(lambda: os.path.getsize(os.path.join(VAR, "log", "runtime-%s.log" % flood_id))
               <= LOG_MAX // 2, 10)
t.ok(cut and "bytes of older output dropped" in log_of(flood_id)[:200],
     "1 GiB of output: the spooler cuts the log back to its tail and says so",
     log_of(flood_id)[:200])
t.ok((unixhttp.health(os.path.join(dep_dir(flood_id), "runtime.sock"), timeout=10) or {})
     .get("status") == "ok", "1 GiB of output: the runtime keeps answering")

# ---- trainings ----------------------------------------------------------------------------

job_dir = os.path.join(VAR, "training")
tprobe_id, fill_id, tmem_id = ids("tprobe"), ids("tfill"), ids("tmem")
train(tprobe_id, (probe_code(params(os.path.join(job_dir, tprobe_id)))
                  + "import sys\nsys.exit(1)\n").encode())
train(fill_id, b"import os\nn = 0\ntry:\n"
      b"    with open('big', 'wb') as f:\n"
      b"        while n < 1 << 30:\n"
      b"            f.write(b'x' * (1 << 20))\n"
      b"            f.flush()\n"
      b"            n += 1 << 20\n"
      b"except OSError as e:\n    print('stopped after', n, 'bytes:', e, flush=True)\n"
      b"    raise\n")
if HAVE_MEMCG:
    train(tmem_id, spread.encode())
for tid in (tprobe_id, fill_id) + ((tmem_id,) if HAVE_MEMCG else ()):
    wait_for(lambda tid=tid: training(tid).get("status") in ("completed", "failed"), 120)

r = training(tprobe_id)
t.is_(r.get("status"), "failed", "training probe: ends (it exits 1 after probing)", r.get("reason"))
probe = probe_result(r.get("log") or "")
t.note(json.dumps(probe, indent=1))
check_escapes(probe, "training")
t.is_(probe.get("write own directory"), "ok", "training: its job directory is writable")
t.ok(blocked(probe, "list /run", ("ENOENT",)), "training: there is no /run",
     probe.get("list /run"))

r = training(fill_id)
t.is_([r.get("status"), r.get("reason")],
      ["failed", "disk quota exceeded: the training's files reached MLC_TRAIN_DISK (16 MiB)"],
      "a training filling its job directory: failed, disk quota exceeded")
t.like(r.get("log") or "", r"stopped after 1\d{7} bytes: \[Errno 28\] No space left on device",
       "... the script saw ENOSPC after about MLC_TRAIN_DISK bytes")

if HAVE_MEMCG:
    r = training(tmem_id)
    t.is_(r.get("status"), "failed", "a training spreading memory over 4 processes: failed")
    t.like(r.get("reason") or "",
           r"^the training script ran out of memory \(limit 512 MiB, MLC_RUNTIME_MEMORY\)$",
           "... the reason says out of memory and names the limit")
else:
    t.skip("a training spreading memory is capped", NO_MEMCG)
mounts = open("/proc/self/mountinfo").read()
t.ok(wait_for(lambda: VAR not in open("/proc/self/mountinfo").read(), 10),
     "no training's tmpfs is left mounted", [ln for ln in mounts.splitlines() if VAR in ln])

# ---- afterwards ------------------------------------------------------------------------

t.ok(host_ok(), "the instance's API and database still answer")
st, body = unixhttp.request(victim_sock, "POST", "/predict", {"data": [[1.0, 2.0, 3.0]]},
                            timeout=10)
t.is_([st, body], [200, {"prediction": RIDGE.predict([[1.0, 2.0, 3.0]]).tolist()}],
      "the probed deployment still predicts")
t.is_(hashlib.sha256(open(os.path.join(dep_dir(victim_id), "model.pkl"), "rb").read())
      .hexdigest(), victim_sha, "its model file is unchanged")
t.ok(not any(os.path.exists(p) for p in escape.values()), "no file appeared outside a sandbox")
listener.close()
t.is_(bg.stop(), 0, "the spooler stops cleanly")
t.done()
