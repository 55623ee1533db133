"""Removing leftovers from the temporary directories the C workers write
into: artifacts/.tmp (uploads being received) and spool/tmp (job bundles
being written).  A worker that dies mid-request leaves its file there;
mlc-spooler removes such files on a timer (every MLC_TMP_CLEAN_INTERVAL
seconds) once they are older than MLC_TMP_MAX_AGE seconds (by mtime: a
file being written is touched by every write, so no live request owns a
file that old).

Only regular files directly in those directories are removed, and nothing
is ever followed: the directory is opened with O_NOFOLLOW, each entry is
looked at with lstat relative to that open directory and unlinked
relative to it (dir_fd), so a symbolic link - to a file or a directory
anywhere - is neither followed nor removed, and a directory swapped for a
link between two steps cannot redirect a removal.  Subdirectories are left
alone.
"""

import errno
import os
import stat
import time

DEFAULT_MAX_AGE = 3600.0
DEFAULT_INTERVAL = 600.0


def temp_dirs(cfg):
    """The directories cleaned, as (label, path)."""
    return [("artifacts/.tmp", os.path.join(cfg.artifacts, ".tmp")),
            ("spool/tmp", os.path.join(cfg.spool, "tmp"))]


def clean_dir(path, max_age, now=None):
    """Remove the regular files directly in path whose mtime is more than
    max_age seconds before now.  Returns (removed names, skipped names with
    why).  A missing directory, or one that is a symbolic link, is nothing
    to clean."""
    now = time.time() if now is None else now
    removed, skipped = [], []
    try:
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
            return removed, skipped
        raise
    try:
        with os.scandir(dfd) as it:
            names = [e.name for e in it]
        for name in names:
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                if now - st.st_mtime > max_age:
                    skipped.append((name, "a symbolic link" if stat.S_ISLNK(st.st_mode)
                                    else "not a regular file"))
                continue
            if now - st.st_mtime <= max_age:
                continue
            try:
                # unlink never follows a link: if the name became one since
                # the lstat, the link goes, not what it points at.
                os.unlink(name, dir_fd=dfd)
                removed.append(name)
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                pass
    finally:
        os.close(dfd)
    return removed, skipped


class Cleaner:
    """Calls clean_dir on each temporary directory at most every interval
    seconds (tick() from a loop)."""

    def __init__(self, cfg, log):
        self.cfg, self.log = cfg, log
        self.max_age = cfg.number("MLC_TMP_MAX_AGE")
        self.interval = cfg.number("MLC_TMP_CLEAN_INTERVAL")
        self.next_at = 0.0
        self.noted = set()

    def tick(self):
        if self.interval <= 0 or time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + self.interval
        for label, path in temp_dirs(self.cfg):
            try:
                removed, skipped = clean_dir(path, self.max_age)
            except OSError as e:
                self.log("cannot clean %s: %s" % (path, e))
                continue
            if removed:
                self.log("removed %d leftover file(s) older than %d s from %s: %s"
                         % (len(removed), self.max_age, label, ", ".join(sorted(removed)[:10])))
            for name, why in skipped:
                if (label, name) not in self.noted:
                    self.noted.add((label, name))
                    self.log("left %s/%s alone: %s" % (label, name, why))
