#!/usr/bin/python3
# Property tests of the spool bundle reader (scripts/mlcpy/bundle.py), no
# instance needed: random archives with hostile members - symbolic and hard
# links, ../ and absolute names, devices, FIFOs, directories, sizes far
# beyond the data, truncated and corrupted streams, bad job.json - are
# unpacked with bundle.unpack.  Whatever the archive, the reader either
# returns a job whose files are all regular files it verified, or raises
# bundle.BundleError (and removes what it extracted); it never writes
# outside its directory and never raises anything else.  Example counts are
# bounded (MLC_PROP_EXAMPLES, default 400) so that it takes seconds.
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t  # noqa: E402

# Hypothesis keeps caches in ./.hypothesis unless told otherwise: not in the tree.
_hypothesis_dir = tempfile.mkdtemp(prefix="mlc-hypothesis.")
t.defer(shutil.rmtree, _hypothesis_dir, True)
os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = _hypothesis_dir
try:
    from hypothesis import HealthCheck, given, settings, strategies as st
except ImportError:
    t.skip_all("needs the Debian package python3-hypothesis")
from mlcpy import bundle  # noqa: E402

EXAMPLES = int(os.environ.get("MLC_PROP_EXAMPLES") or 400)
MAX_TOTAL = 1 << 20
BASE = tempfile.mkdtemp(prefix="mlc-bundle-props.")
t.defer(shutil.rmtree, BASE, True)
OUTSIDE = os.path.join(BASE, "outside")
os.mkdir(OUTSIDE)
with open(os.path.join(OUTSIDE, "keep"), "wb") as fh:
    fh.write(b"keep")
WORK = os.path.join(BASE, "work")
os.mkdir(WORK)

# Names an attacker would try, next to the ones a bundle may hold.
NAMES = ["job.json", "model.pkl", "data.csv", "requirements.txt", "code.py", "extra.bin",
         "../outside/pwned", "../../outside/pwned", OUTSIDE + "/pwned", "/outside/pwned",
         "./model.pkl", "model.pkl/", "sub/model.pkl", "..", ".", "", "a" * 300,
         "model.pkl\\..\\x", "mod\u00e9l.pkl", ".job.json", "-rf", "model.pkl/../../x"]
LINKS = [OUTSIDE + "/keep", "../outside/keep", "../../outside/keep", "model.pkl", "/etc/passwd",
         "job.json", "", ".", OUTSIDE]
TYPES = [tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE,
         tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE, b"S", b"x", b"Z"]

member = st.fixed_dictionaries({
    "name": st.one_of(st.sampled_from(NAMES), st.text(min_size=0, max_size=40)),
    "type": st.sampled_from(TYPES),
    "link": st.sampled_from(LINKS),
    "data": st.binary(max_size=300),
    # The declared size: the data's, or a lie (larger, far larger, smaller).
    "size": st.one_of(st.none(), st.integers(min_value=0, max_value=1 << 40)),
    "mode": st.sampled_from([0o644, 0o755, 0o4755, 0o777, 0]),
})


def job_json(files, kind, job_id, spoil):
    """A job.json that lists the regular members honestly, then maybe
    spoiled in one of many ways."""
    listed = {}
    keys = {v: k for k, v in bundle.TYPES[kind]["files"].items()}
    for name, data in files.items():
        if name in keys:
            listed[keys[name]] = {"name": name, "sha256": hashlib.sha256(data).hexdigest(),
                                  "size": len(data), "version": 1}
    job = {"type": kind, bundle.TYPES[kind]["id"]: job_id, "files": listed}
    if spoil == "type":
        job["type"] = "train" if kind == "deploy" else "deploy"
    elif spoil == "id":
        job[bundle.TYPES[kind]["id"]] = "../" + job_id
    elif spoil == "files-list":
        job["files"] = list(listed.values())
    elif spoil == "size" and listed:
        next(iter(listed.values()))["size"] = -1
    elif spoil == "size-bool" and listed:
        next(iter(listed.values()))["size"] = True
    elif spoil == "sha" and listed:
        next(iter(listed.values()))["sha256"] = "0" * 64
    elif spoil == "name" and listed:
        next(iter(listed.values()))["name"] = "../model.pkl"
    elif spoil == "unknown-kind":
        job["files"]["weights"] = {"name": "weights.bin", "sha256": "0" * 64, "size": 0}
    elif spoil == "not-object":
        return b"[1, 2, 3]"
    elif spoil == "not-json":
        return b"{\"type\": \"deploy\", "
    elif spoil == "not-utf8":
        return b"{\"type\": \"\xff\xfe\"}"
    elif spoil == "deep":
        return b"[" * 100000 + b"]" * 100000
    elif spoil == "huge-number":
        return b"{\"type\": \"deploy\", \"files\": {\"model\": {\"size\": 1e999999}}}"
    return json.dumps(job).encode()


bundle_spec = st.fixed_dictionaries({
    "kind": st.sampled_from(["deploy", "train"]),
    "honest": st.lists(st.sampled_from(["model.pkl", "data.csv", "requirements.txt", "code.py"]),
                       max_size=4, unique=True),
    "honest_data": st.binary(max_size=200),
    "job_first": st.booleans(),
    "spoil": st.sampled_from([None, None, None, "type", "id", "files-list", "size", "size-bool",
                              "sha", "name", "unknown-kind", "not-object", "not-json", "not-utf8",
                              "deep", "huge-number", "no-job"]),
    "hostile": st.one_of(st.just([]), st.lists(member, max_size=4)),
    "hostile_at": st.integers(min_value=0, max_value=8),
    "format": st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
    "end": st.sampled_from(["blocks", "none", "truncate"]),
    "cut": st.integers(min_value=0, max_value=4000),
    "flips": st.one_of(st.just([]), st.lists(st.tuples(st.integers(min_value=0, max_value=1 << 16),
                                                       st.integers(min_value=1, max_value=255)),
                                             max_size=3)),
    "compress": st.sampled_from(["gzip", "gzip", "gzip", "none", "gzip-flipped"]),
})


def header(ti, fmt):
    try:
        return ti.tobuf(fmt, "utf-8", "surrogateescape")
    except (ValueError, UnicodeError, tarfile.TarError):
        return None


def archive(spec, job_id):
    """The bytes of a bundle built from spec: honest members, a job.json,
    hostile members spliced in, then truncation and corruption."""
    fmt, kind = spec["format"], spec["kind"]
    files = {n: spec["honest_data"] + n.encode() for n in spec["honest"]}
    entries = [(n, tarfile.REGTYPE, "", d, None, 0o644) for n, d in files.items()]
    if spec["spoil"] != "no-job":
        job = ("job.json", tarfile.REGTYPE, "", job_json(files, kind, job_id, spec["spoil"]), None, 0o644)
        entries.insert(0 if spec["job_first"] else len(entries), job)
    at = min(spec["hostile_at"], len(entries))
    entries[at:at] = [(m["name"], m["type"], m["link"], m["data"], m["size"], m["mode"])
                      for m in spec["hostile"]]
    out = bytearray()
    for name, typ, link, data, size, mode in entries:
        ti = tarfile.TarInfo(name)
        ti.type, ti.linkname, ti.mode = typ, link, mode
        ti.size = len(data) if size is None else size
        if typ not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE) and size is None:
            ti.size = 0
        buf = header(ti, fmt)
        if buf is None:  # a size or name this format cannot carry
            ti.size = len(data)
            buf = header(ti, tarfile.PAX_FORMAT)
        if buf is None:
            continue
        out += buf
        if ti.size:
            body = data[:ti.size]
            out += body + b"\0" * ((-len(body)) % tarfile.BLOCKSIZE)
    if spec["end"] == "blocks":
        out += b"\0" * (2 * tarfile.BLOCKSIZE)
    elif spec["end"] == "truncate" and out:
        del out[max(0, len(out) - spec["cut"]):]
    for pos, x in spec["flips"]:
        if spec["compress"] != "gzip-flipped" and out:
            out[pos % len(out)] ^= x
    if spec["compress"] == "none":
        return bytes(out)
    z = bytearray(gzip.compress(bytes(out), compresslevel=1))
    if spec["compress"] == "gzip-flipped":
        for pos, x in spec["flips"]:
            z[pos % len(z)] ^= x
    return bytes(z)


def snapshot(top):
    """Every path below top with its type and content digest."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            s = os.lstat(p)
            digest = None
            if stat.S_ISREG(s.st_mode):
                with open(p, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
            out[p] = (stat.S_IFMT(s.st_mode), digest)
    return out


counter = [0]
stats = {"ok": 0, "refused": 0}
before = snapshot(BASE)


@settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bundle_spec)
def unpack_is_safe(spec):
    counter[0] += 1
    job_id = "job%d" % counter[0]
    path = os.path.join(WORK, "%s-%s.tar.gz" % (spec["kind"], job_id))
    dest = os.path.join(WORK, "dest-" + job_id)
    with open(path, "wb") as fh:
        fh.write(archive(spec, job_id))
    try:
        job = bundle.unpack(path, dest, spec["kind"], job_id, MAX_TOTAL, top=WORK)
    except bundle.BundleError as e:
        assert str(e), "a BundleError without a reason"
        assert not os.path.lexists(dest), "a refused bundle left %s behind" % dest
        stats["refused"] += 1
    else:
        stats["ok"] += 1
        assert isinstance(job, dict)
        names = set(os.listdir(dest))
        assert names <= bundle.members_of(spec["kind"]), names
        for n in names:
            s = os.lstat(os.path.join(dest, n))
            assert stat.S_ISREG(s.st_mode) and s.st_nlink == 1, (n, s)
            assert not s.st_mode & (stat.S_ISUID | stat.S_ISGID), (n, oct(s.st_mode))
        for spec_of in job["files"].values():
            with open(os.path.join(dest, spec_of["name"]), "rb") as fh:
                assert hashlib.sha256(fh.read()).hexdigest() == spec_of["sha256"].lower()
        shutil.rmtree(dest)
    finally:
        os.unlink(path)
    # Nothing outside the work directory was created or changed.
    assert snapshot(BASE) == before, "the tree outside the job's directory changed"


try:
    unpack_is_safe()
    t.ok(True, "%d random hostile bundles: each unpacked and verified, or refused with "
         "BundleError; nothing written outside" % counter[0])
except Exception:
    t.ok(False, "random hostile bundles are unpacked safely or refused with BundleError",
         traceback.format_exc())
t.note("unpacked %(ok)d, refused %(refused)d" % stats)


@settings(max_examples=max(20, EXAMPLES // 8), deadline=None, database=None, print_blob=True)
@given(st.sampled_from(["deploy", "train"]), st.binary(max_size=2000), st.booleans(), st.booleans(),
       st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
def honest_unpacks(kind, data, optional, job_first, fmt):
    counter[0] += 1
    job_id = "ok%d" % counter[0]
    honest = {"deploy": ["model.pkl"], "train": ["code.py", "data.csv"]}[kind]
    if optional:
        honest += ["requirements.txt"] + (["data.csv"] if kind == "deploy" else [])
    spec = {"kind": kind, "honest": honest, "honest_data": data, "job_first": job_first,
            "spoil": None, "hostile": [], "hostile_at": 0, "format": fmt, "end": "blocks",
            "cut": 0, "flips": [], "compress": "gzip"}
    path = os.path.join(WORK, "%s-%s.tar.gz" % (kind, job_id))
    dest = os.path.join(WORK, "dest-" + job_id)
    with open(path, "wb") as fh:
        fh.write(archive(spec, job_id))
    try:
        job = bundle.unpack(path, dest, kind, job_id, MAX_TOTAL, top=WORK)
        assert sorted(os.listdir(dest)) == sorted(honest + ["job.json"])
        assert job[bundle.TYPES[kind]["id"]] == job_id
        shutil.rmtree(dest)
    finally:
        os.unlink(path)


try:
    honest_unpacks()
    t.ok(True, "random honest bundles (either kind, every tar format, optional members) unpack")
except Exception:
    t.ok(False, "random honest bundles unpack", traceback.format_exc())
t.ok(stats["ok"] > 0 and stats["refused"] > 0, "the generator reaches both outcomes", stats)
t.is_(snapshot(OUTSIDE), {os.path.join(OUTSIDE, "keep"): (stat.S_IFREG, hashlib.sha256(b"keep").hexdigest())},
      "the directory beside the work directory holds only its own file, unchanged")
t.ok(not os.path.lexists("/outside/pwned"), "no absolute member name was written")
t.done()
