"""Drift detection: compare the inputs a model received in production (the
operations table) with the data it was trained on (its latest `data`
artifact), one two-sample test per input feature.

Who calls what
--------------
scripts/mlc-drift is main() below: the daemon (serve(): run_pending(),
schedule_due() and fail_interrupted() in a loop), `--once`, and the
commands check, run, pending and schedule.  The C API only inserts
drift_runs rows (POST /model/{id}/drift/run, requested_by 'api': one
waiting run per model, the unique key drift_runs_one_waiting) and serves
drift_metrics.  The code is in three parts: mlcpy.drift_sample (features,
reading operations.data and the training CSV), mlcpy.drift_stats (the
tests: pure functions of arrays and counts) and this module (runs,
scheduling, the daemon); compute() is the pure part, also used by the
tests.

Claims.  A run is claimed by UPDATE ... WHERE status = 'waiting', which
records the claimant (claimed_by: host, pid, random part) and a lease
(lease_until = UTC_TIMESTAMP(6) + MLC_DRIFT_LEASE seconds, the database's
clock).  While the check runs a thread renews the lease every third of its
length (Lease).  fail_interrupted() fails only runs whose lease expired, so
any number of mlc-drift processes (the daemon, `mlc-drift --once` by hand)
can look for work at once without failing each other's runs; a run whose
process died is failed at most a lease and a scheduling pass later.

Training data.  At most MLC_DRIFT_TRAIN_ROWS rows of the training CSV are
compared: a larger file is read in chunks of TRAIN_CHUNK rows into a
uniform random sample of that many rows (_read_sample; the first rows of a
file sorted by time or label would not represent it), and every result's
note says so ("training data sampled: N of its M rows ...").

The model's settings
--------------------
models.drift_detection is read when the run starts, so a PATCH takes
effect from the next run.  The method is that of the first item with
is_true 1; a run requested for a model with no such item (the API allows
it) uses the first item's method, else 0.  Methods for numeric features:

  0  mean_shift  Welch's t-test, scipy.stats.ttest_ind(train, infer,
                 equal_var=False)
  1  mmd         maximum mean discrepancy with a Gaussian (RBF) kernel,
                 p-value from a permutation test (see _mmd below)
  2  ks          two-sample Kolmogorov-Smirnov, scipy.stats.ks_2samp(train,
                 infer) with scipy's default (exact for small samples)

Categorical features (featurelist type "cat") always use a chi-square test
of homogeneity: scipy.stats.chi2_contingency on the 2 x K table of counts
(row 0 training, row 1 inference, one column per category seen on either
side, so a category missing on one side is a 0 count there; scipy's
default Yates correction applies only when K == 2).  drift_detected is
p < MLC_DRIFT_ALPHA (default 0.05).  A statistic or p-value that is not a
finite number (both samples constant, say) is stored as NULL; with a NULL
p-value drift_detected is 0.

MMD, precisely: each side is subsampled to at most 500 values (without
replacement, numpy.random.default_rng((seed, crc32(feature name)))).  On
the pooled sample z (training values first) the bandwidth is the median
heuristic: sigma = median of |z_i - z_j| over all pairs i < j; if that
median is 0 (mostly tied values), the median of the non-zero distances;
if every value is equal, statistic 0 and p-value 1.  The kernel is
k(a, b) = exp(-(a - b)^2 / (2 sigma^2)) and the statistic is the biased
(V-statistic) estimate of MMD^2, never negative:

    mean k(x_i, x_j) + mean k(y_i, y_j) - 2 mean k(x_i, y_j)

over all i, j (including i == j).  The p-value is (1 + b) / (1 + 200)
where b counts, among 200 random relabellings of the pooled sample (same
generator, bandwidth and kernel matrix kept), those whose statistic is at
least the observed one: a valid test, and at most ~1000 x 1000 kernel
values per feature whatever the data size.

Features
--------
The features are those of the feature list the model's newest deployment
froze when it was created (deployments.features; the model's featurelist
when it has no deployment left): the rows predict recorded are in that
order.  The input features are its entries of kind 0, null or absent, in
order - the rule of app/featurelist.c, which predict uses: each is one
position of a list row; one without a feature_name, or with the name of
an earlier one, keeps its position and is not tested - typed by
their "type": "cat" is categorical; "cont", null or absent continuous;
any other type (the API stores whatever a client sent, "numeric",
"categorical", "") is decided from the training data's column: "cont"
when pandas reads it as numbers (booleans are not), "cat" otherwise, and
the decision is kept in the metrics row's note.  Without any input
feature, the training CSV's columns except the last (taken to be the
target) are used, in order, typed the same way.  A feature missing from
the training data, or left with fewer than 2 usable values on either
side, still gets a drift_metrics row, with NULL statistic and p-value and
the reason in its note (and in the log).

Inference rows
--------------
operations.data is JSON text: a row (a list of values in feature order, or
an object keyed by feature name), a batch (a list of rows; the predict
gateway stores a 2-D list), or a JSON string holding one of those
(legacy clients).  Anything else is skipped; see extract_rows().  A list
row must have exactly one value per feature, an object row must name at
least one feature (other keys are ignored).  Numeric values are JSON
numbers or numeric strings (booleans, null, NaN and infinities are
skipped for that feature only); categories are compared as text, with
numbers in canonical form so that 1, 1.0 and "1" are one category
(category_key()).

Rows are read newest first (operations.operationid), at most
MLC_DRIFT_MAX_ROWS (default 100000), from the window "since the last
completed check": operations with timestamp later than the window_end of
the model's latest drift_metrics row (all of them for a first check).
How many rows there are is the database's count, not this module's:
operations.input_rows, a generated column (sql/019-operation-rows.sql,
the rule in docs/API.md), which mlc-api's POST /model/{id}/drift/run adds
up too.  If the window holds fewer than MLC_DRIFT_MIN_ROWS (10) rows by
that count, the latest rows are used regardless of the window, so an
on-demand check on a quiet model compares what there is; with fewer even
then the run fails with "needs at least 10 inference rows, has N", N as
the API counts.  window_start and window_end are the timestamps of the
oldest and newest operation that contributed a row.

Rows are read a page at a time (drift_sample.read_inference): the page's
operationids from an index, then the page's texts in one GROUP_CONCAT.
Operations whose operations.input_width is the number of features (a
batch of rows of that many JSON numbers, as predict records it; MariaDB
decides that at insert) are parsed together by numpy, the others one at a
time as above - the same values in the same order either way.  They go
into one float64 array per numeric feature and one category counter per
categorical feature: memory grows by 8 bytes per numeric value plus one
page (256 KiB to 8 MiB of text: a sixteenth of the values' size).

The cache
---------
With MLC_DRIFT_CACHE=on (the default) a check takes its rows from the
model's drift cache (mlcpy.drift_cache) instead of reading
operations.data: mlc-drift keeps, per model and per feature signature, the
values InferenceSample parsed from every operation (with its operationid,
timestamp and row count), folding in new operations as they arrive (every
scheduling pass, for the models with is_true 1 and training data, at most
drift_cache.PASS_ROWS rows each; a check folds what is still missing
first).  The window above is then taken from those arrays: the same values
in the same order, the same window_start and window_end, as reading the
database (t/0730 compares the two); for method 2 each feature's values
come sorted (the cache keeps every feature's rows in value order, and
ks_2samp, which sorts them, depends on nothing else).  A cache is checked before each use by
counting the model's operations up to its watermark (operations deleted,
or committed late with a lower id: it is built again), and one that cannot
answer (a window reaching past what it keeps) leaves the check to the
database.  MLC_DRIFT_CACHE=off reads the database every time.

Scheduling
----------
schedule_due() adds a 'schedule' run for each model that has is_true 1,
a data artifact, no run waiting or running, no run created in the last
MLC_DRIFT_INTERVAL seconds (default 3600), and at least 10 inference rows
among its newest 100 operations that are newer than its last check (a
bounded probe: an idle model costs one short index scan per call, never a
scan of its whole history).

Every statement is parameterised; times are naive UTC datetimes written to
DATETIME(6) columns.
"""

import argparse
import datetime
import hashlib
import json
import os
import pwd
import resource
import signal
import time
import traceback
import uuid

import numpy as np

from . import config, db, drift_cache, log
from .drift_sample import (  # noqa: F401  (the module's interface, as before the split)
    FIRST_PAGE, FLUSH, PAGE_BYTES, TRAIN_CHUNK, DriftConfigError, DriftError, InferenceSample,
    _json, _norm_features, _train_categories, _train_numbers, category_key, decide_types,
    declared_type, drift_settings, extract_rows, load_training,
    load_training_sample, model_features, number_value, read_inference)
from .drift_stats import (  # noqa: F401
    METHOD_NAMES, METHODS, MIN_VALUES, MMD_MAX_SAMPLE, MMD_PERMUTATIONS, chi2_table,
    mmd_bandwidth, test_feature)

DUE_PROBE = 100          # newest operations schedule_due looks at
NAME_MAX = 255           # drift_metrics.feature
REASON_MAX = 4000
NOTE_MAX = 2000          # drift_metrics.note

DEFAULT_ALPHA = "0.05"
DEFAULT_MAX_ROWS = "100000"
DEFAULT_INTERVAL = "3600"
DEFAULT_TRAIN_ROWS = "100000"
DEFAULT_LEASE = "60"
DEFAULT_MIN_ROWS = "10"  # as app/route-drift.c's MIN_ROWS_DEFAULT (t/0013-unit-drift-stats.t checks)


# ---- settings ---------------------------------------------------------------


def _setting(cfg, key, default, kind, lo, hi=None):
    """A numeric setting in (lo, hi); a bad value names the key."""
    raw = cfg.get(key, default) if cfg is not None else default
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or not value > lo or (hi is not None and not value < hi):
        raise DriftConfigError("%s=%r is not a valid value (it must be a number above %s%s)"
                         % (key, raw, lo, "" if hi is None else " and below %s" % hi))
    return value


def settings(cfg):
    """(alpha, max_rows, interval seconds) from the configuration."""
    return (_setting(cfg, "MLC_DRIFT_ALPHA", DEFAULT_ALPHA, float, 0.0, 1.0),
            _setting(cfg, "MLC_DRIFT_MAX_ROWS", DEFAULT_MAX_ROWS, int, 0),
            _setting(cfg, "MLC_DRIFT_INTERVAL", DEFAULT_INTERVAL, float, 0.0))


def train_rows(cfg):
    """MLC_DRIFT_TRAIN_ROWS: most training rows a check compares with."""
    return _setting(cfg, "MLC_DRIFT_TRAIN_ROWS", DEFAULT_TRAIN_ROWS, int, 0)


def min_rows(cfg):
    """MLC_DRIFT_MIN_ROWS: the inference rows a check needs (mlc-api's 409
    reads the same key)."""
    return _setting(cfg, "MLC_DRIFT_MIN_ROWS", DEFAULT_MIN_ROWS, int, 0)


def _model_ops(select, modelid, since):
    """select over the model's operations after since (None: all), and its
    arguments."""
    sql = select + " FROM operations FORCE INDEX (operations_model_rows) WHERE modelid = %s"
    args = [modelid]
    if since is not None:
        sql += " AND timestamp > %s"
        args.append(since)
    return sql, args


def recorded_rows(conn, modelid, since=None):
    """The model's inference rows: the sum of operations.input_rows (the
    database's count, as mlc-api's POST /model/{id}/drift/run makes it),
    over the operations after since (None: all)."""
    sql, args = _model_ops("SELECT COALESCE(SUM(input_rows), 0) AS n", modelid, since)
    rows = _select(conn, sql, args)
    return int(rows[0]["n"]) if rows else 0


def enough_rows(conn, modelid, need, since=None):
    """Whether recorded_rows(conn, modelid, since) >= need, mostly without
    adding up a long history: the newest `need` operations are looked at
    first (an operation often holds one row); only when they hold fewer
    is everything added up."""
    sql, args = _model_ops("SELECT input_rows", modelid, since)
    sql += " ORDER BY operationid DESC LIMIT %s"
    args.append(need)
    if sum(int(r["input_rows"]) for r in _select(conn, sql, args)) >= need:
        return True
    return recorded_rows(conn, modelid, since) >= need


def lease_seconds(cfg):
    """MLC_DRIFT_LEASE: seconds a claim on a run holds without renewal."""
    return _setting(cfg, "MLC_DRIFT_LEASE", DEFAULT_LEASE, float, 0.0)


def _sample_from(infer_rows, features):
    if isinstance(infer_rows, InferenceSample):
        return infer_rows.finish()
    sample = InferenceSample(features)
    if isinstance(infer_rows, np.ndarray) and infer_rows.ndim == 2:
        infer_rows = infer_rows.tolist()
    for r in infer_rows:
        if isinstance(r, (str, bytes, bytearray)):
            sample.add_data(r if isinstance(r, str) else r.decode("utf-8", "replace"))
        elif isinstance(r, tuple):
            sample.add_row(list(r))
        else:
            sample.add_row(r)
    return sample.finish()


def compute(train_df, infer_rows, features, method, alpha, seed=0):
    """Test each feature for drift; pure (no I/O).

    train_df    pandas DataFrame with a column per feature (others ignored)
    infer_rows  an InferenceSample (gathered for the features as
                decide_types() settles them), a 2-D numpy array, or an
                iterable of rows (lists in feature order or dicts keyed by
                name) and/or operations.data texts
    features    [(name, type)] (or featurelist dicts, or names); a type
                other than 'cont'/'cat' is decided from train_df
    method      0 mean-shift, 1 MMD, 2 Kolmogorov-Smirnov (numeric features)
    alpha       significance level: drift_detected is p_value < alpha
    seed        seeds the MMD subsampling and permutations

    Returns one dict per feature, in order: feature, type ('cont'|'cat'),
    method, statistic, p_value (floats or None), drift_detected (bool),
    n_train, n_infer, note (why a feature was not tested, else None) and
    warning (how a declared type was settled, else None)."""
    features, type_notes = decide_types(_norm_features(features), train_df)
    if method not in METHODS:
        raise DriftError("unknown drift detection method %r; use 0 (mean-shift), 1 (MMD) or "
                         "2 (Kolmogorov-Smirnov)" % (method,))
    sample = _sample_from(infer_rows, features)
    if sample.names != [n for n, _ in features]:
        raise ValueError("the inference sample was gathered for other features")
    out = []
    for j, (name, typ) in enumerate(features):
        if name is None:                 # an input without a name of its own
            continue
        res = {"feature": name, "type": typ, "method": "chi2" if typ == "cat" else METHODS[method],
               "statistic": None, "p_value": None, "drift_detected": False}
        if typ == "cat":
            train = _train_categories(train_df, name)
            infer = sample.categories(j)
            n_train = sum(train.values()) if train is not None else 0
            n_infer = sum(infer.values())
        else:
            train = _train_numbers(train_df, name)
            infer = sample.numbers(j)
            n_train = train.size if train is not None else 0
            n_infer = infer.size
        res.update(n_train=int(n_train), n_infer=int(n_infer), note=None,
                   warning=type_notes.get(name))
        if train is None:
            res["note"] = "the training data has no column '%s'" % name
        elif n_train < MIN_VALUES or n_infer < MIN_VALUES:
            res["note"] = ("too few usable values to test (training %d, inference %d; at least "
                           "%d each)" % (n_train, n_infer, MIN_VALUES))
        else:
            res["statistic"], res["p_value"] = test_feature(typ, method, train, infer, name, seed)
            res["drift_detected"] = res["p_value"] is not None and res["p_value"] < alpha
        out.append(res)
    return out


# ---- database ---------------------------------------------------------------


def _cursors():
    import pymysql.cursors
    return pymysql.cursors


def _integrity_error():
    import pymysql
    return pymysql.err.IntegrityError


def _dict_cur(conn):
    return conn.cursor(_cursors().DictCursor)


def _select(conn, sql, args=()):
    with _dict_cur(conn) as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def _now(conn):
    """The database's clock (UTC, naive): the one clock of every stored time."""
    return _select(conn, "SELECT UTC_TIMESTAMP(6) AS now")[0]["now"]


def _as_utc(conn, now):
    """now as a naive UTC datetime (None: the database's current time; a
    number: epoch seconds; an aware datetime: converted)."""
    if now is None:
        return _now(conn)
    if isinstance(now, (int, float)):
        return datetime.datetime.fromtimestamp(now, datetime.timezone.utc).replace(tzinfo=None)
    if now.tzinfo is not None:
        return now.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return now


def _clip(text, limit=REASON_MAX):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


_say = log.say  # (sink, subject, message, *args)


def last_window_end(conn, modelid):
    """window_end of the model's latest drift_metrics row (its last
    completed check), or None."""
    rows = _select(conn, "SELECT window_end FROM drift_metrics WHERE modelid = %s "
                   "ORDER BY id DESC LIMIT 1", (modelid,))
    return rows[0]["window_end"] if rows else None



def _artifact_path(cfg, rel):
    root = os.path.realpath(cfg.artifacts)
    path = os.path.realpath(os.path.join(root, rel))
    if path != root and not path.startswith(root + os.sep):
        raise DriftError("the training data path '%s' is outside the artifact store" % rel)
    return path


def _verify(path, sha256):
    """The stored training data is the file the upload hashed
    (artifacts.sha256): a store shared between hosts (docs/SCALING.md)
    must not hand a drift check a truncated or replaced file."""
    if not sha256:
        return
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise DriftError("the training data file is missing from the artifact store (%s)"
                         % path) from None
    except OSError as e:
        raise DriftError("cannot read the training data %s: %s" % (path, e.strerror)) from None
    if digest.hexdigest() != sha256.strip().lower():
        raise DriftError("the training data in the artifact store (%s) does not match its "
                         "SHA-256 %s; upload it again" % (path, sha256))


def check_model(conn, cfg, modelid, seed=0, log=None):
    """Run a drift check of one model without writing anything.  Returns
    (results, window_start, window_end, method) or raises DriftError with
    the reason the run fails."""
    alpha, max_rows, _ = settings(cfg)
    conn.commit()  # a fresh read view: rows committed since the last statement count
    models = _select(conn, "SELECT featurelist, drift_detection FROM models WHERE modelid = %s",
                     (modelid,))
    if not models:
        raise DriftError("model '%s' no longer exists" % modelid)
    _, method = drift_settings(models[0]["drift_detection"])
    method = 0 if method is None else method
    if method not in METHODS:
        raise DriftError("unknown drift detection method %r in the model's drift_detection; "
                         "use 0 (mean-shift), 1 (MMD) or 2 (Kolmogorov-Smirnov)" % (method,))
    arts = _select(conn, "SELECT path, filename, version, sha256 FROM artifacts WHERE modelid = %s "
                   "AND filekind = 'data' ORDER BY version DESC LIMIT 1", (modelid,))
    if not arts:
        raise DriftError("model '%s' has no training data to compare with; upload it with "
                         "POST /model/%s/upload (file_kind=data)" % (modelid, modelid))
    cap = train_rows(cfg)
    path = _artifact_path(cfg, arts[0]["path"])
    sha = arts[0]["sha256"]
    _verify(path, sha.decode("ascii") if isinstance(sha, (bytes, bytearray)) else sha)
    declared, train_df, total = load_training_sample(path,
                                                     model_features(featurelist_of(conn, modelid,
                                                                    models[0]["featurelist"])),
                                                     cap, seed)
    features, _ = decide_types(declared, train_df)  # compute() says what it decided
    # The minimum is checked on the database's count, the one mlc-api's 409
    # uses: a window with fewer rows widens to every operation, and with
    # fewer than that the run fails with the count the API would give.
    need = min_rows(cfg)
    since = last_window_end(conn, modelid)
    if since is not None and not enough_rows(conn, modelid, need, since):
        since = None
    if since is None and not enough_rows(conn, modelid, need):
        have = recorded_rows(conn, modelid)
        conn.commit()
        raise DriftError("needs at least %d inference rows, has %d" % (need, have))
    conn.commit()
    # Kolmogorov-Smirnov sorts the values: the cache hands them over sorted
    # (the same result; a sort of sorted values is a third of the time).
    got = cached_sample(conn, cfg, modelid, features, since, max_rows, log, method == 2)
    if got is None:
        got = read_inference(conn, modelid, features, since, max_rows)
    sample, start, end = got
    results = compute(train_df, sample, declared, method, alpha, seed)
    if total > cap:
        said = sample_note(cap, total)
        for r in results:
            r["sample"] = said
    return results, start, end, method


def cached_sample(conn, cfg, modelid, features, since, max_rows, log=None, ordered=False):
    """read_inference()'s answer from the model's drift cache
    (mlcpy.drift_cache), or None when the cache is off or cannot be used:
    a cache that fails is logged and the check reads the database."""
    if not drift_cache.enabled(cfg):
        return None
    try:
        return drift_cache.sample(conn, cfg, modelid, features, since, max_rows, log, ordered)
    except (DriftError, MemoryError):
        raise
    except Exception as e:
        try:
            conn.rollback()
        except Exception:
            pass
        _say(log, "drift cache", "model %s: not used: %s: %s", modelid, type(e).__name__, e)
        return None


_decided = {}   # (modelid, features, training file, cap) -> features as decided


def inference_features(conn, cfg, modelid, featurelist, seed=0):
    """The features (settled types) check_model gathers a model's rows for,
    without reading the training data when the feature list settles them
    (else once per training file and feature list in this process)."""
    declared = model_features(featurelist_of(conn, modelid, featurelist))
    if declared and all(t in ("cont", "cat") for _, t in declared):
        return declared
    arts = _select(conn, "SELECT path, sha256 FROM artifacts WHERE modelid = %s AND "
                   "filekind = 'data' ORDER BY version DESC LIMIT 1", (modelid,))
    if not arts:
        return None
    cap = train_rows(cfg)
    key = (modelid, json.dumps(declared), arts[0]["path"], arts[0]["sha256"], cap, seed)
    if key not in _decided:
        if len(_decided) > 1000:
            _decided.clear()
        declared, train_df, _ = load_training_sample(_artifact_path(cfg, arts[0]["path"]),
                                                     declared, cap, seed)
        _decided[key] = decide_types(declared, train_df)[0]
    return _decided[key]


_cache_said = None


def warm_caches(conn, cfg, log=None, deadline=None):
    """Fold the new operations of every model with drift enabled (is_true
    1) and training data into its drift cache, at most
    drift_cache.PASS_ROWS rows each (the daemon's scheduling pass; a check
    folds what is left).  Returns how many models are up to date."""
    global _cache_said
    if not drift_cache.enabled(cfg):
        return 0
    try:
        os.close(drift_cache._open_dir(cfg))
    except (drift_cache.CacheError, OSError) as e:
        if str(e) != _cache_said:   # once, not every pass
            _say(log, "drift cache", "not used: %s; checks read the database", e)
        _cache_said = str(e)
        return 0
    _cache_said = None
    _, max_rows, _ = settings(cfg)
    conn.commit()
    models = _select(conn, "SELECT m.modelid, m.featurelist, m.drift_detection FROM models m "
                     "WHERE m.drift_detection IS NOT NULL AND EXISTS (SELECT 1 FROM artifacts a "
                     "WHERE a.modelid = m.modelid AND a.filekind = 'data') ORDER BY m.seq")
    conn.commit()
    done = 0
    for m in models:
        if deadline is not None and time.monotonic() > deadline:
            break
        if not drift_settings(m["drift_detection"])[0]:
            continue
        try:
            features = inference_features(conn, cfg, m["modelid"], m["featurelist"])
            conn.commit()
            if features is not None and drift_cache.warm(conn, cfg, m["modelid"], features,
                                                         max_rows, log):
                done += 1
        except DriftConfigError:
            raise
        except (DriftError, drift_cache.CacheError, OSError, ValueError) as e:
            try:
                conn.rollback()
            except Exception:
                pass
            _say(log, "drift cache", "model %s: not folded: %s", m["modelid"], e)
    return done


def featurelist_of(conn, modelid, model_featurelist):
    """The feature list the model's recorded rows follow: the one its newest
    deployment froze when it was created (deployments.features, which
    predict maps and checks rows with), else - no deployment left, or one
    made before features were frozen - the model's featurelist.  Either is
    read with model_features(), predict's rule (kind 0 or absent)."""
    rows = _select(conn, "SELECT features FROM deployments WHERE modelid = %s AND features IS "
                   "NOT NULL ORDER BY created_at DESC, deployment_id DESC LIMIT 1", (modelid,))
    return rows[0]["features"] if rows else model_featurelist


def sample_note(kept, total):
    """What a result says when the training data was sampled."""
    return ("training data sampled: %d of its %d rows, uniformly at random "
            "(MLC_DRIFT_TRAIN_ROWS)" % (kept, total))


_owner = (None, None)


def owner():
    """This process's name in drift_runs.claimed_by: host, pid and a random
    part (a pid is reused; a claim of a process that died must not pass
    for one of a new process)."""
    global _owner
    pid = os.getpid()
    if _owner[0] != pid:
        import socket
        _owner = (pid, "%s:%d:%s" % (socket.gethostname()[:80], pid, uuid.uuid4().hex[:12]))
    return _owner[1]


def _micros(seconds):
    return int(round(seconds * 1e6))


def _claim(conn, run_id, lease):
    """waiting -> running, claimed by this process until now + lease."""
    with conn.cursor() as cur:
        n = cur.execute("UPDATE drift_runs SET status = 'running', claimed_by = %s, "
                        "lease_until = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND "
                        "WHERE run_id = %s AND status = 'waiting'",
                        (owner(), _micros(lease), run_id))
    conn.commit()
    return n == 1


def renew(conn, run_id, lease):
    """Extend this process's claim on a running run; False when the run is
    no longer running under its claim."""
    with conn.cursor() as cur:
        n = cur.execute("UPDATE drift_runs SET lease_until = UTC_TIMESTAMP(6) + "
                        "INTERVAL %s MICROSECOND WHERE run_id = %s AND status = 'running' "
                        "AND claimed_by = %s", (_micros(lease), run_id, owner()))
    conn.commit()
    return n == 1


class Lease:
    """Renews the claim on a run every third of its length from a thread of
    its own, on a connection of its own (opened at the first renewal), while
    the check runs: a check slower than the lease is never taken for one
    whose process died."""

    def __init__(self, cfg, run_id, seconds, log=None):
        import threading
        self.cfg, self.run_id, self.seconds, self.log = cfg, run_id, seconds, log
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="drift-lease", daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        return False

    def _loop(self):
        from . import db
        conn, said = None, None
        while not self.stop.wait(self.seconds / 3.0):
            try:
                if conn is None:
                    conn = db.connect(self.cfg)
                if not renew(conn, self.run_id, self.seconds):
                    _say(self.log, "drift run %s" % self.run_id,
                         "no longer running under this process's claim; not renewed")
                    break
                said = None
            except Exception as e:  # the database is away: try again next time
                msg = "renewing the lease failed: %s: %s" % (type(e).__name__, e)
                if msg != said:
                    _say(self.log, "drift run %s" % self.run_id, msg)
                said = msg
                conn = db.close_quietly(conn)
        db.close_quietly(conn)


def _fail(conn, run_id, reason):
    try:
        conn.rollback()
    except Exception:
        pass
    with conn.cursor() as cur:
        cur.execute("UPDATE drift_runs SET status = 'failed', reason = %s, "
                    "finished_at = UTC_TIMESTAMP(6) "
                    "WHERE run_id = %s AND status = 'running' AND claimed_by = %s",
                    (_clip(reason), run_id, owner()))
    conn.commit()


def result_note(r):
    """drift_metrics.note of a result: how its type was settled, why it was
    not tested and whether the training data was sampled, or None."""
    text = "; ".join(x for x in (r.get("warning"), r.get("note"), r.get("sample")) if x)
    return _clip(text, NOTE_MAX) if text else None


def _complete(conn, run_id, modelid, results, start, end):
    """Store the metrics and mark the run completed, in one transaction;
    False when the run was no longer 'running' (nothing stored)."""
    now = _now(conn)
    rows = [(run_id, modelid, r["feature"][:NAME_MAX], r["type"], r["method"], r["statistic"],
             r["p_value"], 1 if r["drift_detected"] else 0, r["n_train"], r["n_infer"],
             start, end, now, result_note(r)) for r in results]
    try:
        with conn.cursor() as cur:
            n = cur.execute("UPDATE drift_runs SET status = 'completed', reason = NULL, "
                            "finished_at = %s WHERE run_id = %s AND status = 'running' "
                            "AND claimed_by = %s", (now, run_id, owner()))
            if n != 1:
                conn.rollback()
                return False
            cur.executemany(
                "INSERT INTO drift_metrics (run_id, modelid, feature, type, method, statistic, "
                "p_value, drift_detected, n_train, n_infer, window_start, window_end, "
                "timestamp, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows)
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    return True


def run_one(conn, cfg, log, run_id, modelid=None):
    """Claim one waiting run and carry it out; returns its final status
    ('completed' or 'failed'), or None when it was not waiting (another
    process took it, or it does not exist)."""
    if modelid is None:
        rows = _select(conn, "SELECT modelid FROM drift_runs WHERE run_id = %s", (run_id,))
        conn.commit()
        if not rows:
            return None
        modelid = rows[0]["modelid"]
    lease = lease_seconds(cfg)
    if not _claim(conn, run_id, lease):
        return None
    subject = "drift run %s" % run_id
    _say(log, subject, "checking model %s", modelid)
    try:
        with Lease(cfg, run_id, lease, log):
            results, start, end, method = check_model(conn, cfg, modelid, log=log)
    except DriftError as e:
        _fail(conn, run_id, str(e))
        _say(log, subject, "failed: %s", e)
        return "failed"
    except MemoryError:
        reason = ("the check needs more memory than mlc-drift may use (MLC_DRIFT_MEMORY); "
                  "lower MLC_DRIFT_TRAIN_ROWS or MLC_DRIFT_MAX_ROWS, or raise MLC_DRIFT_MEMORY")
        _say(log, subject, "failed: %s", reason)
        _fail(conn, run_id, reason)
        return "failed"
    except Exception as e:
        reason = "internal error: %s: %s" % (type(e).__name__, e)
        _say(log, subject, "%s; %s", reason, traceback.format_exc())
        _fail(conn, run_id, reason)  # may raise when the database is gone
        return "failed"
    if not _complete(conn, run_id, modelid, results, start, end):
        _say(log, subject, "the run was changed by someone else; results not stored")
        return None
    if results and results[0].get("sample"):
        _say(log, subject, "%s", results[0]["sample"])
    for r in results:
        if r.get("warning"):
            _say(log, subject, "feature '%s': %s", r["feature"], r["warning"])
        if r["note"]:
            _say(log, subject, "feature '%s' not tested: %s", r["feature"], r["note"])
    drifted = [r["feature"] for r in results if r["drift_detected"]]
    _say(log, subject, "completed: %s, %d feature(s), drift in %d%s; window %s .. %s",
         METHODS[method], len(results), len(drifted),
         (" (%s)" % ", ".join(drifted[:20])) if drifted else "", start, end)
    return "completed"


def run_pending(conn, cfg, log=None):
    """Claim and run the waiting drift runs (oldest first, at most 100 per
    call); returns how many this call carried out.  A run is claimed by
    UPDATE ... WHERE status = 'waiting', so two processes never both run it."""
    conn.commit()  # a fresh read view: see runs inserted since the last call
    waiting = _select(conn, "SELECT run_id, modelid FROM drift_runs WHERE status = 'waiting' "
                      "ORDER BY created_at, run_id LIMIT 100")
    conn.commit()
    done = 0
    for row in waiting:
        if run_one(conn, cfg, log, row["run_id"], row["modelid"]) is not None:
            done += 1
    return done


def fail_interrupted(conn, log=None):
    """Fail every 'running' run whose lease has expired (the database's
    clock; a run without a lease counts as expired): the process that
    claimed it stopped without finishing it.  A run whose claimant still
    renews its lease is left alone, whoever looks.  Returns how many."""
    conn.commit()
    with _dict_cur(conn) as cur:
        cur.execute("SELECT run_id, claimed_by FROM drift_runs WHERE status = 'running' AND "
                    "(lease_until IS NULL OR lease_until < UTC_TIMESTAMP(6))")
        expired = list(cur.fetchall())
    n = 0
    for row in expired:
        reason = ("interrupted: %s stopped during the check (its claim expired); request a new "
                  "run with POST /model/{id}/drift/run"
                  % ("mlc-drift process %s" % row["claimed_by"] if row["claimed_by"]
                     else "the mlc-drift process that ran it"))
        with conn.cursor() as cur:
            # The condition again: the claimant may have renewed meanwhile.
            done = cur.execute("UPDATE drift_runs SET status = 'failed', reason = %s, "
                               "finished_at = UTC_TIMESTAMP(6) WHERE run_id = %s AND "
                               "status = 'running' AND "
                               "(lease_until IS NULL OR lease_until < UTC_TIMESTAMP(6))",
                               (_clip(reason), row["run_id"]))
        conn.commit()
        if done:
            n += 1
            _say(log, "drift run %s" % row["run_id"], "failed: %s", reason)
    return n


def request_run(conn, modelid, requested_by="api", now=None):
    """Queue a run for a model, or find the one that waits (one run of a
    model waits at a time, as POST /model/{id}/drift/run does: the model row
    is locked meanwhile); returns its run_id."""
    try:
        with _dict_cur(conn) as cur:
            if not cur.execute("SELECT modelid FROM models WHERE modelid = %s FOR UPDATE",
                               (modelid,)):
                raise DriftError("model '%s' not found" % modelid)
            cur.execute("SELECT run_id FROM drift_runs WHERE modelid = %s AND "
                        "status = 'waiting' LIMIT 1", (modelid,))
            row = cur.fetchone()
            run_id = row["run_id"] if row else str(uuid.uuid4())
            if not row:
                cur.execute("INSERT INTO drift_runs (run_id, modelid, status, requested_by, "
                            "created_at) VALUES (%s, %s, 'waiting', %s, %s)",
                            (run_id, modelid, requested_by, _as_utc(conn, now)))
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    return run_id


def _new_rows(conn, modelid, since, need):
    """Whether the model has at least `need` inference rows (input_rows)
    among its newest DUE_PROBE operations later than since (see the module
    documentation)."""
    # The newest DUE_PROBE operations, then the time: a bounded read however
    # old the model's last operations are.
    rows = _select(conn, "SELECT input_rows, timestamp FROM operations FORCE INDEX "
                   "(operations_model_rows) WHERE modelid = %s ORDER BY operationid DESC "
                   "LIMIT %s", (modelid, DUE_PROBE))
    return sum(int(r["input_rows"]) for r in rows
               if since is None or r["timestamp"] > since) >= need


def due_models(conn, cfg, now=None):
    """The modelids schedule_due would add a run for now."""
    _, _, interval = settings(cfg)
    need = min_rows(cfg)
    now = _as_utc(conn, now)
    cutoff = now - datetime.timedelta(seconds=interval)
    conn.commit()
    models = _select(conn,
                     "SELECT m.modelid, m.featurelist, m.drift_detection, "
                     "(SELECT MAX(r.created_at) FROM drift_runs r "
                     " WHERE r.modelid = m.modelid) AS last_run, "
                     "EXISTS (SELECT 1 FROM artifacts a WHERE a.modelid = m.modelid "
                     " AND a.filekind = 'data') AS has_data "
                     "FROM models m WHERE m.drift_detection IS NOT NULL ORDER BY m.seq")
    busy = {r["modelid"] for r in _select(
        conn, "SELECT DISTINCT modelid FROM drift_runs WHERE status IN ('waiting', 'running')")}
    due = []
    for m in models:
        enabled, _ = drift_settings(m["drift_detection"])
        if not enabled or not m["has_data"] or m["modelid"] in busy:
            continue
        if m["last_run"] is not None and m["last_run"] > cutoff:
            continue
        if _new_rows(conn, m["modelid"], last_window_end(conn, m["modelid"]), need):
            due.append(m["modelid"])
    conn.commit()
    return due


def schedule_due(conn, cfg, log=None, now=None):
    """Add a 'schedule' run for every model that is due (see the module
    documentation); returns how many were added.  The model row is locked
    while its runs are checked again, so two processes add one run."""
    _, _, interval = settings(cfg)
    now = _as_utc(conn, now)
    cutoff = now - datetime.timedelta(seconds=interval)
    added = 0
    for modelid in due_models(conn, cfg, now):
        try:
            with conn.cursor() as cur:
                if not cur.execute("SELECT modelid FROM models WHERE modelid = %s FOR UPDATE",
                                   (modelid,)):
                    conn.rollback()
                    continue
                cur.execute("SELECT COUNT(*) AS busy FROM drift_runs WHERE modelid = %s "
                            "AND (status IN ('waiting', 'running') OR created_at > %s)",
                            (modelid, cutoff))
                row = cur.fetchone()
                busy = row["busy"] if isinstance(row, dict) else row[0]
                if busy:
                    conn.rollback()
                    continue
                run_id = str(uuid.uuid4())
                cur.execute("INSERT INTO drift_runs (run_id, modelid, status, requested_by, "
                            "created_at) VALUES (%s, %s, 'waiting', 'schedule', %s)",
                            (run_id, modelid, now))
            conn.commit()
        except _integrity_error():
            conn.rollback()  # a run queued meanwhile by a writer that does not lock the model
            continue
        except Exception:
            conn.rollback()
            raise
        added += 1
        _say(log, "drift run %s" % run_id, "scheduled for model %s", modelid)
    return added


# ---- the daemon ------------------------------------------------------------------

DEFAULT_MEMORY = 2 << 30
MIN_MEMORY = 256 << 20

POLL_SECONDS = 1.0          # how often queued runs are looked for
SCHEDULE_SECONDS = 60.0     # how often due models are looked for

stopping = False


def on_term(signum, frame):
    global stopping
    stopping = True


def one_pass(conn, cfg, scheduled_at):
    """Queue what is due (at most every SCHEDULE_SECONDS), then carry out
    what waits.  Returns the time of the last scheduling pass."""
    now = time.monotonic()
    if now - scheduled_at >= SCHEDULE_SECONDS:
        fail_interrupted(conn, log)   # runs whose claimant died
        schedule_due(conn, cfg, log)
        run_pending(conn, cfg, log)   # what waits goes before the caches
        warm_caches(conn, cfg, log, time.monotonic() + SCHEDULE_SECONDS / 2)
        scheduled_at = now
    run_pending(conn, cfg, log)
    return scheduled_at


def serve(cfg, once):
    conn = None
    scheduled_at = -SCHEDULE_SECONDS
    while not stopping:
        try:
            if conn is None:
                conn = db.connect(cfg)
            scheduled_at = one_pass(conn, cfg, scheduled_at)
        except Exception as e:  # the database went away, or a check broke: log, retry
            log.event("drift", "pass failed: %s: %s", type(e).__name__, e)
            conn = db.close_quietly(conn)
            if once:
                return 1
        if once:
            return 0
        time.sleep(POLL_SECONDS)
    return 0


def memory_limit(cfg):
    """MLC_DRIFT_MEMORY in bytes (0: no limit); ConfigError when invalid."""
    raw = cfg.get("MLC_DRIFT_MEMORY", str(DEFAULT_MEMORY)) or str(DEFAULT_MEMORY)
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value != 0 and value < MIN_MEMORY:
        raise config.ConfigError("MLC_DRIFT_MEMORY=%r is not a valid value (bytes, at least %d, "
                                 "or 0 for no limit)" % (raw, MIN_MEMORY))
    return value


def limit_memory(limit):
    """Cap the address space (RLIMIT_AS, soft and hard: a process that is
    not root cannot raise it again)."""
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def drift_user(cfg):
    """The account to run as when started as root (see the module text)."""
    name = cfg.get("MLC_DRIFT_USER", "")
    if name:
        return name
    service = cfg.get("MLC_SERVICE_USER")
    if service:
        try:
            pwd.getpwnam(service)
            return service
        except KeyError:
            pass
    return "nobody"


def prepare_cache(cfg):
    """Create the drift cache's directory, as root for the drift user; a
    failure is logged (checks then read the database)."""
    uid = gid = None
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam(drift_user(cfg))
            uid, gid = pw.pw_uid, pw.pw_gid
        except KeyError:
            return   # drop_root says why
    try:
        drift_cache.prepare(cfg, uid, gid)
    except OSError as e:
        log.event("drift", "cannot create the cache directory %s: %s; checks read the database",
                  drift_cache.directory(cfg), e.strerror)


def drop_root(cfg):
    """As root: switch to the drift user for good (groups, gid, uid) and
    check that root cannot be had back.  Returns a description or None."""
    if os.geteuid() != 0:
        return None
    name = drift_user(cfg)
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise config.ConfigError("MLC_DRIFT_USER: there is no user '%s' to run as" % name) from None
    if pw.pw_uid == 0:
        raise config.ConfigError("MLC_DRIFT_USER: '%s' is root; name an unprivileged user" % name)
    # Its own groups, plus the artifact store's (MLC_WEB_GROUP, set by the
    # spooler): training data is 0640 in that group, and reading it is all
    # the drift checks need of the store.
    groups = set(os.getgrouplist(pw.pw_name, pw.pw_gid))
    try:
        groups.add(os.stat(cfg.artifacts).st_gid)
    except OSError:
        pass
    groups.discard(0)
    os.setgroups(sorted(groups))
    os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
    os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise RuntimeError("mlc-drift could get root back after dropping it")
    os.environ["HOME"] = "/nonexistent"
    return "%s (uid %d, gid %d)" % (pw.pw_name, pw.pw_uid, pw.pw_gid)


# ---- command line -------------------------------------------------------------

USAGE = """mlc-drift            run until SIGTERM (one log line per event on stderr,
                     or in the --log file, which SIGHUP reopens)
mlc-drift --once     carry out what is waiting and due, then exit
mlc-drift check ID   compute and print a check of model ID (JSON lines); store nothing
mlc-drift run ID     queue a run of model ID and carry it out now
mlc-drift pending    carry out the waiting runs, print how many
mlc-drift schedule   queue the runs that are due, print how many"""


def _command(cmd, modelid):
    """One of the commands other than the daemon; the exit status."""
    cfg = config.load()
    conn = db.connect(cfg)
    try:
        if cmd == "check":
            results, start, end, _ = check_model(conn, cfg, modelid, log=log)
            for r in results:
                print(json.dumps(dict(r, window_start=str(start), window_end=str(end))))
        elif cmd == "run":
            run_id = request_run(conn, modelid, "cli")
            status = run_one(conn, cfg, log, run_id, modelid)
            print(json.dumps({"run_id": run_id, "status": status}))
            return 0 if status == "completed" else 1
        elif cmd == "pending":
            print(run_pending(conn, cfg, log))
        else:
            print(schedule_due(conn, cfg, log))
    except DriftError as e:
        log.event("drift", str(e))
        return 1
    finally:
        conn.close()
    return 0


def main(argv=None):
    """The mlc-drift command line (scripts/mlc-drift; see USAGE)."""
    ap = argparse.ArgumentParser(prog="mlc-drift",
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 description="drift checks: the daemon and its commands",
                                 epilog=USAGE)
    ap.add_argument("command", nargs="?", choices=("check", "run", "pending", "schedule"),
                    help="a single command instead of the daemon")
    ap.add_argument("modelid", nargs="?")
    ap.add_argument("--once", action="store_true", help="carry out what waits and is due, then exit")
    ap.add_argument("--log", metavar="FILE",
                    help="append the log to FILE instead of stderr; SIGHUP reopens it")
    args = ap.parse_args(argv)
    if args.command in ("check", "run") and not args.modelid:
        ap.error("%s needs a MODELID" % args.command)
    if args.command and (args.once or args.log):
        ap.error("--once and --log are the daemon's options")
    if args.command:
        return _command(args.command, args.modelid)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log.handle_hup("drift")
    if args.log:
        try:
            log.to_file(args.log, "drift")
        except OSError as e:
            log.event("drift", "cannot open the log file %s: %s", args.log, e.strerror)
            return 2
    try:
        cfg = config.load()
        where = cfg.db_where()
        limit = memory_limit(cfg)
        settings(cfg), train_rows(cfg), lease_seconds(cfg), min_rows(cfg)
        if drift_cache.enabled(cfg):
            prepare_cache(cfg)
        user = drop_root(cfg)
        limit_memory(limit)
    except (config.ConfigError, OSError) as e:
        log.event("drift", "cannot start: %s", e)
        return 2
    if user is None and os.geteuid() != 0:
        user = "%s (uid %d)" % (pwd.getpwuid(os.geteuid()).pw_name, os.geteuid())
    log.event("drift", "started (pid %d, as %s, database %s, memory limit %s, claims as %s)",
              os.getpid(), user, where, "%d bytes" % limit if limit else "none", owner())
    if not os.access(cfg.artifacts, os.R_OK | os.X_OK):
        log.event("drift", "warning: %s cannot read the artifact store %s; checks will fail "
                  "(set MLC_DRIFT_USER to a user that can)", user, cfg.artifacts)
    return serve(cfg, args.once)
