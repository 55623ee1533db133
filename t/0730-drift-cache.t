#!/usr/bin/python3
# mlcpy.drift_cache: a check that takes its rows from the drift cache gives
# exactly what the check that reads the database gives (statistics,
# p-values, counts, notes, window) - on mixed row forms, after operations
# arrive (fold), are deleted or commit late with a lower operationid
# (rebuild), after the feature list changes, with MLC_DRIFT_MAX_ROWS cuts and
# compaction - and a corrupt, truncated or symlinked cache file is rebuilt,
# never trusted nor followed.
import datetime
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t  # noqa: E402

t.need_instance("MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME")
try:
    import numpy as np
    import pandas as pd
except ImportError as e:
    t.bail_out("needs the Debian packages python3-numpy, python3-pandas (%s)" % e)
import pymysql  # noqa: E402
import pymysql.cursors  # noqa: E402

from mlcpy import config as mconfig, db as mdb, drift, drift_cache  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, ".."))
SOCK = os.environ["MLC_DB_SOCKET"]
DB_NAME = "%s_dcache_%d" % (os.environ["MLC_DB_NAME"], os.getpid())
why = t.private_database(DB_NAME)
if why is not None:
    DB_NAME = os.environ["MLC_DB_NAME"]
    t.note("no private database (%s): using %s" % (why, DB_NAME))

TMP = tempfile.mkdtemp(prefix="drift-cache.", dir=os.environ.get("MLC_VAR") or None)
t.defer(shutil.rmtree, TMP, True)
STORE = os.path.join(TMP, "store")
CACHE = os.path.join(TMP, "cache")
os.mkdir(STORE)
ENV = dict(os.environ, MLC_DB_NAME=DB_NAME, MLC_ARTIFACTS=STORE, MLC_DRIFT_CACHE_DIR=CACHE,
           MLC_DRIFT_MAX_ROWS="100000")


def cfg_with(**over):
    return mconfig.load(ROOT, dict(ENV, **over))


CFG = cfg_with()
_admin = pymysql.connect(unix_socket=SOCK, user=os.environ["MLC_DB_USER"],
                         password=os.environ.get("MLC_DB_PASSWORD", ""), database=DB_NAME,
                         charset="utf8mb4", autocommit=True,
                         cursorclass=pymysql.cursors.DictCursor)
t.defer(_admin.close)
CONN = mdb.connect(CFG)
t.defer(CONN.close)


class Log:
    def __init__(self):
        self.lines = []

    def event(self, subject, message, *args):
        self.lines.append("%s: %s" % (subject, message % args if args else message))

    def take(self):
        out, self.lines = self.lines, []
        return out


LOG = Log()


def sql(query, *args):
    with _admin.cursor() as cur:
        cur.execute(query, args)
        return list(cur.fetchall())


def forget(modelid):
    for table in ("operations", "drift_metrics", "drift_runs", "artifacts", "models"):
        sql("DELETE FROM %s WHERE modelid = %%s" % table, modelid)


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def add_model(featurelist, method, train, enabled=0):
    modelid = str(uuid.uuid4())
    t.defer(forget, modelid)
    stamp = now()
    sql("INSERT INTO models (modelid, modelname, modelkind, featurelist, drift_detection, "
        "created_at, updated_at) VALUES (%s, %s, 'drift-test', %s, %s, %s, %s)", modelid,
        "dcache-" + modelid[:8], json.dumps(featurelist),
        json.dumps([{"is_true": enabled, "method": method}]), stamp, stamp)
    rel = os.path.join(modelid, "data", "v1-train.csv")
    os.makedirs(os.path.join(STORE, modelid, "data"))
    text = train.to_csv(index=False).encode()
    with open(os.path.join(STORE, rel), "wb") as f:
        f.write(text)
    sql("INSERT INTO artifacts (modelid, filekind, version, filename, contenttype, path, size, "
        "sha256, created_at) VALUES (%s, 'data', 1, 'train.csv', 'text/csv', %s, %s, %s, %s)",
        modelid, rel, len(text), hashlib.sha256(text).hexdigest(), stamp)
    return modelid


def add_ops(modelid, datas, start, step=datetime.timedelta(milliseconds=10), ids=None):
    stamps = [start + i * step for i in range(len(datas))]
    with _admin.cursor() as cur:
        if ids is None:
            cur.executemany("INSERT INTO operations (ownerid, deployment_id, modelid, data, "
                            "timestamp) VALUES ('drift-test', 'dep-dc', %s, %s, %s)",
                            [(modelid, d, ts) for d, ts in zip(datas, stamps)])
        else:
            cur.executemany("INSERT INTO operations (operationid, ownerid, deployment_id, "
                            "modelid, data, timestamp) VALUES (%s, 'drift-test', 'dep-dc', %s, "
                            "%s, %s)", [(i, modelid, d, ts) for i, d, ts in zip(ids, datas, stamps)])
    return stamps


def plain(v):
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return v


def compare(modelid, what, max_rows=100000, expect=None):
    """check_model with the cache and without it: identical; returns the
    cache's log lines.  expect: a word the log must show (folded, rebuilt)."""
    LOG.take()
    on = drift.check_model(CONN, cfg_with(MLC_DRIFT_MAX_ROWS=str(max_rows)), modelid, log=LOG)
    lines = LOG.take()
    off = drift.check_model(CONN, cfg_with(MLC_DRIFT_MAX_ROWS=str(max_rows), MLC_DRIFT_CACHE="off"),
                            modelid, log=LOG)
    t.is_(plain(on), plain(off), "%s: the cached check gives the uncached one's results "
          "(statistics, p-values, counts, notes, window)" % what, "\n".join(lines))
    used = not any("not used" in x or "read from the database" in x for x in lines)
    t.ok(used, "%s: the rows came from the cache" % what, "\n".join(lines))
    if expect is not None:
        t.ok(any(expect in x for x in lines), "%s: the log says '%s'" % (what, expect),
             "\n".join(lines))
    # Kolmogorov-Smirnov takes each feature's values sorted from the cache.
    method = sql("SELECT drift_detection FROM models WHERE modelid = %s", modelid)[0]
    if json.loads(method["drift_detection"])[0]["method"] != 2:
        sql("UPDATE models SET drift_detection = %s WHERE modelid = %s",
            json.dumps([{"is_true": 0, "method": 2}]), modelid)
        try:
            cfg = cfg_with(MLC_DRIFT_MAX_ROWS=str(max_rows))
            on = drift.check_model(CONN, cfg, modelid, log=LOG)
            off = drift.check_model(CONN, cfg_with(MLC_DRIFT_MAX_ROWS=str(max_rows),
                                                   MLC_DRIFT_CACHE="off"), modelid)
            t.is_(plain(on), plain(off), "%s: the same with Kolmogorov-Smirnov" % what)
        finally:
            sql("UPDATE models SET drift_detection = %s WHERE modelid = %s",
                method["drift_detection"], modelid)
    return lines


def cache_files(modelid):
    return sorted(f for f in os.listdir(CACHE) if f.startswith(modelid) and f.endswith(".cache"))


def cache_path(modelid):
    files = cache_files(modelid)
    return os.path.join(CACHE, files[0]) if len(files) == 1 else None


def complete_run(modelid, cfg=None):
    """A stored check (its window_end is the next check's start)."""
    run_id = drift.request_run(CONN, modelid, "cli")
    t.is_(drift.run_one(CONN, cfg or CFG, LOG, run_id, modelid), "completed",
          "a run of model %s completes" % modelid[:8])


# ---- mixed row forms, MMD (the order of the values counts) -----------------------------

rng = np.random.default_rng(11)
M = add_model([{"feature_name": "p"}, {"feature_name": "q"}], 1,
              pd.DataFrame({"p": rng.normal(size=80), "q": rng.normal(size=80), "y": 0}))


def mixed(n, seed):
    r = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, b = (round(float(v), 6) for v in r.normal(0, 1, 2))
        out.append([json.dumps([[a, b]], separators=(",", ":")),
                    json.dumps([[a, b], [b, a]]),
                    json.dumps(json.dumps([[a, b]])),
                    json.dumps({"p": a, "q": b}),
                    json.dumps([a, b]),
                    "[[%s,null]]" % a,
                    "[[%s,%s,1]]" % (a, b),
                    "[[1e999,%s]]" % b,
                    "[[%s,%s],[%s]]" % (a, b, a),
                    '[{"p": "%s", "q": true}]' % a,
                    "not json"][i % 11])
    return out


base = now() - datetime.timedelta(hours=2)
add_ops(M, mixed(440, 1), base)
os.makedirs(CACHE, mode=0o700)
compare(M, "first check (cache built)", expect="folded")
t.is_(len(cache_files(M)), 1, "one cache file for the model")
st = os.stat(CACHE)
t.is_((stat.S_IMODE(st.st_mode), st.st_uid), (0o700, os.geteuid()),
      "the cache directory is mode 0700, this user's")
for cap in (1234, 57, 1):
    compare(M, "MLC_DRIFT_MAX_ROWS %d" % cap, cap)

add_ops(M, mixed(60, 2), base + datetime.timedelta(minutes=10))
lines = compare(M, "after 60 new operations", expect="folded")
t.ok(not any("rebuilt" in x for x in lines),
     "only the new operations are folded in", "\n".join(lines))
compare(M, "nothing new: nothing folded")

# A stored check: the next window starts after it.
complete_run(M)
add_ops(M, mixed(33, 3), base + datetime.timedelta(minutes=20))
compare(M, "the window since the last check", expect="folded")
compare(M, "the window since the last check, cut at 17 rows", 17)

# Deleted operations: counted again, rebuilt.
ids = [r["operationid"] for r in sql("SELECT operationid FROM operations WHERE modelid = %s "
                                     "ORDER BY operationid", M)]
sql("DELETE FROM operations WHERE operationid IN (%s, %s)", ids[5], ids[300])
sql("DELETE FROM drift_metrics WHERE modelid = %s", M)
compare(M, "after two operations were deleted", expect="rebuilt")

# A lower operationid committed after the cache went past it (as on a
# Galera cluster whose nodes interleave auto-increments).
top = ids[-1]
add_ops(M, mixed(3, 4), base + datetime.timedelta(minutes=30), ids=[top + 100, top + 101, top + 200])
compare(M, "operations with a gap in their ids", expect="folded")
add_ops(M, mixed(2, 5), base + datetime.timedelta(minutes=31), ids=[top + 150, top + 50])
compare(M, "an operation with a lower id than the cache's watermark appears", expect="rebuilt")

# ---- the feature list changes: another signature ---------------------------------------

old = cache_files(M)
sql("UPDATE models SET featurelist = %s WHERE modelid = %s",
    json.dumps([{"feature_name": "p", "type": "cat"}, {"feature_name": "q"}]), M)
compare(M, "the feature list changed (p categorical)", expect="folded")
t.ok(len(cache_files(M)) == 1 and cache_files(M) != old,
     "the new signature's file replaced the old one", cache_files(M), old)

# Categorical and numeric features together, from objects and strings.
C = add_model([{"feature_name": "k", "type": "cat"}, {"feature_name": "x", "type": "cont"},
               {"feature_name": "z", "type": "numeric"}], 2,
              pd.DataFrame({"k": list("abcab") * 20, "x": np.arange(100.0),
                            "z": np.arange(100.0) % 7, "y": 0}))
rows = []
for i in range(300):
    k = "abcd"[i % 4]
    rows.append([json.dumps([[k, i * 0.5, i % 5]]),
                 json.dumps({"k": k, "x": str(i)}),
                 json.dumps([[i % 3, i, None], [True, "1.5", "x"]]),
                 json.dumps({"z": i})][i % 4])
add_ops(C, rows, base)
compare(C, "categorical and numeric features, mixed forms", expect="folded")
compare(C, "categorical and numeric features, cut at 101 rows", 101)

# ---- MLC_DRIFT_MAX_ROWS: a truncated cache, compaction ---------------------------------

B = add_model([{"feature_name": "u"}, {"feature_name": "v"}], 1,
              pd.DataFrame({"u": rng.normal(size=60), "v": rng.normal(size=60), "y": 0}))
vals = np.round(rng.normal(size=(1000, 2)), 6)
add_ops(B, [json.dumps([r]) for r in vals.tolist()], base)


def cache_of(modelid):
    fd = os.open(CACHE, os.O_RDONLY)
    try:
        feats = [("u", "cont"), ("v", "cont")]
        c = drift_cache.load(fd, modelid, drift_cache.signature(feats, DB_NAME), feats)
        got = (c.rows, c.floor is not None, c.keep)
        c.close()
        return got
    finally:
        os.close(fd)


compare(B, "1000 operations, MLC_DRIFT_MAX_ROWS 100", 100, expect="folded")
rows_kept, truncated, keep = cache_of(B)
t.ok(100 <= rows_kept <= 150 and truncated and keep == 100,
     "the cache keeps the newest 100 rows and no more than 1.5 times (%d rows, truncated %s)"
     % (rows_kept, truncated))
add_ops(B, [json.dumps([r]) for r in np.round(rng.normal(size=(80, 2)), 6).tolist()],
        base + datetime.timedelta(minutes=10))
compare(B, "80 new operations, MLC_DRIFT_MAX_ROWS 100 (compaction)", 100, expect="folded")
rows_kept, truncated, _ = cache_of(B)
t.ok(100 <= rows_kept <= 150, "compacted back to at most 150 rows (%d)" % rows_kept)
complete_run(B, cfg_with(MLC_DRIFT_MAX_ROWS="100"))
add_ops(B, [json.dumps([r]) for r in np.round(rng.normal(size=(20, 2)), 6).tolist()],
        base + datetime.timedelta(minutes=20))
compare(B, "a truncated cache answers a window since the last check", 100)
sql("DELETE FROM drift_metrics WHERE modelid = %s", B)
compare(B, "a larger MLC_DRIFT_MAX_ROWS than the cache keeps: rebuilt", 500, expect="rebuilt")
t.is_(cache_of(B)[2], 500, "the cache now keeps 500 rows")
# Operations whose timestamps run against their ids: older rows than a
# truncated cache holds may be in the window; then the check reads the
# database (and still gives the same results).
complete_run(B, cfg_with(MLC_DRIFT_MAX_ROWS="100"))
add_ops(B, [json.dumps([r]) for r in np.round(rng.normal(size=(5, 2)), 6).tolist()],
        base + datetime.timedelta(minutes=30))
LOG.take()
on = drift.check_model(CONN, cfg_with(MLC_DRIFT_MAX_ROWS="500"), B, log=LOG)
off = drift.check_model(CONN, cfg_with(MLC_DRIFT_MAX_ROWS="500", MLC_DRIFT_CACHE="off"), B)
t.is_(plain(on), plain(off), "a short window since the last check: the same results")

# window() against the plain rule (every operation newer than since,
# newest first, rows up to max_rows), on 5,000 operations of 1 to 3 rows
# with timestamps out of order in places: it looks at the newest
# operations only, more of them until the window is full.
def plain_window(c, since, max_rows):
    starts = np.concatenate([[0], np.cumsum(c.nrows)])
    idx, stamps = [], []
    for q in range(len(c.opids) - 1, -1, -1):
        if since is not None and c.micros[q] <= drift_cache._micros(since):
            continue
        if len(idx) >= max_rows:
            break
        take = min(int(c.nrows[q]), max_rows - len(idx))
        idx += list(range(int(starts[q]), int(starts[q]) + take))
        stamps.append(int(c.micros[q]))
    return idx, (min(stamps) if stamps else None), (max(stamps) if stamps else None)


wrng = np.random.default_rng(3)
wc = drift_cache.Cache("x", [("u", "cont")], 10 ** 6)
wc.opids = np.arange(1, 5001, dtype=np.int64) * 3
wc.nrows = wrng.integers(1, 4, 5000)
wc.micros = np.arange(5000, dtype=np.int64) * 1000 + 10 ** 15
wc.micros[wrng.choice(5000, 300, replace=False)] -= 2000000    # some late, older stamps
wc.cols = {0: np.arange(int(wc.nrows.sum()), dtype=np.float64)}
bad = []
for since_q in (None, 4990, 4000, 2500, 0):
    since = None if since_q is None else drift_cache._datetime(wc.micros[since_q])
    for cap in (1, 7, 1000, 2999, 5000, 10 ** 6):
        got = drift_cache.window(wc, since, cap)
        idx, lo, hi = plain_window(wc, since, cap)
        want = (idx, None if lo is None else drift_cache._datetime(lo),
                None if hi is None else drift_cache._datetime(hi))
        if got is None or (list(got[0]), got[1], got[2]) != want:
            bad.append((since_q, cap))
t.is_(bad, [], "window() takes the rows and times the plain rule takes, at every since and cut")

# ---- files that are not to be trusted ----------------------------------------------------

path = cache_path(M)
with open(path, "r+b") as f:
    f.seek(-12, os.SEEK_END)
    b = f.read(1)
    f.seek(-12, os.SEEK_END)
    f.write(bytes([b[0] ^ 0x40]))
compare(M, "a flipped bit in the cache file", expect="rebuilt")
with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) - 8)
compare(M, "a truncated cache file", expect="rebuilt")
with open(path, "r+b") as f:
    f.truncate(10)
compare(M, "a cache file cut inside its header", expect="rebuilt")

victim = os.path.join(TMP, "victim")
with open(victim, "wb") as f:
    f.write(b"not to be touched\n")
os.unlink(path)
os.symlink(victim, path)
compare(M, "a symbolic link at the cache file's path", expect="symbolic link")
with open(victim, "rb") as f:
    t.is_(f.read(), b"not to be touched\n", "the symbolic link's target is neither read as a "
          "cache nor written")
t.ok(not os.path.islink(path) and os.path.isfile(path),
     "the link was replaced by a cache file of this user")

# The cache directory itself a symbolic link: not used, the check reads
# the database.
elsewhere = os.path.join(TMP, "elsewhere")
os.mkdir(elsewhere, 0o700)
link = os.path.join(TMP, "linkdir")
os.symlink(elsewhere, link)
LOG.take()
on = drift.check_model(CONN, cfg_with(MLC_DRIFT_CACHE_DIR=link), M, log=LOG)
off = drift.check_model(CONN, cfg_with(MLC_DRIFT_CACHE="off"), M)
t.is_(plain(on), plain(off), "a symbolic link as the cache directory: the same results")
t.ok(any("not used" in x for x in LOG.lines) and os.listdir(elsewhere) == [],
     "... from the database: the link is not followed", LOG.lines)
# A directory open to others: not used.
opened = os.path.join(TMP, "opened")
os.mkdir(opened)
os.chmod(opened, 0o777)
LOG.take()
drift.check_model(CONN, cfg_with(MLC_DRIFT_CACHE_DIR=opened), M, log=LOG)
t.ok(any("not used" in x for x in LOG.lines) and os.listdir(opened) == [],
     "a cache directory others can write is not used", LOG.lines)

# A missing directory is made by the user that will own it; root (a
# check by hand without dropping root) leaves that to mlc-drift's start.
missing = os.path.join(TMP, "missing")
LOG.take()
drift.check_model(CONN, cfg_with(MLC_DRIFT_CACHE_DIR=missing), M, log=LOG)
if os.geteuid() == 0:
    t.ok(not os.path.exists(missing) and any("not used" in x for x in LOG.lines),
         "as root a check does not create the cache directory (it would be root's)", LOG.lines)
else:
    st = os.stat(missing)
    t.is_((stat.S_IMODE(st.st_mode), st.st_uid), (0o700, os.geteuid()),
          "a check creates a missing cache directory, 0700, its user's")
LOG.take()
for _ in range(2):
    drift.warm_caches(CONN, cfg_with(MLC_DRIFT_CACHE_DIR=opened), LOG)
t.is_(len([x for x in LOG.lines if "not used" in x]), 1,
      "the daemon says once, not every pass, that it cannot use the cache directory", LOG.lines)
try:
    drift_cache.enabled(cfg_with(MLC_DRIFT_CACHE="maybe"))
    t.ok(False, "MLC_DRIFT_CACHE=maybe is refused")
except mconfig.ConfigError as e:
    t.like(str(e), r"MLC_DRIFT_CACHE", "MLC_DRIFT_CACHE=maybe is refused, naming the key")

# ---- the daemon keeps the caches warm -----------------------------------------------------

W = add_model([{"feature_name": "u"}, {"feature_name": "v"}], 0,
              pd.DataFrame({"u": rng.normal(size=60), "v": rng.normal(size=60), "y": 0}),
              enabled=1)
add_ops(W, [json.dumps([r]) for r in np.round(rng.normal(size=(300, 2)), 6).tolist()], base)
LOG.take()
drift.warm_caches(CONN, CFG, LOG)
t.ok(any(W in x and "folded 300 rows" in x for x in LOG.lines),
     "warm_caches folds the new operations of a model with drift enabled", LOG.lines)
t.ok(not any(B in x for x in LOG.lines), "... and leaves models without is_true 1 alone")
old_pass = drift_cache.PASS_ROWS
drift_cache.PASS_ROWS = 100
add_ops(W, [json.dumps([r]) for r in np.round(rng.normal(size=(250, 2)), 6).tolist()],
        base + datetime.timedelta(minutes=5))
LOG.take()
drift.warm_caches(CONN, CFG, LOG)
t.ok(any(W in x and "more next pass" in x for x in LOG.lines),
     "a pass folds a bounded number of rows per model", LOG.lines)
drift_cache.PASS_ROWS = old_pass
compare(W, "a partly warmed cache: the check folds the rest", expect="folded")

# A feature type settled from the training data: the daemon folds for the
# features the check uses (the same signature: the check folds nothing).
T = add_model([{"feature_name": "u", "type": "numeric"}, {"feature_name": "k", "type": "text"}],
              0, pd.DataFrame({"u": rng.normal(size=60), "k": list("xyz") * 20, "y": 0}),
              enabled=1)
add_ops(T, [json.dumps([[float(i), "xyz"[i % 3]]]) for i in range(120)], base)
LOG.take()
drift.warm_caches(CONN, CFG, LOG)
t.ok(any(T in x and "folded 120 rows" in x for x in LOG.lines),
     "warm_caches folds a model whose types come from its training data", LOG.lines)
lines = compare(T, "types settled from the training data")
t.ok(not any("folded" in x or "rebuilt" in x for x in lines),
     "... the check found the daemon's cache up to date", lines)

t.done()
