"""Drift inputs: which features a model has, the values of its recorded
inference operations (operations.data) and of its training CSV, gathered
into arrays and counters for mlcpy.drift_stats.  The rules (what a row is,
which values count) are documented in mlcpy.drift.
"""

import array
import datetime
import json
import math
import os
import re
import zlib
from collections import Counter

import numpy as np

from .config import ConfigError

PAGE_BYTES = 8 << 20     # operations.data bytes per query while reading rows (at most, about)
MAX_PAGE = 200000        # operations per query (at most)
FIRST_PAGE = 64          # ... in the first query, until sizes are known
FLUSH = 4096             # numeric rows converted to float64 at a time
TRAIN_CHUNK = 100000     # training CSV rows read at a time while sampling


class DriftError(Exception):
    """A check that cannot be done; the message is the run's reason."""


class DriftConfigError(DriftError, ConfigError):
    """A MLC_DRIFT_* setting that is not a valid value."""


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
    [(name, type)], by the rule predict follows (app/featurelist.c): the
    entries whose kind is 0, null or absent, in order - each one position
    of a list row.  An input without a feature_name, or with the name of
    an earlier one, keeps its position but is not tested: its name is None
    (and its type 'cont').  type is 'cont', 'cat' or a type still to be
    decided (see declared_type).  [] when there are none."""
    items = _json(featurelist)
    out, seen = [], set()
    if not isinstance(items, list):
        return out
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("kind")
        if kind is not None and _int(kind) != 0:
            continue
        name = item.get("feature_name")
        if not isinstance(name, str) or not name or name in seen:
            out.append((None, "cont"))
            continue
        seen.add(name)
        out.append((name, declared_type(item)))
    return out if any(n is not None for n, _ in out) else []


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
        if name is None or typ in ("cont", "cat"):
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
        if f is None or (isinstance(f, tuple) and f[0] is None):
            out.append((None, "cont"))   # a position that is not tested
        elif isinstance(f, str):
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

    def __init__(self, features, max_rows=None, aligned=False):
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
        # aligned (mlcpy.drift_cache): one entry per row and feature - a
        # skipped number is NaN (an infinity is kept: numbers() of the cache
        # drops what is not finite, as this class does) and a categorical
        # feature holds codes into vocab[j] (-1: missing) - so that rows can
        # be taken later by position.
        self.aligned = aligned
        self.codes = [array.array("i") if c and aligned else None for c in self.is_cat]
        self.vocab = [{} if c and aligned else None for c in self.is_cat]

    @property
    def full(self):
        return self.max_rows is not None and self.rows >= self.max_rows

    def _values(self, vals):
        for j, v in enumerate(vals):
            if self.is_cat[j]:
                k = category_key(v)
                if self.aligned:
                    self.codes[j].append(-1 if k is None else
                                         self.vocab[j].setdefault(k, len(self.vocab[j])))
                elif k is not None:
                    self.counts[j][k] += 1
            else:
                f = number_value(v)
                if f is not None:
                    self.cols[j].append(f)
                elif self.aligned:
                    self.cols[j].append(math.nan)

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

    def add_block(self, values):
        """Add rows of numbers (a float64 array of shape (k, n), all
        features numeric), up to max_rows; returns how many were added."""
        if self.full or not len(values):
            return 0
        if self.max_rows is not None:
            values = values[:self.max_rows - self.rows]
        self._flush()  # keep the values in the order of the rows
        for j in range(self.n):
            col = values[:, j]
            if not self.aligned:
                col = col[np.isfinite(col)]
            self.cols[j].frombytes(np.ascontiguousarray(col).tobytes())
        self.rows += len(values)
        return len(values)

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
            if not self.aligned:
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



# ---- reading the operations ---------------------------------------------------


def _cursors():
    import pymysql.cursors
    return pymysql.cursors


def read_inference(conn, modelid, features, since=None, max_rows=None):
    """Stream the model's operations newest first into an InferenceSample:
    only those with timestamp > since (None: all), up to max_rows rows.
    Returns (sample, window_start, window_end): the timestamps of the
    oldest and newest operation that contributed a row (None when none).

    Operations are read in pages by descending operationid (so reading
    can stop without draining a long history), each page one row from
    MariaDB: the texts concatenated (GROUP_CONCAT), their byte lengths and
    their timestamps.  The texts in the gateway's form (2-D lists of
    numbers) are parsed together by numeric_batches(), the others one by
    one by InferenceSample.add_data(), in the order of the operations.  A
    page holds about PAGE_BYTES of data (and fits max_allowed_packet: a
    page the server cut short is read again in halves)."""
    sample = InferenceSample(features, max_rows)
    window = [None, None]
    before = None
    ops = total_bytes = 0
    limit = FIRST_PAGE
    with conn.cursor(_cursors().Cursor) as cur:
        cur.execute("SELECT @@max_allowed_packet")
        packet = int(cur.fetchone()[0])
        cur.execute("SET SESSION group_concat_max_len = %s", (packet,))
    # Pages of text in proportion to the values kept (a sixteenth of them,
    # 256 KiB to PAGE_BYTES): a page's buffers are a few times its text, so
    # memory grows by the values, and a long read makes few round trips.
    want = PAGE_BYTES if max_rows is None else max_rows * max(sample.n, 1) * 8 // 16
    page_bytes = max(256 << 10, min(PAGE_BYTES, want, packet // 2))
    fast_width = sample.n if sample.all_numeric else -1
    while not sample.full:
        got = _read_page(conn, modelid, since, before, limit, fast_width)
        if got is None:          # more than max_allowed_packet: fewer operations
            if limit == 1:
                raise DriftError("an inference operation's data is larger than the database's "
                                 "max_allowed_packet")
            limit = max(1, limit // 2)
            continue
        n, low, page, fast_times = got
        if page is not None:
            span = _add_page(sample, *page, window)
            total_bytes += len(page[-1])
            if span is not None and not sample.full and fast_times:
                _widen(window, *fast_times)  # every operation read in bulk gave rows
            elif span is not None:           # the ones that did, up to max_rows
                _fast_window(conn, modelid, since, span, fast_width, window)
        if n:
            before = low
            ops += n
        if n < limit:
            break
        # The next page: PAGE_BYTES of text, and (with max_rows) not many
        # more rows than are still wanted.
        per_op = max(total_bytes, 1) / max(ops, 1)
        limit = int(max(FIRST_PAGE, min(MAX_PAGE, page_bytes / per_op)))
        if max_rows is not None:
            rows_per_op = max(sample.rows, 1) / max(ops, 1)
            limit = int(max(FIRST_PAGE, min(limit, (max_rows - sample.rows) / rows_per_op * 1.25
                                            + 16)))
    conn.commit()
    return sample.finish(), _datetime(window[0]), _datetime(window[1])


def _fast_window(conn, modelid, since, span, width, window):
    """Widen window by the timestamps of the model's operations of input_width
    width with operationid in span (from the index alone)."""
    sql = ("SELECT CAST(MIN(timestamp) AS CHAR), CAST(MAX(timestamp) AS CHAR) FROM operations "
           "FORCE INDEX (operations_model_rows) WHERE modelid = %s AND operationid BETWEEN %s "
           "AND %s AND input_width = %s")
    args = [modelid, span[0], span[1], width]
    if since is not None:
        sql += " AND timestamp > %s"
        args.append(since)
    with conn.cursor(_cursors().Cursor) as cur:
        cur.execute(sql, args)
        lo, hi = cur.fetchone()
    conn.commit()
    if lo is not None:
        _widen(window, _text(lo), _text(hi))


def _id_span(cur, where, args, limit, newest_first):
    """(operations, first operationid, last operationid) of the next page of
    at most `limit` of the operations `where` selects (a FROM ... WHERE of
    fixed text, on the index operations_model_rows), newest or oldest
    first, from the index alone; None when there is none.  The first id,
    the limit-th one, else the count and the far end of what is left: no
    derived table (MariaDB may build it on disk)."""
    order, far = ("DESC", "MIN") if newest_first else ("ASC", "MAX")
    cur.execute("SELECT operationid" + where + " ORDER BY operationid " + order + " LIMIT 1",
                args)
    row = cur.fetchone()
    if row is None:
        return None
    first = row[0]
    cur.execute("SELECT operationid" + where + " ORDER BY operationid " + order +
                " LIMIT 1 OFFSET %s", args + [limit - 1])
    row = cur.fetchone()
    if row is not None:
        return limit, first, row[0]
    cur.execute("SELECT COUNT(*), " + far + "(operationid)" + where, args)
    n, last = cur.fetchone()
    return n, first, last


def _read_page(conn, modelid, since, before, limit, fast_width):
    """(operations, lowest operationid, byte lengths, timestamps, texts) of
    the next page, or None when the server cut the texts short.

    Two statements in one transaction (one read view): the page's
    operationids from the index operations_model_rows alone (no row is
    read), then the rows of that id range in one GROUP_CONCAT - through the
    primary key when the model holds most of the range (a sequential read,
    several times faster than a lookup per row), else through
    operations_model."""
    where = " FROM operations FORCE INDEX (operations_model_rows) WHERE modelid = %s"
    args = [modelid]
    if since is not None:
        where += " AND timestamp > %s"
        args.append(since)
    if before is not None:
        where += " AND operationid < %s"
        args.append(before)
    with conn.cursor(_cursors().Cursor) as cur:
        span = _id_span(cur, where, args, limit, newest_first=True)
        if span is None:
            conn.commit()
            return 0, None, None, None
        n, high, low = span
        dense = n >= 0.25 * (high - low + 1)
        # No ORDER BY in GROUP_CONCAT (it sorts in a temporary table): the
        # columns come in one order, the scan's, and the operationids say
        # which it is.
        # One text of numbers for the operations (id, bytes, rows, width),
        # parsed by numpy; the timestamps only of the operations read one by
        # one, in the same order (MIN and MAX cover the others).
        sql = ("SELECT COUNT(*), GROUP_CONCAT(CONCAT_WS(' ', operationid, LENGTH(data), "
               "input_rows, IFNULL(input_width, 0)) SEPARATOR ' '), "
               "GROUP_CONCAT(IF(input_width <=> %%s, NULL, CAST(timestamp AS CHAR))), "
               "CAST(MIN(IF(input_width <=> %%s, timestamp, NULL)) AS CHAR), "
               "CAST(MAX(IF(input_width <=> %%s, timestamp, NULL)) AS CHAR), "
               "CAST(GROUP_CONCAT(data SEPARATOR '') AS BINARY) "
               "FROM operations FORCE INDEX (%s) WHERE modelid = %%s AND operationid "
               "BETWEEN %%s AND %%s AND data IS NOT NULL"
               % ("PRIMARY" if dense else "operations_model"))
        args = [fast_width, fast_width, fast_width, modelid, low, high]
        if since is not None:
            sql += " AND timestamp > %s"
            args.append(since)
        cur.execute(sql, args)
        k, meta, times_text, fast_lo, fast_hi, data = cur.fetchone()
    conn.commit()
    if not k:
        return n, low, None, None
    meta = np.fromstring(_text(meta), dtype=np.int64, sep=" ")
    data = bytes(data or b"")
    if meta.size != 4 * k:
        return None
    opids, lens, rows, widths = meta.reshape(k, 4).T
    slow = widths != fast_width
    times = [""] * k
    if slow.any():
        got = _text(times_text).split(",")
        if len(got) != int(slow.sum()):
            return None
        for q, t in zip(np.flatnonzero(slow).tolist(), got):
            times[q] = t
    if int(lens.sum()) != len(data):
        return None
    fast_times = (_text(fast_lo), _text(fast_hi)) if fast_lo is not None else None
    return n, low, (opids, lens, times, rows, widths, data), fast_times


def _text(v):
    return v.decode("ascii") if isinstance(v, (bytes, bytearray)) else v


def _parse_fast(sample, lens, rows, widths, data):
    """The texts of a page's operations: (starts, ends) of each in data;
    fast, whether it is in the gateway's form (input_width = the number of
    features, all numeric); and the rows of the fast ones parsed in the
    page's order by numeric_rows(), run by run of adjacent fast texts:
    values (None when there is none) and first[q], operation q's first row
    in it.  A run numpy cannot parse (it cannot happen) is marked not fast
    and read one by one."""
    m = lens.size
    ends = np.cumsum(lens)
    starts = ends - lens
    fast = (widths == sample.n) if sample.all_numeric else np.zeros(m, dtype=bool)
    first = np.zeros(m, dtype=np.int64)
    blocks, at = [], 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], fast.astype(np.int8), [0]])))
    for lo, hi in zip(edges[::2].tolist(), edges[1::2].tolist()):   # fast lo..hi-1
        want = int(rows[lo:hi].sum())
        vals = numeric_rows(data[starts[lo]:ends[hi - 1]], want, sample.n)
        if vals is None:
            fast[lo:hi] = False
            continue
        first[lo:hi] = at + np.cumsum(rows[lo:hi]) - rows[lo:hi]
        blocks.append(vals)
        at += want
    values = np.concatenate(blocks) if len(blocks) > 1 else (blocks[0] if blocks else None)
    return starts, ends, fast, first, values


def _add_page(sample, opids, lens, times, rows, widths, data, window):
    """Add one page's operations to sample, newest first (the page comes in
    the order the database read it); window [first, last] widens to the
    timestamps of the operations read one by one that contributed rows, and
    the range of operationids of those read in bulk that did is returned
    (None when none did): all the fast operations in that range did.  The operations in
    the gateway's form (input_width = the number of features, all numeric)
    are parsed together by numeric_rows(), a run of them at a time; any
    other operation by InferenceSample.add_data()."""
    m = lens.size
    starts, ends, fast, first, values = _parse_fast(sample, lens, rows, widths, data)
    order = np.argsort(-opids, kind="stable").tolist()      # newest first
    span = None
    i = 0
    while i < m and not sample.full:
        q = order[i]
        if not fast[q]:
            if sample.add_data(data[starts[q]:ends[q]].decode("utf-8", "replace")):
                _widen(window, times[q], times[q])
            i += 1
            continue
        j = i                            # a run of fast operations, newest first
        while j < m and fast[order[j]]:
            j += 1
        run = np.array(order[i:j], dtype=np.int64)
        counts = rows[run]
        if sample.max_rows is not None:  # only the operations that fit
            room = sample.max_rows - sample.rows
            keep = int(np.searchsorted(np.cumsum(counts), room)) + 1
            run, counts = run[:keep], counts[:keep]
        total = int(counts.sum())
        # the rows of run's operations, in order: first[q] .. first[q] + rows[q] - 1
        starts_at = first[run]
        if (counts == 1).all() and (total < 2 or (np.diff(starts_at) == -1).all()):
            block = values[starts_at[-1]:starts_at[0] + 1][::-1]  # one row each, read oldest first
        elif (total < 2 or (np.diff(starts_at) == counts[:-1]).all()):
            block = values[starts_at[0]:starts_at[0] + total]  # already in order
        else:
            idx = np.repeat(starts_at - (np.cumsum(counts) - counts), counts) + np.arange(total)
            block = values[idx]
        take = sample.add_block(block)
        if take:
            k = int(np.searchsorted(np.cumsum(counts), take))  # the last contributing
            ids = opids[run[:k + 1]]
            lo, hi = int(ids.min()), int(ids.max())
            span = (lo, hi) if span is None else (min(span[0], lo), max(span[1], hi))
        i = j
    return span


def _widen(window, lo, hi):
    if not lo:
        return
    if window[0] is None or lo < window[0]:
        window[0] = lo
    if window[1] is None or hi > window[1]:
        window[1] = hi


def _datetime(text):
    """A DATETIME(6) value read as text, as a naive datetime."""
    if text is None or isinstance(text, datetime.datetime):
        return text
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("ascii")
    return datetime.datetime.fromisoformat(text)



# ---- the numeric fast path -------------------------------------------------------

_TO_BLANKS = bytes.maketrans(b"[],\t\r\n", b"      ")


def numeric_rows(texts, rows, n):
    """The numbers of operations.data texts that MariaDB found to be
    batches of rows of n JSON numbers each (operations.input_width = n;
    sql/019-operation-rows.sql), concatenated in texts (bytes), holding
    rows rows in all: a float64 array of shape (rows, n), parsed by numpy
    in one call (the numbers json.loads gives: both round correctly).
    None when the count of numbers is not rows * n (it always is)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            vals = np.fromstring(texts.translate(_TO_BLANKS), dtype=np.float64, sep=" ")
        except (ValueError, DeprecationWarning):
            return None
    if vals.size != rows * n:
        return None
    return vals.reshape(rows, n)


# ---- reading for the cache (mlcpy.drift_cache) -----------------------------------------

def fold_page(conn, modelid, after, limit, width):
    """The next page of the model's operations in ascending operationid
    order after `after`, at most `limit` of them, for mlcpy.drift_cache:
    (operations, highest operationid, page) where page is (opids, lens,
    micros, rows, widths, data) - every operation's timestamp as
    microseconds since 1970 (the cache keeps each) - or None when nothing
    has data; None instead of the tuple when the server cut the texts
    short.  It does not commit: the caller reads a fold in one read view."""
    where = (" FROM operations FORCE INDEX (operations_model_rows) WHERE modelid = %s "
             "AND operationid > %s")
    args = [modelid, after]
    with conn.cursor(_cursors().Cursor) as cur:
        span = _id_span(cur, where, args, limit, newest_first=False)
        if span is None:
            return 0, None, None
        n, low, high = span
        dense = n >= 0.25 * (high - low + 1)
        cur.execute("SELECT COUNT(*), GROUP_CONCAT(CONCAT_WS(' ', operationid, LENGTH(data), "
                    "input_rows, IFNULL(input_width, 0), "
                    "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', timestamp)) "
                    "SEPARATOR ' '), CAST(GROUP_CONCAT(data SEPARATOR '') AS BINARY) "
                    "FROM operations FORCE INDEX (%s) WHERE modelid = %%s AND operationid "
                    "BETWEEN %%s AND %%s AND data IS NOT NULL"
                    % ("PRIMARY" if dense else "operations_model"), (modelid, low, high))
        k, meta, data = cur.fetchone()
    if not k:
        return n, high, None
    meta = np.fromstring(_text(meta), dtype=np.int64, sep=" ")
    data = bytes(data or b"")
    if meta.size != 5 * k:
        return None
    opids, lens, rows, widths, micros = meta.reshape(k, 5).T
    if int(lens.sum()) != len(data):
        return None
    return n, high, (opids, lens, micros, rows, widths, data)


def fold_rows(sample, opids, lens, micros, rows, widths, data):
    """Add one fold_page() page to an aligned InferenceSample (no max_rows)
    oldest operation first, each operation's rows in their order, exactly
    as read_inference() would take them (the same parsers); returns
    (opids, micros, rows each contributed) in that order."""
    m = lens.size
    starts, ends, fast, first, values = _parse_fast(sample, lens, rows, widths, data)
    order = np.argsort(opids, kind="stable")           # oldest first
    got = np.zeros(m, dtype=np.int64)
    i = 0
    order_l = order.tolist()
    while i < m:
        q = order_l[i]
        if not fast[q]:
            got[q] = sample.add_data(data[starts[q]:ends[q]].decode("utf-8", "replace"))
            i += 1
            continue
        j = i
        while j < m and fast[order_l[j]]:
            j += 1
        run = order[i:j]
        counts = rows[run]
        starts_at = first[run]
        total = int(counts.sum())
        if total < 2 or (np.diff(starts_at) == counts[:-1]).all():
            block = values[starts_at[0]:starts_at[0] + total]    # already in order
        else:
            idx = np.repeat(starts_at - (np.cumsum(counts) - counts), counts) + np.arange(total)
            block = values[idx]
        sample.add_block(block)
        got[run] = counts
        i = j
    sample.finish()
    return opids[order], micros[order], got[order]
