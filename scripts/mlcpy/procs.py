"""The process table, read from /proc.

A pid alone does not identify a runtime (pids are reused, and the spooler
that started it may be gone), so a runtime is recorded as (pid, start
time): the start time in /proc/<pid>/stat never changes for a process and
differs for a later process that reuses the pid.  A zombie counts as gone.
"""

import os
import signal
import time


def _stat(pid):
    """(state, ppid, starttime) of a pid, or None when there is none."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (OSError, ValueError):
        return None
    # The command name (field 2) may hold spaces and parentheses.
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[19])


def starttime(pid):
    """The start time of a live process (clock ticks since boot), or None."""
    st = _stat(pid)
    return st[2] if st and st[0] not in "ZX" else None


def alive(pid, start=None):
    """pid is a live (non-zombie) process, and the same one if start is given."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    st = _stat(pid)
    if st is None or st[0] in "ZX":
        return False
    return start is None or st[2] == start


def children(pid):
    """Pids whose parent is pid."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        pass
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st and st[1] == pid:
                out.append(int(name))
    return out


def in_child_pid_namespace(pid):
    """The process lives in a pid namespace below ours (NSpid has more
    than one entry), i.e. it is inside some sandbox."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return len(line.split()) > 2
    except OSError:
        pass
    return False


def ns_pid(pid):
    """The process's pid in its own pid namespace (the last NSpid entry),
    and whether that namespace is below ours: (nspid, nested)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("NSpid:"):
                    ids = line.split()[1:]
                    return int(ids[-1]), len(ids) > 1
    except (OSError, ValueError, IndexError):
        pass
    return None, False


def cmdline(pid):
    """The argument vector of a process ([] when unreadable)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def runs_in(pid, deployment_dir):
    """The process is an mlc-runtime (or a sandbox stage about to become
    one) for this deployment directory: its command line ends with
    '.../mlc-runtime --dir <deployment_dir>'."""
    args = cmdline(pid)
    return (len(args) >= 3 and args[-3].endswith("mlc-runtime") and args[-2] == "--dir"
            and args[-1] == deployment_dir)


def boot_id():
    """This boot's id: a recorded pid from an earlier boot means nothing."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def kill(pid, sig):
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def terminate(pid, start, grace=5.0, reap=None):
    """SIGTERM the process, SIGKILL it after `grace` seconds, and wait until
    it is gone.  reap() is called while waiting so that the caller can
    collect its own exited children.  Returns True once the process is gone."""
    if not alive(pid, start):
        return True
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        kill(pid, sig)
        if _gone_within(pid, start, wait, reap):
            return True
    return False


def _gone_within(pid, start, seconds, reap):
    """Whether the process is gone within `seconds`, calling reap() while
    waiting."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if reap:
            reap()
        if not alive(pid, start):
            return True
        time.sleep(0.05)
    return False
