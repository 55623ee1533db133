"""The sandbox a model runtime runs in: an uploaded pickle is code.  The
same sandbox runs training code (and the check that the model a training
wrote loads), with its job directory in place of the deployment directory.
docs/SECURITY.md says what it stops and what it does not.

The runtime is started as

    setpriv <drop to MLC_RUNTIME_USER> -- bwrap <namespaces> <mounts>
        --seccomp <fd> -- /usr/bin/python3 -I /run/mlc-scripts/mlc-runtime --dir <deployment dir>

and a training as the same with `/usr/bin/python3 <job dir>/code.py
<job dir>/data.csv` as the program (see training.py).  Both start through
start() (the command, its cgroups and limits); run() runs a training's
sandbox to its end, killing it for time, memory or a stopping spooler.

Privileges.  The launched process (root) joins the sandbox's cgroups and
sets its resource limits (limiter()), then setpriv switches to
MLC_RUNTIME_USER with no supplementary groups, no capabilities (bounding
set included) and no_new_privs, and only then runs bwrap.  bwrap, being
unprivileged, builds the sandbox in a user namespace of its own that maps
only that user (--unshare-user), and disables user namespaces inside it
(--disable-userns: a nested namespace whose user.max_user_namespaces is
used up; --assert-userns-disabled checks it): a new user namespace with
all capabilities inside is what most kernel privilege escalations start
from.  Since bwrap opens the bound host paths as the runtime user, that
user must be able to traverse down to the work directory (check_reachable).

System calls.  A seccomp filter (libseccomp through python3-seccomp,
handed to bwrap as a compiled BPF program) denies namespaces, mounts,
keyrings, bpf, io_uring, userfaultfd, perf events, ptrace and
process_vm_*, kernel modules, kexec and the other calls a model never
needs (see seccomp_program()); clone3 fails with ENOSYS so that the C
library falls back to clone, whose flags the filter can inspect.  Any
other architecture's system calls (i386 through int 0x80, x32) kill the
process.

Mounts (the root is an empty tmpfs, remounted read-only at the end):

  /usr, /bin, /lib...  read-only (merged-/usr symlinks stay symlinks)
  /etc                 synthetic: passwd and group with the sandbox user,
                       nsswitch.conf, hosts; the host's ld.so.cache,
                       alternatives/, python3*/, localtime, mime.types
  /proc, /dev          the proc of the new pid namespace; a minimal /dev,
                       read-only (device nodes and pts stay usable)
  /dev/shm, /tmp       fresh tmpfs of MLC_RUNTIME_TMP_SIZE bytes each, mode 1777
  /run/mlc-scripts     copies of the runtime's own code (runtimes only)
  work directory       the deployment directory, read-only: the runtime
                       gets its listening socket as a file descriptor; or
                       a training's job directory, whose writable part is
                       a tmpfs of MLC_TRAIN_DISK bytes mounted by the
                       spooler (training.py)
  MLC_SANDBOX_PATHS    extra host paths, read-only

There is no /sys, no /home, /root, /var or host /run: no other
deployment, no database or FastCGI socket, no configuration.  Paths of the
instance that lie under /usr (a project installed there) get an empty
tmpfs or /dev/null.

Namespaces: user (see above), network (only a loopback that nothing
listens on), pid (the program is pid 1 of its namespace: killing it from
outside ends everything it started), ipc, uts and cgroup; a new session.
The environment is replaced by a minimal one.

Resources (limiter() and Cgroups): a memory cgroup of MLC_RUNTIME_MEMORY
bytes for all the sandbox's processes together (its /tmp and a training's
files count too), a pids cgroup of MLC_RUNTIME_PIDS tasks, a CPU quota of
MLC_RUNTIME_CPU; RLIMIT_AS of MLC_RUNTIME_MEMORY per process (so that one
large allocation is a MemoryError rather than a kill), no core files, and
for runtimes RLIMIT_FSIZE = MLC_RUNTIME_LOG_MAX (the log they write to).
"""

import errno
import grp
import hashlib
import os
import pwd
import resource
import select
import signal
import subprocess
import threading
import time

from . import log, procs

BWRAP = "/usr/bin/bwrap"
SETPRIV = "/usr/bin/setpriv"
PYTHON = "/usr/bin/python3"
NOLOGIN = "/usr/sbin/nologin"

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


class SandboxError(Exception):
    """The sandbox cannot be set up; str() says what to fix."""


def size_text(n):
    """2147483648 -> '2 GiB', 1536 -> '1.5 KiB'."""
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if n >= unit:
            return "%g %s" % (round(n / unit, 2), name)
    return "%d bytes" % n


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


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "mlc-runtime"


def group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# ---- cgroups: memory, CPU and tasks -------------------------------------------

def cgroup_leaf(prefix, key):
    """The name of the cgroup of one sandbox: a prefix and a hash of the
    deployment directory key or training id, so that no id can name a
    cgroup file (cgroup.procs, pids.max) or another group."""
    return prefix + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]


class Cgroups:
    """A cgroup per sandbox, for all its processes together: memory, a CPU
    quota and a cap on tasks.

    Memory: MLC_RUNTIME_MEMORY bytes (cgroup v1 memory.limit_in_bytes and,
    where swap accounting is on, memory.memsw.limit_in_bytes; cgroup v2
    memory.max, memory.swap.max 0 and memory.oom.group 1).  Files in the
    sandbox's tmpfs count as memory.  When the kernel kills a process of
    the group for it, the spooler ends the whole sandbox and says "out of
    memory" (oom_kills()).  Without a writable memory controller only
    RLIMIT_AS applies, per process.

    CPU: a CFS quota of MLC_RUNTIME_CPU processors (cgroup v1
    cpu.cfs_quota_us, or cgroup v2 cpu.max).  A quota throttles a busy
    runtime to its share and leaves an idle one alone, which is what a
    server needs; RLIMIT_CPU is not used because it kills a long-running
    server after N CPU-seconds in total.  Without a writable cpu controller
    the runtime runs at nice 10: it yields to the API and the database but
    is not capped.

    Tasks: at most MLC_RUNTIME_PIDS processes+threads (pids controller),
    so that a fork bomb stays inside its sandbox.  Without a writable pids
    controller, RLIMIT_NPROC of the same value applies to the runtime user
    as a whole.

    0 turns a limit off.  Groups are <base>/mlconnector-<hash of
    MLC_VAR>/<prefix><hash of the key> (cgroup_leaf()), so that two
    instances on one host do not collide and no id can collide with a
    cgroup file.  <base> is, with cgroup v1, the spooler's own group in
    each hierarchy (so that limits on the spooler's service hold for its
    sandboxes too), and with cgroup v2 the root of the hierarchy.
    """

    PERIOD = 100000  # microseconds
    V1 = {"cpu": ("cpu", "cpu,cpuacct"), "pids": ("pids",), "memory": ("memory",)}

    def __init__(self, cpus, pids, memory, instance_key, prefix="mlc-dep-"):
        self.cpus, self.pids, self.memory = cpus, pids, memory
        self.prefix = prefix
        self.name = "mlconnector-" + hashlib.sha1(instance_key.encode()).hexdigest()[:8]
        self.bases = {}  # controller -> the group that holds our groups
        # Sandboxes start and end from several threads (one per deployment
        # task or training); they share the instance's group.
        self._lock = threading.Lock()
        self.v2 = False
        self.memsw = False
        wanted = [c for c, on in (("cpu", cpus > 0), ("pids", pids > 0), ("memory", memory > 0))
                  if on]
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
        own = self._own_v1()
        for c in wanted:
            for d in self.V1[c]:
                mount = os.path.join(root, d)
                base = os.path.join(mount, own.get(c, "/").lstrip("/"))
                if os.path.exists(os.path.join(base, "cgroup.procs")) and self._usable(base):
                    self.bases[c] = base.rstrip("/")
                    break
        if "memory" in self.bases:
            self.memsw = os.path.exists(os.path.join(self.bases["memory"],
                                                     "memory.memsw.limit_in_bytes"))

    @staticmethod
    def _own_v1():
        """controller -> this process's group in that cgroup v1 hierarchy."""
        out = {}
        try:
            with open("/proc/self/cgroup") as f:
                for line in f:
                    parts = line.rstrip("\n").split(":", 2)
                    if len(parts) == 3:
                        for c in parts[1].split(","):
                            out[c] = parts[2]
        except OSError:
            pass
        return out

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
        mem = ("off" if self.memory <= 0 else "%s for all processes (%s memory%s)" % (
            size_text(self.memory), kind, "+swap" if self.memsw or self.v2 else "")
            if "memory" in self.bases else
            "%s address space per process (no writable memory cgroup)" % size_text(self.memory))
        return "cpu %s, tasks %s, memory %s" % (cpu, pids, mem)

    @staticmethod
    def _write(path, text):
        with open(path, "w") as f:
            f.write(text)

    def leaf(self, controller, key):
        return os.path.join(self.bases[controller], self.name, cgroup_leaf(self.prefix, key))

    def _enable_v2(self, controllers):
        for d in (self.bases[controllers[0]], os.path.join(self.bases[controllers[0]], self.name)):
            path = os.path.join(d, "cgroup.subtree_control")
            with open(path) as f:
                on = f.read().split()
            for c in controllers:
                if c not in on:
                    self._write(path, "+" + c)

    def _settings(self, controller):
        quota = max(1000, int(self.cpus * self.PERIOD))
        if self.v2:
            return {"cpu": [("cpu.max", "%d %d" % (quota, self.PERIOD))],
                    "pids": [("pids.max", str(self.pids))],
                    "memory": [("memory.max", str(self.memory)),
                               ("memory.swap.max", "0"), ("memory.oom.group", "1")]}[controller]
        return {"cpu": [("cpu.cfs_period_us", str(self.PERIOD)), ("cpu.cfs_quota_us", str(quota))],
                "pids": [("pids.max", str(self.pids))],
                "memory": [("memory.limit_in_bytes", str(self.memory))]
                + ([("memory.memsw.limit_in_bytes", str(self.memory))] if self.memsw else [])
                }[controller]

    def prepare(self, key):
        """Create the sandbox's groups with their limits; a group left by an
        earlier run of the same key is made anew (so that its counters start
        at zero) when it is empty.  Returns the cgroup.procs files a process
        joins and the controllers that enforce (the others fall back, see
        the class comment)."""
        with self._lock:
            return self._prepare(key)

    def _prepare(self, key):
        joined, enforced = [], set()
        try:
            if self.v2 and self.bases:
                self._enable_v2(sorted(self.bases))
            for c in sorted(self.bases):
                leaf = self.leaf(c, key)
                try:
                    os.rmdir(leaf)
                except OSError:
                    pass
                os.makedirs(leaf, exist_ok=True)
                for name, value in self._settings(c):
                    path = os.path.join(leaf, name)
                    if os.path.exists(path):  # memory.swap.max: not without swap accounting
                        self._write(path, value)
                procs_file = os.path.join(leaf, "cgroup.procs")
                if procs_file not in joined:
                    joined.append(procs_file)
                enforced.add(c)
        except OSError as e:
            log.spooler("cannot set up cgroups for %s (%s); falling back to rlimits and nice",
                        key, e)
            return [], set()
        return joined, enforced

    def oom_kills(self, key):
        """How many processes the kernel killed in the sandbox's memory group
        for lack of memory (0 without a memory group)."""
        if "memory" not in self.bases:
            return 0
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            with open(os.path.join(self.leaf("memory", key), name)) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == "oom_kill":
                        return int(v)
        except (OSError, ValueError):
            pass
        return 0

    def tasks_capped(self, key):
        """Whether the sandbox's pids group refused a fork or thread."""
        if "pids" not in self.bases:
            return False
        try:
            with open(os.path.join(self.leaf("pids", key), "pids.events")) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == "max":
                        return int(v) > 0
        except (OSError, ValueError):
            pass
        return False

    def tasks_note(self, key):
        """'' or a note for a failure reason: the sandbox hit its task limit."""
        if self.tasks_capped(key):
            return "; it reached its task limit (%d, MLC_RUNTIME_PIDS)" % self.pids
        return ""

    def out_of_memory(self):
        """The reason given when the memory group's limit was hit."""
        return "out of memory (limit %s, MLC_RUNTIME_MEMORY)" % size_text(self.memory)

    def release(self, key):
        """Remove the sandbox's groups (once its processes are gone), and
        the instance's group when that was the last one (rmdir of a
        non-empty group fails, which is what keeps the others).  The
        launcher outside the sandbox may take a moment to follow its
        program: a busy group is tried again for up to a second."""
        with self._lock:
            self._release(key)

    def _release(self, key):
        deadline = time.monotonic() + 1.0
        for c in self.bases:
            leaf = self.leaf(c, key)
            while True:
                try:
                    os.rmdir(leaf)
                except OSError as e:
                    if e.errno == errno.EBUSY and time.monotonic() < deadline:
                        time.sleep(0.02)
                        continue
                    if e.errno != errno.ENOENT:
                        break
                try:
                    os.rmdir(os.path.dirname(leaf))
                except OSError:
                    pass
                break


# ---- the seccomp filter ----------------------------------------------------------

# Denied with EPERM: what a model or a training script never needs, and
# what most kernel exploits and sandbox escapes go through.
SECCOMP_DENY = (
    # namespaces and mounts
    "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsmount", "fsconfig", "fspick", "mount_setattr",
    # kernel keyrings
    "keyctl", "add_key", "request_key",
    # large attack surfaces
    "bpf", "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd",
    "perf_event_open", "fanotify_init", "name_to_handle_at", "open_by_handle_at",
    "lookup_dcookie", "modify_ldt", "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl",
    "vm86", "vm86old",
    # other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise",
    # the machine
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "create_module", "get_kernel_syms", "query_module", "acct", "swapon", "swapoff", "reboot",
    "syslog", "quotactl", "quotactl_fd", "iopl", "ioperm", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "vhangup",
)
CLONE_NS = {"CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000,
            "CLONE_NEWUTS": 0x04000000, "CLONE_NEWIPC": 0x08000000,
            "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
            "CLONE_NEWNET": 0x40000000}
CLONE_NEWTIME = 0x00000080  # unshare() only: in clone() these bits are the exit signal
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
NETLINK_ROUTE = 0
TIOCSTI, TIOCLINUX = 0x5412, 0x541C

_bpf = None
_bpf_lock = threading.Lock()


def seccomp_program():
    """The compiled BPF filter (bytes) for bwrap --seccomp, built once."""
    global _bpf
    with _bpf_lock:
        if _bpf is None:
            _bpf = _build_seccomp()
        return _bpf


def _build_seccomp():
    try:
        import seccomp
    except ImportError:
        raise SandboxError("the Python module seccomp is missing; install the Debian package "
                           "python3-seccomp") from None
    arch = seccomp.Arch.NATIVE
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    # Another architecture's calls (i386 int 0x80, x32) kill the process.
    f.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
    eperm = seccomp.ERRNO(errno.EPERM)

    def known(name):
        try:
            return seccomp.resolve_syscall(arch, name) >= 0
        except (ValueError, RuntimeError):
            return False

    def rule(action, name, *args):
        if known(name):
            f.add_rule(action, name, *args)

    for name in SECCOMP_DENY:
        rule(eperm, name)
    # New namespaces: clone with a CLONE_NEW* flag, unshare likewise; clone3
    # passes its flags in memory a filter cannot read, so it "does not
    # exist" and the C library falls back to clone.
    rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    for flag in CLONE_NS.values():
        rule(eperm, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    for flag in list(CLONE_NS.values()) + [CLONE_NEWTIME]:
        rule(eperm, "unshare", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # Only the default execution domain.
    rule(eperm, "personality", seccomp.Arg(0, seccomp.NE, 0))
    # Sockets: unix, IP (inside the empty network namespace) and routing
    # netlink only; not vsock, packet, bluetooth, alg, ...
    noaf = seccomp.ERRNO(errno.EAFNOSUPPORT)
    for af in [0] + list(range(3, 10)) + list(range(11, 16)):
        rule(noaf, "socket", seccomp.Arg(0, seccomp.EQ, af))
    rule(noaf, "socket", seccomp.Arg(0, seccomp.GE, AF_NETLINK + 1))
    rule(seccomp.ERRNO(errno.EPROTONOSUPPORT), "socket", seccomp.Arg(0, seccomp.EQ, AF_NETLINK),
         seccomp.Arg(2, seccomp.NE, NETLINK_ROUTE))
    rule(noaf, "socketpair", seccomp.Arg(0, seccomp.NE, AF_UNIX))
    # Typing into a terminal (there is none; an inherited one must stay safe).
    for req in (TIOCSTI, TIOCLINUX):
        rule(eperm, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xffffffff, req))
    fd = os.memfd_create("mlc-seccomp", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as mf:
        f.export_bpf(mf)
        mf.seek(0)
        return mf.read()


# ---- the command ------------------------------------------------------------

def _under(path, parent):
    return path == parent or path.startswith(parent.rstrip("/") + "/")


# Host directories of the system, read-only in the sandbox (each as a
# symlink where the host has one: merged /usr).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# From the host's /etc: nothing secret, only what programs and libraries
# read (the dynamic loader's cache, Debian's alternatives symlinks that
# lead to the BLAS and LAPACK numpy uses, Python's site configuration).
ETC_ENTRIES = ("ld.so.cache", "alternatives", "localtime", "mime.types")
# What mlc-runtime imports (and nothing that knows the database or the
# configuration: see mlcpy/__init__.py); copied into the sandbox.
RUNTIME_FILES = ("mlc-runtime", "mlcpy/__init__.py", "mlcpy/runtime.py", "mlcpy/explain.py",
                 "mlcpy/features.py")
# Where those appear inside the sandbox.
SANDBOX_SCRIPTS = "/run/mlc-scripts"


def hidden_paths(cfg, roots):
    """Paths of the instance that lie under the bound host directories
    `roots` and so must be covered, as (kind, path): 'dir' paths get an
    empty tmpfs, 'file' paths get /dev/null.  Parents first."""
    dirs = [cfg.var, os.path.join(cfg.root, "var"), os.path.join(cfg.root, "conf"),
            os.path.join(cfg.root, "scripts"), cfg.artifacts]
    if cfg.db_socket():
        dirs.append(os.path.dirname(cfg.db_socket()))
    # mlc-api's sockets (the slow pool's defaults to beside MLC_SOCKET).
    for key in ("MLC_SOCKET", "MLC_SLOW_SOCKET"):
        if cfg.get(key):
            dirs.append(os.path.dirname(cfg.get(key)))
    out, seen = [], []
    for d in sorted({os.path.realpath(p) for p in dirs if p}, key=len):
        if (not os.path.isdir(d) or d == "/" or any(_under(d, s) for s in seen)
                or not any(_under(d, r) for r in roots)):
            continue
        seen.append(d)
        out.append(("dir", d))
    conf = cfg.get("MLC_CONF")
    if conf and os.path.isfile(conf):
        conf = os.path.realpath(conf)
        if not any(_under(conf, s) for s in seen) and any(_under(conf, r) for r in roots):
            out.append(("file", conf))
    return out


def check_reachable(path, uid, gid):
    """bwrap opens the paths it binds as the runtime user, who must be able
    to traverse every directory above `path`.  Raises SandboxError naming
    the directory to fix."""
    parts = os.path.realpath(path).split("/")[1:-1]
    cur = ""
    for p in parts:
        cur += "/" + p
        st = os.stat(cur)
        if st.st_uid == uid:
            bit = 0o100
        elif st.st_gid == gid:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            raise SandboxError("the runtime user cannot enter %s (mode %o); give others search "
                               "permission (chmod o+x %s) or move MLC_VAR"
                               % (cur, st.st_mode & 0o7777, cur))


class Command:
    """One sandbox to start: the argument vector, and the file descriptors
    it must inherit (the seccomp program, the synthetic /etc files, the
    runtime's code).  popen() starts it and closes them on our side."""

    def __init__(self, cfg, work_dir, uid, gid, program=None, hostname="mlc-runtime",
                 write_from=None, ro_binds=()):
        """work_dir appears at its own path and is the working directory:
        read-only, or, with write_from, the host directory write_from
        appears there read-write.  ro_binds: (host path, sandbox path) bound
        read-only after it.  program: the argument vector to run, by
        default mlc-runtime for work_dir."""
        self.fds = []
        try:
            self.argv = self._build(cfg, work_dir, uid, gid, program, hostname, write_from,
                                    ro_binds)
        except BaseException:
            self.close()
            raise

    def _data(self, content):
        """A file descriptor holding `content`, read by bwrap."""
        fd = os.memfd_create("mlc-sandbox", os.MFD_CLOEXEC)
        self.fds.append(fd)
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
        return str(fd)

    def _build(self, cfg, work_dir, uid, gid, program, hostname, write_from, ro_binds):
        tmp_size = cfg.number("MLC_RUNTIME_TMP_SIZE", int)
        user, group = user_name(uid), group_name(gid)
        argv = [SETPRIV, "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups",
                "--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all",
                "--",
                BWRAP, "--unshare-user", "--disable-userns", "--assert-userns-disabled",
                "--uid", str(uid), "--gid", str(gid),
                "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                "--unshare-cgroup-try", "--hostname", hostname]
        # The system, read-only; merged-/usr symlinks stay symlinks.
        roots = []
        for d in SYSTEM_DIRS:
            if os.path.islink(d):
                argv += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                argv += ["--ro-bind", d, d]
                roots.append(d)
        extra = cfg.get("MLC_SANDBOX_PATHS").split()
        for p in extra:
            if not os.path.isabs(p):
                raise SandboxError("MLC_SANDBOX_PATHS: %r is not an absolute path" % p)
            roots.append(os.path.realpath(p))
        # A synthetic /etc.
        etc = {
            "passwd": "%s:x:%d:%d::/nonexistent:%s\nnobody:x:65534:65534:nobody:/nonexistent:%s\n"
                      % (user, uid, gid, NOLOGIN, NOLOGIN),
            "group": "%s:x:%d:\nnogroup:x:65534:\n" % (group, gid),
            "nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files\n",
            "hosts": "127.0.0.1 localhost %s\n::1 localhost\n" % hostname,
        }
        for name, text in etc.items():
            argv += ["--perms", "0444", "--ro-bind-data", self._data(text.encode()),
                     "/etc/" + name]
        entries = list(ETC_ENTRIES) + sorted(n for n in os.listdir("/etc")
                                             if n.startswith("python3"))
        for name in entries:
            path = "/etc/" + name
            if os.path.islink(path):
                argv += ["--symlink", os.readlink(path), path]
            elif os.path.exists(path):
                argv += ["--ro-bind", path, path]
        # /dev/shm: POSIX semaphores and shared memory (multiprocessing;
        # joblib, which scikit-learn imports, warns without them).  A tmpfs
        # of its own stays writable when /dev is remounted read-only.
        argv += ["--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--size", str(tmp_size), "--tmpfs", "/dev/shm",
                 "--perms", "1777", "--size", str(tmp_size), "--tmpfs", "/tmp"]
        for p in extra:
            argv += ["--ro-bind-try", p, p]
        # The instance's own files, where a bound directory holds them.
        ro_top, covered = [], list(roots)
        for kind, path in hidden_paths(cfg, roots):
            if kind == "dir":
                argv += ["--perms", "0755", "--size", str(64 * KiB), "--tmpfs", path]
                ro_top += ["--remount-ro", path]
                covered.append(path)
            else:
                argv += ["--ro-bind", "/dev/null", path]
        if program is None:
            scripts = os.path.join(cfg.root, "scripts")
            for rel in RUNTIME_FILES:
                with open(os.path.join(scripts, rel), "rb") as f:
                    fd = self._data(f.read())
                argv += ["--perms", "0555" if rel == "mlc-runtime" else "0444",
                         "--ro-bind-data", fd, os.path.join(SANDBOX_SCRIPTS, rel)]
            program = runtime_program(cfg, work_dir)
        # The work directory.  bwrap makes the directories above it (0755,
        # owned by the sandbox user): in the root, which ends read-only, or,
        # for a work directory under /tmp (MLC_VAR there) or a hidden path,
        # in a small tmpfs that ends read-only too.
        if _under(work_dir, "/tmp") and not any(_under(work_dir, c) for c in covered):
            top = "/".join(work_dir.split("/")[:3])
            if top != work_dir.rstrip("/"):
                argv += ["--perms", "0755", "--size", str(64 * KiB), "--tmpfs", top]
                ro_top += ["--remount-ro", top]
        if write_from:
            argv += ["--bind", write_from, work_dir]
        else:
            argv += ["--ro-bind", work_dir, work_dir]
        for src, dest in ro_binds:
            argv += ["--ro-bind", src, dest]
        argv += ro_top
        argv += ["--chdir", work_dir, "--new-session", "--as-pid-1",
                 "--remount-ro", "/dev", "--remount-ro", "/",
                 "--seccomp", self._data(seccomp_program()), "--"]
        return argv + program

    def popen(self, env, stdout, stderr, preexec_fn, extra_fds=()):
        """Start the sandbox (a new session, stdin /dev/null); the
        descriptors it inherited are closed here either way."""
        try:
            return subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                    stderr=stderr, preexec_fn=preexec_fn, start_new_session=True,
                                    cwd="/", pass_fds=tuple(self.fds) + tuple(extra_fds))
        finally:
            self.close()

    def close(self):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []


def runtime_program(cfg, dep_dir):
    """The runtime's argument vector inside the sandbox."""
    return [PYTHON, "-I", os.path.join(SANDBOX_SCRIPTS, "mlc-runtime"), "--dir", dep_dir]


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
    its stages: the program itself (python3, pid 1 of its pid namespace),
    the setpriv stage that starts bwrap, or a sandbox's first process that
    never got to exec (bwrap inside a new pid namespace).  bwrap launchers
    outside the namespace are left out: they end with their program; so
    are the program's own children (a model's worker processes carry the
    runtime's command line): they end with it.  Callers tell theirs apart
    by the argv's tail."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        args = procs.cmdline(pid)
        if len(args) < 2 or args[0] not in (PYTHON, SETPRIV, BWRAP):
            continue
        if args[0] == BWRAP and not procs.in_child_pid_namespace(pid):
            continue
        if args[0] == PYTHON and procs.ns_pid(pid) != (1, True):
            continue
        yield pid, args


def limiter(memory, cgroups, nice, nproc, fsize=0):
    """A preexec function for the launched process (runs as root before
    setpriv and bwrap, inherited by everything below): join the sandbox's
    cgroups, renice when no cpu cgroup enforces, cap tasks per user when no
    pids cgroup does, cap the address space and (fsize) the size of files
    written, disable core files.  Only plain system calls (no Python file
    objects): the spooler's training threads launch sandboxes too, and a
    forked child must not need a lock another thread held at fork time."""
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
        if fsize > 0:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return setup


# ---- starting and running a sandbox ------------------------------------------------

class Started:
    """A sandbox just started: the launcher (popen), the pid of its program
    (pid 1 of the sandbox's pid namespace; None if it never got there), that
    pid's start time, and the memory group's kill count before it ran."""

    def __init__(self, popen, pid, start, oom_base):
        self.popen, self.pid, self.start, self.oom_base = popen, pid, start, oom_base


def start(cfg, cgroups, key, work_dir, uid, gid, env, stdout, stderr, program=None,
          hostname="mlc-runtime", write_from=None, ro_binds=(), fsize=0, extra_fds=()):
    """Start one sandbox, a runtime's or a training's: the command (see
    Command; program None runs mlc-runtime for work_dir), its cgroups
    (`cgroups`, a Cgroups, for `key`) and limits, its output to the
    descriptors stdout and stderr.  Returns a Started.  Raises SandboxError
    or OSError when the command cannot be built, subprocess.SubprocessError
    when the limits cannot be applied (the preexec function failed)."""
    cmd = Command(cfg, work_dir, uid, gid, program=program, hostname=hostname,
                  write_from=write_from, ro_binds=ro_binds)
    joined, enforced = cgroups.prepare(key)
    oom_base = cgroups.oom_kills(key)
    limits = limiter(cgroups.memory, joined,
                     nice=cgroups.cpus > 0 and "cpu" not in enforced,
                     nproc=cgroups.pids if "pids" not in enforced else 0, fsize=fsize)
    popen = cmd.popen(env, stdout, stderr, limits, extra_fds=extra_fds)
    pid = sandboxed_pid(popen, 10.0)
    return Started(popen, pid, procs.starttime(pid) if pid else None, oom_base)


def kill(started):
    """SIGKILL the sandbox's pid 1: the kernel then kills every process of
    its pid namespace; bwrap outside it exits with it."""
    if started.pid and procs.alive(started.pid, started.start):
        procs.kill(started.pid, signal.SIGKILL)
    elif started.popen.poll() is None:
        started.popen.kill()


class Ran:
    """How run() ended: exit status, and whether the sandbox was killed for
    its time, for memory (oom: also when the kernel killed one of its
    processes and it then ended by itself) or because `stop` was set."""

    def __init__(self, rc, timed_out, oom, stopped):
        self.rc, self.timed_out, self.oom, self.stopped = rc, timed_out, oom, stopped


def run(cfg, cgroups, key, work_dir, uid, gid, program, env, timeout, output, stop,
        hostname="mlc-sandbox", write_from=None, ro_binds=(), on_started=None, on_event=None,
        progress=None, after_exit=None):
    """Run program in a sandbox (start()) to its end: a training's script
    or its model check.  Its stdout and stderr go to output(data,
    from_stderr) as they come.  The whole sandbox is killed after `timeout`
    seconds, when the kernel killed one of its processes for memory, or
    when the threading.Event `stop` is set; on_event("timeout" | "oom" |
    "stop") is called as that happens, and on_event("oom-late") when a
    kill for memory is only seen once it ended.  on_started(pid, start)
    is called once it runs (to record it for a successor that must kill
    it), progress = (seconds, fn) calls fn every so often while it runs,
    after_exit() once it is gone (before its cgroups are released).
    Returns a Ran."""
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    try:
        s = start(cfg, cgroups, key, work_dir, uid, gid, env, w_out, w_err, program=program,
                  hostname=hostname, write_from=write_from, ro_binds=ro_binds)
    except BaseException:
        os.close(r_out)
        os.close(r_err)
        raise
    finally:
        os.close(w_out)
        os.close(w_err)
    event = on_event or (lambda kind: None)
    if on_started:
        on_started(s.pid, s.start)
    fds = {r_out: False, r_err: True}
    deadline = time.monotonic() + timeout
    every, tick = progress or (None, None)
    next_progress = time.monotonic() + every if every else None
    timed_out = stopped = oom = False
    exited = None
    try:
        while True:
            if fds:
                ready, _, _ = select.select(list(fds), [], [], 0.2)
                for fd in (r_out, r_err):
                    if fd in ready:
                        data = os.read(fd, 65536)
                        if data:
                            output(data, fds[fd])
                        else:
                            os.close(fd)
                            del fds[fd]
            else:
                time.sleep(0.05)
            if s.popen.poll() is not None:
                # Everything in the sandbox died with its pid 1; the pipes
                # end at once.  Don't hang on one that somehow does not.
                exited = exited or time.monotonic()
                if not fds or time.monotonic() - exited > 2.0:
                    break
            now = time.monotonic()
            if not timed_out and not stopped and now > deadline:
                timed_out = True
                event("timeout")
                kill(s)
            if not oom and not stopped and cgroups.oom_kills(key) > s.oom_base:
                oom = True
                event("oom")
                kill(s)
            if not stopped and stop.is_set():
                stopped = True
                event("stop")
                kill(s)
            if next_progress is not None and now >= next_progress:
                next_progress = now + every
                tick()
    finally:
        for fd in fds:
            os.close(fd)
        if s.popen.poll() is None:  # only when something above raised
            kill(s)
        rc = s.popen.wait()
        if after_exit:
            after_exit()
        if not oom and not stopped and cgroups.oom_kills(key) > s.oom_base:
            oom = True
            event("oom-late")
        cgroups.release(key)
    return Ran(rc, timed_out, oom, stopped)


# ---- host mounts: a training's size-limited job directory ------------------------

MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MNT_DETACH = 2
_libc = None


def _libc_call(name, *args):
    global _libc
    import ctypes
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(_libc, name)
    if fn(*[a.encode() if isinstance(a, str) else a for a in args]) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def mount_tmpfs(path, size, uid, gid, mode=0o1771, inodes=16384):
    """Mount a tmpfs of `size` bytes on the directory `path` (on the host:
    it outlives the sandbox, so the spooler can read what was written)."""
    _libc_call("mount", "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV,
               "size=%d,nr_inodes=%d,mode=%o,uid=%d,gid=%d" % (size, inodes, mode, uid, gid))


def _mountpoints():
    out = []
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                p = line.split(b" ")[4]
                # Octal escapes (\040 for a space and so on).
                p = p.decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")
                out.append(p)
    except (OSError, IndexError):
        pass
    return out


def unmount_under(path):
    """Detach every mount at or below `path` (deepest first)."""
    real = os.path.realpath(path)
    for p in sorted((m for m in _mountpoints() if _under(m, real)), key=len, reverse=True):
        try:
            _libc_call("umount2", p, MNT_DETACH)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOENT):
                log.spooler("cannot unmount %s: %s", p, e)


def disk_full(path, slack=64 * KiB):
    """The filesystem at `path` has (almost) no room or no inodes left."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < slack or (st.f_files and st.f_favail == 0)
