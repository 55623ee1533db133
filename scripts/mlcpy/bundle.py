"""Spool job bundles: naming, safe extraction and verification.

A bundle is a gzip tar of regular files at its top level: job.json and the
files job.json lists under "files".  Each job type has a fixed set of
members (see TYPES): a deploy bundle holds model.pkl and optionally
data.csv and requirements.txt, a train bundle code.py and data.csv and
optionally requirements.txt.  Nothing in a bundle is trusted: members must
be plain top-level names of regular files of that set, each listed file
must match its size and SHA-256 from job.json, and the total size is
capped; job.json "features" (the input features the API computed, see
features.py) must be well-formed.  Files are written with O_EXCL|O_NOFOLLOW relative to a fresh
directory's descriptor, so nothing outside it can be touched whatever the
archive holds.  The bundle file itself, written by the service user, is
opened with safefs.open_file: a symbolic link, a FIFO, a device or a hard
link to another file is refused before anything is read from it.
"""

import gzip
import hashlib
import json
import os
import re
import tarfile
import zlib

from . import features, safefs

# Job ids (deployment ids, and training ids, which are UUIDs): the rule of
# app/validate.c mlc_is_deployment_id, tested with it against the shared
# examples of t/fixtures/deployment-ids.txt.  No id starts with a dot, so
# no id is ".", ".." or one of the spooler's dot-named staging directories.
ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
ID_RE = re.compile(r"^" + ID + r"\Z")
NAME_RE = re.compile(r"^(deploy|train)-(" + ID + r")\.tar\.gz\Z")
MEMBER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20
JOB_JSON_MAX = 1 << 20
OUTPUT_PREFIX = "model-"  # spool/new/model-<id>.pkl: a remote training's model (PUT by its pod)
LOST_BUNDLE_AFTER = 60    # s a 'waiting' row may exist without its bundle in the spool

# Per job type: the job.json key holding the job's id, the files it may
# list (files.<kind> -> the member name the C side gives it) and those it
# must list.
TYPES = {
    "deploy": {"id": "deployment_id",
               "files": {"model": "model.pkl", "data": "data.csv", "env": "requirements.txt"},
               "required": ("model",)},
    "train": {"id": "training_id",
              "files": {"code": "code.py", "data": "data.csv", "env": "requirements.txt"},
              "required": ("code", "data")},
}


def members_of(kind):
    """The member names a bundle of this job type may hold."""
    return {"job.json"} | set(TYPES[kind]["files"].values())


class BundleError(Exception):
    """The bundle cannot be used; str() is the reason for the deployment."""


def parse_name(filename):
    """('deploy'|'train', id) for a spool file name, or None."""
    m = NAME_RE.match(filename)
    if not m:
        return None
    return m.group(1), m.group(2)


def _check_member(m, seen, allowed=None):
    """Reject anything but a regular file with a plain top-level name (one
    of `allowed`, when given)."""
    name = m.name
    if not m.isreg():
        kind = ("symbolic link" if m.issym() else "hard link" if m.islnk() else
                "directory" if m.isdir() else "device" if m.ischr() or m.isblk() else
                "fifo" if m.isfifo() else "special file")
        raise BundleError("bundle rejected: member '%s' is a %s; only regular files are allowed"
                          % (name, kind))
    if not MEMBER_RE.match(name) or name in (".", ".."):
        raise BundleError("bundle rejected: member '%s' is not a plain top-level file name"
                          % name)
    if allowed is not None and name not in allowed:
        raise BundleError("bundle rejected: member '%s' does not belong in this bundle (it may "
                          "hold only %s)" % (name, ", ".join(sorted(allowed))))
    if name in seen:
        raise BundleError("bundle rejected: member '%s' appears twice" % name)
    seen.add(name)


def _write_member(tar, member, dest_dir, dest_fd):
    """Copy one member into dest_dir (open as dest_fd); returns its sha256
    hex digest."""
    src = tar.extractfile(member)
    path = os.path.join(dest_dir, member.name)
    digest = hashlib.sha256()
    try:
        fd = os.open(member.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                     os.O_CLOEXEC, 0o644, dir_fd=dest_fd)
        out = os.fdopen(fd, "wb")
    except OSError as e:
        raise BundleError("cannot write '%s': %s" % (path, e.strerror)) from None
    with out:
        remaining = member.size
        while remaining > 0:
            chunk = src.read(min(CHUNK, remaining))
            if not chunk:
                raise BundleError("bundle rejected: member '%s' is truncated" % member.name)
            digest.update(chunk)
            try:
                out.write(chunk)
            except OSError as e:
                raise BundleError("cannot write '%s': %s" % (path, e.strerror)) from None
            remaining -= len(chunk)
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as e:
            raise BundleError("cannot write '%s': %s" % (path, e.strerror)) from None
    return digest.hexdigest()


def open_bundle(path, owners=None):
    """The bundle at path as a binary file object: a regular file with one
    link (owned by one of `owners`, when given), nothing followed."""
    try:
        return os.fdopen(safefs.open_file(path, owners), "rb")
    except safefs.Unsafe as e:
        raise BundleError("bundle rejected: %s" % e) from None
    except OSError as e:
        raise BundleError("bundle rejected: cannot open %s: %s"
                          % (os.path.basename(path), e.strerror)) from None


def extract(path, dest_dir, max_total, allowed=None, owners=None):
    """Extract the bundle at path into dest_dir (which must not exist).

    Returns {member name: sha256}.  Raises BundleError with the reason when
    the bundle is not a plain file (owned by one of `owners`, when given),
    the archive is unreadable or holds anything but plain files (named in
    the set `allowed`, when given), or when its declared size exceeds
    max_total bytes.
    """
    src = open_bundle(path, owners)
    hashes, seen, total = {}, set(), 0
    try:
        os.mkdir(dest_dir, 0o700)
        dest_fd = safefs.open_dir(dest_dir)
    except OSError as e:
        src.close()
        raise BundleError("cannot create %s: %s" % (dest_dir, e.strerror)) from None
    try:
        # gzip, not tarfile's own "r|gz": Python 3.11's stream reader
        # raises AttributeError on a gzip header with the FEXTRA flag.
        with gzip.GzipFile(fileobj=src, mode="rb") as gz, \
                tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                _check_member(member, seen, allowed)
                total += member.size
                if total > max_total:
                    raise BundleError("bundle rejected: its files exceed %d bytes "
                                      "(MLC_BUNDLE_MAX_SIZE)" % max_total)
                hashes[member.name] = _write_member(tar, member, dest_dir, dest_fd)
        os.fchmod(dest_fd, 0o755)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise BundleError("bundle rejected: cannot read the archive: %s" % e) from None
    finally:
        src.close()
        os.close(dest_fd)
    return hashes


def load_job(dest_dir):
    """The parsed job.json of an extracted bundle (a dict)."""
    path = os.path.join(dest_dir, "job.json")
    if not os.path.isfile(path):
        raise BundleError("bundle rejected: it has no job.json")
    if os.path.getsize(path) > JOB_JSON_MAX:
        raise BundleError("bundle rejected: job.json is larger than 1 MiB")
    try:
        with open(path, encoding="utf-8") as f:
            job = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise BundleError("bundle rejected: job.json is not valid JSON: %s" % e) from None
    except RecursionError:
        raise BundleError("bundle rejected: job.json is nested too deeply") from None
    if not isinstance(job, dict):
        raise BundleError("bundle rejected: job.json is not a JSON object")
    return job


def check_job(job, kind, job_id):
    """Validate the fields of job.json the spooler relies on."""
    spec_of = TYPES[kind]
    if job.get("type") != kind:
        raise BundleError("bundle rejected: job.json type is %r but the bundle is named "
                          "as a %r job" % (job.get("type"), kind))
    id_key = spec_of["id"]
    got_id = job.get(id_key)
    if not isinstance(got_id, str) or not ID_RE.match(got_id) or got_id != job_id:
        raise BundleError("bundle rejected: job.json %s %r does not match the "
                          "bundle name (%r)" % (id_key, got_id, job_id))
    try:
        features.read(job)
    except features.Malformed as e:
        raise BundleError("bundle rejected: %s" % e) from None
    files = job.get("files")
    if not isinstance(files, dict):
        files = {}
    for key in spec_of["required"]:
        if not isinstance(files.get(key), dict):
            raise BundleError("bundle rejected: job.json lists no %s file (files.%s)"
                              % (key, key))
    for key, spec in files.items():
        if not isinstance(spec, dict):
            raise BundleError("bundle rejected: job.json files.%s is not an object" % key)
        if key not in spec_of["files"]:
            raise BundleError("bundle rejected: job.json lists a %s file, which a %s bundle "
                              "does not carry" % (key, kind))
        name, sha, size = spec.get("name"), spec.get("sha256"), spec.get("size")
        if not isinstance(name, str) or not MEMBER_RE.match(name) or name == "job.json":
            raise BundleError("bundle rejected: job.json files.%s.name %r is not a plain "
                              "file name" % (key, name))
        if name != spec_of["files"][key]:
            raise BundleError("bundle rejected: job.json files.%s.name is %r; a %s bundle "
                              "names it %r" % (key, name, kind, spec_of["files"][key]))
        if not isinstance(sha, str) or not SHA256_RE.match(sha.lower()):
            raise BundleError("bundle rejected: job.json files.%s.sha256 is not a SHA-256 "
                              "hex digest" % key)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BundleError("bundle rejected: job.json files.%s.size is not a byte count"
                              % key)


def verify_files(job, hashes, dest_dir):
    """Every file job.json lists is present with its size and SHA-256, and
    the bundle holds nothing else."""
    listed = {"job.json"}
    for key, spec in sorted(job["files"].items()):
        name = spec["name"]
        listed.add(name)
        if name not in hashes:
            raise BundleError("bundle rejected: %s file '%s' listed in job.json is missing"
                              % (key, name))
        size = os.path.getsize(os.path.join(dest_dir, name))
        if size != spec["size"]:
            raise BundleError("bundle rejected: '%s' has %d bytes, job.json says %d"
                              % (name, size, spec["size"]))
        if hashes[name] != spec["sha256"].lower():
            raise BundleError("bundle rejected: '%s' does not match its SHA-256 in job.json "
                              "(got %s, expected %s); upload the file again"
                              % (name, hashes[name], spec["sha256"].lower()))
    extra = sorted(set(hashes) - listed)
    if extra:
        raise BundleError("bundle rejected: unexpected member '%s' (not listed in job.json)"
                          % extra[0])


def read_job(directory):
    """job.json of a directory the spooler made (an unpacked bundle, a
    deployment directory) as a dict; {} when it is missing or not a JSON
    object."""
    try:
        with open(os.path.join(directory, "job.json"), encoding="utf-8") as f:
            job = json.load(f)
        return job if isinstance(job, dict) else {}
    except (OSError, ValueError, RecursionError):
        return {}


REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def request_note(job):
    """", request <id>" for the log line that starts a job, naming the API
    request that made its bundle (job.json "request_id", nginx's request
    id, also in the API's logs and the access log); "" without one."""
    rid = job.get("request_id") if isinstance(job, dict) else None
    return ", request %s" % rid if isinstance(rid, str) and REQUEST_ID_RE.match(rid) else ""


def unpack(path, dest_dir, kind, job_id, max_total, top=None, owners=None):
    """Extract and verify a bundle into dest_dir (removed again on failure,
    without following symlinks, below `top`: MLC_VAR, by default dest_dir's
    parent); returns the job dict."""
    try:
        hashes = extract(path, dest_dir, max_total, members_of(kind), owners)
        job = load_job(dest_dir)
        check_job(job, kind, job_id)
        verify_files(job, hashes, dest_dir)
        return job
    except BaseException:
        safefs.rmtree(dest_dir, top or os.path.dirname(os.path.abspath(dest_dir)),
                      ignore_errors=True)
        raise
