"""Drift detection: compare the inputs a model received in production (the
operations table) with the data it was trained on (its latest `data`
artifact), one two-sample test per input feature.

Who calls what
--------------
mlc-drift calls run_pending(), schedule_due() and fail_interrupted() from
its loop; the C API only inserts drift_runs rows (POST
/model/{id}/drift/run, requested_by 'api': one waiting run per model, the
unique key drift_runs_one_waiting) and serves drift_metrics.  compute() is
the pure part, also used by the tests.

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
The input features are the featurelist entries with a feature_name and
kind 0 or absent, in order - the rule the predict gateway uses - typed by
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
If the window holds fewer than 10 rows, the latest rows are used
regardless of the window, so an on-demand check on a quiet model
compares what there is; with fewer than 10 rows even then the run fails
with "needs at least 10 inference rows, has N".  window_start and
window_end are the timestamps of the oldest and newest operation that
contributed a row.

Rows are streamed - pages of operations by descending operationid, each
through a server-side cursor (pymysql SSCursor, fetchmany), the page size
following the rows an operation has held so far so that little is left to
drain when MLC_DRIFT_MAX_ROWS is reached - into one float64 array per
numeric feature and one category counter per categorical feature: memory
grows by 8 bytes per numeric value, not by a Python object per row.

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
import array
import datetime
import json
import math
import os
import re
import sys
import traceback
import uuid
import warnings
import zlib
from collections import Counter

import numpy as np

from .config import ConfigError

MIN_ROWS = 10            # inference rows a check needs (as app/route-drift.c)
MIN_VALUES = 2           # values per side below which a feature is not tested
MMD_MAX_SAMPLE = 500     # values per side the MMD test looks at
MMD_PERMUTATIONS = 200
DUE_PROBE = 100          # newest operations schedule_due looks at
PAGE = 5000              # operations per query while reading rows (at most)
FIRST_PAGE = 64          # ... in the first query, until rows per operation are known
FETCH = 500              # rows per fetchmany
FLUSH = 4096             # numeric rows converted to float64 at a time
NAME_MAX = 255           # drift_metrics.feature
REASON_MAX = 4000
NOTE_MAX = 2000          # drift_metrics.note

METHODS = {0: "mean_shift", 1: "mmd", 2: "ks"}
METHOD_NAMES = {0: "mean-shift", 1: "MMD", 2: "Kolmogorov-Smirnov"}

DEFAULT_ALPHA = "0.05"
DEFAULT_MAX_ROWS = "100000"
DEFAULT_INTERVAL = "3600"
DEFAULT_TRAIN_ROWS = "100000"
DEFAULT_LEASE = "60"
TRAIN_CHUNK = 100000     # training CSV rows read at a time while sampling


class DriftError(Exception):
    """A check that cannot be done; the message is the run's reason."""


class DriftConfigError(DriftError, ConfigError):
    """A MLC_DRIFT_* setting that is not a valid value."""


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


def lease_seconds(cfg):
    """MLC_DRIFT_LEASE: seconds a claim on a run holds without renewal."""
    return _setting(cfg, "MLC_DRIFT_LEASE", DEFAULT_LEASE, float, 0.0)


# ---- model metadata ---------------------------------------------------------


def _json(value):
    """A JSON column value parsed, or None (NULL or not JSON)."""
    if value is None or not isinstance(value, (str, bytes, bytearray)):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return None


def _int(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def drift_settings(drift_detection):
    """(enabled, method) from models.drift_detection (text or parsed):
    enabled when an item has is_true 1, whose method is used; otherwise the
    first item's method; method None when no item names one."""
    items = _json(drift_detection)
    if not isinstance(items, list):
        return False, None
    items = [i for i in items if isinstance(i, dict)]
    for item in items:
        if _int(item.get("is_true")) == 1:
            return True, _int(item.get("method"))
    for item in items:
        if "method" in item:
            return False, _int(item.get("method"))
    return False, None


def declared_type(item):
    """'cat' or 'cont' from a featurelist entry's type; any other string is
    returned as it is (decide_types() settles it from the training data)."""
    typ = item.get("type")
    if typ == "cat":
        return "cat"
    if typ is None or typ == "cont" or not isinstance(typ, str):
        return "cont"
    return typ


def model_features(featurelist):
    """The input features of a featurelist (text or parsed) as
    [(name, type)]: entries with a non-empty feature_name whose kind is 0
    or absent, in order, duplicates dropped; type is 'cont', 'cat' or a
    type still to be decided (see declared_type).  [] when there are none."""
    items = _json(featurelist)
    out, seen = [], set()
    if not isinstance(items, list):
        return out
    for item in items:
        if not isinstance(item, dict):
            continue
        name, kind = item.get("feature_name"), item.get("kind")
        if not isinstance(name, str) or not name or name in seen:
            continue
        if kind is not None and _int(kind) != 0:
            continue
        seen.add(name)
        out.append((name, declared_type(item)))
    return out


def _column_type(df, name):
    """'cont' when the training column reads as numbers (not booleans), else
    'cat'; None when there is no such column."""
    import pandas as pd
    if df is None or name not in df.columns:
        return None
    col = df[name]
    if isinstance(col, pd.DataFrame):  # duplicated column name
        col = col.iloc[:, 0]
    return ("cont" if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
            else "cat")


def decide_types(features, train_df):
    """Settle the features whose type is neither 'cont' nor 'cat' from their
    training column (see the module documentation).  Returns (features as
    [(name, 'cont'|'cat')], {name: note saying what was decided})."""
    out, notes = [], {}
    for name, typ in features:
        if typ in ("cont", "cat"):
            out.append((name, typ))
            continue
        col = _column_type(train_df, name)
        shown = json.dumps(typ, ensure_ascii=False)
        if col is None:
            out.append((name, "cont"))
            notes[name] = ("featurelist type %s is neither \"cont\" nor \"cat\" and the training "
                           "data has no column to decide from: taken as continuous" % shown)
        else:
            out.append((name, col))
            notes[name] = ("featurelist type %s is neither \"cont\" nor \"cat\": taken as %s, "
                           "because the training data's column is %s"
                           % (shown, "continuous" if col == "cont" else "categorical",
                              "numeric" if col == "cont" else "not numeric"))
    return out, notes


def _norm_features(features):
    """features as [(name, type)] from (name, type) pairs, featurelist-like
    dicts or bare names (numeric); types as declared_type() gives them."""
    out = []
    for f in features:
        if isinstance(f, str):
            out.append((f, "cont"))
        elif isinstance(f, dict):
            out.append((str(f.get("feature_name")), declared_type(f)))
        else:
            name, typ = f
            out.append((str(name), declared_type({"type": typ})))
    return out


# ---- values -----------------------------------------------------------------

_NUMERIC_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _number_key(f):
    if f.is_integer() and abs(f) < 2 ** 53:
        return str(int(f))
    return repr(f)


def category_key(v):
    """The category a value stands for, as text, or None when it is missing
    or not a scalar.  Numbers and numeric strings take a canonical form
    (1, 1.0, "1" and "1.0" are "1"; 0.5 is "0.5"), booleans are "true" and
    "false", other strings are themselves with surrounding blanks removed."""
    if v is None or isinstance(v, (list, dict, tuple)):
        return None
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        if abs(int(v)) < 2 ** 53:
            return str(int(v))
        v = float(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return _number_key(f) if math.isfinite(f) else None
    s = str(v).strip()
    if not s:
        return None
    if _NUMERIC_TEXT.match(s):
        try:
            f = float(s)
        except (ValueError, OverflowError):
            return s
        return _number_key(f) if math.isfinite(f) else s
    return s


def number_value(v):
    """A numeric feature's value as a finite float, or None: JSON numbers and
    numeric strings count; booleans, null, NaN and infinities do not."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        try:
            f = float(v)
        except OverflowError:
            return None
        return f if math.isfinite(f) else None
    if isinstance(v, str):
        s = v.strip()
        if _NUMERIC_TEXT.match(s):
            try:
                f = float(s)
            except (ValueError, OverflowError):
                return None
            return f if math.isfinite(f) else None
    return None


# ---- inference rows -----------------------------------------------------------


def _loads(text):
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _rows_of(obj):
    if isinstance(obj, dict):
        return [obj] if obj else []
    if isinstance(obj, list) and obj:
        if isinstance(obj[0], (list, dict)):
            return [r for r in obj if isinstance(r, (list, dict)) and r]
        return [obj]
    return []


def extract_rows(data):
    """The rows of one operations.data value (JSON text, or an already
    parsed value), each a list (values in feature order) or a dict (keyed by
    feature name):

      [[1, 2], [3, 4]]      a batch: each row         -> [[1, 2], [3, 4]]
      [1, 2]                one row                   -> [[1, 2]]
      {"a": 1, "b": 2}      one row object            -> [{"a": 1, "b": 2}]
      [{"a": 1}, {"a": 2}]  a batch of objects        -> [{"a": 1}, {"a": 2}]
      "[1, 2]"              JSON text in a string     -> parsed again, once
      anything else         (not JSON, a number, null, [], {}, a string
                            that is not JSON)          -> []

    In a batch (the first item is a list or object) items that are not
    lists or objects, and empty ones, are dropped."""
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8", "replace")
    obj = _loads(data) if isinstance(data, str) else data
    if isinstance(obj, str):
        obj = _loads(obj)
    return _rows_of(obj)


class InferenceSample:
    """Inference values of a model's features, gathered row by row: one
    float64 array (array('d')) per numeric feature and one Counter per
    categorical feature.  rows counts the rows of valid shape; max_rows
    (None: no limit) stops accepting rows."""

    def __init__(self, features, max_rows=None):
        self.features = _norm_features(features)
        self.names = [n for n, _ in self.features]
        self.n = len(self.features)
        self.is_cat = [t == "cat" for _, t in self.features]
        self.all_numeric = self.n > 0 and not any(self.is_cat)
        self.cols = [None if c else array.array("d") for c in self.is_cat]
        self.counts = [Counter() if c else None for c in self.is_cat]
        self.max_rows = max_rows
        self.rows = 0
        self._pending = []  # numeric rows not yet converted (see add_data)

    @property
    def full(self):
        return self.max_rows is not None and self.rows >= self.max_rows

    def _values(self, vals):
        for j, v in enumerate(vals):
            if self.is_cat[j]:
                k = category_key(v)
                if k is not None:
                    self.counts[j][k] += 1
            else:
                f = number_value(v)
                if f is not None:
                    self.cols[j].append(f)

    def add_row(self, row):
        """Add one parsed row; True when it had a valid shape."""
        if self.full:
            return False
        if self._pending:
            self._flush()  # keep the values in the order of the rows
        if isinstance(row, list):
            if len(row) != self.n:
                return False
            vals = row
        elif isinstance(row, dict):
            vals = [row.get(name) for name in self.names]
            if not any(name in row for name in self.names):
                return False
        else:
            return False
        self._values(vals)
        self.rows += 1
        return True

    def add_data(self, data):
        """Add the rows of one operations.data value; returns how many rows
        it contributed.

        The predict gateway stores all-numeric 2-D lists; text with no
        string and no boolean in it (no '"', 'true' or 'false') is such a
        list of numbers and nulls, so for all-numeric features its rows are
        queued and converted to float64 by numpy a block at a time instead
        of value by value."""
        if self.full:
            return 0
        if (self.all_numeric and isinstance(data, str) and '"' not in data
                and "true" not in data and "false" not in data):
            obj = _loads(data)
            if isinstance(obj, list) and obj:
                rows = obj if isinstance(obj[0], list) else [obj]
                added = 0
                room = None if self.max_rows is None else self.max_rows - self.rows
                for r in rows:
                    if room is not None and added >= room:
                        break
                    if isinstance(r, list) and len(r) == self.n:
                        self._pending.append(r)
                        added += 1
                self.rows += added
                if len(self._pending) >= FLUSH:
                    self._flush()
                return added
        added = 0
        for r in extract_rows(data):
            if self.full:
                break
            added += self.add_row(r)
        return added

    def _flush(self):
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            block = np.array(pending, dtype=np.float64)
            if block.ndim != 2 or block.shape[1] != self.n:
                raise ValueError("ragged rows")
        except (ValueError, TypeError, OverflowError):
            for r in pending:  # a nested list or a huge integer somewhere
                self._values(r)
            return
        for j in range(self.n):
            col = block[:, j]
            col = col[np.isfinite(col)]
            self.cols[j].frombytes(np.ascontiguousarray(col).tobytes())

    def finish(self):
        """Convert what is queued; call before reading values."""
        self._flush()
        return self

    def numbers(self, j):
        """The values of numeric feature j as a float64 array (no copy)."""
        if self._pending:
            self._flush()
        col = self.cols[j]
        if not len(col):
            return np.empty(0, dtype=np.float64)
        return np.frombuffer(col, dtype=np.float64)

    def categories(self, j):
        """The category counts of categorical feature j."""
        return self.counts[j]


# ---- training data ---------------------------------------------------------


def _train_numbers(train_df, name):
    import pandas as pd
    if train_df is None or name not in train_df.columns:
        return None
    col = train_df[name]
    if isinstance(col, pd.DataFrame):  # duplicated column name
        col = col.iloc[:, 0]
    if pd.api.types.is_bool_dtype(col):
        return np.empty(0, dtype=np.float64)  # true/false is not a number here either
    vals = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return vals[np.isfinite(vals)]


def _train_categories(train_df, name):
    import pandas as pd
    if train_df is None or name not in train_df.columns:
        return None
    col = train_df[name]
    if isinstance(col, pd.DataFrame):
        col = col.iloc[:, 0]
    counts = Counter()
    for value, n in col.value_counts(dropna=True).items():
        k = category_key(value)
        if k is not None:
            counts[k] += int(n)
    return counts


def _read_sample(path, usecols, dtype, cap, seed):
    """The rows of a CSV's columns, or a uniform random sample of cap of
    them; returns (DataFrame, rows in the file).

    The file is read TRAIN_CHUNK rows at a time and every row gets a random
    key; the rows with the cap smallest keys are kept (bottom-k sampling:
    every subset of cap rows is equally likely), in file order.  Memory is
    one chunk plus the sample whatever the file's size.  The generator is
    seeded, so the same file gives the same sample on every check."""
    import pandas as pd
    if cap is None:
        df = pd.read_csv(path, usecols=usecols, dtype=dtype)
        return df, len(df)
    rng = np.random.default_rng([int(seed), zlib.crc32(os.path.basename(path).encode())])
    kept, keys, total = None, None, 0
    with pd.read_csv(path, usecols=usecols, dtype=dtype, chunksize=TRAIN_CHUNK) as reader:
        for chunk in reader:
            n = len(chunk)
            chunk.index = pd.RangeIndex(total, total + n)
            total += n
            k = rng.random(n)
            if kept is None:
                kept, keys = chunk, k
            else:
                kept, keys = pd.concat([kept, chunk]), np.concatenate([keys, k])
            if len(kept) > cap:
                pick = np.argpartition(keys, cap)[:cap]
                kept, keys = kept.iloc[pick], keys[pick]
    if kept is None:
        return pd.read_csv(path, usecols=usecols, dtype=dtype, nrows=0), 0
    return kept.sort_index().reset_index(drop=True), total


def load_training(path, features, max_rows=None, seed=0):
    """Read a training CSV; returns (features, DataFrame of their columns).
    Without features, the columns except the last are used (see the module
    documentation).  With max_rows, a uniform sample of at most that many
    rows (see _read_sample).  Raises DriftError when the file cannot be
    read."""
    features, df, _ = load_training_sample(path, features, max_rows, seed)
    return features, df


def load_training_sample(path, features, max_rows=None, seed=0):
    """load_training, also returning how many rows the file has."""
    import pandas as pd
    try:
        header = [str(c) for c in pd.read_csv(path, nrows=0).columns]
        if not features:
            if len(header) < 2:
                raise DriftError("the model has no input features in its featurelist and its "
                                 "training data has %d column; without a featurelist every column "
                                 "but the last (the target) is a feature" % len(header))
            names = header[:-1]
            df, total = _read_sample(path, names, None, max_rows, seed)
            return [(n, _column_type(df, n)) for n in names], df, total
        present = [n for n, _ in features if n in header]
        cats = {n: str for n, t in features if t == "cat" and n in header}
        if not present:
            return features, None, 0
        df, total = _read_sample(path, present, cats, max_rows, seed)
        return features, df, total
    except DriftError:
        raise
    except FileNotFoundError:
        raise DriftError("the training data file is missing from the artifact store (%s)" % path)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as e:
        raise DriftError("cannot read the training data as CSV (%s): %s"
                         % (path, " ".join(str(e).split())))


# ---- the tests ---------------------------------------------------------------


def _finite(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _welch(x, y):
    from scipy import stats
    r = stats.ttest_ind(x, y, equal_var=False)
    return r.statistic, r.pvalue


def _ks(x, y):
    from scipy import stats
    r = stats.ks_2samp(x, y)
    return r.statistic, r.pvalue


def chi2_table(train_counts, infer_counts):
    """The 2 x K table (row 0 training, row 1 inference; categories sorted)
    and the category keys."""
    keys = sorted(set(train_counts) | set(infer_counts))
    table = np.array([[train_counts.get(k, 0) for k in keys],
                      [infer_counts.get(k, 0) for k in keys]], dtype=np.int64)
    return table, keys


def _chi2(train_counts, infer_counts):
    from scipy import stats
    table, _ = chi2_table(train_counts, infer_counts)
    r = stats.chi2_contingency(table)
    return r[0], r[1]


def mmd_bandwidth(z):
    """The median heuristic on a pooled 1-D sample: the median of |z_i - z_j|
    over i < j, else the median of the non-zero ones, else 0."""
    z = np.asarray(z, dtype=np.float64)
    iu = np.triu_indices(z.size, 1)
    d = np.abs(z[:, None] - z[None, :])[iu]
    med = float(np.median(d)) if d.size else 0.0
    if med > 0:
        return med
    nz = d[d > 0]
    return float(np.median(nz)) if nz.size else 0.0


def _mmd(x, y, rng):
    """(biased MMD^2, permutation p-value); see the module documentation."""
    if x.size > MMD_MAX_SAMPLE:
        x = rng.choice(x, MMD_MAX_SAMPLE, replace=False)
    if y.size > MMD_MAX_SAMPLE:
        y = rng.choice(y, MMD_MAX_SAMPLE, replace=False)
    m, n = x.size, y.size
    z = np.concatenate([x, y])
    sigma = mmd_bandwidth(z)
    if sigma == 0:
        return 0.0, 1.0
    diff = z[:, None] - z[None, :]
    kern = np.exp(-(diff * diff) / (2.0 * sigma * sigma))
    del diff
    w = np.concatenate([np.full(m, 1.0 / m), np.full(n, -1.0 / n)])
    # w' K w is the V-statistic; a relabelling permutes w.
    stat = float(w @ kern @ w)
    perms = np.empty((m + n, MMD_PERMUTATIONS))
    for p in range(MMD_PERMUTATIONS):
        perms[:, p] = w[rng.permutation(m + n)]
    null = np.einsum("ij,ij->j", perms, kern @ perms)
    tol = 1e-12 * max(1.0, abs(stat))
    b = int(np.count_nonzero(null >= stat - tol))
    return max(stat, 0.0), (1.0 + b) / (1.0 + MMD_PERMUTATIONS)


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
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                if typ == "cat":
                    stat, p = _chi2(train, infer)
                elif method == 0:
                    stat, p = _welch(train, infer)
                elif method == 2:
                    stat, p = _ks(train, infer)
                else:
                    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])
                    stat, p = _mmd(train, infer, rng)
            res["statistic"], res["p_value"] = _finite(stat), _finite(p)
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


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _as_utc(now):
    """now as a naive UTC datetime (None: the current time; a number: epoch
    seconds; an aware datetime: converted)."""
    if now is None:
        return _now()
    if isinstance(now, (int, float)):
        return datetime.datetime.fromtimestamp(now, datetime.timezone.utc).replace(tzinfo=None)
    if now.tzinfo is not None:
        return now.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return now


def _clip(text, limit=REASON_MAX):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _say(log, subject, message, *args):
    """Log through the mlcpy.log module (or anything with event()), a plain
    callable taking one line, or nothing."""
    if log is None:
        return
    if hasattr(log, "event"):
        log.event(subject, message, *args)
    else:
        log("%s: %s" % (subject, message % args if args else message))


def last_window_end(conn, modelid):
    """window_end of the model's latest drift_metrics row (its last
    completed check), or None."""
    rows = _select(conn, "SELECT window_end FROM drift_metrics WHERE modelid = %s "
                   "ORDER BY id DESC LIMIT 1", (modelid,))
    return rows[0]["window_end"] if rows else None


def read_inference(conn, modelid, features, since=None, max_rows=None):
    """Stream the model's operations newest first into an InferenceSample:
    only those with timestamp > since (None: all), up to max_rows rows.
    Returns (sample, window_start, window_end): the timestamps of the
    oldest and newest operation that contributed a row (None when none).

    Operations are read in pages of PAGE by descending operationid (so
    reading can stop without draining a long result), each page through a
    server-side cursor fetched FETCH rows at a time."""
    sample = InferenceSample(features, max_rows)
    first = last = None
    before = None
    seen = 0
    limit = PAGE if max_rows is None else min(PAGE, FIRST_PAGE)
    while not sample.full:
        # Without the hint MariaDB 10.11 reads a page as a ref on modelid
        # only, scanning every newer row again: quadratic in the pages.
        # The timestamp comes as text (DATETIME(6) text sorts as time),
        # converted once at the end instead of once a row.
        sql = ("SELECT operationid, data, CAST(timestamp AS CHAR) FROM operations "
               "FORCE INDEX (operations_model) WHERE modelid = %s")
        args = [modelid]
        if since is not None:
            sql += " AND timestamp > %s"
            args.append(since)
        if before is not None:
            sql += " AND operationid < %s"
            args.append(before)
        sql += " ORDER BY operationid DESC LIMIT %s"
        args.append(limit)
        got = 0
        cur = conn.cursor(_cursors().SSCursor)
        try:
            cur.execute(sql, args)
            while True:
                chunk = cur.fetchmany(FETCH)
                if not chunk:
                    break
                got += len(chunk)
                for opid, data, ts in chunk:
                    before = opid
                    if data is None or sample.full:
                        continue
                    seen += 1
                    if sample.add_data(data):
                        if last is None or ts > last:
                            last = ts
                        if first is None or ts < first:
                            first = ts
        finally:
            cur.close()  # reads what is left of the page
        conn.commit()
        if got < limit:
            break
        if max_rows is not None:
            # Size the next page by the rows an operation held so far, so that
            # batches of many rows do not leave a long page to drain.
            per_op = max(sample.rows, 1) / max(seen, 1)
            limit = int(min(PAGE, max(FIRST_PAGE, (max_rows - sample.rows) / per_op * 1.25 + 16)))
    return sample.finish(), _datetime(first), _datetime(last)


def _datetime(text):
    """A DATETIME(6) value read as text, as a naive datetime."""
    if text is None or isinstance(text, datetime.datetime):
        return text
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("ascii")
    return datetime.datetime.fromisoformat(text)


def _artifact_path(cfg, rel):
    root = os.path.realpath(cfg.artifacts)
    path = os.path.realpath(os.path.join(root, rel))
    if path != root and not path.startswith(root + os.sep):
        raise DriftError("the training data path '%s' is outside the artifact store" % rel)
    return path


def check_model(conn, cfg, modelid, seed=0):
    """Run a drift check of one model without writing anything.  Returns
    (results, window_start, window_end, method) or raises DriftError with
    the reason the run fails."""
    alpha, max_rows, _ = settings(cfg)
    models = _select(conn, "SELECT featurelist, drift_detection FROM models WHERE modelid = %s",
                     (modelid,))
    if not models:
        raise DriftError("model '%s' no longer exists" % modelid)
    _, method = drift_settings(models[0]["drift_detection"])
    method = 0 if method is None else method
    if method not in METHODS:
        raise DriftError("unknown drift detection method %r in the model's drift_detection; "
                         "use 0 (mean-shift), 1 (MMD) or 2 (Kolmogorov-Smirnov)" % (method,))
    arts = _select(conn, "SELECT path, filename, version FROM artifacts WHERE modelid = %s "
                   "AND filekind = 'data' ORDER BY version DESC LIMIT 1", (modelid,))
    if not arts:
        raise DriftError("model '%s' has no training data to compare with; upload it with "
                         "POST /model/%s/upload (file_kind=data)" % (modelid, modelid))
    cap = train_rows(cfg)
    declared, train_df, total = load_training_sample(_artifact_path(cfg, arts[0]["path"]),
                                                     model_features(models[0]["featurelist"]),
                                                     cap, seed)
    features, _ = decide_types(declared, train_df)  # compute() says what it decided
    since = last_window_end(conn, modelid)
    conn.commit()
    sample, start, end = read_inference(conn, modelid, features, since, max_rows)
    if since is not None and sample.rows < MIN_ROWS:
        sample, start, end = read_inference(conn, modelid, features, None, max_rows)
    if sample.rows < MIN_ROWS:
        raise DriftError("needs at least %d inference rows, has %d" % (MIN_ROWS, sample.rows))
    results = compute(train_df, sample, declared, method, alpha, seed)
    if total > cap:
        said = sample_note(cap, total)
        for r in results:
            r["sample"] = said
    return results, start, end, method


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
                try:
                    if conn is not None:
                        conn.close()
                except Exception:
                    pass
                conn = None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass


def _fail(conn, run_id, reason):
    try:
        conn.rollback()
    except Exception:
        pass
    with conn.cursor() as cur:
        cur.execute("UPDATE drift_runs SET status = 'failed', reason = %s, finished_at = %s "
                    "WHERE run_id = %s AND status = 'running' AND claimed_by = %s",
                    (_clip(reason), _now(), run_id, owner()))
    conn.commit()


def result_note(r):
    """drift_metrics.note of a result: how its type was settled, why it was
    not tested and whether the training data was sampled, or None."""
    text = "; ".join(x for x in (r.get("warning"), r.get("note"), r.get("sample")) if x)
    return _clip(text, NOTE_MAX) if text else None


def _complete(conn, run_id, modelid, results, start, end):
    """Store the metrics and mark the run completed, in one transaction;
    False when the run was no longer 'running' (nothing stored)."""
    now = _now()
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
            results, start, end, method = check_model(conn, cfg, modelid)
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
                               "finished_at = %s WHERE run_id = %s AND status = 'running' AND "
                               "(lease_until IS NULL OR lease_until < UTC_TIMESTAMP(6))",
                               (_clip(reason), _now(), row["run_id"]))
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
                            (run_id, modelid, requested_by, _as_utc(now)))
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    return run_id


def _rows_in(data, features):
    """How many rows one operations.data value holds for these features."""
    sample = InferenceSample(features)
    return sample.add_data(data if isinstance(data, str) else
                           (data.decode("utf-8", "replace") if data is not None else "null"))


def _new_rows(conn, cfg, modelid, featurelist, since, need=MIN_ROWS):
    """Whether the model has at least `need` inference rows among its newest
    DUE_PROBE operations later than since (see the module documentation)."""
    ops = _select(conn, "SELECT operationid, timestamp FROM operations FORCE INDEX "
                  "(operations_model) WHERE modelid = %s ORDER BY operationid DESC LIMIT %s",
                  (modelid, DUE_PROBE))
    features = model_features(featurelist)
    count = 0
    for op in ops:
        if since is not None and op["timestamp"] <= since:
            continue
        data = _select(conn, "SELECT data FROM operations WHERE operationid = %s",
                       (op["operationid"],))
        if not data or data[0]["data"] is None:
            continue
        if features:
            count += _rows_in(data[0]["data"], features)
        else:  # features come from the training CSV: count rows of any shape
            count += len(extract_rows(data[0]["data"]))
        if count >= need:
            return True
    return False


def due_models(conn, cfg, now=None):
    """The modelids schedule_due would add a run for now."""
    _, _, interval = settings(cfg)
    now = _as_utc(now)
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
        if _new_rows(conn, cfg, m["modelid"], m["featurelist"],
                     last_window_end(conn, m["modelid"])):
            due.append(m["modelid"])
    conn.commit()
    return due


def schedule_due(conn, cfg, log=None, now=None):
    """Add a 'schedule' run for every model that is due (see the module
    documentation); returns how many were added.  The model row is locked
    while its runs are checked again, so two processes add one run."""
    _, _, interval = settings(cfg)
    now = _as_utc(now)
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


# ---- command line -------------------------------------------------------------


def main(argv=None):
    """python3 -m mlcpy.drift (with scripts/ on sys.path):
      check MODELID   compute and print a check's results, store nothing
      run MODELID     request a run for the model and carry it out now
      pending         carry out the waiting runs
      schedule        add the runs that are due"""
    from . import config, db, log
    ap = argparse.ArgumentParser(prog="mlcpy.drift", description="drift checks")
    ap.add_argument("command", choices=("check", "run", "pending", "schedule"))
    ap.add_argument("modelid", nargs="?")
    args = ap.parse_args(argv)
    if args.command in ("check", "run") and not args.modelid:
        ap.error("%s needs a MODELID" % args.command)
    cfg = config.load()
    conn = db.connect(cfg)
    try:
        if args.command == "check":
            results, start, end, _ = check_model(conn, cfg, args.modelid)
            for r in results:
                print(json.dumps(dict(r, window_start=str(start), window_end=str(end))))
        elif args.command == "run":
            run_id = request_run(conn, args.modelid, "cli")
            status = run_one(conn, cfg, log, run_id, args.modelid)
            print(json.dumps({"run_id": run_id, "status": status}))
            return 0 if status == "completed" else 1
        elif args.command == "pending":
            print(run_pending(conn, cfg, log))
        else:
            print(schedule_due(conn, cfg, log))
    except DriftError as e:
        log.event("drift", str(e))
        return 1
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
