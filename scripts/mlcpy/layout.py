"""layout - who owns what in the state directory MLC_VAR (the table in
docs/OPERATIONS.md, "State directory and permissions").

mlc-spooler runs as root and deletes, writes and executes from MLC_VAR, so
every directory it uses is root's and closed to everyone else; nobody but
root can then rename, replace or redirect anything on its paths.  The
service user (MLC_SERVICE_USER: mlc-api and mlc-drift) writes only where
it must: the spool intake (spool/tmp/ and spool/new/, which the spooler
only reads and renames out of), the artifact store, and api/ (its socket
and its own files).  The artifact store's group is MLC_WEB_GROUP, the
group nginx's workers run with, so that they can send downloads; it is
setgid, so files created in it get that group.

Layout.ensure() creates what is missing with its owner and mode, and
checks the rest: a symbolic link, a file, another owner or a directory
others may write to raises safefs.Unsafe.  The spooler runs it at start
and before every tick.  With repair=True (mlc-spooler --prepare, for an
operator setting up or upgrading a host) it sets owners and modes instead
of refusing, except for a symbolic link or a directory of a third user.
"""

import errno
import grp
import os
import pwd
import stat

from .safefs import DIR_FLAGS, Unsafe, check_dir, describe, fix_tree, user

ROOT, SERVICE, WEB, ROOT_WEB = "root", "service", "web", "root-web"

# (path below MLC_VAR, owner, mode, used by the spooler), parents first.
DIRS = (
    ("", ROOT, 0o755, True),
    ("spool", ROOT, 0o755, True),
    ("spool/tmp", SERVICE, 0o750, True),
    ("spool/new", SERVICE, 0o750, True),
    ("spool/cur", ROOT, 0o700, True),
    ("spool/rejected", ROOT, 0o700, True),
    ("deployments", ROOT, 0o755, True),
    ("training", ROOT, 0o755, True),
    ("run", ROOT, 0o755, True),
    ("run/training", ROOT, 0o700, True),
    # mlc-api's predict slot files (app/pool.c); the spooler removes those
    # of deployments that are over (slots.py).
    ("run/slots", SERVICE, 0o700, True),
    ("log", ROOT, 0o755, True),
    ("log/service", SERVICE, 0o750, False),
    # mlc-drift's cache of parsed inference values (mlcpy.drift_cache):
    # the service user's alone, the user mlc-drift runs as by default.
    ("drift-cache", SERVICE, 0o700, False),
    # The remote backends (kubernetes, mlsysops): their records of the
    # deployments, and the bundles nginx sends to the clusters' pods.
    ("kubernetes", ROOT, 0o700, True),
    ("mlsysops", ROOT, 0o700, True),
    ("bundles", ROOT_WEB, 0o750, True),
    ("api", WEB, 0o750, False),
)
STORE_MODE, STORE_FILE_MODE = 0o2750, 0o640


def _owner_mode(uid, gid, mode):
    """'mlconnector:www-data 2750'."""
    try:
        u = pwd.getpwuid(uid).pw_name
    except KeyError:
        u = str(uid)
    try:
        g = grp.getgrgid(gid).gr_name
    except KeyError:
        g = str(gid)
    return "%s:%s %04o" % (u, g, mode)


class Layout:
    def __init__(self, cfg):
        self.cfg = cfg
        self.uid, self.gid = os.geteuid(), os.getegid()
        self.notes = []
        name = cfg.get("MLC_SERVICE_USER")
        group = cfg.get("MLC_WEB_GROUP")
        if self.uid != 0:
            self.svc_uid, self.svc_gid, self.web_gid = self.uid, self.gid, self.gid
            self.notes.append("running as %s, not root: every state directory stays its own"
                              % user(self.uid))
            return
        try:
            pw = pwd.getpwnam(name)
            self.svc_uid, self.svc_gid = pw.pw_uid, pw.pw_gid
        except KeyError:
            self.svc_uid, self.svc_gid = self.uid, self.gid
            self.notes.append("MLC_SERVICE_USER '%s' does not exist: spool/tmp/, spool/new/, "
                              "api/ and the artifact store stay root's (fine when mlc-api runs "
                              "as root, as under scripts/mlc)" % name)
        try:
            self.web_gid = grp.getgrnam(group).gr_gid
        except KeyError:
            self.web_gid = self.svc_gid
            self.notes.append("MLC_WEB_GROUP '%s' does not exist: the artifact store's group "
                              "is the service user's" % group)

    def bundle_owners(self):
        """Who may own a job bundle: the service user (or root)."""
        return {self.uid, self.svc_uid}

    def _want(self, kind):
        """(owner uid, group gid, accepted owners) of a directory kind."""
        if kind == ROOT:
            return self.uid, self.gid, (self.uid,)
        if kind == SERVICE:
            return self.svc_uid, self.svc_gid, (self.svc_uid, self.uid)
        if kind == ROOT_WEB:
            return self.uid, self.web_gid, (self.uid,)
        return self.svc_uid, self.web_gid, (self.svc_uid, self.uid)

    # ---- checks ----

    def check_above(self):
        """Nobody but root may replace MLC_VAR: the directories above it (and
        the symbolic links on its path) must not belong to the service or
        runtime user nor be writable by others without the sticky bit."""
        suspects = {self.svc_uid}
        try:
            suspects.add(pwd.getpwnam(self.cfg.get("MLC_RUNTIME_USER")).pw_uid)
        except KeyError:
            pass
        suspects -= {0, self.uid}
        var = os.path.abspath(self.cfg.var)
        for start in (var, os.path.realpath(var)):
            d = start
            while d != "/":
                parent = os.path.dirname(d)
                try:
                    lst = os.lstat(d)
                except FileNotFoundError:
                    d = parent
                    continue
                if stat.S_ISLNK(lst.st_mode) and lst.st_uid not in (0, self.uid):
                    raise Unsafe("%s, on the path of MLC_VAR, is a symbolic link owned by %s"
                                 % (d, user(lst.st_uid)))
                if d != start:
                    st = os.stat(d)
                    if st.st_uid in suspects:
                        raise Unsafe("%s, above MLC_VAR, is owned by %s, who could replace "
                                     "MLC_VAR; chown root %s" % (d, user(st.st_uid), d))
                    if st.st_mode & 0o002 and not st.st_mode & stat.S_ISVTX:
                        raise Unsafe("%s, above MLC_VAR, is writable by everyone (mode %04o)"
                                     % (d, st.st_mode & 0o7777))
                d = parent

    # ---- creating, checking, repairing ----

    def ensure(self, repair=False, start=False):
        """Create the missing directories, check (or with repair, set) the
        others; at start (and with repair) also the directories above
        MLC_VAR and the artifact store.  Returns the changes made, as text.
        Raises Unsafe."""
        changes = []
        if start or repair:
            self.check_above()
        var = self.cfg.var
        var_created = False
        if not os.path.lexists(var):
            os.makedirs(os.path.dirname(os.path.abspath(var)), 0o755, exist_ok=True)
            try:
                os.mkdir(var, 0o700)
                var_created = True
            except FileExistsError:
                pass
        fds = {}
        try:
            for rel, kind, mode, used in DIRS:
                if not used and not (start or repair):
                    continue
                path = os.path.join(var, rel) if rel else var
                if rel:
                    fd, created = self._open(fds[os.path.dirname(rel)], os.path.basename(rel),
                                             path)
                else:
                    fd = os.open(var, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    created = var_created
                fds[rel] = fd
                self._settle(fd, path, kind, mode, created, repair, changes)
        finally:
            for fd in fds.values():
                os.close(fd)
        if start or repair:
            self._store(repair, changes)
        return changes

    @staticmethod
    def _open(parent_fd, name, path):
        """(descriptor, created) of directory name in parent_fd; made (0700,
        settled by the caller) when missing."""
        created = False
        for _ in range(2):
            try:
                return os.open(name, DIR_FLAGS, dir_fd=parent_fd), created
            except FileNotFoundError:
                try:
                    os.mkdir(name, 0o700, dir_fd=parent_fd)
                    created = True
                except FileExistsError:
                    pass
            except OSError as e:
                if e.errno in (errno.ENOTDIR, errno.ELOOP):
                    raise Unsafe("%s is %s, not a directory" % (path, describe(name, parent_fd))
                                 ) from None
                raise
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd), created

    def _settle(self, fd, path, kind, mode, created, repair, changes):
        uid, gid, accepted = self._want(kind)
        st = os.fstat(fd)
        if not created and not repair:
            check_dir(path, st, accepted, sticky_ok=False)
            return
        if st.st_uid not in (self.uid, self.svc_uid) and not created:
            raise Unsafe("%s is owned by %s, neither root nor the service user; fix it by "
                         "hand" % (path, user(st.st_uid)))
        was = _owner_mode(st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.fchown(fd, uid, gid)
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
        now = _owner_mode(uid, gid, mode)
        if created:
            changes.append("created %s (%s)" % (path, now))
        elif was != now:
            changes.append("%s: %s -> %s" % (path, was, now))

    def _store(self, repair, changes):
        """The artifact store: the service user's, group MLC_WEB_GROUP,
        setgid.  Created when missing.  With repair, an existing one that
        had other owners or modes gets them, and so does everything in it
        (files 0640, directories 2750); a symbolic link is refused there
        (it would be followed by chown)."""
        store = os.path.abspath(self.cfg.artifacts)
        if not repair and os.path.lexists(store):
            return  # the spooler does not use the store
        parent, name = os.path.split(store)
        os.makedirs(parent, 0o755, exist_ok=True)
        pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd, created = self._open(pfd, name, store)
        except Unsafe as e:
            raise Unsafe("%s; set MLC_ARTIFACTS to the directory itself" % e) from None
        finally:
            os.close(pfd)
        try:
            before = len(changes)
            self._settle(fd, store, WEB, STORE_MODE, created, True, changes)
            if not created and len(changes) > before:
                uid, gid, _ = self._want(WEB)
                n = fix_tree(fd, uid, gid, STORE_FILE_MODE, STORE_MODE)
                changes.append("%s: %d directories and %d files below it now %s/%04o%s"
                               % (store, n["dirs"], n["files"],
                                  _owner_mode(uid, gid, STORE_MODE), STORE_FILE_MODE,
                                  " (%d special files or links left alone)" % n["skipped"]
                                  if n["skipped"] else ""))
        finally:
            os.close(fd)
