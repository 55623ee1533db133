"""The sandbox a model runtime runs in: an uploaded pickle is code.  The
same sandbox runs training code (and the check that the model a training
wrote loads), with its job directory in place of the deployment directory.

The runtime is started as

    bwrap <mounts> <namespaces> -- setpriv <drop to MLC_RUNTIME_USER> --
        /usr/bin/python3 -I /run/mlc-scripts/mlc-runtime --dir <deployment dir>

and a training as the same with `/usr/bin/python3 <job dir>/code.py
<job dir>/data.csv` as the program (see training.py).

Mounts, in this order (later mounts cover earlier ones, which is what
makes paths under /tmp work, such as MLC_VAR=/tmp/mlc-test.XXXX):

  /                 read-only (all submounts too)
  /dev, /proc       a minimal /dev, the proc of the new pid namespace
  /tmp              a fresh tmpfs, MLC_RUNTIME_TMP_SIZE bytes, mode 1777
  /run              a fresh empty tmpfs (hides system sockets)
  hidden paths      empty tmpfs over $MLC_VAR, <root>/var, <root>/conf,
                    the artifact store and the database socket's directory;
                    /dev/null over a config file kept elsewhere (MLC_CONF)
  /run/mlc-scripts  <root>/scripts, read-only (the runtime's code)
  deployment dir    read-write, the only writable path besides /tmp
  (or job dir)

Namespaces: new network (only a loopback that nothing listens on), pid
(the runtime is pid 1 of its namespace: killing it from outside ends
everything the pickle may have started), ipc, uts and cgroup; a new
session (no controlling terminal).  The environment is replaced by a
minimal one (no MLC_DB_PASSWORD or anything else of the spooler's).

setpriv switches to MLC_RUNTIME_USER with no supplementary groups, sets
no_new_privs and empties the inheritable, ambient and bounding capability
sets.  Resource limits are set in the launched process before bwrap runs
(inherited by everything below it): RLIMIT_AS = MLC_RUNTIME_MEMORY bytes
(hard and soft, so the unprivileged runtime cannot raise it), no core
files, a CPU quota and a cap on tasks (see Cgroups).
"""

import grp
import hashlib
import os
import pwd
import resource
import subprocess
import time

from . import log, procs

BWRAP = "/usr/bin/bwrap"
SETPRIV = "/usr/bin/setpriv"
PYTHON = "/usr/bin/python3"
NOLOGIN = "/usr/sbin/nologin"


class SandboxError(Exception):
    """The sandbox cannot be set up; str() says what to fix."""


# ---- the unprivileged user ----------------------------------------------

def runtime_user(name):
    """(uid, gid) of the runtime user, creating it as a system user when it
    is missing and we are root."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        if os.geteuid() != 0:
            raise SandboxError("runtime user '%s' does not exist; create it with: useradd "
                               "--system --no-create-home --shell %s %s" % (name, NOLOGIN, name))
        res = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", NOLOGIN,
                              name], capture_output=True, text=True)
        if res.returncode not in (0, 9):  # 9: created meanwhile by someone else
            raise SandboxError("cannot create runtime user '%s': %s"
                               % (name, res.stderr.strip()))
        log.spooler("created the runtime user %s", name)
        pw = pwd.getpwnam(name)
    if pw.pw_uid == 0 or pw.pw_gid == 0:
        raise SandboxError("MLC_RUNTIME_USER '%s' is root; use an unprivileged user" % name)
    return pw.pw_uid, pw.pw_gid


def group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# ---- cgroups: CPU and tasks ---------------------------------------------------

class Cgroups:
    """Per-deployment cgroups for a CPU quota and a cap on tasks.

    CPU: a CFS quota of MLC_RUNTIME_CPU processors per runtime (cgroup v1
    cpu.cfs_quota_us, or cgroup v2 cpu.max).  A quota throttles a busy
    runtime to its share and leaves an idle one alone, which is what a
    server needs; RLIMIT_CPU is not used because it kills a long-running
    server after N CPU-seconds in total.  Without a writable cpu controller
    the runtime runs at nice 10: it yields to the API and the database but
    is not capped.  MLC_RUNTIME_CPU=0 turns this off.

    Tasks: at most MLC_RUNTIME_PIDS processes+threads per runtime (pids
    controller), so that a fork bomb in a pickle stays inside its
    deployment.  Without a writable pids controller, RLIMIT_NPROC of the
    same value applies to the runtime user as a whole.  0 turns this off.

    Groups are named mlconnector-<hash of MLC_VAR>/<deployment id> under
    each controller, so that two instances on one host do not collide.
    """

    PERIOD = 100000  # microseconds

    def __init__(self, cpus, pids, instance_key):
        self.cpus, self.pids = cpus, pids
        self.name = "mlconnector-" + hashlib.sha1(instance_key.encode()).hexdigest()[:8]
        self.bases = {}  # controller -> hierarchy root that holds our groups
        self.v2 = False
        wanted = [c for c, on in (("cpu", cpus > 0), ("pids", pids > 0)) if on]
        self._detect(wanted)

    def _detect(self, wanted):
        root = "/sys/fs/cgroup"
        try:
            with open(os.path.join(root, "cgroup.controllers")) as f:
                have = f.read().split()
            self.v2 = True
            for c in wanted:
                if c in have and self._usable(root):
                    self.bases[c] = root
            return
        except OSError:
            pass
        v1 = {"cpu": ("cpu", "cpu,cpuacct"), "pids": ("pids",)}
        for c in wanted:
            for d in v1[c]:
                base = os.path.join(root, d)
                if os.path.exists(os.path.join(base, "cgroup.procs")) and self._usable(base):
                    self.bases[c] = base
                    break

    @staticmethod
    def _usable(base):
        """We may create groups here (prepare() falls back if it still fails)."""
        return os.access(base, os.W_OK)

    def describe(self):
        kind = "cgroup2" if self.v2 else "cgroup1"
        cpu = ("off" if self.cpus <= 0 else "%g CPU quota (%s)" % (self.cpus, kind)
               if "cpu" in self.bases else "nice 10 (no writable cpu cgroup)")
        pids = ("off" if self.pids <= 0 else "%d tasks (%s pids)" % (self.pids, kind)
                if "pids" in self.bases else "RLIMIT_NPROC %d for the runtime user" % self.pids)
        return "cpu %s, tasks %s" % (cpu, pids)

    @staticmethod
    def _write(path, text):
        with open(path, "w") as f:
            f.write(text)

    def _leaf(self, controller, dep_id):
        return os.path.join(self.bases[controller], self.name, dep_id)

    def _enable_v2(self, controllers):
        for d in (self.bases[controllers[0]], os.path.join(self.bases[controllers[0]], self.name)):
            path = os.path.join(d, "cgroup.subtree_control")
            with open(path) as f:
                on = f.read().split()
            for c in controllers:
                if c not in on:
                    self._write(path, "+" + c)

    def prepare(self, dep_id):
        """Create the deployment's groups with their limits.  Returns the
        cgroup.procs files a process joins and the controllers that enforce
        (the others fall back, see the class comment)."""
        joined, enforced = [], set()
        settings = {"cpu": [("cpu.cfs_period_us", str(self.PERIOD)),
                            ("cpu.cfs_quota_us", str(max(1000, int(self.cpus * self.PERIOD))))],
                    "pids": [("pids.max", str(self.pids))]}
        if self.v2:
            settings["cpu"] = [("cpu.max", "%d %d" % (max(1000, int(self.cpus * self.PERIOD)),
                                                       self.PERIOD))]
        try:
            if self.v2 and self.bases:
                self._enable_v2(sorted(self.bases))
            for c in sorted(self.bases):
                leaf = self._leaf(c, dep_id)
                os.makedirs(leaf, exist_ok=True)
                for name, value in settings[c]:
                    self._write(os.path.join(leaf, name), value)
                procs_file = os.path.join(leaf, "cgroup.procs")
                if procs_file not in joined:
                    joined.append(procs_file)
                enforced.add(c)
        except OSError as e:
            log.spooler("cannot set up cgroups for %s (%s); falling back to nice/RLIMIT_NPROC",
                        dep_id, e)
            return [], set()
        return joined, enforced

    def release(self, dep_id):
        """Remove the deployment's groups (once its processes are gone), and
        the instance's group when that was the last one (rmdir of a
        non-empty group fails, which is what keeps the others)."""
        for c in self.bases:
            for d in (self._leaf(c, dep_id), os.path.dirname(self._leaf(c, dep_id))):
                try:
                    os.rmdir(d)
                except OSError:
                    break


# ---- the command ------------------------------------------------------------

def _under(path, parent):
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def hidden_paths(cfg):
    """Host paths the runtime must not see, as (kind, path): 'dir' paths get
    an empty tmpfs, 'file' paths get /dev/null.  Existing paths only, outside
    /tmp and /run (those are fresh tmpfs already), parents first."""
    dirs = [cfg.var, os.path.join(cfg.root, "var"), os.path.join(cfg.root, "conf"),
            cfg.artifacts]
    if cfg.db_socket():
        dirs.append(os.path.dirname(cfg.db_socket()))
    if cfg.get("MLC_SOCKET"):
        dirs.append(os.path.dirname(cfg.get("MLC_SOCKET")))
    out, seen = [], []
    for d in sorted({os.path.realpath(p) for p in dirs if p}, key=len):
        if not os.path.isdir(d) or d == "/" or any(_under(d, s) for s in seen + ["/tmp", "/run"]):
            continue
        seen.append(d)
        out.append(("dir", d))
    conf = cfg.get("MLC_CONF")
    if conf and os.path.isfile(conf):
        conf = os.path.realpath(conf)
        if not any(_under(conf, s) for s in seen + ["/tmp", "/run"]):
            out.append(("file", conf))
    return out


def tmpfs_roots(cfg):
    """Where the sandbox has a fresh tmpfs (mode 0755 or 1777)."""
    return ["/tmp", "/run"] + [p for kind, p in hidden_paths(cfg) if kind == "dir"]


def check_reachable(path, uid, gid, tmpfs):
    """The runtime user must be able to traverse to a path that is bound
    into the sandbox at its own name: its parents down to the first tmpfs
    of the sandbox keep their host permissions.  Raises SandboxError
    naming the directory to fix."""
    parts = os.path.realpath(path).split("/")[1:-1]
    cur = ""
    for p in parts:
        cur += "/" + p
        if cur in tmpfs:
            return
        st = os.stat(cur)
        if st.st_uid == uid:
            bit = 0o100
        elif st.st_gid == gid:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            raise SandboxError("the runtime user cannot enter %s (mode %o); give others search "
                               "permission (chmod o+x %s) or move MLC_VAR/the project"
                               % (cur, st.st_mode & 0o7777, cur))


def _tmpfs_parents(paths, tmpfs_roots):
    """Directories bwrap would create (mode 0700) inside our tmpfs mounts on
    the way to the bind destinations; made 0755 explicitly so the runtime
    user can traverse them."""
    out = []
    for path in paths:
        parts = path.rstrip("/").split("/")
        for i in range(2, len(parts)):
            d = "/".join(parts[:i])
            if d not in out and any(d != r and _under(d, r) for r in tmpfs_roots):
                out.append(d)
    return out


# Where the project's scripts/ appear inside the sandbox: a fixed place in
# the sandbox's own /run tmpfs, so that the runtime user never needs to
# traverse the directories the project happens to be checked out under.
SANDBOX_SCRIPTS = "/run/mlc-scripts"


def runtime_program(cfg, dep_dir):
    """The runtime's argument vector inside the sandbox."""
    return [PYTHON, "-I", os.path.join(SANDBOX_SCRIPTS, "mlc-runtime"), "--dir", dep_dir]


def command(cfg, dep_dir, uid, gid, program=None, hostname="mlc-runtime"):
    """The argument vector that runs `program` (by default the runtime for
    dep_dir) sandboxed, with dep_dir as its only writable directory and
    working directory."""
    scripts = os.path.join(cfg.root, "scripts")
    tmp_size = cfg.number("MLC_RUNTIME_TMP_SIZE", int)
    argv = [BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--perms", "1777", "--size", str(tmp_size), "--tmpfs", "/tmp",
            "--tmpfs", "/run"]
    for kind, path in hidden_paths(cfg):
        if kind == "dir":
            argv += ["--perms", "0755", "--tmpfs", path]
        else:
            argv += ["--ro-bind", "/dev/null", path]
    for d in _tmpfs_parents([dep_dir], tmpfs_roots(cfg)):
        argv += ["--perms", "0755", "--dir", d]
    argv += ["--ro-bind", scripts, SANDBOX_SCRIPTS, "--bind", dep_dir, dep_dir, "--chdir", dep_dir,
             "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
             "--unshare-cgroup-try", "--hostname", hostname, "--new-session", "--as-pid-1",
             "--",
             SETPRIV, "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups",
             "--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all",
             "--"]
    return argv + (program or runtime_program(cfg, dep_dir))


def environment(dep_dir, extra=None):
    """The sandboxed program's whole environment: nothing inherited from the
    spooler, plus `extra` (a dict) if given."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": dep_dir, "TMPDIR": "/tmp",
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    env.update(extra or {})
    return env


def sandboxed_pid(popen, timeout):
    """The pid of the process bwrap started in the new pid namespace (the
    program, once it has exec'd), found as bwrap's only child; None if bwrap
    ended without starting it.  (Not --json-status-fd: bwrap dies of SIGPIPE
    writing it when the reading spooler was killed, and leaves its
    half-set-up child waiting forever.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = procs.children(popen.pid)
        if kids:
            return kids[0]
        if popen.poll() is not None:
            return None
        time.sleep(0.005)
    return None


def processes():
    """(pid, argv) of every process that is a sandbox's program or one of
    its stages: the program itself (python3), its setpriv stage, or a
    sandbox's first process that never got to exec (bwrap inside a new pid
    namespace).  bwrap launchers outside the namespace are left out: they
    end with their program.  Callers tell theirs apart by the argv's tail."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        args = procs.cmdline(pid)
        if len(args) < 2 or args[0] not in (PYTHON, SETPRIV, BWRAP):
            continue
        if args[0] == BWRAP and not procs.in_child_pid_namespace(pid):
            continue
        yield pid, args


def limiter(memory, cgroups, nice, nproc):
    """A preexec function for the launched process (runs as root before
    bwrap, inherited by everything below): join the deployment's cgroups,
    renice when no cpu cgroup enforces, cap tasks per user when no pids
    cgroup does, cap the address space, disable core files.  Only plain
    system calls (no Python file objects): the spooler's training threads
    launch sandboxes too, and a forked child must not need a lock another
    thread held at fork time."""
    def setup():
        for procs_file in cgroups:
            fd = os.open(procs_file, os.O_WRONLY)
            try:
                os.write(fd, b"%d" % os.getpid())
            finally:
                os.close(fd)
        if nice:
            os.nice(10)
        if nproc > 0:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if memory > 0:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return setup
