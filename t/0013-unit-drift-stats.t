#!/usr/bin/python3
# mlcpy.drift's statistics without an instance: on small fixed samples each
# test reports exactly what scipy (or, for MMD, a direct numpy
# computation) reports; categories are counted in canonical form; what
# cannot be tested is stored as NULL with a reason; every stored shape of
# inference input is read and junk skipped; the model's feature and drift
# settings are read as documented; the training sample is uniform and
# reproducible.  The level and power over many seeds are
# t/0700-drift-unit.t's.
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t  # noqa: E402

try:
    import numpy as np
    import pandas as pd
    from scipy import stats
except ImportError as e:
    t.bail_out("needs the Debian packages python3-numpy, python3-scipy, python3-pandas (%s)" % e)

from mlcpy import drift, drift_sample, drift_stats  # noqa: E402
from mlcdrift import ALPHA, close, one  # noqa: E402

# ---- tiny fixed samples, worked by hand ---------------------------------------------

# Welch: means 2.5 and 5, variances 5/3 and 20/3, n = 4 each:
# t = -2.5 / sqrt(5/12 + 20/12) = -sqrt(3).
r = one([1, 2, 3, 4], [2, 4, 6, 8], 0)
ref = stats.ttest_ind([1, 2, 3, 4], [2, 4, 6, 8], equal_var=False)
t.ok(close(r["statistic"], -3 ** 0.5) and close(r["p_value"], ref.pvalue),
     "mean-shift on [1,2,3,4] vs [2,4,6,8]: t = -sqrt(3), p as scipy's",
     "got %r / %r, scipy p %r" % (r["statistic"], r["p_value"], ref.pvalue))
# KS: the empirical CDFs of 1..5 and 3..7 differ by at most 2/5.
r = one([1, 2, 3, 4, 5], [3, 4, 5, 6, 7], 2)
ref = stats.ks_2samp([1, 2, 3, 4, 5], [3, 4, 5, 6, 7])
t.ok(close(r["statistic"], 0.4) and close(r["p_value"], ref.pvalue) and not r["drift_detected"],
     "Kolmogorov-Smirnov on 1..5 vs 3..7: D = 0.4, p as scipy's (%r), no drift" % ref.pvalue,
     "got %r / %r" % (r["statistic"], r["p_value"]))
r = one([1, 2, 3, 4, 5], [11, 12, 13, 14, 15], 2)
t.ok(close(r["statistic"], 1.0) and r["drift_detected"],
     "Kolmogorov-Smirnov on disjoint samples: D = 1, drift")
table, keys = drift.chi2_table({"b": 3, "a": 1}, {"c": 2, "a": 5})
t.is_([table.tolist(), keys], [[[1, 3, 0], [5, 0, 2]], ["a", "b", "c"]],
      "chi2_table: categories sorted, a category missing on one side counts 0")
# chi-square on [[10, 20], [20, 10]]: expected 15 everywhere, with Yates'
# correction (2 x 2) each cell adds (|5| - 0.5)^2 / 15: 4 * 20.25 / 15 = 5.4.
r = drift.compute(pd.DataFrame({"k": ["a"] * 10 + ["b"] * 20}), [["a"]] * 20 + [["b"]] * 10,
                  [("k", "cat")], 0, ALPHA)[0]
ref = stats.chi2_contingency(np.array([[10, 20], [20, 10]]))
t.ok(close(r["statistic"], 5.4) and close(r["p_value"], ref[1]) and r["drift_detected"],
     "chi-square on [[10, 20], [20, 10]]: 5.4 (Yates), p as scipy's (%r): drift" % ref[1],
     "got %r / %r" % (r["statistic"], r["p_value"]))
t.is_([drift.mmd_bandwidth([0, 1, 3]), drift.mmd_bandwidth([2, 2, 2, 2, 5]), drift.mmd_bandwidth([4, 4]),
       drift.mmd_bandwidth([])],
      [2.0, 3.0, 0.0, 0.0],
      "mmd_bandwidth: the median pairwise distance (of the non-zero ones when it is 0), else 0")

# ---- the same numbers as scipy ------------------------------------------------------

rng = np.random.default_rng(7)
train = rng.normal(10, 2, 400)
infer = rng.normal(10.3, 2.5, 150)
r = one(train, infer, 0)
ref = stats.ttest_ind(train, infer, equal_var=False)
t.ok(close(r["statistic"], ref.statistic) and close(r["p_value"], ref.pvalue),
     "mean-shift: statistic and p-value equal scipy's ttest_ind(train, infer, equal_var=False)",
     "got %r / %r, scipy %r / %r" % (r["statistic"], r["p_value"], ref.statistic, ref.pvalue))
t.is_([r["method"], r["type"], r["n_train"], r["n_infer"], r["drift_detected"]],
      ["mean_shift", "cont", 400, 150, bool(ref.pvalue < ALPHA)],
      "mean-shift: method name, type, sample sizes and the p < alpha decision")
r = one(train, infer, 2)
ref = stats.ks_2samp(train, infer)
t.ok(close(r["statistic"], ref.statistic) and close(r["p_value"], ref.pvalue),
     "Kolmogorov-Smirnov: statistic and p-value equal scipy's ks_2samp(train, infer)",
     "got %r / %r, scipy %r / %r" % (r["statistic"], r["p_value"], ref.statistic, ref.pvalue))
big_train, big_infer = rng.normal(0, 1, 20000), rng.normal(0.02, 1, 15000)
r = one(big_train, big_infer, 2)
ref = stats.ks_2samp(big_train, big_infer)
t.ok(close(r["statistic"], ref.statistic) and close(r["p_value"], ref.pvalue),
     "Kolmogorov-Smirnov: equal to scipy on samples of 20,000 and 15,000 too")


def mmd_direct(x, y):
    """The documented MMD: median of |z_i - z_j| over i < j as the
    bandwidth (of the non-zero ones when that median is 0), Gaussian kernel,
    biased MMD^2 from the three block means."""
    z = np.concatenate([x, y])
    dist = []
    for i in range(z.size - 1):
        dist.append(np.abs(z[i + 1:] - z[i]))
    dist = np.concatenate(dist)
    sigma = np.median(dist)
    if sigma == 0:
        sigma = np.median(dist[dist > 0])

    def k(a, b):
        return np.exp(-np.subtract.outer(a, b) ** 2 / (2 * sigma ** 2))
    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


x, y = rng.normal(0, 1, 300), rng.normal(0.4, 1.2, 120)
r = one(x, y, 1, seed=3)
t.ok(close(r["statistic"], mmd_direct(x, y)),
     "MMD: statistic equals a direct numpy computation with the median-heuristic bandwidth",
     "got %r, direct %r" % (r["statistic"], mmd_direct(x, y)))
p = r["p_value"]
t.ok(p is not None and 0 < p <= 1 and abs(p * 201 - round(p * 201)) < 1e-9,
     "MMD: the p-value is (1 + b) / 201 for b of 200 permutations (%r)" % p)
t.is_([one(x, y, 1, seed=3)["p_value"], one(x, y, 1, seed=3)["statistic"]], [p, r["statistic"]],
      "MMD: the same seed gives the same p-value and statistic")
xt = np.concatenate([np.zeros(250), rng.normal(0, 1, 50)])  # most pairwise distances are 0
yt = np.concatenate([np.zeros(60), rng.normal(1, 1, 60)])
r = one(xt, yt, 1)
t.ok(close(r["statistic"], mmd_direct(xt, yt)),
     "MMD: with mostly tied values the bandwidth is the median of the non-zero distances")
r = one(np.full(30, 2.0), np.full(20, 2.0), 1)
t.is_([r["statistic"], r["p_value"], r["drift_detected"]], [0.0, 1.0, False],
      "MMD: identical constant samples give statistic 0, p-value 1")
t_start = time.monotonic()
r1 = one(rng.normal(0, 1, 100000), rng.normal(0, 1, 100000), 1, seed=1)
took = time.monotonic() - t_start
r2 = one(rng.normal(0, 1, 100000), rng.normal(0, 1, 100000), 1, seed=2)
t.ok(r1["n_train"] == r1["n_infer"] == 100000 and 0 < r1["p_value"] <= 1 and 0 < r2["p_value"] <= 1,
     "MMD: 100,000 values a side are subsampled (n reported in full, p-value in (0, 1])")
t.note("MMD on 100,000 + 100,000 values: %.3f s" % took)

# ---- categories ------------------------------------------------------------------

df = pd.DataFrame({"k": ["a"] * 500 + ["b"] * 300 + ["c"] * 200})
same_mix = [["a"]] * 50 + [["b"]] * 30 + [["c"]] * 20
r = drift.compute(df, same_mix, [("k", "cat")], 2, ALPHA)[0]
t.is_([r["method"], r["type"], r["statistic"], r["p_value"], r["drift_detected"], r["n_infer"]],
      ["chi2", "cat", 0.0, 1.0, False, 100],
      "chi-square: the training mix in the same proportions is no drift (statistic 0, p 1)")
moved = [["a"]] * 20 + [["b"]] * 30 + [["c"]] * 50
r = drift.compute(df, moved, [("k", "cat")], 2, ALPHA)[0]
ref = stats.chi2_contingency(np.array([[500, 300, 200], [20, 30, 50]]))
t.ok(r["drift_detected"] and close(r["statistic"], ref[0]) and close(r["p_value"], ref[1]),
     "chi-square: a changed mix is drift, statistic and p-value equal scipy's chi2_contingency "
     "on the 2 x K table", "got %r / %r, scipy %r / %r" % (r["statistic"], r["p_value"],
                                                           ref[0], ref[1]))
unseen = [["a"]] * 45 + [["b"]] * 30 + [["new"]] * 25  # 'c' never seen, 'new' only now
r = drift.compute(df, unseen, [("k", "cat")], 2, ALPHA)[0]
ref = stats.chi2_contingency(np.array([[500, 300, 200, 0], [45, 30, 0, 25]]))
t.ok(r["drift_detected"] and close(r["statistic"], ref[0]) and close(r["p_value"], ref[1]),
     "chi-square: categories missing on one side are 0 counts in the table")
r = drift.compute(pd.DataFrame({"k": [1, 2, 2, 1, 3] * 20}),
                  [[1.0], ["2"], [" 3 "], [2], ["1.0"]] * 4, [("k", "cat")], 2, ALPHA)[0]
ref = stats.chi2_contingency(np.array([[40, 40, 20], [8, 8, 4]]))
t.ok(close(r["statistic"], ref[0]) and r["n_infer"] == 20,
     "chi-square: 1, 1.0 and \"1.0\" are one category (numbers compared in canonical form)")
t.is_([drift.category_key(v) for v in (1, 1.0, "1", " 1.0 ", 0.5, True, "x ", None, "", [1],
                                       float("nan"))],
      ["1", "1", "1", "1", "0.5", "true", "x", None, None, None, None],
      "category_key: canonical text of each kind of value")

# ---- what cannot be tested ---------------------------------------------------------

r = drift.compute(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), [[1, 2]] * 12, ["x", "gone"], 0, ALPHA)
t.is_([r[1]["statistic"], r[1]["p_value"], r[1]["drift_detected"], r[1]["n_train"]],
      [None, None, False, 0], "a feature missing from the training data gets NULL results")
t.like(r[1]["note"] or "", "no column 'gone'", "... and says why")
r = one(np.full(20, 5.0), np.full(20, 5.0), 0)
t.is_([r["statistic"], r["p_value"], r["drift_detected"]], [None, None, False],
      "mean-shift: two identical constant samples (scipy: nan) store NULL, no drift")
r = one(np.full(20, 5.0), np.full(20, 7.0), 0)
t.is_([r["statistic"], r["p_value"], r["drift_detected"]], [None, 0.0, True],
      "mean-shift: two different constants (scipy: t = -inf, p = 0) store NULL and p 0: drift")
r = one(np.arange(10.0), [1.0], 2)
t.is_([r["statistic"], r["n_infer"], r["drift_detected"]], [None, 1, False],
      "a feature with fewer than 2 inference values is not tested")
try:
    one(np.arange(10.0), np.arange(10.0), 7)
    t.ok(False, "an unknown method is refused")
except drift.DriftError as e:
    t.like(str(e), "unknown drift detection method 7", "an unknown method is refused")

# ---- inference rows ------------------------------------------------------------------

t.is_(drift.extract_rows('[[1, 2], [3, 4]]'), [[1, 2], [3, 4]], "rows: a 2-D list is a batch")
t.is_(drift.extract_rows('[1, 2]'), [[1, 2]], "rows: a flat list is one row")
t.is_(drift.extract_rows('{"a": 1, "b": 2}'), [{"a": 1, "b": 2}], "rows: an object is one row")
t.is_(drift.extract_rows('[{"a": 1}, {"a": 2}]'), [{"a": 1}, {"a": 2}],
      "rows: a list of objects is a batch")
t.is_(drift.extract_rows(json.dumps(json.dumps({"a": 1}))), [{"a": 1}],
      "rows: a JSON string holding an object (legacy clients) is parsed again")
t.is_(drift.extract_rows(json.dumps("[[1, 2], [3, 4]]")), [[1, 2], [3, 4]],
      "rows: a JSON string holding a batch is parsed again")
t.is_(drift.extract_rows('[[1, 2], 5, [], {}, "x", {"a": 1}, null]'), [[1, 2], {"a": 1}],
      "rows: in a batch, items that are not rows (scalars, empty lists/objects) are dropped")
t.is_([drift.extract_rows(v) for v in ("not json", '"not json either"', "42", "null", "[]", "{}",
                                       '"5"', "", "[[1, 2]", b"\xff\xfe", None)],
      [[]] * 11, "rows: non-JSON, scalars, null, empty and unparseable strings give no rows")

FEATS = [("a", "cont"), ("b", "cont"), ("c", "cat")]
datas = [
    '[[1.5, 10, "x"], [2.5, 20, "y"]]',            # gateway batch: 2 rows
    '[3.5, 30, "x"]',                              # one row
    '{"a": 4.5, "b": 40, "c": "z", "extra": 1}',   # object row, extra key ignored
    '[{"a": 5.5, "b": 50, "c": "x"}, {"b": 60, "c": "y"}]',  # batch of objects, 'a' missing
    json.dumps(json.dumps({"a": 6.5, "b": "70", "c": 1})),   # legacy string; "70" is a number
    '{"a": null, "b": true, "c": null}',           # a row, but no usable value
    '[[7.5, NaN, "x"], [8.5, Infinity, "y"]]',     # non-finite values are skipped
    '[1, 2]', '[[1, 2, 3, 4]]', '{"zzz": 1}',      # wrong length / no feature: not rows
    "not json", '"still not json"', "17", "[]",
]
s = drift.InferenceSample(FEATS)
for d in datas:
    s.add_data(d)
s.finish()
t.is_(s.rows, 10, "stored rows of every shape count, junk does not (10 rows)")
t.is_(s.numbers(0).tolist(), [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5],
      "numeric feature a: the values of every shape, in order; null and missing skipped")
t.is_(s.numbers(1).tolist(), [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
      "numeric feature b: numeric strings count; booleans, NaN and Infinity do not")
t.is_(dict(s.categories(2)), {"x": 4, "y": 3, "z": 1, "1": 1},
      "categorical feature c: counts per category")
r = drift.compute(pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0),
                                "c": list("xyz") * 6 + ["x", "y"]}), datas, FEATS, 0, ALPHA)
t.is_([x["n_infer"] for x in r], [8, 7, 9], "compute() takes operations.data texts as rows")

# The all-numeric fast path (numpy converts a block of rows) must agree
# with the row-by-row path, junk included.
rng = np.random.default_rng(11)
texts = []
for i in range(3000):
    rows = np.round(rng.normal(size=(int(rng.integers(1, 4)), 3)), 6).tolist()
    if i % 97 == 0:
        rows.append([1, 2])              # wrong length
    if i % 101 == 0:
        rows[0][1] = None                # missing value
    if i % 103 == 0:
        rows.append([1, [2], 3])         # nested list: the block falls back
    if i % 107 == 0:
        rows[0][2] = 1e999               # parsed as inf
    texts.append(json.dumps(rows) if i % 2 else json.dumps(rows[0]))
NUM = [("p", "cont"), ("q", "cont"), ("r", "cont")]
fast = drift.InferenceSample(NUM)
for text in texts:
    fast.add_data(text)
fast.finish()
slow = drift.InferenceSample(NUM)
for text in texts:
    for row in drift.extract_rows(text):
        slow.add_row(row)
slow.finish()
t.ok(fast.rows == slow.rows and all(np.array_equal(fast.numbers(j), slow.numbers(j))
                                    for j in range(3)),
     "the block conversion of numeric rows equals row-by-row reading (%d rows)" % fast.rows,
     "rows %d / %d" % (fast.rows, slow.rows))
capped = drift.InferenceSample(NUM, max_rows=5)
got = [capped.add_data("[[1,2,3],[4,5,6],[7,8,9]]") for _ in range(3)]
capped.finish()
t.is_([got, capped.rows, capped.numbers(0).tolist()], [[3, 2, 0], 5, [1.0, 4.0, 7.0, 1.0, 4.0]],
      "max_rows stops reading in the middle of a batch")

# ---- model settings -----------------------------------------------------------------

t.is_(drift.model_features(json.dumps([
    {"feature_name": "age", "type": "cont", "kind": 0, "units": 1},
    {"feature_name": "city", "type": "cat"},
    {"feature_name": "label", "type": "cat", "kind": 1},
    {"type": "cont", "kind": 0}, {"feature_name": "age", "kind": 0}, "junk",
    {"feature_name": "w", "kind": None}])),
    [("age", "cont"), ("city", "cat"), (None, "cont"), (None, "cont"), ("w", "cont")],
    "featurelist: the inputs as predict takes them (kind 0, null or absent, in order), typed; "
    "a nameless or repeated one keeps its place in a row, untested (None)")
r = drift.compute(pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) + 5}),
                  [[float(i), 99.0, float(i) + 5] for i in range(20)],
                  drift.model_features([{"feature_name": "a"}, {"type": "cont"},
                                        {"feature_name": "b"}]), 0, ALPHA)
t.is_([(x["feature"], x["n_infer"], x["drift_detected"]) for x in r], [("a", 20, False), ("b", 20, False)],
      "a nameless input: its column of a row is skipped, the others tested in their places")
t.is_([drift.model_features(v) for v in (None, "null", "[]", "not json")], [[]] * 4,
      "featurelist: none gives no features")
t.is_(drift.model_features([{"feature_name": "n", "type": "numeric", "kind": 0},
                            {"feature_name": "e", "type": ""}, {"feature_name": "t", "kind": 7},
                            {"feature_name": "x", "type": 5}, {"feature_name": "c", "type": "cont"}]),
      [("n", "numeric"), ("e", ""), ("x", "cont"), ("c", "cont")],
      "featurelist: a type other than cont/cat is kept to be decided; kind 7 is not an input")
typed = pd.DataFrame({"n": [1.5, 2.0, 3.0], "i": [1, 2, 3], "s": ["a", "b", "a"],
                      "b": [True, False, True], "m": ["1", "x", "2"]})
decided, why = drift.decide_types([("n", "numeric"), ("i", "category"), ("s", "numeric"), ("b", ""),
                                   ("m", "mixed"), ("gone", "numeric"), ("c", "cont"), ("k", "cat")],
                                  typed)
t.is_(decided, [("n", "cont"), ("i", "cont"), ("s", "cat"), ("b", "cat"), ("m", "cat"),
                ("gone", "cont"), ("c", "cont"), ("k", "cat")],
      "decide_types: numeric training columns are continuous, others (booleans too) categorical; "
      "no column: continuous; cont/cat as declared")
t.is_(sorted(why), ["b", "gone", "i", "m", "n", "s"], "decide_types: a note for each decided feature only")
t.is_(why.get("n"), 'featurelist type "numeric" is neither "cont" nor "cat": taken as continuous, '
      "because the training data's column is numeric", "decide_types: the note for a numeric column")
t.is_(why.get("s"), 'featurelist type "numeric" is neither "cont" nor "cat": taken as categorical, '
      "because the training data's column is not numeric", "decide_types: the note for a text column")
t.like(why.get("gone") or "", "no column to decide from: taken as continuous",
       "decide_types: the note when the training data lacks the column")
r = drift.compute(pd.DataFrame({"n": np.arange(40.0), "s": ["a", "b"] * 20}),
                  [[float(i), "a" if i % 3 else "b"] for i in range(30)],
                  [("n", "numeric"), ("s", "label")], 2, ALPHA)
t.is_([[x["type"], x["method"], x["n_infer"], x["note"]] for x in r],
      [["cont", "ks", 30, None], ["cat", "chi2", 30, None]],
      "compute(): types \"numeric\" and \"label\" are tested as the training columns say")
t.like(r[1]["warning"] or "", 'type "label" .* taken as categorical', "compute(): and says so in warning")
t.is_(drift.result_note(dict(r[1], note="too few")), r[1]["warning"] + "; too few",
      "result_note: the type decision, then why a feature was not tested")
t.is_([list(drift.drift_settings(v)) for v in (
    '[{"is_true": 1, "method": 1}]', '[{"is_true": 0, "method": 2}, {"is_true": 1, "method": 1}]',
    '[{"is_true": 0, "method": 2}]', None, "[]")],
    [[True, 1], [True, 1], [False, 2], [False, None], [False, None]],
    "drift_detection: the first is_true 1 item decides; else the first method")
tmp = tempfile.mkdtemp(prefix="drift-unit.")
t.defer(shutil.rmtree, tmp, True)
csv = os.path.join(tmp, "train.csv")
pd.DataFrame({"f1": [1.0, 2.0, 3.0], "f2": ["u", "v", "u"], "target": [0, 1, 0]}).to_csv(
    csv, index=False)
feats, df = drift.load_training(csv, [])
t.is_([list(f) for f in feats], [["f1", "cont"], ["f2", "cat"]],
      "no featurelist: the training columns except the last, typed by their values")
with open(os.path.join(tmp, "bad.csv"), "wb") as f:
    f.write(b"a,b\n1,2,3,4\n\xff\n")
try:
    drift.load_training(os.path.join(tmp, "bad.csv"), [("a", "cont")])
    t.ok(False, "an unreadable training file is a DriftError naming the problem")
except drift.DriftError as e:
    t.like(str(e), "cannot read the training data", "an unreadable training file is a DriftError "
           "naming the problem")

# The training sample (MLC_DRIFT_TRAIN_ROWS): chunked, uniform, in file
# order, the same on every call.
big = os.path.join(tmp, "big.csv")
pd.DataFrame({"i": np.arange(1000), "c": ["k%d" % (i % 7) for i in range(1000)],
              "target": 0}).to_csv(big, index=False)
chunk, drift_sample.TRAIN_CHUNK = drift_sample.TRAIN_CHUNK, 64      # many chunks, sample across them
try:
    feats, df, total = drift.load_training_sample(big, [("i", "cont"), ("c", "cat")], 100)
    again = drift.load_training_sample(big, [("i", "cont"), ("c", "cat")], 100)[1]
    t.is_([len(df), total, df["i"].is_unique, bool((df["i"].diff().dropna() > 0).all()),
           df["c"].dtype == object],
          [100, 1000, True, True, True],
          "load_training_sample: 100 distinct rows of 1000, in file order, categories as text")
    t.ok(df.equals(again), "... the same rows on every call (a seeded sample)")
    t.is_(list(df["c"]), ["k%d" % (i % 7) for i in df["i"]], "... whole rows, columns kept together")
    means = [drift.load_training_sample(big, [("i", "cont")], 100, seed)[1]["i"].mean()
             for seed in range(40)]
    # A uniform sample of 100 of 0..999 has mean 499.5, sd 27.4; over 40
    # seeds the average is within 3 sd (13) of it; the first rows would
    # give 49.5.
    t.ok(abs(np.mean(means) - 499.5) < 13, "... drawn uniformly from the whole file, not its head",
         np.mean(means))
    whole = drift.load_training_sample(big, [("i", "cont")], 1000)
    t.is_([len(whole[1]), whole[2], list(whole[1]["i"][:3])], [1000, 1000, [0, 1, 2]],
          "a file with no more rows than the cap is read whole")
    feats, df, total = drift.load_training_sample(big, [], 10)
    t.is_([[list(f) for f in feats], len(df), total], [[["i", "cont"], ["c", "cat"]], 10, 1000],
          "without a featurelist the sample is of every column but the last")
    with open(os.path.join(tmp, "head.csv"), "w") as f:
        f.write("i,target\n")
    t.is_(len(drift.load_training_sample(os.path.join(tmp, "head.csv"), [("i", "cont")], 10)[1]), 0,
          "a training file with a header only gives an empty sample")
finally:
    drift_sample.TRAIN_CHUNK = chunk

# ---- the split: statistics with no database, one minimum ------------------------

import re  # noqa: E402
src = open(os.path.join(HERE, "..", "scripts", "mlcpy", "drift_stats.py")).read()
t.ok(not re.search(r"^\s*(import|from)\s+\S*(pymysql|db|pandas|drift_sample)\b", src, re.M),
     "drift_stats imports neither the database, pandas nor the reading code")
x, y = np.array([1.0, 2, 3, 4]), np.array([2.0, 4, 6, 8])
t.is_(drift_stats.test_feature("cont", 0, x, y, "f"),
      (float(stats.ttest_ind(x, y, equal_var=False).statistic),
       float(stats.ttest_ind(x, y, equal_var=False).pvalue)),
      "drift_stats.test_feature: Welch's t-test as scipy's")
t.is_(drift_stats.test_feature("cont", 2, x, y, "f"),
      (float(stats.ks_2samp(x, y).statistic), float(stats.ks_2samp(x, y).pvalue)),
      "... Kolmogorov-Smirnov as scipy's")
t.is_(drift_stats.test_feature("cont", 0, np.array([1.0, 1.0]), np.array([1.0, 1.0]), "f"),
      (None, None), "... a statistic that is not a finite number is None")
c_src = open(os.path.join(HERE, "..", "app", "route-drift.c")).read()
m = re.search(r"#define MIN_ROWS_DEFAULT (\d+)", c_src)
t.is_(m and m.group(1), drift.DEFAULT_MIN_ROWS,
      "the minimum of inference rows: mlc-api's default is mlc-drift's (MLC_DRIFT_MIN_ROWS)")
conf = open(os.path.join(HERE, "..", "conf", "mlconnector.conf")).read()
t.like(conf, r"(?m)^MLC_DRIFT_MIN_ROWS=%s$" % drift.DEFAULT_MIN_ROWS,
       "... and conf/mlconnector.conf's")

# The input rule is app/featurelist.c's: drift takes the same positions
# (count and order) on every case of t/fixtures/input-features.json, and
# tests the inputs whose name is their own (the first with a name).
with open(os.path.join(HERE, "fixtures", "input-features.json")) as f:
    CASES = json.load(f)
bad = []
for case in CASES:
    inputs = case["features"]["inputs"]
    got = drift.model_features(case["featurelist"])
    seen, want = set(), []
    for i in inputs:
        if i["name"] is None or i["name"] in seen:
            want.append(None)
        else:
            seen.add(i["name"])
            want.append(i["name"])
    if not any(w is not None for w in want):
        want = []
    if [n for n, _ in got] != want:
        bad.append((case["what"], got, want))
t.ok(not bad, "drift's features take predict's input positions on every case of "
     "t/fixtures/input-features.json (%d cases)" % len(CASES), bad)

t.done()
