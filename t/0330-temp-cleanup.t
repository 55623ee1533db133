#!/usr/bin/python3
# Leftovers of dead requests in artifacts/.tmp and spool/tmp are removed by
# mlc-spooler on its timer (MLC_TMP_CLEAN_INTERVAL, 1 s under `mlc test`)
# once older than MLC_TMP_MAX_AGE; newer files stay, and nothing is
# followed: a symbolic link in those directories - to a file or to a
# directory elsewhere - is left alone and so is what it points at, and so
# are subdirectories.
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t

t.need_instance("MLC_VAR")
from mlcpy import tmpclean  # noqa: E402

var = os.environ["MLC_VAR"]
store = os.environ.get("MLC_ARTIFACTS") or os.path.join(var, "artifacts")
MAX_AGE = float(os.environ.get("MLC_TMP_MAX_AGE") or 3600)
OLD = time.time() - MAX_AGE - 600
dirs = {"artifacts/.tmp": os.path.join(store, ".tmp"), "spool/tmp": os.path.join(var, "spool", "tmp")}

outside = tempfile.mkdtemp(prefix="t0330-outside.", dir=var)
t.defer(shutil.rmtree, outside, True)
victim = os.path.join(outside, "precious")
with open(victim, "w") as f:
    f.write("keep me")
os.utime(victim, (OLD, OLD))
victim_dir = os.path.join(outside, "dir")
os.mkdir(victim_dir)
inner = os.path.join(victim_dir, "inner")
with open(inner, "w") as f:
    f.write("keep me too")
os.utime(inner, (OLD, OLD))

made = {}
for label, d in dirs.items():
    os.makedirs(d, exist_ok=True)
    tag = "t0330-%d" % os.getpid()
    names = {k: "%s-%s" % (tag, k) for k in ("old", "new", "link", "dirlink", "subdir")}
    old, new = os.path.join(d, names["old"]), os.path.join(d, names["new"])
    for p in (old, new):
        with open(p, "w") as f:
            f.write("leftover")
    os.utime(old, (OLD, OLD))
    os.symlink(victim, os.path.join(d, names["link"]))
    os.symlink(victim_dir, os.path.join(d, names["dirlink"]))
    os.mkdir(os.path.join(d, names["subdir"]))
    for k in ("link", "dirlink"):
        os.utime(os.path.join(d, names[k]), (OLD, OLD), follow_symlinks=False)
    os.utime(os.path.join(d, names["subdir"]), (OLD, OLD))
    made[label] = (d, names)
    for k in names:
        t.defer(lambda p=os.path.join(d, names[k]): (shutil.rmtree(p, True) if os.path.isdir(p)
                                                     and not os.path.islink(p) else
                                                     os.path.lexists(p) and os.unlink(p)))

deadline = time.time() + 30
while time.time() < deadline:
    if not any(os.path.exists(os.path.join(d, n["old"])) for d, n in made.values()):
        break
    time.sleep(0.2)
for label, (d, names) in made.items():
    t.ok(not os.path.lexists(os.path.join(d, names["old"])),
         "%s: a file older than MLC_TMP_MAX_AGE is removed by mlc-spooler's timer" % label)
    t.ok(os.path.isfile(os.path.join(d, names["new"])), "%s: a newer file stays" % label)
    t.ok(os.path.islink(os.path.join(d, names["link"])), "%s: an old symbolic link stays" % label)
    t.ok(os.path.islink(os.path.join(d, names["dirlink"])),
         "%s: an old symbolic link to a directory stays" % label)
    t.ok(os.path.isdir(os.path.join(d, names["subdir"])), "%s: a subdirectory stays" % label)
t.is_(open(victim).read(), "keep me", "the file the links point at is untouched")
t.is_(open(inner).read(), "keep me too", "so is the file in the directory a link points at")

# clean_dir itself: a temporary directory that is a symbolic link is not
# entered; entries are judged by lstat.
scratch = tempfile.mkdtemp(prefix="t0330-unit.", dir=var)
t.defer(shutil.rmtree, scratch, True)
os.symlink(outside, os.path.join(scratch, "tmp"))
t.is_(tmpclean.clean_dir(os.path.join(scratch, "tmp"), 0), ([], []),
      "clean_dir does not enter a directory that is a symbolic link")
t.ok(os.path.exists(victim) and os.path.exists(inner), "... and nothing behind it goes")
real = os.path.join(scratch, "real")
os.mkdir(real)
for n in ("a", "b"):
    with open(os.path.join(real, n), "w") as f:
        f.write("x")
os.utime(os.path.join(real, "a"), (OLD, OLD))
os.symlink(victim, os.path.join(real, "l"))
os.utime(os.path.join(real, "l"), (OLD, OLD), follow_symlinks=False)
removed, skipped = tmpclean.clean_dir(real, MAX_AGE)
t.is_((removed, skipped), (["a"], [("l", "a symbolic link")]),
      "clean_dir removes the old regular file and reports the old link it left")
t.is_(sorted(os.listdir(real)), ["b", "l"], "... leaving the new file and the link")
t.is_(tmpclean.clean_dir(os.path.join(scratch, "missing"), 0), ([], []),
      "a missing directory is nothing to clean")
t.done()
