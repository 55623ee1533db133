"""The local backend: each deployment's runtime is a sandboxed process on
this host, supervised through files in its deployment directory.

A deployment's directory is $MLC_VAR/deployments/<id>/ when it was
deployed, and $MLC_VAR/deployments/<id>@<version>/ once a retraining has
moved it onto model version <version> (the new runtime starts in a new
directory while the old one still serves; '@' cannot occur in an id).
Which one is current follows from the deployments row: <id>@<model_version>
if that directory exists, else <id>.  Internally every directory is named by
its "key" (<id> or <id>@<version>); the public methods take the deployment
id and, where it matters, the row's model_version.

Layout of a deployment directory (root-owned, group MLC_RUNTIME_USER,
mode 1771; the sandbox sees it read-only):

  job.json, model.pkl, data.csv, requirements.txt   from the bundle, 0644
  runtime.sock    the runtime's HTTP socket (0660, group MLC_SERVICE_USER's),
                  bound by the spooler and passed to the runtime, which
                  listens once its model loaded
  runtime.pid     the runtime's pid (written by the spooler)
  runtime.state   JSON, written by the spooler: the running process as
                  {pid, start, boot, started, log_offset}, or after a crash
                  {crashed, restart_after, detail}

The runtime's stdout/stderr go to $MLC_VAR/log/runtime-<id>.log (one log
per deployment, whatever its directory), opened by the spooler (the sandbox
cannot see the log directory).  The log holds at most MLC_RUNTIME_LOG_MAX
bytes: that is the runtime's RLIMIT_FSIZE (a write beyond fails with EFBIG),
and the spooler cuts the log back to its last quarter once it holds half
of that (at a start, and on every reconcile pass while the runtime runs).

Runtimes are started in a new session and never waited for, so they
outlive the spooler; a spooler started later finds them through
runtime.state and checks /proc that the pid still is that process (same
start time, same boot).
"""

import errno
import json
import os
import pwd
import socket
import stat
import subprocess
import time

from . import backend, log, procs, safefs, sandbox, unixhttp

SOCKET_MAX = 107  # sizeof(sun_path) - 1


GEN_SEP = "@"


def _isdir(path):
    """A directory, not a symbolic link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def dep_of(key):
    """The deployment id of a directory key (<id> or <id>@<version>)."""
    return key.split(GEN_SEP, 1)[0]


class LocalLaunch:
    """A runtime being started: polled until it answers /health or dies."""

    def __init__(self, dep_id, kind, pid, start, deadline, log_offset, popen=None, key=None,
                 oom_base=0):
        self.dep_id, self.kind, self.pid, self.start = dep_id, kind, pid, start
        self.deadline, self.log_offset, self.popen = deadline, log_offset, popen
        self.key = key or dep_id
        self.oom_base = oom_base


class LocalBackend(backend.Backend):
    name = "local"

    def __init__(self, cfg):
        self.cfg = cfg
        self.root = cfg.deployments
        self.memory = cfg.number("MLC_RUNTIME_MEMORY", int)
        self.log_max = max(64 << 10, cfg.number("MLC_RUNTIME_LOG_MAX", int))
        self.start_timeout = cfg.number("MLC_RUNTIME_START_TIMEOUT")
        self.cgroups = sandbox.Cgroups(cfg.number("MLC_RUNTIME_CPU"),
                                       cfg.number("MLC_RUNTIME_PIDS", int), self.memory, cfg.var,
                                       "mlc-dep-")
        self.user = cfg.get("MLC_RUNTIME_USER")
        self._ids = None
        self.children = {}  # launcher pid -> Popen, reaped by reap()

    # ---- paths and small files ----

    def ids(self):
        """(uid, gid) of the runtime user (created on first use)."""
        if self._ids is None:
            self._ids = sandbox.runtime_user(self.user)
        return self._ids

    def key(self, dep_id, version=None):
        """The directory key of the deployment's current runtime: <id>@<version>
        when that directory exists, else <id>."""
        if version is not None:
            key = "%s%s%d" % (dep_id, GEN_SEP, int(version))
            if _isdir(self.dir(key)):
                return key
        return dep_id

    def keys(self, dep_id):
        """Every directory key held for the deployment (current or not)."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if dep_of(n) == dep_id and not n.startswith(".")
                      and _isdir(self.dir(n)))

    def dir(self, key):
        return os.path.join(self.root, key)

    def sock(self, key):
        return os.path.join(self.dir(key), "runtime.sock")

    def log_path(self, dep_id):
        return os.path.join(self.cfg.log_dir, "runtime-%s.log" % dep_of(dep_id))

    def _state_path(self, key):
        return os.path.join(self.dir(key), "runtime.state")

    def _read_state(self, key):
        try:
            with open(self._state_path(key), encoding="utf-8") as f:
                st = json.load(f)
            return st if isinstance(st, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_file(self, key, name, text):
        """Replace dir/name atomically; O_EXCL|O_NOFOLLOW on a fresh name so
        that nothing the runtime created in its directory is followed."""
        d = self.dir(key)
        tmp = os.path.join(d, ".%s.%d.%d" % (name, os.getpid(), time.monotonic_ns()))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(d, name))

    def _write_state(self, key, state):
        self._write_file(key, "runtime.state", json.dumps(state))
        if state.get("pid"):
            self._write_file(key, "runtime.pid", "%d\n" % state["pid"])
        else:
            self._unlink(os.path.join(self.dir(key), "runtime.pid"))

    def _clear_state(self, key):
        for name in ("runtime.state", "runtime.pid"):
            self._unlink(os.path.join(self.dir(key), name))

    def _unlink(self, path):
        """Remove a file (or whatever is there) below MLC_VAR; nothing on
        the way is followed (safefs)."""
        self._rmtree(path)

    def _rmtree(self, path, ignore_errors=True):
        safefs.rmtree(path, self.cfg.var, ignore_errors=ignore_errors)

    def _log_tail(self, dep_id, offset):
        """The last non-empty line the runtime wrote since offset ('' if none)."""
        try:
            with open(self.log_path(dep_id), "rb") as f:
                size = f.seek(0, os.SEEK_END)
                start = max(offset or 0, size - 8192)
                f.seek(start)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return lines[-1][:1000] if lines else ""

    # ---- installing files ----

    def install(self, dep_id, staging_dir):
        """Replace the deployment directory with the verified staging one,
        owned by root (group of the runtime user, 1771) and read-only in the
        sandbox; the spooler binds the runtime's socket there."""
        final = self.dir(dep_id)
        if os.path.lexists(final) or self.keys(dep_id):
            self.stop(dep_id)
            for key in self.keys(dep_id):
                self._rmtree(self.dir(key))
            if os.path.lexists(final):
                self._rmtree(final, ignore_errors=False)
        self._place(staging_dir, final)
        return final

    def install_generation(self, dep_id, version, staging_dir):
        """Put a staging directory in place as the deployment's directory for
        model version `version` (<id>@<version>), next to the current one,
        which keeps running.  Returns the new directory's key."""
        key = "%s%s%d" % (dep_id, GEN_SEP, int(version))
        if os.path.lexists(self.dir(key)):
            self.remove_key(key)
        self._place(staging_dir, self.dir(key))
        return key

    def _place(self, staging_dir, final):
        _, gid = self.ids()
        for name in os.listdir(staging_dir):
            path = os.path.join(staging_dir, name)
            os.lchown(path, 0, 0)
            os.chmod(path, 0o644)
        os.chown(staging_dir, 0, gid)
        os.chmod(staging_dir, 0o1771)
        os.rename(staging_dir, final)

    # ---- starting ----

    def _open_log(self, dep_id, kind):
        os.makedirs(self.cfg.log_dir, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        if kind == "deploy":
            flags |= os.O_TRUNC
        else:
            self._trim_log(dep_id)
        fd = os.open(self.log_path(dep_id), flags, 0o640)
        os.write(fd, ("%s mlc-spooler: starting the runtime (%s)\n"
                      % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), kind)).encode())
        return fd, os.lseek(fd, 0, os.SEEK_END)

    def _trim_log(self, dep_id):
        """Once the log holds half of MLC_RUNTIME_LOG_MAX, keep only its last
        quarter (from a line start), so that the runtime's writes (limited
        to MLC_RUNTIME_LOG_MAX by RLIMIT_FSIZE) keep succeeding.  Returns how
        many bytes were dropped from the front.  What the runtime appends
        while this runs may be lost."""
        try:
            fd = os.open(self.log_path(dep_id), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return 0
        try:
            size = os.fstat(fd).st_size
            if size <= self.log_max // 2:
                return 0
            keep = self.log_max // 4
            os.lseek(fd, size - keep, os.SEEK_SET)
            tail = os.read(fd, keep)
            cut = tail.find(b"\n", 0, 4096)
            if cut >= 0:
                tail = tail[cut + 1:]
            dropped = size - len(tail)
            head = ("%s mlc-spooler: %d bytes of older output dropped (MLC_RUNTIME_LOG_MAX "
                    "%d)\n" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), dropped,
                               self.log_max)).encode()
            os.pwrite(fd, head + tail, 0)
            os.ftruncate(fd, len(head) + len(tail))
            return dropped - len(head)
        except OSError as e:
            log.deployment(dep_of(dep_id), "cannot cut its log short: %s", e)
            return 0
        finally:
            os.close(fd)

    def _oom(self, key, base):
        """The reason if the kernel killed a process of the runtime's
        sandbox for memory since it started, else None."""
        if self.cgroups.oom_kills(key) > (base or 0):
            return self.cgroups.out_of_memory()
        return None

    def _api_gid(self):
        """The group the API's workers run with: MLC_SERVICE_USER's (None
        when this spooler is not root, or that user does not exist)."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(self.cfg.get("MLC_SERVICE_USER")).pw_gid
        except KeyError:
            return None

    def _bind_socket(self, key):
        """The runtime's socket, bound but not listening: connections are
        refused until the runtime has loaded its model and listens.  Mode
        0660, group MLC_SERVICE_USER's: the API's workers connect, and no
        other local user can call the model past the gateway."""
        path = self.sock(key)
        self._unlink(path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # (No umask games: training threads create files meanwhile.  Bound
        # under the spooler's umask the socket has no write bit for others,
        # so nobody else can connect before the chmod either; and it does
        # not listen yet.)
        try:
            s.bind(path)
            gid = self._api_gid()
            if gid is not None:
                os.chown(path, 0, gid)
            os.chmod(path, 0o660)
        except OSError:
            s.close()
            raise
        return s

    def _check_paths(self, key):
        """Refuse early, with the fix in the message, what would make the
        sandboxed runtime fail obscurely."""
        for tool, package in ((sandbox.BWRAP, "bubblewrap"), (sandbox.SETPRIV, "util-linux")):
            if not os.access(tool, os.X_OK):
                raise sandbox.SandboxError("%s is missing; install the Debian package %s"
                                           % (tool, package))
        uid, gid = self.ids()
        sock = self.sock(key)
        if len(sock.encode()) > SOCKET_MAX:
            raise sandbox.SandboxError(
                "the runtime socket path %s is %d bytes, longer than the %d a unix socket "
                "allows; use a shorter MLC_VAR or deployment id"
                % (sock, len(sock.encode()), SOCKET_MAX))
        sandbox.check_reachable(sock, uid, gid)

    def launch(self, dep_id, kind, version=None, key=None):
        """Start the sandboxed runtime (see sandbox.py) in the deployment's
        current directory (or the directory `key`); returns a LocalLaunch."""
        key = key or self.key(dep_id, version)
        d = self.dir(key)
        uid, gid = self.ids()
        self._check_paths(key)
        listener = self._bind_socket(key)
        try:
            log_fd, offset = self._open_log(dep_id, kind)
        except OSError:
            listener.close()
            raise
        try:
            started = sandbox.start(
                self.cfg, self.cgroups, key, d, uid, gid,
                sandbox.environment(d, {"MLC_LISTEN_FD": str(listener.fileno())}),
                log_fd, log_fd, fsize=self.log_max, extra_fds=(listener.fileno(),))
        except subprocess.SubprocessError as e:  # raised by the preexec function
            raise sandbox.SandboxError("cannot apply the runtime's limits: %s" % e) from None
        finally:
            os.close(log_fd)
            listener.close()
        popen, pid, start, oom_base = started.popen, started.pid, started.start, started.oom_base
        self.children[popen.pid] = popen
        if pid and start is not None:
            self._write_state(key, {"pid": pid, "start": start, "boot": procs.boot_id(),
                                    "started": time.time(), "log_offset": offset,
                                    "launcher": popen.pid, "oom_base": oom_base})
        return LocalLaunch(dep_id, kind, pid, start, time.monotonic() + self.start_timeout,
                           offset, popen, key, oom_base)

    def adopt(self, dep_id):
        st = self._read_state(dep_id)
        pid, start = st.get("pid"), st.get("start")
        if not pid or st.get("boot") != procs.boot_id() or not procs.alive(pid, start):
            return None
        return LocalLaunch(dep_id, "deploy", pid, start, time.monotonic() + self.start_timeout,
                           st.get("log_offset", 0), oom_base=st.get("oom_base", 0))

    def _socket_ok(self, key):
        """runtime.sock is the socket the spooler made (not, say, a symlink
        to some other service's socket)."""
        try:
            st = os.lstat(self.sock(key))
        except OSError:
            return False
        return stat.S_ISSOCK(st.st_mode) and st.st_uid == os.geteuid()

    def _exit_reason(self, launch):
        """Failed(...) for a runtime that died while starting."""
        if launch.popen is not None:
            try:
                launch.popen.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        line = self._log_tail(launch.dep_id, launch.log_offset)
        oom = self._oom(launch.key, launch.oom_base)
        if oom:
            return backend.Failed("runtime exited before answering /health: %s" % oom, oom)
        if line.startswith("model failed to load:"):
            return backend.Failed(line, line)
        if line:
            return backend.Failed("runtime exited before answering /health: %s" % line, line)
        code = launch.popen.returncode if launch.popen is not None else None
        return backend.Failed("runtime exited before answering /health (exit status %s) without "
                              "an error message%s; see %s"
                              % ("unknown" if code is None else code,
                                 self.cgroups.tasks_note(launch.key),
                                 self.log_path(launch.dep_id)), "")

    def poll(self, launch):
        self.reap()
        dep_id, key = launch.dep_id, launch.key
        if not launch.pid or not procs.alive(launch.pid, launch.start):
            self._clear_state(key)
            return self._exit_reason(launch)
        oom = self._oom(key, launch.oom_base)
        if oom:
            self.cancel(launch)
            return backend.Failed("runtime did not start: %s" % oom, oom)
        dropped = self._trim_log(dep_id)
        if dropped > 0:
            launch.log_offset = max(0, (launch.log_offset or 0) - dropped)
        if self._socket_ok(key):
            h = unixhttp.health(self.sock(key), timeout=0.5)
            if h is not None and h.get("status") == "ok":
                return backend.Ready("unix:" + self.sock(key), launch.pid)
        if time.monotonic() > launch.deadline:
            self.cancel(launch)
            line = self._log_tail(dep_id, launch.log_offset)
            return backend.Failed("runtime did not answer GET /health within %g s "
                                  "(MLC_RUNTIME_START_TIMEOUT)%s%s"
                                  % (self.start_timeout, self.cgroups.tasks_note(key),
                                     "; last output: " + line if line else ""), line)
        return None

    def cancel(self, launch):
        if launch.pid:
            procs.terminate(launch.pid, launch.start, reap=self.reap)
        self._clear_state(launch.key)

    # ---- supervising ----

    def _has_model(self, key):
        """Whether the deployment's directory holds its model.pkl, every
        directory from MLC_VAR down opened without following a link.  The
        spooler checks its state directories when a pass begins; one
        replaced by a link, or moved, while the pass runs raises (Unsafe,
        or an OSError for one that is not there) rather than reading as
        "the files are gone", which would fail a deployment whose runtime
        serves on."""
        try:
            top = safefs.open_beneath(self.cfg.var, safefs.relparts(self.root, self.cfg.var))
        except ValueError:  # the deployments directory is outside MLC_VAR
            top = safefs.open_anchor(self.root)
        try:
            try:
                fd = os.open(key, safefs.DIR_FLAGS, dir_fd=top)
            except FileNotFoundError:
                return False
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise safefs.Unsafe("%s is %s, not a directory"
                                        % (self.dir(key), safefs.describe(key, top))) from None
                raise
            try:
                st = os.stat("model.pkl", dir_fd=fd, follow_symlinks=False)
                return stat.S_ISREG(st.st_mode)
            except FileNotFoundError:
                return False
            finally:
                os.close(fd)
        finally:
            os.close(top)

    def observe(self, dep_id, version=None):
        key = self.key(dep_id, version)
        d = self.dir(key)
        if not self._has_model(key):
            return backend.Missing("the deployment's files are gone (%s); deploy again" % d)
        st = self._read_state(key)
        if st.get("pid"):
            if st.get("boot") != procs.boot_id():
                self._clear_state(key)
                return backend.Absent("the host restarted")
            if procs.alive(st["pid"], st.get("start")):
                oom = self._oom(key, st.get("oom_base"))
                if oom:
                    # Only some process of the sandbox was killed (cgroup v1
                    # kills one): end it all and count a crash.
                    log.deployment(dep_id, "runtime pid %d: %s; stopping its sandbox",
                                   st["pid"], oom)
                    procs.terminate(st["pid"], st.get("start"), grace=0, reap=self.reap)
                    return backend.Crashed(oom, time.time() - st.get("started", time.time()))
                dropped = self._trim_log(dep_id)
                if dropped > 0:
                    st["log_offset"] = max(0, st.get("log_offset", 0) - dropped)
                    self._write_state(key, st)
                return backend.Running(st["pid"], "unix:" + self.sock(key))
            detail = (self._oom(key, st.get("oom_base"))
                      or self._log_tail(dep_id, st.get("log_offset", 0)))
            return backend.Crashed(detail or "it exited without an error message",
                                   time.time() - st.get("started", time.time()))
        if st.get("restart_after") is not None:
            return backend.Backoff(st["restart_after"])
        return backend.Absent("none recorded: stopped cleanly, e.g. by --stop-runtimes")

    def crashed(self, dep_id, restart_after, detail, version=None):
        key = self.key(dep_id, version)
        self._write_state(key, {"crashed": time.time(), "restart_after": restart_after,
                                "detail": detail})
        self._unlink(self.sock(key))

    # ---- stopping ----

    def _recorded(self, key):
        """(pid, start) of the runtime recorded in directory `key`, if it still runs."""
        st = self._read_state(key)
        if st.get("pid") and procs.alive(st["pid"], st.get("start")):
            return st["pid"], st.get("start")
        try:
            with open(os.path.join(self.dir(key), "runtime.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        if procs.alive(pid) and procs.runs_in(pid, self.dir(key)):
            return pid, procs.starttime(pid)
        return None

    def stop_key(self, key):
        """Stop the runtime recorded in directory `key` and any other process
        running for that directory (one a spooler started but was killed
        before recording); keep the files.  False if one would not die."""
        dep_id = dep_of(key)
        targets = []
        rec = self._recorded(key)
        if rec:
            targets.append((rec[0], rec[1], False))
        for pid, other, unstarted in self._runtimes_on_host():
            if other == key and (not rec or pid != rec[0]):
                targets.append((pid, procs.starttime(pid), unstarted))
        gone = True
        for pid, start, unstarted in targets:
            if start is not None and not procs.terminate(pid, start, grace=0 if unstarted else 5.0,
                                                         reap=self.reap):
                log.deployment(dep_id, "runtime pid %d did not die after SIGKILL", pid)
                gone = False
        if gone:
            if _isdir(self.dir(key)):
                self._clear_state(key)
                self._unlink(self.sock(key))
            self.cgroups.release(key)
        return gone

    def stop(self, dep_id):
        """Stop every runtime of the deployment (all its directories)."""
        gone = True
        for key in set(self.keys(dep_id)) | {dep_id} | {
                k for _, k, _ in self._runtimes_on_host() if dep_of(k) == dep_id}:
            gone = self.stop_key(key) and gone
        return gone

    def remove_key(self, key):
        """Stop the runtime of one directory and delete that directory."""
        gone = self.stop_key(key)
        self._rmtree(self.dir(key))
        return gone

    def skip_log(self, key):
        """The runtime of directory `key` shares the deployment's log with
        one that just stopped (a redeploy): start its crash details after
        what is in the log now, so that the other's last words ("stopped")
        are never reported as its own."""
        st = self._read_state(key)
        if st.get("pid"):
            try:
                st["log_offset"] = os.path.getsize(self.log_path(key))
            except OSError:
                return
            self._write_state(key, st)

    def remove(self, dep_id, keep_log=False):
        gone = self.stop(dep_id)
        for key in self.keys(dep_id):
            self._rmtree(self.dir(key))
        self._rmtree(self.dir(dep_id))
        if not keep_log:
            self._unlink(self.log_path(dep_id))
        return gone

    def prune(self, dep_id, version):
        """Remove the directories of the deployment other than the current
        one for model version `version` (left by a redeploy that a spooler
        restart interrupted); returns the keys removed."""
        current = self.key(dep_id, version)
        removed = []
        for key in self.keys(dep_id):
            if key != current:
                self.remove_key(key)
                removed.append(key)
        return removed

    def stop_all(self):
        """Stop every runtime of this instance, keeping their files (they
        resume when the spooler starts again); returns the ids stopped."""
        keys = self.present_keys()
        stopped = sorted({dep_of(k) for k in keys if self._recorded(k)})
        for key in keys:
            self.stop_key(key)
        stopped += self.strays(set())
        return stopped

    def present_keys(self):
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return set()
        return {n for n in names if not n.startswith(".")
                and _isdir(os.path.join(self.root, n))}

    def present(self):
        return {dep_of(k) for k in self.present_keys()}

    def _runtimes_on_host(self):
        """(pid, directory key, unstarted) of every process that is a runtime
        for a directory under this instance's deployments: the runtime
        itself, its setpriv stage, or a sandbox's first process that never
        got to exec (bwrap inside the new pid namespace; unstarted)."""
        prefix = self.root.rstrip("/") + "/"
        for pid, args in sandbox.processes():
            # The runtime's own "--dir <dir>" is the last one (bwrap has
            # "--dir" options of its own earlier on the line).
            if args[-2] == "--dir" and args[-1].startswith(prefix):
                key = args[-1][len(prefix):]
                if key and "/" not in key:
                    yield pid, key, args[0] == sandbox.BWRAP

    def strays(self, keep, busy=None):
        stopped = []
        for pid, key, unstarted in self._runtimes_on_host():
            dep_id = dep_of(key)
            if busy is not None and busy(dep_id):
                continue  # being started or stopped right now
            st = self._read_state(key) if dep_id in keep else {}
            if st.get("pid") == pid and procs.alive(pid, st.get("start")):
                continue
            start = procs.starttime(pid)
            if start is None:
                continue
            log.deployment(dep_id, "stopping stray %s pid %d%s", "sandbox that never started"
                           if unstarted else "runtime", pid,
                           "" if key == dep_id else " (directory %s)" % key)
            # A sandbox's first process ignores SIGTERM (pid 1, no handler).
            procs.terminate(pid, start, grace=0 if unstarted else 5.0, reap=self.reap)
            stopped.append(dep_id)
        return stopped

    def reap(self):
        for pid, popen in list(self.children.items()):
            if popen.poll() is not None:
                self.children.pop(pid, None)
