#!/usr/bin/python3
# mlcpy.bundle without an instance: spool bundle names and the job-id rule
# (against the examples the C rule is tested against too,
# t/fixtures/deployment-ids.txt and t/unit/test-ids.c), hostile members
# refused before anything is written outside the bundle's directory, a
# bundle that is a link refused unread, the size cap, and job.json checked
# against what the bundle holds.
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t  # noqa: E402

from mlcpy import bundle  # noqa: E402

BASE = tempfile.mkdtemp(prefix="mlc-bundle.")
t.defer(lambda: os.system("rm -rf --one-file-system '%s'" % BASE))


def raises(fn, *args, **kw):
    try:
        fn(*args, **kw)
        return "no exception"
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)


# ---- deployment ids: one rule, one fixture ------------------------------------------

examples = []
with open(os.path.join(HERE, "fixtures", "deployment-ids.txt"), encoding="utf-8") as f:
    for line in f.read().split("\n"):
        if line and not line.startswith("#"):
            verdict, _, dep_id = line.partition("\t")
            examples.append((verdict == "ok", dep_id))
t.ok(len(examples) > 20, "the shared fixture has examples (%d)" % len(examples))
wrong = [d for want, d in examples if bool(bundle.ID_RE.match(d)) != want]
t.is_(wrong, [], "bundle.ID_RE agrees with every example of t/fixtures/deployment-ids.txt")
wrong = [d for want, d in examples
         if (bundle.parse_name("deploy-%s.tar.gz" % d) == ("deploy", d)) != want]
t.is_(wrong, [], "a spool bundle name holds an id exactly when the id follows the rule")
t.is_([bundle.parse_name(n) for n in ("deploy-..tar.gz", "deploy-...tar.gz", "deploy-.x.tar.gz",
                                       "deploy-x.tar.gz\n", "train-x/y.tar.gz")],
      [None] * 5, "dot names, a trailing newline and slashes are no bundle names")

# ---- members --------------------------------------------------------------------


def tar_with(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    return path


def member(name, type_=tarfile.REGTYPE, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = type_
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


bdir = os.path.join(BASE, "bundles")
os.mkdir(bdir)
for title, ti, data, pattern in [
        ("a character device", member("model.pkl", tarfile.CHRTYPE, devmajor=1, devminor=3),
         None, r"member 'model\.pkl' is a device"),
        ("a block device", member("model.pkl", tarfile.BLKTYPE, devmajor=8, devminor=0),
         None, r"member 'model\.pkl' is a device"),
        ("a FIFO", member("model.pkl", tarfile.FIFOTYPE), None, r"is a fifo"),
        ("a hard link", member("model.pkl", tarfile.LNKTYPE, linkname="/etc/passwd"), None,
         r"is a hard link"),
        ("a symbolic link", member("data.csv", tarfile.SYMTYPE, linkname="/etc/shadow"), None,
         r"is a symbolic link"),
        ("a directory", member("sub", tarfile.DIRTYPE), None, r"is a directory"),
        ("a '..' name", member("../escape"), b"x", r"not a plain top-level file name"),
        ("an absolute name", member(os.path.join(BASE, "escape")), b"x",
         r"not a plain top-level file name"),
        ("a nested", member("sub/model.pkl"), b"x", r"not a plain top-level file name"),
        ("a code.py (no deploy file)", member("code.py"), b"x",
         r"member 'code\.py' does not belong in this bundle")]:
    path = tar_with(os.path.join(bdir, "deploy-x.tar.gz"), [(ti, data)])
    dest = os.path.join(bdir, "out")
    got = raises(bundle.unpack, path, dest, "deploy", "x", 1 << 20)
    t.like(got, r"^BundleError: bundle rejected: .*" + pattern, "bundle: %s member is rejected"
           % title)
    os.unlink(path)
t.ok(not os.path.exists(os.path.join(bdir, "out")) and not os.path.exists(
     os.path.join(BASE, "escape")) and not os.path.exists(os.path.join(BASE, "..", "escape")),
     "bundle: nothing is left behind or written outside")

good = tar_with(os.path.join(BASE, "real.tar.gz"), [(member("job.json"), b"{}")])
os.symlink(good, os.path.join(bdir, "deploy-y.tar.gz"))
got = raises(bundle.unpack, os.path.join(bdir, "deploy-y.tar.gz"), os.path.join(bdir, "out"),
             "deploy", "y", 1 << 20)
t.like(got, r"^BundleError: bundle rejected: deploy-y\.tar\.gz is a symbolic link \(to ",
       "bundle: a bundle that is a symbolic link is rejected before it is read")
os.link(good, os.path.join(bdir, "deploy-z.tar.gz"))
got = raises(bundle.unpack, os.path.join(bdir, "deploy-z.tar.gz"), os.path.join(bdir, "out"),
             "deploy", "z", 1 << 20)
t.like(got, r"^BundleError: bundle rejected: deploy-z\.tar\.gz has 2 hard links",
       "bundle: a bundle with a second hard link is rejected")
t.ok(os.path.isfile(good) and not os.path.exists(os.path.join(bdir, "out")),
     "bundle: the link targets stay, no output directory")

# ---- well-formed bundles and job.json --------------------------------------------


def job_bundle(name, files, job=None, extra=()):
    """A bundle at BASE/name of files {member: bytes} with a job.json
    describing them as a deploy job (job overrides its fields); extra
    members are added unlisted."""
    kinds = {"model.pkl": "model", "data.csv": "data", "requirements.txt": "env",
             "code.py": "code"}
    desc = {"type": "deploy", "deployment_id": "dep-1",
            "files": {kinds[n]: {"name": n, "sha256": hashlib.sha256(d).hexdigest(),
                                 "size": len(d)} for n, d in files.items()}}
    desc.update(job or {})
    members = [(member("job.json"), json.dumps(desc).encode())]
    members += [(member(n), d) for n, d in list(files.items()) + list(extra)]
    return tar_with(os.path.join(BASE, name), members)


def unpacked(path, kind="deploy", job_id="dep-1", max_total=1 << 20):
    dest = os.path.join(BASE, "out")
    got = raises(bundle.unpack, path, dest, kind, job_id, max_total)
    left = os.path.exists(dest)
    if left:
        os.system("rm -rf '%s'" % dest)
    return got, left


MODEL = b"\x80\x04K\x01."
dest = os.path.join(BASE, "good")
job = bundle.unpack(job_bundle("deploy-dep-1.tar.gz", {"model.pkl": MODEL, "data.csv": b"a\n1\n"}),
                    dest, "deploy", "dep-1", 1 << 20)
t.is_([job["deployment_id"], sorted(os.listdir(dest))], ["dep-1", ["data.csv", "job.json", "model.pkl"]],
      "a well-formed deploy bundle unpacks: job.json and the files it lists")
with open(os.path.join(dest, "model.pkl"), "rb") as f:
    t.is_(f.read(), MODEL, "the files are written as they were packed")
t.is_(oct(os.stat(dest).st_mode & 0o777), "0o755", "the unpacked directory is 0755")

for title, files, jobfields, extra, pattern in [
        ("a size over MLC_BUNDLE_MAX_SIZE", {"model.pkl": b"x" * 2000}, None, (),
         r"its files exceed 1024 bytes \(MLC_BUNDLE_MAX_SIZE\)"),
        ("job.json of another type", {"model.pkl": MODEL}, {"type": "train"}, (),
         r"job.json type is 'train' but the bundle is named as a 'deploy' job"),
        ("job.json of another id", {"model.pkl": MODEL}, {"deployment_id": "dep-2"}, (),
         r"job.json deployment_id 'dep-2' does not match the bundle name \('dep-1'\)"),
        ("no model listed", {"data.csv": b"a\n"}, None, (), r"job.json lists no model file"),
        ("a file that is not listed", {"model.pkl": MODEL}, None, [("data.csv", b"a\n")],
         r"unexpected member 'data\.csv' \(not listed in job.json\)"),
        ("a wrong SHA-256", {"model.pkl": MODEL},
         {"files": {"model": {"name": "model.pkl", "sha256": "0" * 64, "size": len(MODEL)}}}, (),
         r"'model\.pkl' does not match its SHA-256 in job.json"),
        ("a wrong size", {"model.pkl": MODEL},
         {"files": {"model": {"name": "model.pkl", "sha256": hashlib.sha256(MODEL).hexdigest(),
                              "size": 99}}}, (),
         r"'model\.pkl' has 5 bytes, job.json says 99"),
        ("a listed file that is missing", {"model.pkl": MODEL},
         {"files": {"model": {"name": "model.pkl", "sha256": hashlib.sha256(MODEL).hexdigest(),
                              "size": 5},
                    "data": {"name": "data.csv", "sha256": "0" * 64, "size": 1}}}, (),
         r"data file 'data\.csv' listed in job.json is missing"),
        ("a listed name another kind would carry", {"model.pkl": MODEL},
         {"files": {"model": {"name": "data.csv", "sha256": "0" * 64, "size": 1}}}, (),
         r"job.json files.model.name is 'data.csv'; a deploy bundle names it 'model.pkl'")]:
    got, left = unpacked(job_bundle("deploy-dep-1.tar.gz", files, jobfields, extra),
                         max_total=1024)
    t.like(got, r"^BundleError: bundle rejected: " + pattern, "bundle: %s is rejected" % title)
    t.ok(not left, "bundle: %s leaves no directory behind" % title)

twice = tar_with(os.path.join(BASE, "deploy-dep-1.tar.gz"),
                 [(member("model.pkl"), MODEL), (member("model.pkl"), MODEL)])
t.like(unpacked(twice)[0], r"member 'model\.pkl' appears twice", "bundle: a member twice is rejected")
with open(job_bundle("t.tar.gz", {"model.pkl": MODEL * 1000}), "rb") as f:
    whole = f.read()
for title, data in (("a file that is no archive", b"not gzip"), ("a truncated archive", whole[:60])):
    path = os.path.join(BASE, "deploy-dep-1.tar.gz")
    with open(path, "wb") as f:
        f.write(data)
    got, left = unpacked(path)
    t.like(got, r"^BundleError: bundle rejected: cannot read the archive",
           "bundle: %s is rejected as unreadable" % title)
    t.ok(not left, "bundle: %s leaves no directory behind" % title)
for path, job_text, pattern in (("nojob", None, r"it has no job.json"),
                                ("notjson", b"{", r"job.json is not valid JSON"),
                                ("list", b"[]", r"job.json is not a JSON object")):
    members = [(member("model.pkl"), MODEL)]
    if job_text is not None:
        members.append((member("job.json"), job_text))
    got, left = unpacked(tar_with(os.path.join(BASE, path), members))
    t.like(got, r"^BundleError: bundle rejected: " + pattern, "bundle: %s" % pattern.replace("\\", ""))
t.is_(sorted(bundle.members_of("train")), ["code.py", "data.csv", "job.json", "requirements.txt"],
      "a train bundle may hold job.json, code.py, data.csv, requirements.txt")
t.done()
