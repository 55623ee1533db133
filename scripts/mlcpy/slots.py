"""slots - the predict slot files of mlc-api, $MLC_VAR/run/slots/predict-<id>.

mlc-api makes one per deployment called (app/pool.c, take_slot in
app/route-predict.c): each predict call in flight holds one byte of it
with an open file description lock (F_OFD_SETLK), which the kernel drops
when the call ends, however it ends.  The file itself would stay for
ever; mlc-spooler removes it once the deployment is stopped, failed or
gone (spooler.py: when it stops one, and at each reconcile).

A file is removed only under a write lock on the whole of it, taken with
F_OFD_SETLK without waiting: while a call holds a slot the lock is
refused and the file stays (the next reconcile looks again).  Nothing is
followed: the directory is opened beneath MLC_VAR without following a
symbolic link (safefs), each entry is looked at with lstat relative to it,
only a regular file is opened (O_NOFOLLOW, O_NONBLOCK) and it is unlinked
relative to the directory after checking that the name still names the
file locked.  Anything else under that name (a symbolic link, a FIFO) is
left alone.
"""

import errno
import fcntl
import os
import stat
import struct

from . import safefs

PREFIX = "predict-"
PARTS = ("run", "slots")
_FILE_FLAGS = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _open_dir(var, owners):
    """The slots directory's descriptor, or None when there is none."""
    try:
        return safefs.open_beneath(var, list(PARTS), owners)
    except FileNotFoundError:
        return None


def deployments(var, owners=None):
    """The deployment ids that have a slot file."""
    dfd = _open_dir(var, owners)
    if dfd is None:
        return set()
    try:
        with os.scandir(dfd) as it:
            return {e.name[len(PREFIX):] for e in it
                    if e.name.startswith(PREFIX) and len(e.name) > len(PREFIX)}
    finally:
        os.close(dfd)


def _lock_all(fd):
    """A write lock on the whole file, without waiting: True, or False
    when a predict call holds a slot in it."""
    try:
        if hasattr(fcntl, "F_OFD_SETLK"):
            # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD)
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK,
                        struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0).ljust(32, b"\0"))
        else:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise


def remove(var, dep_id, owners=None):
    """Remove the deployment's slot file unless a call holds a slot in it.
    Returns "removed", "absent", "busy" (a call holds a slot) or "left"
    (not a regular file, or replaced meanwhile: left alone)."""
    name = PREFIX + dep_id
    if "/" in dep_id or dep_id in ("", ".", ".."):
        return "left"
    dfd = _open_dir(var, owners)
    if dfd is None:
        return "absent"
    try:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return "absent"
        if not stat.S_ISREG(st.st_mode):
            return "left"
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dfd)
        except FileNotFoundError:
            return "absent"
        except OSError as e:
            if e.errno == errno.ELOOP:
                return "left"
            raise
        try:
            fst = os.fstat(fd)
            if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(fst.st_mode):
                return "left"
            if not _lock_all(fd):
                return "busy"
            # Under the lock: the name must still be this file.
            try:
                now = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                return "absent"
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                return "left"
            os.unlink(name, dir_fd=dfd)
            return "removed"
        finally:
            os.close(fd)  # drops the lock
    finally:
        os.close(dfd)
