#!/usr/bin/python3
# mlcpy.safefs and mlcpy.layout without an instance: removal never follows a symbolic link (not at the top, not on the way,
# not inside the tree, not while the tree changes under it), directories
# of another owner or open to others are refused, a spool file that is a
# link, a FIFO, a device or a hard link is refused before it is read, and
# the state directory is created with its owners and modes and refused
# (or repaired) when it is not; mlc-api's predict slot files are removed
# only when no slot in them is held, and never through a link; the local
# backend never reads a deployment's files through a link.  Checks
# that need another owner run as root only.
import fcntl
import grp
import io
import os
import pwd
import shutil
import signal
import socket
import stat
import struct
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t  # noqa: E402

from mlcpy import config, layout, safefs, slots  # noqa: E402

ROOT = os.geteuid() == 0
NOBODY = pwd.getpwnam("nobody")
BASE = tempfile.mkdtemp(prefix="mlc-safefs.")
os.chmod(BASE, 0o755)
t.defer(lambda: os.system("rm -rf --one-file-system '%s'" % BASE))


def mk(path, data=b"x", mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def fresh(name):
    """A new top directory (the anchor, like MLC_VAR) and, outside it, a
    canary directory holding files that must survive."""
    top = os.path.join(BASE, name)
    os.mkdir(top, 0o755)
    canary = os.path.join(BASE, name + ".canary")
    mk(os.path.join(canary, "keep.txt"), b"canary")
    mk(os.path.join(canary, "sub", "keep2.txt"), b"canary2")
    return top, canary


def intact(canary):
    try:
        with open(os.path.join(canary, "keep.txt"), "rb") as a, \
                open(os.path.join(canary, "sub", "keep2.txt"), "rb") as b:
            return a.read() == b"canary" and b.read() == b"canary2"
    except OSError:
        return False


def raises(fn, *args, **kw):
    try:
        fn(*args, **kw)
        return "no exception"
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)


# ---- rmtree -----------------------------------------------------------------

top, canary = fresh("rm1")
tree = os.path.join(top, "deployments", "dep")
mk(os.path.join(tree, "model.pkl"))
mk(os.path.join(tree, "a", "b", "c", "deep.txt"))
os.symlink(canary, os.path.join(tree, "to-dir"))
os.symlink(os.path.join(canary, "keep.txt"), os.path.join(tree, "a", "to-file"))
os.symlink(canary, os.path.join(tree, "a", "b", "to-dir2"))
os.mkfifo(os.path.join(tree, "fifo"))
s = socket.socket(socket.AF_UNIX)
s.bind(os.path.join(tree, "runtime.sock"))
s.close()
safefs.rmtree(tree, top)
t.ok(not os.path.lexists(tree) and os.path.isdir(os.path.join(top, "deployments")),
     "rmtree: a tree with files, nested directories, links, a FIFO and a socket is removed")
t.ok(intact(canary), "rmtree: targets of symbolic links inside the tree are untouched")

os.symlink(canary, os.path.join(top, "deployments", "linked"))
safefs.rmtree(os.path.join(top, "deployments", "linked"), top)
t.ok(not os.path.lexists(os.path.join(top, "deployments", "linked")) and intact(canary),
     "rmtree: a path that is itself a symbolic link loses the link, not its target")

os.rename(os.path.join(top, "deployments"), os.path.join(top, "deployments.real"))
os.symlink(canary, os.path.join(top, "deployments"))
got = raises(safefs.rmtree, os.path.join(top, "deployments", "sub"), top, ignore_errors=True)
t.like(got, r"^Unsafe: .*/rm1/deployments is a symbolic link \(to .*rm1\.canary\), not a "
       r"directory", "rmtree: a symbolic link on the way (deployments -> elsewhere) is refused, "
       "even with ignore_errors")
t.ok(intact(canary), "rmtree: nothing behind the symbolic link on the way was removed")
got = raises(safefs.unlink, os.path.join(top, "deployments", "keep.txt"), top)
t.like(got, r"^Unsafe: .* is a symbolic link", "unlink: the same refusal")
t.ok(intact(canary), "unlink: the file behind the link is still there")
os.unlink(os.path.join(top, "deployments"))
os.rename(os.path.join(top, "deployments.real"), os.path.join(top, "deployments"))

t.is_(raises(safefs.rmtree, os.path.join(top, "deployments", "nothing"), top), "no exception",
      "rmtree: a missing path is not an error")
t.like(raises(safefs.rmtree, os.path.join(BASE, "elsewhere"), top), r"^ValueError: .*not below",
       "rmtree: a path outside the anchor is refused")

os.chmod(os.path.join(top, "deployments"), 0o777)
mk(os.path.join(top, "deployments", "x", "f"))
t.like(raises(safefs.rmtree, os.path.join(top, "deployments", "x"), top),
       r"^Unsafe: .*/deployments is writable by others \(mode 0777\)",
       "rmtree: a directory on the way that others may write to is refused")
os.chmod(os.path.join(top, "deployments"), 0o1777)
safefs.rmtree(os.path.join(top, "deployments", "x"), top)
t.ok(not os.path.exists(os.path.join(top, "deployments", "x")),
     "rmtree: ... unless it is sticky (others cannot rename what is not theirs)")
os.chmod(os.path.join(top, "deployments"), 0o755)
os.chmod(top, 0o757)
t.like(raises(safefs.rmtree, os.path.join(top, "deployments", "x"), top),
       r"^Unsafe: .*/rm1 is writable by others", "rmtree: an anchor open to others is refused")
os.chmod(top, 0o755)

deep = os.path.join(top, "deployments", "deep")
p = deep
for i in range(150):
    p = os.path.join(p, "d")
os.makedirs(p)
mk(os.path.join(p, "bottom.txt"))
os.symlink(canary, os.path.join(p, "link"))
safefs.rmtree(deep, top)
t.ok(not os.path.lexists(deep) and intact(canary),
     "rmtree: 150 nested directories go (deeper than MAX_DEPTH is moved up, not recursed)")

if ROOT:
    os.chown(os.path.join(top, "deployments"), NOBODY.pw_uid, NOBODY.pw_gid)
    mk(os.path.join(top, "deployments", "y", "f"))
    t.like(raises(safefs.rmtree, os.path.join(top, "deployments", "y"), top),
           r"^Unsafe: .*/deployments is owned by uid 65534 \(nobody\), not uid 0 \(root\)",
           "rmtree: a directory on the way owned by another user is refused, naming both")
    t.ok(os.path.exists(os.path.join(top, "deployments", "y", "f")), "rmtree: ... and kept")
    os.chown(os.path.join(top, "deployments"), 0, 0)
    # What a runtime leaves in its directory is removed whoever owns it.
    own = os.path.join(top, "deployments", "y", "runtime-made")
    mk(os.path.join(own, "f"))
    os.chown(own, NOBODY.pw_uid, NOBODY.pw_gid)
    os.chmod(own, 0o500)
    safefs.rmtree(os.path.join(top, "deployments", "y"), top)
    t.ok(not os.path.exists(os.path.join(top, "deployments", "y")),
         "rmtree: entries of another owner inside the tree are removed (read-only ones too)")
else:
    t.skip("rmtree: directories of another owner", "needs root")

# A tree whose directories are swapped for symbolic links to the canary
# while it is being removed (what a runtime still running could do).
top2, canary2 = fresh("race")
stop = threading.Event()


def swapper(root):
    n = 0
    while not stop.is_set():
        for i in range(5):
            d = os.path.join(root, "d%d" % i)
            try:
                os.rename(d, d + ".x")
                os.symlink(canary2, d)
                os.unlink(d)
                os.rename(d + ".x", d)
            except OSError:
                pass
        n += 1
    return n


for round_ in range(30):
    root = os.path.join(top2, "t%d" % round_)
    for i in range(5):
        for j in range(20):
            mk(os.path.join(root, "d%d" % i, "e%d" % j, "f"))
    stop.clear()
    th = threading.Thread(target=swapper, args=(root,))
    th.start()
    safefs.rmtree(root, top2, ignore_errors=True)
    stop.set()
    th.join()
    safefs.rmtree(root, top2, ignore_errors=True)
t.ok(intact(canary2) and os.listdir(top2) == [],
     "rmtree: directories swapped for symbolic links during removal: the targets are "
     "untouched (30 rounds)", os.listdir(top2))

# ---- open_file: what the spool may hand in -------------------------------------

spool = os.path.join(BASE, "spool")
os.mkdir(spool)
regular = mk(os.path.join(spool, "regular.tar.gz"))
fd = safefs.open_file(regular)
t.ok(stat.S_ISREG(os.fstat(fd).st_mode), "open_file: a regular file opens")
os.close(fd)
target = mk(os.path.join(BASE, "root-file"), b"secret", 0o600)
os.symlink(target, os.path.join(spool, "link.tar.gz"))
t.like(raises(safefs.open_file, os.path.join(spool, "link.tar.gz")),
       r"^Unsafe: link\.tar\.gz is a symbolic link \(to .*root-file\), not a regular file",
       "open_file: a symbolic link is refused, naming its target")
os.mkfifo(os.path.join(spool, "fifo.tar.gz"))
signal.alarm(10)  # a FIFO opened for reading would block: fail loudly instead
t.like(raises(safefs.open_file, os.path.join(spool, "fifo.tar.gz")),
       r"^Unsafe: fifo\.tar\.gz is a FIFO, not a regular file",
       "open_file: a FIFO is refused without blocking")
signal.alarm(0)
os.link(target, os.path.join(spool, "hard.tar.gz"))
t.like(raises(safefs.open_file, os.path.join(spool, "hard.tar.gz")),
       r"^Unsafe: hard\.tar\.gz has 2 hard links",
       "open_file: a hard link to another file is refused")
os.mkdir(os.path.join(spool, "dir.tar.gz"))
t.like(raises(safefs.open_file, os.path.join(spool, "dir.tar.gz")),
       r"^Unsafe: dir\.tar\.gz is a directory", "open_file: a directory is refused")
if ROOT:
    os.mknod(os.path.join(spool, "dev.tar.gz"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    t.like(raises(safefs.open_file, os.path.join(spool, "dev.tar.gz")),
           r"^Unsafe: dev\.tar\.gz is a character device", "open_file: a device is refused")
    other = mk(os.path.join(spool, "other.tar.gz"))
    os.chown(other, NOBODY.pw_uid, NOBODY.pw_gid)
    t.like(raises(safefs.open_file, other, {0}),
           r"^Unsafe: other\.tar\.gz is owned by uid 65534 \(nobody\), not uid 0 \(root\)",
           "open_file: a file of an unexpected owner is refused")
else:
    t.skip("open_file: devices and owners", "needs root")
with open(target, "rb") as f:
    t.is_(f.read(), b"secret", "open_file: the link and hard link targets are unchanged")

# ---- layout ---------------------------------------------------------------------


def cfg_for(var, **more):
    values = {"MLC_VAR": var, "MLC_SERVICE_USER": "nobody", "MLC_WEB_GROUP": "nogroup"}
    values.update(more)
    return config.Config(values, "/nonexistent", {})


def owner_mode(path):
    st = os.lstat(path)
    return "%d:%d %04o" % (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))


if ROOT:
    lroot, lcanary = fresh("layout")
    var = os.path.join(lroot, "var")
    lay = layout.Layout(cfg_for(var))
    changes = lay.ensure(start=True)
    nb = "%d:%d" % (NOBODY.pw_uid, NOBODY.pw_gid)
    want = {"": "0:0 0755", "spool": "0:0 0755", "spool/tmp": nb + " 0750",
            "spool/new": nb + " 0750", "spool/cur": "0:0 0700", "spool/rejected": "0:0 0700",
            "deployments": "0:0 0755", "training": "0:0 0755", "run": "0:0 0755",
            "run/training": "0:0 0700", "run/slots": nb + " 0700", "log": "0:0 0755", "log/service": nb + " 0750",
            "api": nb + " 0750", "drift-cache": nb + " 0700",
            "kubernetes": "0:0 0700", "mlsysops": "0:0 0700",
            "bundles": "0:%d 0750" % grp.getgrnam("nogroup").gr_gid,
            "artifacts": nb + " 2750"}
    got = {k: owner_mode(os.path.join(var, k) if k else var) for k in want}
    t.is_(got, want, "layout: a new state directory gets the owners and modes of the table")
    t.is_(len(changes), len(want), "layout: each directory created is reported")
    t.is_(lay.ensure(), [], "layout: a second pass changes nothing")

    for name, mess, pattern in [
            ("deployments", "symlink", r"/var/deployments is a symbolic link \(to .*canary"),
            ("run", "symlink", r"/var/run is a symbolic link"),
            ("log", "symlink", r"/var/log is a symbolic link"),
            ("spool/cur", "symlink", r"/var/spool/cur is a symbolic link"),
            ("spool", "symlink", r"/var/spool is a symbolic link"),
            ("deployments", "nobody", r"/var/deployments is owned by uid 65534 \(nobody\)"),
            ("run/training", "0777", r"/var/run/training is writable by others"),
            ("spool/new", "0777", r"/var/spool/new is writable by others"),
            ("training", "file", r"/var/training is a regular file, not a directory")]:
        path = os.path.join(var, name)
        os.rename(path, path + ".real")
        if mess == "symlink":
            os.symlink(lcanary, path)
        elif mess == "file":
            mk(path)
        else:
            os.mkdir(path)
            if mess == "nobody":
                os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
            else:
                os.chmod(path, int(mess, 8))
        t.like(raises(lay.ensure), r"^Unsafe: .*" + pattern,
               "layout: %s that is %s is refused" % (name, {
                   "symlink": "a symbolic link", "nobody": "owned by another user",
                   "file": "a file"}.get(mess, "mode " + mess)))
        t.ok(intact(lcanary), "layout: ... and nothing behind it changed")
        if mess == "symlink" or mess == "file":
            os.unlink(path)
        else:
            os.rmdir(path)
        os.rename(path + ".real", path)
    t.is_(lay.ensure(), [], "layout: put back, the directory is accepted again")

    # repair: an old layout owned by the service user, and a store of 0644 files
    for k in ("", "spool", "spool/cur", "run", "log"):
        os.chown(os.path.join(var, k) if k else var, NOBODY.pw_uid, NOBODY.pw_gid)
    os.chmod(os.path.join(var, "log"), 0o775)
    store = os.path.join(var, "artifacts")
    os.chown(store, 0, 0)
    os.chmod(store, 0o755)
    art = mk(os.path.join(store, "m1", "v1-data.csv"), b"a,b\n", 0o644)
    os.chmod(os.path.dirname(art), 0o755)
    outside = mk(os.path.join(lroot, "outside.txt"), b"o", 0o644)
    os.symlink(outside, os.path.join(store, "m1", "link"))
    linked = mk(os.path.join(lroot, "linked.txt"), b"l", 0o644)
    os.link(linked, os.path.join(store, "m1", "hard"))
    t.like(raises(lay.ensure, start=True), r"^Unsafe: .*/var is owned by uid 65534 \(nobody\)",
           "layout: the old layout (MLC_VAR the service user's) is refused at start")
    changes = lay.ensure(repair=True)
    got = {k: owner_mode(os.path.join(var, k) if k else var) for k in want}
    t.is_(got, want, "layout: --prepare repairs owners and modes", changes)
    t.is_([owner_mode(art), owner_mode(os.path.dirname(art))], [nb + " 0640", nb + " 2750"],
          "layout: --prepare brings the store's files to 0640 and directories to 2750")
    t.is_([owner_mode(outside), owner_mode(linked)], ["0:0 0644", "0:0 0644"],
          "layout: --prepare follows no symbolic link and changes no hard-linked file")
    t.ok(any("1 directories and 1 files" in c for c in changes), "layout: ... and says so",
         changes)

    os.chown(var, NOBODY.pw_uid, NOBODY.pw_gid)
    os.symlink(lcanary, os.path.join(var, "spool", "new.x"))
    os.rename(os.path.join(var, "spool", "new"), os.path.join(var, "spool", "new.real"))
    os.rename(os.path.join(var, "spool", "new.x"), os.path.join(var, "spool", "new"))
    t.like(raises(lay.ensure, repair=True), r"^Unsafe: .*/spool/new is a symbolic link",
           "layout: --prepare never repairs a symbolic link")
    t.ok(intact(lcanary) and os.stat(lcanary).st_uid == 0,
         "layout: ... and does not chown its target")

    # MLC_VAR inside a directory of the service user: it could replace it.
    above = os.path.join(lroot, "svc-home")
    os.mkdir(above)
    os.chown(above, NOBODY.pw_uid, NOBODY.pw_gid)
    lay2 = layout.Layout(cfg_for(os.path.join(above, "var")))
    t.like(raises(lay2.ensure, start=True),
           r"^Unsafe: .*/svc-home, above MLC_VAR, is owned by uid 65534 \(nobody\)",
           "layout: a directory above MLC_VAR owned by the service user is refused")
    t.ok(not os.path.exists(os.path.join(above, "var")), "layout: ... before creating anything")
    lay3 = layout.Layout(cfg_for(os.path.join(lroot, "v3"), MLC_SERVICE_USER="no-such-user-x"))
    t.like(" ".join(lay3.notes), r"MLC_SERVICE_USER 'no-such-user-x' does not exist",
           "layout: an unknown service user is said, and root keeps the intake")
else:
    t.skip("layout", "needs root (owners)")

# ---- predict slot files (slots.py): removed only when no slot is held ----
sroot, scanary = fresh("slots")
sdir = os.path.join(sroot, "run", "slots")
os.makedirs(sdir, 0o755)
os.chmod(sdir, 0o700)
for dep in ("free", "held", "other"):
    mk(os.path.join(sdir, "predict-" + dep), b"", 0o600)
os.symlink(os.path.join(scanary, "keep.txt"), os.path.join(sdir, "predict-link"))
os.mkfifo(os.path.join(sdir, "predict-fifo"))
t.is_(sorted(slots.deployments(sroot)), ["fifo", "free", "held", "link", "other"],
      "slots: the deployments with a slot file")
held = os.open(os.path.join(sdir, "predict-held"), os.O_RDWR)
fcntl.fcntl(held, fcntl.F_OFD_SETLK,
            struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 3, 1, 0).ljust(32, b"\0"))
t.is_([slots.remove(sroot, d) for d in ("free", "held", "link", "fifo", "gone", "../x")],
      ["removed", "busy", "left", "left", "absent", "left"],
      "slots: a free file is removed; one whose slot a call holds, a link, a FIFO are left")
t.ok(intact(scanary), "slots: the link's target is untouched")
os.close(held)
t.is_(slots.remove(sroot, "held"), "removed", "slots: the held one goes once the slot is given back")
t.is_(sorted(os.listdir(sdir)), ["predict-fifo", "predict-link", "predict-other"],
      "slots: only those files went")
os.rename(sdir, sdir + ".real")
os.symlink(sdir + ".real", sdir)
t.like(raises(slots.remove, sroot, "other"), r"^Unsafe: .*run/slots is a symbolic link",
       "slots: a slots directory that is a symbolic link is refused")

# ---- the local backend's look at a deployment's files ------------------------
# The spooler checks its state directories when a pass begins; one replaced
# by a link (or moved away) while the pass runs must not read as "the
# deployment's files are gone", which fails a deployment whose runtime
# serves on.
from mlcpy import backend, backend_local  # noqa: E402

ovar = tempfile.mkdtemp(prefix="t0014-observe.")
os.chmod(ovar, 0o755)
ocfg = config.load(None, dict(os.environ, MLC_VAR=ovar))
lb = backend_local.LocalBackend(ocfg)
deps = ocfg.deployments
os.makedirs(os.path.join(deps, "d1"), mode=0o755)
with open(os.path.join(deps, "d1", "model.pkl"), "wb") as f:
    f.write(b"pickle")
t.ok(isinstance(lb.observe("d1"), backend.Absent),
     "observe: a deployment with its model and no runtime recorded is Absent")
t.ok(isinstance(lb.observe("d2"), backend.Missing),
     "observe: a deployment without a directory is Missing (its files are gone)")
elsewhere = tempfile.mkdtemp(prefix="t0014-elsewhere.")
os.makedirs(os.path.join(elsewhere, "d1"))
os.rename(deps, deps + ".real")
os.symlink(elsewhere, deps)
t.like(raises(lb.observe, "d1"), r"^Unsafe: .*deployments is a symbolic link",
       "observe: deployments/ replaced by a link is refused, not Missing")
os.unlink(deps)
t.like(raises(lb.observe, "d1"), r"^FileNotFoundError",
       "observe: deployments/ moved away is an error (looked at again), not Missing")
os.rename(deps + ".real", deps)
os.rename(os.path.join(deps, "d1"), os.path.join(deps, "d1.real"))
os.symlink(os.path.join(elsewhere, "d1"), os.path.join(deps, "d1"))
t.like(raises(lb.observe, "d1"), r"^Unsafe: .*d1 is a symbolic link",
       "observe: a deployment directory that is a link is refused, not followed")
os.unlink(os.path.join(deps, "d1"))
os.rename(os.path.join(deps, "d1.real"), os.path.join(deps, "d1"))
t.ok(isinstance(lb.observe("d1"), backend.Absent), "observe: put back, it is Absent again")
shutil.rmtree(ovar, ignore_errors=True)
shutil.rmtree(elsewhere, ignore_errors=True)

t.done()
