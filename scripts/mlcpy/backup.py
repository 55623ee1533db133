"""The file side of `mlc backup DIR` and `mlc restore DIR` (scripts/mlc
takes the database dump, loads it, and guards the paths).

A backup directory holds

  database.sql      mariadb-dump --single-transaction of the database
  backup.info       KEY=value lines: when, which database, which schema version
  artifacts/        the artifact store's model directories,
                    <modelid>/<kind>/v<N>-<name>, as they were
  MANIFEST.sha256   one `sha256sum` line per other file: `sha256sum -c` reads it

The dump is taken first, the files copied after it: an upload renames its
file into place before the row that points at it commits, so every row of
the dump has its file on disk when the copy starts.  A model deleted
between the two steps loses its files while its rows are in the dump; the
backup therefore checks every artifacts row of the dump against the copied
files (path, size, SHA-256) and fails when one is missing, and a restore
checks the same before it changes anything.  Files uploaded after the dump
are copied too: a file without a row is harmless.

Symbolic links are never followed: the store is walked through directory
descriptors (os.fwalk) and every file opened with O_NOFOLLOW; anything that
is not a directory or a regular file is left out of a backup, and makes a
restore refuse the backup.

    python3 -m mlcpy.backup save STORE DIR           copy the store into DIR, write the manifest
    python3 -m mlcpy.backup verify DIR [STORE]       check DIR (and that STORE may be replaced)
    python3 -m mlcpy.backup restore-files DIR STORE  replace STORE's models by DIR's
"""

import hashlib
import os
import re
import shutil
import stat
import sys

MANIFEST = "MANIFEST.sha256"
DUMP = "database.sql"
INFO = "backup.info"
STORE_DIR = "artifacts"
CHUNK = 1 << 20
MAX_ERRORS = 20

# Top-level entries of an artifact store: one directory per model, named
# by its id (a UUID), and .tmp/ for uploads in progress.
MODEL_DIR = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
UPLOADS = ".tmp"
LINE = re.compile(r"^([0-9a-f]{64})  (.+)$")


class BackupError(Exception):
    """The backup or the store is not what it must be; the message says why."""


def _say(msg):
    sys.stderr.write("mlc: %s\n" % msg)


# ---- paths -----------------------------------------------------------------------


def guard_dir(path, what):
    """An absolute, existing directory that is not the root directory."""
    if not path or not os.path.isabs(path):
        raise BackupError("%s '%s' is not an absolute path" % (what, path))
    real = os.path.realpath(path)
    if real == "/":
        raise BackupError("%s is /: refusing to work on the whole file system" % what)
    if not os.path.isdir(real):
        raise BackupError("%s '%s' is not a directory" % (what, path))
    return real


def _plain_name(name):
    """A name a manifest line can carry as it is."""
    return name not in ("", ".", "..") and not any(c in name for c in "\\\n\r/")


def _manifest_line(digest, rel):
    return ("%s  %s\n" % (digest, rel)).encode("utf-8", "surrogateescape")


# ---- copying -----------------------------------------------------------------------


def _copy_open(src_fd, dst_path, st, owner, want=None, mask=0o777):
    """Copy the open regular file src_fd to the new file dst_path (mode of
    st within mask, times of st, owner (uid, gid) or None), fsynced.
    Returns (sha256, size); with want set, raises BackupError when the
    copy's SHA-256 differs (the new file is removed)."""
    h = hashlib.sha256()
    size = 0
    fd = os.open(dst_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 stat.S_IMODE(st.st_mode) & 0o777 | 0o600)
    try:
        while True:
            buf = os.read(src_fd, CHUNK)
            if not buf:
                break
            h.update(buf)
            size += len(buf)
            view = memoryview(buf)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        if want is not None and h.hexdigest() != want:
            raise BackupError("%s changed while it was restored (SHA-256 %s, the manifest says %s)"
                              % (dst_path, h.hexdigest(), want))
        if owner is not None:
            os.fchown(fd, owner[0], owner[1])
        os.fchmod(fd, stat.S_IMODE(st.st_mode) & mask)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(dst_path)
        raise
    os.close(fd)
    os.utime(dst_path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    return h.hexdigest(), size


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _walk_files(top, on_skip):
    """(relative path, dir fd, name, lstat) of every regular file under top,
    never following a symbolic link; on_skip(rel, why) for anything else."""
    for dirpath, dirnames, filenames, dirfd in os.fwalk(top, follow_symlinks=False):
        rel_dir = os.path.relpath(dirpath, top)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        for name in list(dirnames):
            st = os.lstat(name, dir_fd=dirfd)
            if not stat.S_ISDIR(st.st_mode):
                on_skip(rel_dir + name, "a symbolic link")
                dirnames.remove(name)
        for name in sorted(filenames):
            st = os.lstat(name, dir_fd=dirfd)
            if stat.S_ISLNK(st.st_mode):
                on_skip(rel_dir + name, "a symbolic link")
            elif not stat.S_ISREG(st.st_mode):
                on_skip(rel_dir + name, "not a regular file")
            else:
                yield rel_dir + name, dirfd, name, st
        dirnames.sort()


def _open_at(dirfd, name):
    return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)


def hash_file(path):
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BackupError("%s is not a regular file" % path)
        while True:
            buf = os.read(fd, CHUNK)
            if not buf:
                break
            h.update(buf)
    finally:
        os.close(fd)
    return h.hexdigest(), st.st_size


# ---- the database dump's artifacts rows ---------------------------------------------------

_ESCAPES = {ord("0"): b"\0", ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t",
            ord("b"): b"\b", ord("Z"): b"\x1a"}


def _values(data, i):
    """Parse the row tuples of an INSERT statement from data[i:] (after
    VALUES): yields each row as a list of bytes values (None for NULL)."""
    n = len(data)
    while i < n:
        while i < n and data[i] in b" \t\r\n,":
            i += 1
        if i >= n or data[i] == ord(";"):
            return
        if data[i] != ord("("):
            raise BackupError("unexpected text in an artifacts INSERT of the dump")
        i += 1
        row = []
        while True:
            while data[i] in b" \t\r\n":
                i += 1
            c = data[i]
            if c == ord("'"):
                out = bytearray()
                i += 1
                while True:
                    c = data[i]
                    if c == ord("\\"):
                        e = data[i + 1]
                        out += _ESCAPES.get(e, bytes([e]))
                        i += 2
                    elif c == ord("'"):
                        if i + 1 < n and data[i + 1] == ord("'"):
                            out.append(c)
                            i += 2
                            continue
                        i += 1
                        break
                    else:
                        out.append(c)
                        i += 1
                row.append(bytes(out))
            else:
                j = i
                while data[j] not in b",)":
                    j += 1
                tok = data[i:j].strip()
                row.append(None if tok == b"NULL" else tok)
                i = j
            while data[i] in b" \t\r\n":
                i += 1
            if data[i] == ord(","):
                i += 1
                continue
            if data[i] == ord(")"):
                i += 1
                yield row
                break
            raise BackupError("unexpected text in an artifacts INSERT of the dump")


def artifact_rows(dump):
    """The (path, size, sha256) of every artifacts row in a mariadb-dump
    file written with --complete-insert."""
    head = b"INSERT INTO `artifacts` ("
    rows = []
    with open(dump, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.startswith(head):
                continue
            try:
                end = line.index(b") VALUES ", len(head))
                cols = [c.strip().strip(b"`").decode() for c in line[len(head):end].split(b",")]
                ip, isz, ish = cols.index("path"), cols.index("size"), cols.index("sha256")
                for row in _values(line, end + len(b") VALUES ")):
                    rows.append((row[ip].decode("utf-8", "surrogateescape"), int(row[isz]),
                                 row[ish].decode("ascii")))
            except (ValueError, IndexError, TypeError, AttributeError, UnicodeDecodeError):
                raise BackupError("%s line %d: an artifacts INSERT this backup cannot read (the "
                                  "dump must come from mariadb-dump --complete-insert)"
                                  % (dump, n)) from None
    return rows


# ---- save --------------------------------------------------------------------------


def save(store, backup):
    """Copy STORE's model directories into BACKUP/artifacts, write the
    manifest of every file of BACKUP, and check the dump's rows against the
    copied files."""
    backup = guard_dir(backup, "the backup directory")
    dst_top = os.path.join(backup, STORE_DIR)
    os.mkdir(dst_top, 0o700)
    lines = []
    for name in (DUMP, INFO):
        path = os.path.join(backup, name)
        if os.path.exists(path):
            lines.append(_manifest_line(hash_file(path)[0], name))
    files = total = 0
    if store is not None and os.path.isdir(store):
        store = guard_dir(store, "the artifact store")
        skipped = []

        def skip(rel, why):
            skipped.append("%s (%s)" % (rel, why))

        top_fd = os.open(store, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            names = sorted(os.listdir(top_fd))
        finally:
            os.close(top_fd)
        for top in names:
            if top == UPLOADS:
                continue
            src_dir = os.path.join(store, top)
            st = os.lstat(src_dir)
            if not MODEL_DIR.match(top) or not stat.S_ISDIR(st.st_mode):
                skip(top, "not a model's directory")
                continue
            for rel, dirfd, name, st in _walk_files(src_dir, lambda r, w: skip(top + "/" + r, w)):
                rel = top + "/" + rel
                if not all(_plain_name(p) for p in rel.split("/")):
                    skip(rel, "a name no store file has")
                    continue
                dst = os.path.join(dst_top, rel)
                os.makedirs(os.path.dirname(dst), 0o700, exist_ok=True)
                fd = _open_at(dirfd, name)
                try:
                    if not stat.S_ISREG(os.fstat(fd).st_mode):
                        skip(rel, "not a regular file")
                        continue
                    digest, size = _copy_open(fd, dst, os.fstat(fd), None)
                finally:
                    os.close(fd)
                lines.append(_manifest_line(digest, STORE_DIR + "/" + rel))
                files += 1
                total += size
        for s in skipped:
            _say("not in the backup: %s/%s" % (store, s))
    with open(os.path.join(backup, MANIFEST), "wb") as f:
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
    manifest = read_manifest(backup)
    errors = check_rows(backup, manifest)
    if errors:
        raise BackupError("the dump has artifacts rows whose files are not in the backup (was a "
                          "model deleted while it ran? run it again):\n  " + "\n  ".join(errors))
    for dirpath, _, _ in os.walk(dst_top):
        _fsync_dir(dirpath)
    _fsync_dir(backup)
    print("%d artifact file(s), %d bytes" % (files, total))


# ---- verify --------------------------------------------------------------------------


def read_manifest(backup):
    """{relative path: sha256} of BACKUP's manifest; raises BackupError on
    a line that is not a plain `sha256  path` line inside the backup."""
    out = {}
    try:
        with open(os.path.join(backup, MANIFEST), "rb") as f:
            raw = f.read().decode("utf-8", "surrogateescape").split("\n")
    except OSError as e:
        raise BackupError("cannot read %s: %s" % (os.path.join(backup, MANIFEST), e.strerror))
    if raw and raw[-1] == "":
        raw.pop()
    for n, line in enumerate(raw, 1):
        m = LINE.match(line)
        parts = m.group(2).split("/") if m else []
        if (not m or not all(_plain_name(p) for p in parts)
                or not (m.group(2) in (DUMP, INFO) or (parts[0] == STORE_DIR and len(parts) > 2
                                                        and MODEL_DIR.match(parts[1])))):
            raise BackupError("%s line %d is not a line this backup writes: %r"
                              % (MANIFEST, n, line[:200]))
        if m.group(2) in out:
            raise BackupError("%s names %s twice" % (MANIFEST, m.group(2)))
        out[m.group(2)] = m.group(1)
    if DUMP not in out:
        raise BackupError("%s does not list %s" % (MANIFEST, DUMP))
    return out


def check_rows(backup, manifest):
    """Every artifacts row of the dump has its file in the backup, of the
    size and SHA-256 the row records: a list of what is wrong."""
    errors = []
    for path, size, sha in artifact_rows(os.path.join(backup, DUMP)):
        rel = STORE_DIR + "/" + path
        if rel not in manifest:
            errors.append("%s: the row's file is not in the backup" % path)
        elif manifest[rel] != sha:
            errors.append("%s: SHA-256 %s, the row says %s" % (path, manifest[rel], sha))
        else:
            try:
                got = os.lstat(os.path.join(backup, rel)).st_size
            except OSError:
                got = None
            if got != size:
                errors.append("%s: %s bytes, the row says %d" % (path, got, size))
    return errors


def verify(backup, store=None):
    """Check a backup directory before anything is restored from it: the
    manifest lists exactly its files, every checksum matches, nothing in it
    is a link or special file, and every artifacts row of the dump has its
    file.  With STORE, also that STORE holds nothing but model directories
    (a restore empties it)."""
    backup = guard_dir(backup, "the backup directory")
    manifest = read_manifest(backup)
    errors, seen = [], set()

    def odd(rel, why):
        errors.append("%s is %s; a backup holds only directories and files" % (rel, why))

    total = 0
    for rel, dirfd, name, st in _walk_files(backup, odd):
        if rel == MANIFEST:
            continue
        seen.add(rel)
        if rel not in manifest:
            errors.append("%s is not in %s" % (rel, MANIFEST))
            continue
        fd = _open_at(dirfd, name)
        try:
            h = hashlib.sha256()
            while True:
                buf = os.read(fd, CHUNK)
                if not buf:
                    break
                h.update(buf)
        finally:
            os.close(fd)
        total += st.st_size
        if h.hexdigest() != manifest[rel]:
            errors.append("%s: SHA-256 %s, the manifest says %s" % (rel, h.hexdigest(),
                                                                    manifest[rel]))
    for rel in sorted(set(manifest) - seen):
        errors.append("%s is in %s but not in the backup" % (rel, MANIFEST))
    if not errors:
        errors += check_rows(backup, manifest)
    if store is not None and os.path.lexists(store):
        store = guard_dir(store, "the artifact store")
        for name in sorted(os.listdir(store)):
            st = os.lstat(os.path.join(store, name))
            if not (name == UPLOADS or (MODEL_DIR.match(name) and stat.S_ISDIR(st.st_mode))
                    or (MODEL_DIR.match(name) and stat.S_ISLNK(st.st_mode))):
                errors.append("the artifact store %s holds '%s', which is not a model's directory: "
                              "a restore empties the store; move it away or check MLC_ARTIFACTS"
                              % (store, name))
    if errors:
        more = len(errors) - MAX_ERRORS
        raise BackupError("the backup %s fails its checks:\n  %s%s" % (
            backup, "\n  ".join(errors[:MAX_ERRORS]),
            "\n  ... and %d more" % more if more > 0 else ""))
    print("%d file(s), %d bytes match %s" % (len(seen), total, MANIFEST))


# ---- restore ---------------------------------------------------------------------------


def restore_files(backup, store):
    """Empty STORE (its model directories and .tmp/) and copy the backup's
    model directories into it, checking each file against the manifest as
    it is written.  Files and directories get the owner and group of STORE
    itself (when run as root); directories get STORE's mode (2750 as
    mlc-spooler --prepare lays it out), files the mode they had but no more
    open than STORE (0640 there)."""
    backup = guard_dir(backup, "the backup directory")
    store = guard_dir(store, "the artifact store")
    manifest = read_manifest(backup)
    sst = os.stat(store)
    owner = (sst.st_uid, sst.st_gid) if os.geteuid() == 0 else None
    dir_mode = stat.S_IMODE(sst.st_mode) | 0o700
    file_mask = stat.S_IMODE(sst.st_mode) & 0o777 | 0o600
    for name in os.listdir(store):
        path = os.path.join(store, name)
        if not (name == UPLOADS or MODEL_DIR.match(name)):
            raise BackupError("the artifact store %s holds '%s', which is not a model's directory"
                              % (store, name))
        if os.path.islink(path) or not os.path.isdir(path):
            os.unlink(path)
        else:
            shutil.rmtree(path)
    src_top = os.path.join(backup, STORE_DIR)
    files = total = 0
    if os.path.isdir(src_top):
        def odd(rel, why):
            raise BackupError("%s/%s is %s" % (src_top, rel, why))

        for rel, dirfd, name, st in _walk_files(src_top, odd):
            want = manifest.get(STORE_DIR + "/" + rel)
            if want is None:
                raise BackupError("%s/%s is not in %s" % (src_top, rel, MANIFEST))
            dst = os.path.join(store, rel)
            parent = os.path.dirname(dst)
            made = []
            p = parent
            while not os.path.isdir(p):
                made.append(p)
                p = os.path.dirname(p)
            for d in reversed(made):
                os.mkdir(d, 0o700)
                if owner is not None:
                    os.chown(d, owner[0], owner[1], follow_symlinks=False)
                os.chmod(d, dir_mode)
            fd = _open_at(dirfd, name)
            try:
                _, size = _copy_open(fd, dst, os.fstat(fd), owner, want, file_mask)
            finally:
                os.close(fd)
            files += 1
            total += size
    for dirpath, _, _ in os.walk(store):
        _fsync_dir(dirpath)
    print("%d artifact file(s), %d bytes restored into %s" % (files, total, store))


def main(argv):
    try:
        if len(argv) == 3 and argv[0] == "save":
            save(argv[1] or None, argv[2])
        elif len(argv) in (2, 3) and argv[0] == "verify":
            verify(argv[1], argv[2] if len(argv) == 3 else None)
        elif len(argv) == 3 and argv[0] == "restore-files":
            restore_files(argv[1], argv[2])
        else:
            _say("usage: python3 -m mlcpy.backup save STORE DIR | verify DIR [STORE] | "
                 "restore-files DIR STORE")
            return 2
    except BackupError as e:
        _say(str(e))
        return 1
    except OSError as e:
        _say("%s: %s" % (e.filename or "", e.strerror))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
