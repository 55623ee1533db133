#!/usr/bin/python3
# mlcpy.spool without an instance: the spooler's reading of the spool
# mirrors app/spool.c, which writes a bundle as tmp/<name>.<pid> and
# publishes it as new/<name>.  A bundle being written by a live worker
# counts as on its way; one whose writer died, or a file that only looks
# like it, does not; a published or claimed bundle counts; claiming moves
# new/ -> cur/ once.
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t  # noqa: E402

from mlcpy import config, spool  # noqa: E402

BASE = tempfile.mkdtemp(prefix="mlc-spool.")
t.defer(lambda: os.system("rm -rf --one-file-system '%s'" % BASE))
cfg = config.load(os.path.join(HERE, ".."), {"MLC_VAR": BASE, "MLC_SPOOLER_ID": "",
                                              "PATH": os.environ.get("PATH", "")})
for d in spool.STATES:
    os.makedirs(spool.spool_path(cfg, d))

name = spool.bundle_name("deploy", "dep-1")
t.is_(name, "deploy-dep-1.tar.gz", "bundle_name: deploy-<id>.tar.gz, as app/deployments.c")
t.is_(spool.bundle_name("train", "x"), "train-x.tar.gz", "bundle_name: train-<id>.tar.gz")
t.is_(spool.tmp_owner(name + ".1234", name), 1234, "tmp_owner: <name>.<pid> is pid's")
for bad in (name, name + ".", name + ".12a", name + ".0", name + ".-1", name + ".12345678901",
            "deploy-dep-10.tar.gz.55", name + "x.5"):
    t.is_(spool.tmp_owner(bad, name), None, "tmp_owner: %r is not a temporary file of %s"
          % (bad, name))


def put(sub, fname):
    path = os.path.join(spool.spool_path(cfg, sub), fname)
    with open(path, "wb") as f:
        f.write(b"x")
    return path


t.ok(not spool.bundle_exists(cfg, name), "nothing in the spool: no bundle")

# The exact name in tmp/ is not what the API writes (that was the old check).
p = put("tmp", name)
t.ok(not spool.being_written(cfg, name), "tmp/<name> without .<pid> is not a bundle being written")
os.unlink(p)

# A live writer: a process started before the file was written.
writer = subprocess.Popen(["sleep", "60"])
t.defer(writer.kill)
time.sleep(0.05)
p = put("tmp", "%s.%d" % (name, writer.pid))
t.ok(spool.being_written(cfg, name) and spool.bundle_exists(cfg, name),
     "tmp/<name>.<pid> of a live writer: the bundle is on its way")
t.ok(not spool.being_written(cfg, spool.bundle_name("deploy", "dep-2")),
     "... and only for its own name")

# The writer dies (SIGKILL between COMMIT and publish): never published.
writer.kill()
writer.wait()
t.ok(not spool.being_written(cfg, name) and not spool.bundle_exists(cfg, name),
     "tmp/<name>.<pid> whose writer died: not on its way")
# A file older than the process now holding its pid: not that process's.
os.utime(p, (time.time() - 3600, time.time() - 3600))
os.rename(p, os.path.join(spool.spool_path(cfg, "tmp"), "%s.%d" % (name, os.getpid())))
t.ok(not spool.being_written(cfg, name),
     "tmp/<name>.<pid> written before the live process of that pid started: not its")
os.utime(os.path.join(spool.spool_path(cfg, "tmp"), "%s.%d" % (name, os.getpid())))
t.ok(spool.being_written(cfg, name), "... the same, written after it started: its")
os.unlink(os.path.join(spool.spool_path(cfg, "tmp"), "%s.%d" % (name, os.getpid())))

# Published, then claimed once.
put("new", name)
t.is_(spool.published(cfg, name), ["new"], "published: in new/")
t.ok(spool.bundle_exists(cfg, name), "a bundle in new/ exists")
t.is_(spool.names(cfg, "new"), [name], "names(new)")
dst = spool.claim_file(cfg, name)
t.is_(dst, os.path.join(BASE, "spool", "cur", name), "claim_file: new/ -> cur/")
t.is_(spool.claim_file(cfg, name), None, "claim_file again: None (taken)")
t.is_(spool.published(cfg, name), ["cur"], "claimed: in cur/")
t.ok(spool.reject(cfg, name, "cur") and spool.published(cfg, name, spool.STATES) == ["rejected"],
     "reject: cur/ -> rejected/")

t.is_(spool.spooler_id(cfg), __import__("socket").gethostname()[:128],
      "spooler_id: the host name by default")
cfg2 = config.load(os.path.join(HERE, ".."), {"MLC_VAR": BASE, "MLC_SPOOLER_ID": "s-a"})
t.is_(spool.spooler_id(cfg2), "s-a", "spooler_id: MLC_SPOOLER_ID")
t.done()
