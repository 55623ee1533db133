"""Fault injection for the end-to-end tests, the Python side of the C test
build's mlc_test_hook (app/config.h).

A hook is active only with MLC_TEST_HOOKS=1 in the daemon's environment
(`mlc test` sets it; an installed service never does) and only while the
file $MLC_VAR/test-<name> exists.  That directory is root's and closed to
others (see layout.py), so only root can arm a hook.  The first process
that removes the file takes the hook.  Without MLC_TEST_HOOKS=1 a hook
costs one dictionary look-up.
"""

import os
import signal


def take(var, name):
    """The content of $var/test-<name> when the hook is armed and this
    process took it (removed the file); else None."""
    if os.environ.get("MLC_TEST_HOOKS") != "1":
        return None
    path = os.path.join(var, "test-" + name)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            content = f.read(256)
        os.unlink(path)
    except OSError:
        return None
    return content


def kill_here(var, name, log=None):
    """Die as by kill -9 when the hook `name` is armed."""
    if take(var, name) is not None:
        if log:
            log("test hook %s: killing this process (SIGKILL)" % name)
        os.kill(os.getpid(), signal.SIGKILL)


def armed(var, name):
    """The content of $var/test-<name> (stripped) while the hook is armed,
    without taking it; else None.  For a hook that changes how every job of
    a test runs."""
    if os.environ.get("MLC_TEST_HOOKS") != "1":
        return None
    try:
        with open(os.path.join(var, "test-" + name), encoding="utf-8", errors="replace") as f:
            return f.read(256).strip()
    except OSError:
        return None
