"""safefs - how the root daemons touch files under MLC_VAR without being
steered by anyone else who can write there (docs/DESIGN-NOTES.md: root
daemons never follow a symlink under MLC_VAR).

  - A directory is opened with O_NOFOLLOW|O_DIRECTORY, one component at a
    time below a trusted anchor (MLC_VAR, checked by layout.py), and its
    owner and mode are checked on the open descriptor (fstat).  The anchor
    itself may be reached through symbolic links: they lie outside MLC_VAR,
    in directories only root controls.
  - Removal walks the tree by descriptors: unlink and rmdir relative to an
    open directory, never descending into a symbolic link, whoever owns the
    entries (a runtime or a training script writes in its own directory).
    Nesting deeper than MAX_DEPTH is moved up to the top of the tree being
    removed, so neither the stack nor the open descriptors grow with it.
  - A file another user hands in (a spool bundle) is opened with
    O_NOFOLLOW|O_NONBLOCK|O_NOCTTY and must be a regular file with a
    single link, owned by an expected user: a symbolic link, a FIFO, a
    device or a hard link to some other file is refused.

Unsafe is raised with a message naming the path and what is wrong with it.
"""

import errno
import os
import pwd
import stat

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
MAX_DEPTH = 32


class Unsafe(Exception):
    """A path is not what a root daemon may act on; str() says which and why."""


def user(uid):
    """'uid 998 (mlconnector)' for messages."""
    try:
        return "uid %d (%s)" % (uid, pwd.getpwuid(uid).pw_name)
    except KeyError:
        return "uid %d" % uid


def _owners(owners):
    return (os.geteuid(),) if owners is None else tuple(owners)


def _kind(mode):
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "a special file"


def describe(path, dir_fd=None):
    """What is at path (not following a symlink), for a message."""
    try:
        st = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as e:
        return "unreadable (%s)" % e.strerror
    if stat.S_ISLNK(st.st_mode):
        try:
            return "a symbolic link (to %s)" % os.readlink(path, dir_fd=dir_fd)
        except OSError:
            return "a symbolic link"
    return _kind(st.st_mode)


def check_dir(path, st, owners=None, sticky_ok=True):
    """Raise Unsafe unless st (of path) is a directory owned by one of
    `owners` (default: this process's user) that no one else may change:
    not writable by group or others, unless sticky (and sticky_ok)."""
    owners = _owners(owners)
    if not stat.S_ISDIR(st.st_mode):
        raise Unsafe("%s is %s, not a directory" % (path, _kind(st.st_mode)))
    if st.st_uid not in owners:
        raise Unsafe("%s is owned by %s, not %s" % (
            path, user(st.st_uid), " or ".join(user(u) for u in sorted(set(owners)))))
    if st.st_mode & 0o022 and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        raise Unsafe("%s is writable by %s (mode %04o)" % (
            path, "others" if st.st_mode & 0o002 else "its group", st.st_mode & 0o7777))


def open_dir(path, owners=None, dir_fd=None, sticky_ok=True):
    """Open the directory path (relative to dir_fd when given) without
    following a symbolic link at its last component, and check it
    (check_dir).  Returns the descriptor; raises Unsafe, or OSError
    (FileNotFoundError when it is missing)."""
    try:
        fd = os.open(path, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.ELOOP):
            raise Unsafe("%s is %s, not a directory" % (path, describe(path, dir_fd))) from None
        raise
    try:
        check_dir(path, os.fstat(fd), owners, sticky_ok)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_anchor(top, owners=None):
    """Open the trusted top directory (MLC_VAR), which may be reached
    through symbolic links, and check that it is ours and closed to others."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        check_dir(top, os.fstat(fd), owners, sticky_ok=False)
    except BaseException:
        os.close(fd)
        raise
    return fd


def relparts(path, top):
    """The components of path below top; ValueError if it is not below."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(top))
    parts = [p for p in rel.split(os.sep) if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError("%s is not below %s" % (path, top))
    return parts


def open_beneath(top, parts, owners=None):
    """The descriptor of top/parts[0]/.../parts[-1], every component opened
    without following symbolic links and checked (open_dir); top itself
    with open_anchor."""
    fd = open_anchor(top, owners)
    where = top
    try:
        for p in parts:
            where = os.path.join(where, p)
            try:
                nfd = os.open(p, DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ENOTDIR, errno.ELOOP):
                    raise Unsafe("%s is %s, not a directory"
                                 % (where, describe(p, fd))) from None
                raise
            os.close(fd)
            fd = nfd
            check_dir(where, os.fstat(fd), owners)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _parent(path, top, owners):
    """(descriptor of path's directory, path's last component)."""
    parts = relparts(path, top)
    return open_beneath(top, parts[:-1], owners), parts[-1]


def unlink(path, top, owners=None):
    """Remove the file (or symbolic link, or socket) path below top.  Returns
    False when it was not there; IsADirectoryError for a directory."""
    try:
        pfd, name = _parent(path, top, owners)
    except FileNotFoundError:
        return False
    try:
        os.unlink(name, dir_fd=pfd)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(pfd)


def rmtree(path, top, owners=None, ignore_errors=False):
    """Remove path below top, whatever it is: a file, a symbolic link (not
    its target) or a directory tree, walked by descriptors without ever
    following a symbolic link.  The directories from top down to path's
    parent must be owned by one of `owners` (default: this process's user)
    and closed to others, else Unsafe (also with ignore_errors).  A missing
    path is not an error.  Other errors are raised (the first one, after
    removing what can be removed) unless ignore_errors."""
    try:
        pfd, name = _parent(path, top, owners)
    except FileNotFoundError:
        return
    errors = []
    try:
        _remove_at(pfd, name, path, errors)
    finally:
        os.close(pfd)
    if errors and not ignore_errors:
        raise errors[0]


def _remove_at(pfd, name, path, errors):
    try:
        os.unlink(name, dir_fd=pfd)
        return
    except FileNotFoundError:
        return
    except IsADirectoryError:
        pass
    except OSError as e:
        if e.errno != errno.EPERM:  # some systems say EPERM for a directory
            errors.append(e)
            return
    try:
        top_fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.ELOOP):  # replaced meanwhile: try again
            _remove_entry(pfd, name, errors)
        else:
            errors.append(e)
        return
    stack = [(top_fd, name)]  # open directories, each with its name in the one before
    moved = 0
    try:
        while stack:
            fd = stack[-1][0]
            child = None
            try:
                names = os.listdir(fd)
            except OSError as e:
                errors.append(e)
                names = []
            for n in names:
                try:
                    os.unlink(n, dir_fd=fd)
                    continue
                except FileNotFoundError:
                    continue
                except IsADirectoryError:
                    pass
                except OSError as e:
                    if e.errno != errno.EPERM:
                        errors.append(e)
                        continue
                if len(stack) >= MAX_DEPTH:
                    # Too deep: move it up beside the others at the top.
                    moved += 1
                    try:
                        os.rename(n, ".deep-%s-%d" % (os.urandom(6).hex(), moved),
                                  src_dir_fd=fd, dst_dir_fd=top_fd)
                    except OSError as e:
                        errors.append(e)
                    continue
                try:
                    child = (os.open(n, DIR_FLAGS, dir_fd=fd), n)
                    break
                except FileNotFoundError:
                    continue
                except OSError as e:
                    if e.errno in (errno.ENOTDIR, errno.ELOOP):
                        _remove_entry(fd, n, errors)
                    else:
                        errors.append(e)
            if child is not None:
                stack.append(child)
                continue
            # Nothing more can go from this directory: remove it.
            fd, n = stack.pop()
            os.close(fd)
            parent = stack[-1][0] if stack else pfd
            try:
                os.rmdir(n, dir_fd=parent)
            except FileNotFoundError:
                pass
            except OSError as e:
                # Something in it could not go: don't go round again.
                errors.append(e)
                return
    finally:
        for fd, _ in stack:
            os.close(fd)


def _remove_entry(dir_fd, name, errors):
    """Unlink a non-directory entry (one that turned out not to be a directory)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as e:
        errors.append(e)


def open_file(path, owners=None):
    """Open for reading a file that another user handed in (a spool bundle):
    it must be a regular file with one link, owned by one of `owners`.
    Nothing is followed, and opening has no side effect (no FIFO blocks, no
    device is opened).  Returns the descriptor; raises Unsafe saying what
    it is instead, or OSError."""
    st = os.lstat(path)
    name = os.path.basename(path)
    if not stat.S_ISREG(st.st_mode):
        raise Unsafe("%s is %s, not a regular file" % (name, describe(path)))
    fd = os.open(path, FILE_FLAGS)
    try:
        fst = os.fstat(fd)
        if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(fst.st_mode):
            raise Unsafe("%s was replaced while it was opened" % name)
        if fst.st_nlink != 1:
            raise Unsafe("%s has %d hard links; a spool file must have exactly one"
                         % (name, fst.st_nlink))
        if owners is not None and fst.st_uid not in owners:
            raise Unsafe("%s is owned by %s, not %s" % (
                name, user(fst.st_uid), " or ".join(user(u) for u in sorted(set(owners)))))
    except BaseException:
        os.close(fd)
        raise
    return fd


def fix_tree(fd, uid, gid, file_mode, dir_mode, depth=8, counts=None):
    """Give every directory and regular file below the open directory fd the
    owner uid:gid and mode dir_mode or file_mode (for bringing an existing
    artifact store to its modes).  Only entries owned by uid or by this
    process's user are changed, and files only with a single link (a hard
    link to some other file is left alone); symbolic links and special
    files are never followed; deeper than `depth` levels nothing is
    changed.  Returns {"dirs": n, "files": n, "skipped": n}."""
    counts = counts if counts is not None else {"dirs": 0, "files": 0, "skipped": 0}
    mine = (uid, os.geteuid())
    for name in os.listdir(fd):
        try:
            efd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except FileNotFoundError:
            continue
        try:
            st = os.fstat(efd)
            if st.st_uid not in mine:
                counts["skipped"] += 1
            elif stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                _set(efd, st, uid, gid, file_mode)
                counts["files"] += 1
            elif stat.S_ISDIR(st.st_mode) and depth > 0:
                dfd = os.open(name, DIR_FLAGS, dir_fd=fd)
                try:
                    if (os.fstat(dfd).st_ino, os.fstat(dfd).st_dev) == (st.st_ino, st.st_dev):
                        _set(dfd, st, uid, gid, dir_mode)
                        counts["dirs"] += 1
                        fix_tree(dfd, uid, gid, file_mode, dir_mode, depth - 1, counts)
                finally:
                    os.close(dfd)
            else:
                counts["skipped"] += 1
        finally:
            os.close(efd)
    return counts


def _set(fd, st, uid, gid, mode):
    """chown and chmod through a descriptor (an O_PATH one through
    /proc/self/fd: the same inode, nothing followed)."""
    target = "/proc/self/fd/%d" % fd
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(target, uid, gid)
    if stat.S_IMODE(os.stat(target).st_mode) != mode:
        os.chmod(target, mode)
