"""The drift cache: the parsed inference values of each model, kept by
mlc-drift on its own disk as operations arrive, so that a check over a
long history does not read and parse operations.data again.

What a check takes from it is exactly what read_inference() would give
(the same values, in the same order, and the same window): the cache holds,
for every operation folded in that contributed rows, its operationid, its
timestamp and how many rows it gave, and for every row its values as
InferenceSample (aligned) produced them - float64 per numeric feature (NaN
where a value was skipped; an infinity is kept and dropped when read, as
the sample drops it) and a code into a list of category keys per
categorical feature; and per numeric feature the rows in the order of
their values, so that a Kolmogorov-Smirnov check (whose result depends on
the sorted values alone) gets them sorted without a sort of its own.  The
window of a check (timestamp > since, newest
operation first, at most max_rows rows, the last operation cut) is then
taken from these arrays.

Validity.  A cache belongs to one model and one signature (the features
and types the check uses, and the database's name) and records a
watermark: the highest operationid folded in, and how many of the model's
operations had an operationid up to it (count) in the read view the fold
used.  Each use first counts them again (an index range, no row read): a
different count means operations were deleted, or one with a lower id was
committed late (Galera's interleaved auto-increments), and the cache is
built again from scratch.  Then the operations above the watermark are
folded in, in one read view (REPEATABLE READ) with the count.

Bound.  A fold reads no further back than the newest operations that hold
MLC_DRIFT_MAX_ROWS rows (operations.input_rows); the cache drops its oldest
operations when it grows past 1.5 times that (never below it).  A cache
that does not reach back to the model's first operation is `truncated`: a
check whose window would need older rows than it holds (rows whose
timestamps run against their ids, or rows input_rows counts that are not
valid) is read from the database instead.

Files.  In MLC_DRIFT_CACHE_DIR (default $MLC_VAR/drift-cache), a directory
mode 0700 owned by the user mlc-drift runs as (created by it, or as root
before it drops root); a process that does not own it does not use the
cache.  <modelid>.lock is held (flock) while a model's cache is read or
written, so the daemon and `mlc-drift check` never see half a file;
<modelid>.<signature>.cache is written as a new file and renamed over the
old one.  Nothing is opened through a symbolic link (O_NOFOLLOW), a file
must be a regular file owned by this user with one link, and its header
(format, sizes) and a CRC-32 of its arrays must agree, or it is rebuilt.
Deleting the directory or any file in it is safe at any time.
"""

import errno
import fcntl
import hashlib
import json
import mmap
import os
import re
import stat
import struct
import time
import uuid
import zlib

import numpy as np

from . import log as logmod
from .config import ConfigError
from .drift_sample import InferenceSample, fold_page, fold_rows

FORMAT = 1
MAGIC = b"MLC-DRIFT-CACHE\n"
COMPACT = 1.5              # drop old operations past this many times max_rows
FOLD_OPS = 20000           # operations per page while folding (at most)
PASS_ROWS = 200000         # rows one daemon pass folds per model (at most)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class CacheError(Exception):
    """A cache file that is not to be trusted (rebuilt); str() says why."""


def enabled(cfg):
    raw = (cfg.get("MLC_DRIFT_CACHE", "on") if cfg is not None else "on") or "on"
    if raw not in ("on", "off"):
        raise ConfigError("MLC_DRIFT_CACHE=%r is not a valid value (on or off)" % raw)
    return raw == "on"


def directory(cfg):
    path = cfg.get("MLC_DRIFT_CACHE_DIR") or os.path.join(cfg.var, "drift-cache")
    return path if os.path.isabs(path) else os.path.join(cfg.var, path)


def prepare(cfg, uid=None, gid=None):
    """Create the cache directory (mode 0700) unless it exists; as root,
    owned by uid:gid (the drift user, before mlc-drift drops root).  A
    symbolic link there is left alone (and the cache is not used)."""
    path = directory(cfg)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    if uid is not None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)


def signature(features, dbname):
    """The features (names and settled types, in order) and the database."""
    text = json.dumps({"format": FORMAT, "db": dbname, "features": [list(f) for f in features]},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _open_dir(cfg):
    """The cache directory's descriptor, or raise CacheError: it must be a
    directory (not a symbolic link) owned by this user, closed to others."""
    path = directory(cfg)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if os.geteuid() == 0:   # root makes it only for the drift user (mlc-drift's start)
            raise CacheError("there is no cache directory %s" % path) from None
        prepare(cfg)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise CacheError("cannot open the cache directory %s: %s" % (path, e.strerror)) from None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        os.close(fd)
        raise CacheError("the cache directory %s is not this user's alone (owner uid %d, mode "
                         "%o)" % (path, st.st_uid, stat.S_IMODE(st.st_mode)))
    return fd


# ---- the file ------------------------------------------------------------------------


class Cache:
    """One model's cache in memory: header fields and arrays (read-only
    views of the file's map, or arrays of a fold)."""

    def __init__(self, sig, features, keep):
        self.sig = sig
        self.features = [tuple(f) for f in features]
        self.num = [j for j, (n, t) in enumerate(self.features) if n is not None and t != "cat"]
        self.cat = [j for j, (n, t) in enumerate(self.features) if n is not None and t == "cat"]
        self.keep = keep
        self.watermark = 0
        self.count = 0
        self.floor = None      # truncated: the newest timestamp (us) of what is left out
        self.opids = np.empty(0, np.int64)
        self.micros = np.empty(0, np.int64)
        self.nrows = np.empty(0, np.int64)
        self.cols = {j: np.empty(0, np.float64) for j in self.num}
        self.codes = {j: np.empty(0, np.int32) for j in self.cat}
        # per numeric feature, the rows in the order of their values (NaN
        # last): a window's values come sorted from it without a sort, which
        # is what the Kolmogorov-Smirnov test sorts them for
        self.order = {j: np.empty(0, np.int32) for j in self.num}
        self.vocab = {j: [] for j in self.cat}
        self._map = None
        self.spans = {}        # array name: (offset, bytes) in the map

    def release(self, name):
        """Let the pages of an array that was read go from this process's
        resident memory (the file's pages stay in the page cache)."""
        if self._map is None or name not in self.spans or not hasattr(mmap, "MADV_DONTNEED"):
            return
        at, size = self.spans[name]
        lo = at - at % mmap.PAGESIZE
        try:
            self._map.madvise(mmap.MADV_DONTNEED, lo, at + size - lo)
        except (OSError, ValueError):
            pass

    @property
    def rows(self):
        return len(next(iter(self.cols.values()))) if self.cols else (
            len(next(iter(self.codes.values()))) if self.codes else int(self.nrows.sum()))

    def arrays(self):
        out = [("opids", self.opids), ("micros", self.micros), ("nrows", self.nrows)]
        out += [("num%d" % j, self.cols[j]) for j in self.num]
        out += [("cat%d" % j, self.codes[j]) for j in self.cat]
        out += [("ord%d" % j, self.order[j]) for j in self.num]
        return out

    def close(self):
        for name in ["opids", "micros", "nrows"]:
            setattr(self, name, None)
        self.cols = self.codes = self.order = None
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass   # a view is still in use; the map goes with it
            self._map = None


def _name(modelid, sig):
    return "%s.%s.cache" % (modelid, sig)


def _chunks(a):
    """An array, or a list of arrays written one after the other."""
    return a if isinstance(a, list) else [a]


def _bytes(a):
    return memoryview(np.ascontiguousarray(a)).cast("B") if len(a) else b""


def _crc(parts):
    crc = 0
    for _, a in parts:
        for x in _chunks(a):
            crc = zlib.crc32(_bytes(x), crc)
    return crc


def _crc_file(fd, start, end):
    """CRC-32 of the file's bytes start..end, read (not mapped: a check's
    memory grows by what it uses of the map, not by the check of it)."""
    crc = 0
    while start < end:
        data = os.pread(fd, min(4 << 20, end - start), start)
        if not data:
            break
        crc = zlib.crc32(data, crc)
        start += len(data)
    return crc


def load(dfd, modelid, sig, features, verify=True):
    """The cache file of modelid and sig, or None when there is none;
    CacheError when it is not to be trusted.  verify=False skips the CRC
    (of a file this process has just written under the lock)."""
    try:
        fd = os.open(_name(modelid, sig), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                     | os.O_NONBLOCK, dir_fd=dfd)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise CacheError("a symbolic link stands where the cache file is; not followed")
        raise CacheError("cannot open: %s" % e.strerror) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink != 1:
            raise CacheError("not a regular file of this user with one link")
        if st.st_size < len(MAGIC) + 8:
            raise CacheError("truncated (%d bytes)" % st.st_size)
        mm = mmap.mmap(fd, st.st_size, prot=mmap.PROT_READ)
    except BaseException:
        os.close(fd)
        raise
    ok = False
    views = []
    try:
        if mm[:len(MAGIC)] != MAGIC:
            raise CacheError("not a cache file of this format")
        (hlen,) = struct.unpack("<Q", mm[len(MAGIC):len(MAGIC) + 8])
        at = len(MAGIC) + 8
        if hlen > 1 << 24 or at + hlen > st.st_size:
            raise CacheError("truncated header")
        try:
            head = json.loads(bytes(mm[at:at + hlen]))
        except ValueError:
            raise CacheError("header is not JSON") from None
        if not isinstance(head, dict) or head.get("format") != FORMAT or head.get("sig") != sig:
            raise CacheError("another format or signature")
        c = Cache(sig, features, int(head["keep"]))
        if [list(f) for f in c.features] != head.get("features"):
            raise CacheError("another feature list")
        c.watermark, c.count = int(head["watermark"]), int(head["count"])
        c.floor = None if head["floor"] is None else int(head["floor"])
        at = (at + hlen + 7) & ~7
        data_at = at
        n_ops, n_rows = int(head["ops"]), int(head["rows"])
        views = []
        for name, a in c.arrays():
            dtype = a.dtype
            n = n_ops if name in ("opids", "micros", "nrows") else n_rows
            size = n * dtype.itemsize
            if n < 0 or at + size > st.st_size:
                raise CacheError("truncated arrays")
            views.append((name, np.frombuffer(mm, dtype=dtype, count=n, offset=at)))
            c.spans[name] = (at, size)
            at += size
        if at != st.st_size:
            raise CacheError("size %d, expected %d" % (st.st_size, at))
        if verify and _crc_file(fd, data_at, st.st_size) != int(head["crc"]):
            raise CacheError("CRC mismatch")
        got = dict(views)
        c.opids, c.micros, c.nrows = got["opids"], got["micros"], got["nrows"]
        c.cols = {j: got["num%d" % j] for j in c.num}
        c.codes = {j: got["cat%d" % j] for j in c.cat}
        c.order = {j: got["ord%d" % j] for j in c.num}
        c.vocab = {j: list(head["vocab"][str(j)]) for j in c.cat}
        c._map = mm   # each array read by a check below is let go after it
        if int(c.nrows.sum()) != n_rows or (n_ops and (np.diff(c.opids) <= 0).any()):
            raise CacheError("inconsistent arrays")
        c.release("nrows")
        c.release("opids")
        for j in c.cat:
            if n_rows and int(c.codes[j].max()) >= len(c.vocab[j]):
                raise CacheError("a category code out of range")
            c.release("cat%d" % j)
        for j in c.num:
            if n_rows and (int(c.order[j].min()) < 0 or int(c.order[j].max()) >= n_rows):
                raise CacheError("a row number out of range")
            c.release("ord%d" % j)
        ok = True
        return c
    except (KeyError, TypeError, ValueError) as e:
        raise CacheError("bad header (%s)" % e) from None
    finally:
        os.close(fd)
        if not ok:
            del views
            try:
                mm.close()
            except BufferError:
                pass


def save(dfd, modelid, c, parts=None):
    """Write c (or the given (name, array) parts in c's order) as a new
    file and rename it over the model's cache; other signatures' files of
    the model are removed."""
    parts = parts if parts is not None else c.arrays()
    n_ops = sum(len(x) for x in _chunks(parts[0][1]))
    n_rows = sum(int(np.sum(x)) for x in _chunks(parts[2][1]))
    head = {"format": FORMAT, "sig": c.sig, "features": [list(f) for f in c.features],
            "keep": c.keep, "watermark": int(c.watermark), "count": int(c.count),
            "floor": c.floor, "ops": n_ops, "rows": n_rows,
            "vocab": {str(j): c.vocab[j] for j in c.cat}, "crc": _crc(parts)}
    text = json.dumps(head).encode()
    pad = (-(len(MAGIC) + 8 + len(text))) % 8
    tmp = ".%s.%s.tmp" % (modelid, uuid.uuid4().hex[:12])
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                 dir_fd=dfd)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            f.write(MAGIC + struct.pack("<Q", len(text)) + text + b"\0" * pad)
            for _, a in parts:
                for x in _chunks(a):
                    f.write(_bytes(x))
        os.rename(tmp, _name(modelid, c.sig), src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass
        raise
    for other in os.listdir(dfd):
        if (other.startswith(modelid + ".") and other.endswith(".cache")
                and other != _name(modelid, c.sig)):
            try:
                os.unlink(other, dir_fd=dfd)
            except OSError:
                pass


# ---- folding ----------------------------------------------------------------------------


def _one(conn, sql, args):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
    if row is None:
        return None
    return list(row.values()) if isinstance(row, dict) else list(row)


def _count(conn, modelid, lo, hi):
    """The model's operations with lo < operationid <= hi (index only)."""
    return int(_one(conn, "SELECT COUNT(*) FROM operations FORCE INDEX (operations_model) "
                    "WHERE modelid = %s AND operationid > %s AND operationid <= %s",
                    (modelid, lo, hi))[0])


def _start(conn, modelid, after, need):
    """The operationid from which the model's operations above `after` hold
    at least `need` rows (operations.input_rows, newest first), or None
    when they hold fewer."""
    sql = ("SELECT operationid FROM (SELECT operationid, SUM(input_rows) OVER (ORDER BY "
           "operationid DESC ROWS UNBOUNDED PRECEDING) AS acc FROM (SELECT operationid, "
           "input_rows FROM operations FORCE INDEX (operations_model_rows) WHERE modelid = %s "
           "AND operationid > %s ORDER BY operationid DESC{limit}) AS o) AS w "
           "WHERE acc >= %s ORDER BY operationid DESC LIMIT 1")
    # Operations mostly hold a row or more: the newest `need` first.
    row = _one(conn, sql.format(limit=" LIMIT %s"), (modelid, after, need, need))
    if row and row[0] is not None:
        return int(row[0])
    with conn.cursor() as cur:
        cur.execute(sql.format(limit=""), (modelid, after, need))
        row = cur.fetchone()
    if not row:
        return None
    return int(list(row.values())[0] if isinstance(row, dict) else row[0])


def _newest(conn, modelid, below):
    """The newest timestamp (us) of the model's operations with operationid
    <= below, or None (the index operations_model_rows alone)."""
    got = _one(conn, "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', MAX(timestamp)) "
               "FROM operations FORCE INDEX (operations_model_rows) WHERE modelid = %s AND "
               "operationid <= %s", (modelid, below))[0]
    return None if got is None else int(got)


def _fold(conn, c, modelid, after, budget):
    """Read the operations above `after` (at most about budget rows, None:
    all) into new arrays; returns (arrays as in Cache.arrays(), vocab, new
    watermark, whether everything was read)."""
    sample = InferenceSample(c.features, None, aligned=True)
    for j in c.cat:   # codes continue those already in the cache
        sample.vocab[j] = {k: i for i, k in enumerate(c.vocab[j])}
    width = sample.n if sample.all_numeric else -1
    opids, micros, nrows = [], [], []
    high = after
    limit = 256 if budget is None else max(1, min(256, budget))
    done = False
    while True:
        got = fold_page(conn, modelid, high, limit, width)
        if got is None:
            if limit == 1:
                from .drift_sample import DriftError
                raise DriftError("an inference operation's data is larger than the database's "
                                 "max_allowed_packet")
            limit = max(1, limit // 2)
            continue
        n, top, page = got
        if page is not None:
            o, m, r = fold_rows(sample, *page)
            keep = r > 0
            opids.append(o[keep])
            micros.append(m[keep])
            nrows.append(r[keep])
        if n:
            high = top
        if n < limit:
            done = True
            break
        if budget is not None and sample.rows >= budget:
            break
        limit = min(FOLD_OPS, limit * 4)
    cat = lambda xs: np.concatenate(xs) if xs else np.empty(0, np.int64)  # noqa: E731
    parts = [("opids", cat(opids)), ("micros", cat(micros)), ("nrows", cat(nrows))]
    parts += [("num%d" % j, np.frombuffer(sample.cols[j], dtype=np.float64)
               if len(sample.cols[j]) else np.empty(0, np.float64)) for j in c.num]
    parts += [("cat%d" % j, np.frombuffer(sample.codes[j], dtype=np.int32)
               if len(sample.codes[j]) else np.empty(0, np.int32)) for j in c.cat]
    vocab = {j: [k for k, _ in sorted(sample.vocab[j].items(), key=lambda kv: kv[1])]
             for j in c.cat}
    return parts, vocab, high, done


def _say(sink, message, *args):
    logmod.say(sink, "drift cache", message, *args)


def update(conn, cfg, dfd, modelid, features, max_rows, budget=None, log=None):
    """Bring the model's cache up to date (at most about budget new rows;
    None: all) under its lock, held by the caller; returns (the Cache as
    saved, whether it is complete up to the newest operation)."""
    sig = signature(features, cfg.get("MLC_DB_NAME"))
    why = None
    try:
        c = load(dfd, modelid, sig, features)
    except CacheError as e:
        c, why = None, str(e)
    if c is not None and c.floor is not None and c.keep < max_rows:
        c.close()
        c, why = None, "it keeps %d rows, MLC_DRIFT_MAX_ROWS is %d" % (c.keep, max_rows)
    t0 = time.monotonic()
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
    try:
        if c is not None:
            have = _count(conn, modelid, 0, c.watermark)
            if have != c.count:
                why = ("the model has %d operations up to operationid %d, the cache counted %d"
                       % (have, c.watermark, c.count))
                c.close()
                c = None
        rebuilt = c is None
        if c is None:
            c = Cache(sig, features, max_rows)
        start = _start(conn, modelid, c.watermark, max_rows)
        old_ops = len(c.opids)
        if start is not None:      # the new operations alone fill the cache
            after = start - 1
            c.floor = _newest(conn, modelid, after)
            skip_ops = old_ops
        else:
            after = c.watermark
            skip_ops = 0
        parts, vocab, high, done = _fold(conn, c, modelid, after, budget)
        count = _count(conn, modelid, 0, high) if (rebuilt or start is not None) else \
            c.count + _count(conn, modelid, c.watermark, high)
        conn.commit()
    except BaseException:
        conn.rollback()
        if c is not None:
            c.close()
        raise
    if why:
        _say(log, "model %s: rebuilt (%s)", modelid, why)
    new_rows = len(parts[3][1]) if len(parts) > 3 else int(parts[2][1].sum())
    if high == c.watermark and not rebuilt and start is None:
        return c, done
    # The old arrays' tail (from skip_ops) and the new ones, less the
    # oldest operations past COMPACT * max_rows.
    old_rows_at = np.concatenate([[0], np.cumsum(c.nrows)]).astype(np.int64)
    total = int(old_rows_at[-1] - old_rows_at[skip_ops]) + new_rows
    keep_from = skip_ops
    if total > COMPACT * max_rows:
        nr = np.concatenate([c.nrows[skip_ops:], parts[2][1]])
        stamps = np.concatenate([c.micros[skip_ops:], parts[1][1]])
        tail = np.cumsum(nr[::-1])[::-1]          # rows from each operation on
        drop = int(np.searchsorted(-tail, -max_rows, side="right")) - 1
        drop = max(drop, 0)
        dropped_old = min(drop, old_ops - skip_ops)
        keep_from = skip_ops + dropped_old
        drop_new = drop - dropped_old
        if drop_new:
            cut = int(parts[2][1][:drop_new].sum())
            parts = [(nm, a[drop_new:] if i < 3 else a[cut:]) for i, (nm, a) in enumerate(parts)]
        if drop:
            newest = int(stamps[:drop].max())
            c.floor = newest if c.floor is None else max(c.floor, newest)
    r0 = int(old_rows_at[keep_from])
    # Written piece by piece (the kept part of the old file's map, then the
    # new rows), and mapped again: no copy of the whole in memory.
    merged = []
    for i, ((nm, old), (_, new)) in enumerate(zip(c.arrays()[:len(parts)], parts)):
        merged.append((nm, [old[keep_from:] if i < 3 else old[r0:], new]))
    for i, j in enumerate(c.num):
        merged.append(("ord%d" % j, _merge_order(c.order[j], c.cols[j][r0:], r0,
                                                 parts[3 + i][1])))
        c.release("ord%d" % j)
    out = Cache(sig, features, max_rows)
    out.watermark, out.count, out.floor = high, count, c.floor
    out.vocab = vocab
    save(dfd, modelid, out, merged)
    del merged, parts
    c.close()
    out = load(dfd, modelid, sig, features, verify=False)
    if out is None:
        raise CacheError("the file just written is gone")
    _say(log, "model %s: folded %d rows in %.2f s (cache %d rows, up to operationid %d%s)",
         modelid, new_rows, time.monotonic() - t0, out.rows, high,
         "" if done else "; more next pass")
    return out, done


def _merge_order(old_order, old_col, r0, new_col):
    """The value order of the rows old_col (the cache's kept rows, from row
    r0 of old_order's) followed by new_col."""
    o = old_order[old_order >= r0].astype(np.int64) - r0 if len(old_col) else \
        np.empty(0, np.int64)
    n_old = len(old_col)
    new_ord = np.argsort(new_col, kind="stable")
    if len(o):
        pos = np.searchsorted(old_col[o], new_col[new_ord], side="right")
        merged = np.insert(o, pos, new_ord + n_old)
    else:
        merged = new_ord + n_old
    return merged.astype(np.int32)


class Lock:
    """The model's flock in the cache directory (exclusive)."""

    def __init__(self, dfd, modelid, wait=True):
        self.fd = os.open("%s.lock" % modelid, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                          | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BaseException:
            os.close(self.fd)
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)   # releases the flock
        return False


# ---- taking a check's window ----------------------------------------------------------


def _micros(dt):
    """A naive datetime as microseconds since 1970."""
    import datetime
    d = dt - datetime.datetime(1970, 1, 1)
    return (d.days * 86400 + d.seconds) * 1000000 + d.microseconds


def _datetime(us):
    import datetime
    return datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=int(us))


class CachedSample(InferenceSample):
    """The values of a check's rows taken from a Cache (what compute()
    reads of an InferenceSample: numbers(j) and categories(j))."""

    def __init__(self, features, c, idx, ordered=False):
        super().__init__(features)
        self.rows = len(idx)
        self._c, self._idx, self._mask = c, idx, None
        # The values sorted (for a test that sorts them anyway), when the
        # window is much of the cache: a small window is gathered and sorted.
        n_rows = c.rows
        if ordered and c.num and len(idx) * 4 >= n_rows:
            self._mask = np.zeros(n_rows, dtype=bool)
            self._mask[idx] = True
        for j in c.cat:
            codes = c.codes[j][idx]
            counts = np.bincount(codes[codes >= 0], minlength=len(c.vocab[j]))
            for i in np.flatnonzero(counts).tolist():
                self.counts[j][c.vocab[j][i]] = int(counts[i])

    def numbers(self, j):
        """Feature j's values, taken when asked (compute() asks once per
        feature, so one feature's values are held at a time)."""
        c = self._c
        if j not in c.cols:
            return np.empty(0, dtype=np.float64)
        if self._mask is not None:
            o = c.order[j]
            col = c.cols[j][o[self._mask[o]]]
            c.release("ord%d" % j)
        else:
            col = c.cols[j][self._idx]
        c.release("num%d" % j)
        return col[np.isfinite(col)]


def window(c, since, max_rows):
    """(row index, window_start, window_end) of a check from the cache, or
    None when it cannot say (truncated before the window is filled).

    Only the newest operations are looked at, more of them until the
    window is full (an operation holds a row or more, so max_rows of them
    mostly do): the work and memory are those of the window, not of the
    whole cache."""
    n = len(c.opids)
    after = None if since is None else _micros(since)
    total_rows = c.rows
    k = min(n, max(max_rows, 1024))
    while True:
        lo = n - k
        if after is None:
            ops = np.arange(lo, n)
        else:
            ops = np.flatnonzero(c.micros[lo:] > after) + lo
        ops = ops[::-1]                               # newest first
        counts = c.nrows[ops]
        acc = np.cumsum(counts)
        have = int(acc[-1]) if len(acc) else 0
        if have >= max_rows or lo == 0:
            break
        k = min(n, k * 4)
    if have < max_rows and c.floor is not None and (after is None or c.floor > after):
        return None   # older operations than the cache holds may belong to the window
    if have > max_rows:
        j = int(np.searchsorted(acc, max_rows))        # the last operation taken, cut
        ops, counts = ops[:j + 1], counts[:j + 1].copy()
        counts[-1] -= int(acc[j]) - max_rows
    if not len(ops):
        return np.empty(0, np.int64), None, None
    # each operation's first row: the rows before it are all the rows less
    # those of it and the operations after it
    lo = int(ops[-1])
    tail = np.cumsum(c.nrows[lo:][::-1])[::-1]        # rows from each operation on
    starts = total_rows - tail[ops - lo]
    idx = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
    stamps = c.micros[ops]
    return idx, _datetime(stamps.min()), _datetime(stamps.max())


def sample(conn, cfg, modelid, features, since, max_rows, log=None, ordered=False):
    """(InferenceSample, window_start, window_end) of a check from the
    model's cache, folded up to date first; None when the cache cannot be
    used (the check then reads the database).  ordered: each numeric
    feature's values sorted rather than in row order (for a test whose
    result does not depend on their order)."""
    if not _ID.match(modelid or "") or max_rows >= 1 << 30:
        return None
    try:
        dfd = _open_dir(cfg)
    except (CacheError, OSError) as e:
        _say(log, "not used: %s", e)
        return None
    try:
        with Lock(dfd, modelid):
            c, _ = update(conn, cfg, dfd, modelid, features, max_rows, None, log)
            try:
                got = window(c, since, max_rows)
                if got is None:
                    _say(log, "model %s: the window reaches past the cache's oldest operation; "
                         "read from the database", modelid)
                    return None
                idx, start, end = got
                for name in ("opids", "micros", "nrows"):
                    c.release(name)
                # The sample reads the map after the lock is let go: a new
                # file renamed over this one leaves the map as it was.
                out, c = CachedSample(features, c, idx, ordered), None
                return out, start, end
            finally:
                if c is not None:
                    c.close()
    finally:
        os.close(dfd)


def warm(conn, cfg, modelid, features, max_rows, log=None):
    """Fold up to PASS_ROWS new rows of a model (the daemon's pass); a model
    whose lock is held (a check runs) is left for the next pass.  Returns
    whether its cache is up to date."""
    if not _ID.match(modelid or ""):
        return True
    dfd = _open_dir(cfg)
    try:
        try:
            lock = Lock(dfd, modelid, wait=False)
        except BlockingIOError:
            return False
        with lock:
            c, done = update(conn, cfg, dfd, modelid, features, max_rows, PASS_ROWS, log)
            c.close()
            return done
    finally:
        os.close(dfd)
