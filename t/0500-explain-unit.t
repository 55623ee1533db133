#!/usr/bin/python3
# mlcpy.explain without the service: Shapley values of scikit-learn models
# must add up to the output (efficiency), match the linear closed form, an
# independent brute-force computation and closed forms of synthetic games,
# give 0 to features the model ignores, stay within the stated error bound
# when sampled, and be reproducible.  Timings are printed, never asserted.
import itertools
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t  # noqa: E402

try:
    import numpy as np
    import sklearn  # noqa: F401  (only: is it installed?)
except ImportError:
    t.bail_out("needs the Debian packages python3-numpy and python3-sklearn")

from sklearn.datasets import load_diabetes, load_iris  # noqa: E402
from sklearn.ensemble import (GradientBoostingRegressor, RandomForestClassifier,  # noqa: E402
                              RandomForestRegressor)
from sklearn.linear_model import PoissonRegressor, Ridge  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import PolynomialFeatures, StandardScaler  # noqa: E402
from sklearn.tree import DecisionTreeRegressor  # noqa: E402

import mlcpy.explain as ex  # noqa: E402

EXACT = 1e-9


class Function:
    """A regressor that is a plain numpy function of its input (the
    explainer sees only predict)."""

    def __init__(self, fn):
        self.fn = fn

    def predict(self, X):
        return self.fn(np.asarray(X))


class CountingClassifier:
    """Delegates to a classifier and counts predict_proba calls."""

    _estimator_type = "classifier"

    def __init__(self, model):
        self.model = model
        self.classes_ = model.classes_
        self.calls = 0

    def predict_proba(self, X):
        self.calls += 1
        return self.model.predict_proba(X)


def worst(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))))


def efficiency_gap(r):
    """Largest |base_value + sum(values) - output| over the rows."""
    total = np.asarray(r["base_value"]) + np.sum(r["feature_importance"], axis=1)
    return worst(total, r["output"])


def check_efficiency(r, what):
    gap = efficiency_gap(r)
    t.ok(gap <= EXACT, "%s: base_value + sum(values) == output for every row (gap %.2e)"
         % (what, gap))


def brute_force(predict, x, background, weights):
    """Shapley values by definition: average over all d! orders of each
    feature's marginal contribution, v(S) = sum_b w_b predict(x_S, b_notS)."""
    d = len(x)

    def worth(coalition):
        rows = background.copy()
        rows[:, coalition] = x[coalition]
        return float(weights @ predict(rows))

    values = np.zeros(d)
    orders = list(itertools.permutations(range(d)))
    for order in orders:
        coalition = []
        for feature in order:
            before = worth(coalition)
            coalition.append(feature)
            values[feature] += worth(coalition) - before
    return values / len(orders)


def time_explain(explainer, X, runs=21):
    """(p50 of one row in ms, 50 rows in ms)."""
    one = []
    for i in range(runs):
        start = time.perf_counter()
        explainer.explain(X[i:i + 1])
        one.append(time.perf_counter() - start)
    start = time.perf_counter()
    explainer.explain(X[:50])
    return 1e3 * float(np.median(one)), 1e3 * (time.perf_counter() - start)


iris_X, iris_y = load_iris(return_X_y=True)
diab_X, diab_y = load_diabetes(return_X_y=True)
rng = np.random.default_rng(20240601)
iris_order = rng.permutation(len(iris_X))
iris_bg, iris_rows = iris_X[iris_order[:100]], iris_X[iris_order[100:]]
diab_bg, diab_rows = diab_X[:100], diab_X[100:]

# ---- classifier: exact enumeration of the predicted class's probability --

forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(iris_X, iris_y)
explainer = ex.Explainer(forest, iris_bg)
r = explainer.explain(iris_rows)
t.is_(sorted(r), ["base_value", "explained", "feature_importance", "feature_names",
                  "method", "output"], "an exact explanation has exactly the documented keys")
t.is_(r["method"], "exact", "4 features are enumerated exactly")
t.is_(r["feature_names"], ["x0", "x1", "x2", "x3"], "unnamed columns are called x0..x3")
t.ok(all(len(r[k]) == len(iris_rows) for k in ("feature_importance", "base_value", "output",
                                                "explained"))
     and all(len(v) == 4 for v in r["feature_importance"]),
     "every per-row list has one entry per row, every row one value per feature")
check_efficiency(r, "iris random forest (exact)")
proba = forest.predict_proba(iris_rows)
predicted = forest.predict(iris_rows)
columns = [list(forest.classes_).index(label) for label in predicted]
t.ok(worst(r["output"], proba[np.arange(len(iris_rows)), columns]) <= 1e-12,
     "the classifier's output is predict_proba of the predicted class")
t.is_(r["explained"], ["probability of class %s" % label for label in predicted],
      "explained names the predicted class of each row")
t.ok(worst(r["base_value"], explainer.weights @ forest.predict_proba(explainer.background)[:, columns])
     <= 1e-12, "the base value is the background's mean probability of the row's class")
distinct, counts = np.unique(iris_bg, axis=0, return_counts=True)
t.ok(np.array_equal(explainer.background, distinct) and
     worst(explainer.weights, counts / 100) <= 1e-15,
     "100 background rows (%d distinct) are kept as they are, weighted by multiplicity"
     % len(distinct))

counting = CountingClassifier(forest)
counted = ex.Explainer(counting, iris_bg)
counting.calls = 0
r_counted = counted.explain(iris_rows[:1])
t.is_(counting.calls, 1, "one explained row costs a single predict_proba call")
counting.calls = 0
counted.explain(iris_rows[:20])
t.is_(counting.calls, 1, "20 explained rows still cost a single predict_proba call")
saved, ex.CHUNK_BYTES = ex.CHUNK_BYTES, 40 * 1000
try:
    chunked = ex.Explainer(counting, iris_bg)
finally:
    ex.CHUNK_BYTES = saved
counting.calls = 0
r_chunked = chunked.explain(iris_rows[:20])
t.ok(counting.calls > 20 and worst(r_chunked["feature_importance"],
                                   counted.explain(iris_rows[:20])["feature_importance"]) <= 1e-12,
     "small chunks (%d calls) give the same values as one call" % counting.calls)

one, batch = time_explain(explainer, iris_rows)
t.note("timing: RandomForestClassifier(100) on iris, %d background points: one row p50 %.1f ms, "
       "50 rows %.0f ms" % (len(explainer.background), one, batch))

# ---- independent brute force on 3 features ---------------------------------

X3 = rng.normal(size=(300, 3))
y3 = np.sin(2 * X3[:, 0]) * X3[:, 1] + X3[:, 2] ** 2 + X3[:, 0] * X3[:, 2]
gbr3 = GradientBoostingRegressor(random_state=0).fit(X3, y3)
explainer3 = ex.Explainer(gbr3, X3[:60])
r3 = explainer3.explain(X3[250:255])
gap = max(worst(r3["feature_importance"][i],
                brute_force(gbr3.predict, X3[250 + i], explainer3.background, explainer3.weights))
          for i in range(5))
t.ok(gap <= EXACT, "3-feature gradient boosting: values equal a brute force over all orders "
     "(largest difference %.2e)" % gap)

forest3 = RandomForestClassifier(n_estimators=30, random_state=0).fit(X3, (y3 > np.median(y3)) +
                                                                      (y3 > 2))
explainer3c = ex.Explainer(forest3, X3[:60])
r3c = explainer3c.explain(X3[250:255])
gaps = []
for i in range(5):
    column = list(forest3.classes_).index(forest3.predict(X3[250 + i:251 + i])[0])
    gaps.append(worst(r3c["feature_importance"][i],
                      brute_force(lambda rows: forest3.predict_proba(rows)[:, column],
                                  X3[250 + i], explainer3c.background, explainer3c.weights)))
t.ok(max(gaps) <= EXACT, "3-feature 3-class forest: the predicted class's values equal a brute "
     "force over all orders (largest difference %.2e)" % max(gaps))

# ---- regressors: linear closed form and enumeration ------------------------

ridge = Ridge(alpha=0.1).fit(diab_X, diab_y)
linear = ex.Explainer(ridge, diab_bg)
r = linear.explain(diab_rows)
t.is_(r["method"], "linear", "Ridge is explained in closed form")
check_efficiency(r, "diabetes Ridge (linear)")
gap = worst(r["feature_importance"], ridge.coef_ * (diab_rows - diab_bg.mean(axis=0)))
t.ok(gap <= EXACT, "Ridge values are coef_i * (x_i - background mean_i) (difference %.2e)" % gap)
t.ok(worst(r["output"], ridge.predict(diab_rows)) <= EXACT, "Ridge: output is predict()")
t.is_(r["explained"], ["predicted value"] * len(diab_rows), "a regressor explains its predicted value")
opaque = ex.Explainer(Function(ridge.predict), diab_bg)
r_enum = opaque.explain(diab_rows[:20])
t.is_(r_enum["method"], "exact", "the same function seen only through predict is enumerated")
gap = worst(r_enum["feature_importance"], r["feature_importance"][:20])
t.ok(gap <= EXACT, "Ridge: closed form equals enumeration over the summarised background "
     "(difference %.2e)" % gap)
check_efficiency(r_enum, "diabetes Ridge (exact)")
ridge_one = []
for i in range(200):
    start = time.perf_counter()
    linear.explain(diab_rows[i:i + 1])
    ridge_one.append(time.perf_counter() - start)
start = time.perf_counter()
linear.explain(diab_rows[:50])
t.note("timing: Ridge on diabetes (closed form): one row p50 %.0f us, 50 rows %.0f us"
       % (1e6 * np.median(ridge_one), 1e6 * (time.perf_counter() - start)))

pipe = make_pipeline(StandardScaler(), Ridge(alpha=3.0)).fit(diab_X, diab_y)
r = ex.Explainer(pipe, diab_bg).explain(diab_rows)
t.is_(r["method"], "linear", "Pipeline(StandardScaler, Ridge) is explained in closed form")
check_efficiency(r, "Pipeline(StandardScaler, Ridge) (linear)")
effective = pipe[-1].coef_ / pipe[0].scale_
gap = worst(r["feature_importance"], effective * (diab_rows - diab_bg.mean(axis=0)))
t.ok(gap <= EXACT, "pipeline values are the effective coefficient coef_i / scale_i times "
     "(x_i - background mean_i) (difference %.2e)" % gap)
t.ok(worst(r["output"], pipe.predict(diab_rows)) <= EXACT, "pipeline: output is predict()")
r_enum = ex.Explainer(Function(pipe.predict), diab_bg).explain(diab_rows[:20])
gap = worst(r_enum["feature_importance"], r["feature_importance"][:20])
t.ok(gap <= EXACT, "pipeline: closed form equals enumeration (difference %.2e)" % gap)

poisson = PoissonRegressor(alpha=1e-3, max_iter=1000).fit(diab_X, diab_y)
r = ex.Explainer(poisson, diab_bg).explain(diab_rows[:10])
t.is_(r["method"], "exact", "a Poisson GLM (log link) is not mistaken for a linear model")
check_efficiency(r, "diabetes PoissonRegressor (exact)")
poly = make_pipeline(PolynomialFeatures(2), Ridge()).fit(diab_X, diab_y)
t.is_(ex.Explainer(poly, diab_bg).method, "exact",
      "Pipeline(PolynomialFeatures, Ridge) is not mistaken for a linear model")

gbr = GradientBoostingRegressor(random_state=0).fit(diab_X, diab_y)
r = ex.Explainer(gbr, diab_bg).explain(diab_rows[:30])
t.is_(r["method"], "exact", "10 features are enumerated exactly")
check_efficiency(r, "diabetes GradientBoostingRegressor (exact)")
t.ok(worst(r["output"], gbr.predict(diab_rows[:30])) <= 1e-12, "gradient boosting: output is predict()")

rf_reg = RandomForestRegressor(n_estimators=100, random_state=0).fit(diab_X, diab_y)
rf_explainer = ex.Explainer(rf_reg, diab_bg)
r = rf_explainer.explain(diab_rows[:30])
check_efficiency(r, "diabetes RandomForestRegressor (exact)")
t.is_(rf_explainer.background.shape, (16, 10),
      "at 10 features 100 background rows are summarised to 16 points")
one, batch = time_explain(rf_explainer, diab_rows)
t.note("timing: RandomForestRegressor(100) on diabetes, %d background points: one row p50 %.1f ms, "
       "50 rows %.0f ms" % (len(rf_explainer.background), one, batch))

# ---- a feature the model ignores -------------------------------------------

train = diab_X.copy()
train[:, 2] = 0.0
tree = DecisionTreeRegressor(random_state=0).fit(train, diab_y)
t.ok(2 not in tree.tree_.feature, "(the tree never splits on the constant column 2)")
r = ex.Explainer(tree, diab_bg).explain(diab_rows[:40])
ignored = max(abs(v[2]) for v in r["feature_importance"])
t.ok(ignored < 1e-12 and np.ptp(diab_rows[:40, 2]) > 0,
     "exact: the column the tree ignores gets 0 although it varies (largest |value| %.1e)" % ignored)

# ---- sampling ---------------------------------------------------------------

D = 14
coef = rng.uniform(0.5, 2.0, D)
# Products of 2, 3 and 4 features: antithetic pairs are exact for games of
# order <= 2, the others make the sampling error real.
TERMS = [((0, 1), 1.5), ((2, 3), -2.0), ((4, 9), 1.0), ((0, 5, 6), 1.0), ((2, 8, 11), -0.7),
         ((3, 10, 12, 13), 0.9)]


def additive(X):
    return (X ** 2) @ coef


def interacting(X):
    return additive(X) + sum(c * np.prod(X[:, list(T)], axis=1) for T, c in TERMS)


def interacting_values(X, background, weights, terms):
    """Interventional Shapley values of sum a_i x_i^2 + sum_T c prod_{j in T} x_j:
    a_i (x_i^2 - E b_i^2) for the squares, plus for each product the Shapley
    values of the game on its own features (the others are null players
    there), by brute force."""
    values = coef * (X ** 2 - weights @ background ** 2)
    for row, x in zip(values, X):
        for T, c in terms:
            T = list(T)
            row[T] += brute_force(lambda rows: c * np.prod(rows, axis=1), x[T],
                                  background[:, T], weights)
    return values


synth_bg = rng.normal(size=(300, D))
synth_rows = rng.normal(size=(6, D))

sampler = ex.Explainer(Function(additive), synth_bg)
r = sampler.explain(synth_rows)
truth = interacting_values(synth_rows, sampler.background, sampler.weights, [])
t.is_(r["method"], "sampling", "14 features are sampled")
t.ok(len(r["error_bound"]) == len(synth_rows), "sampling reports one error_bound per row")
check_efficiency(r, "additive model, d=14 (sampling)")
misses = [i for i in range(len(synth_rows))
          if worst(r["feature_importance"][i], truth[i]) > r["error_bound"][i] + EXACT]
t.is_(misses, [], "additive model: every estimate is within error_bound of the closed form")

sampler = ex.Explainer(Function(interacting), synth_bg)
r = sampler.explain(synth_rows)
truth = interacting_values(synth_rows, sampler.background, sampler.weights, TERMS)
check_efficiency(r, "model with interactions, d=14 (sampling)")
errors = [worst(r["feature_importance"][i], truth[i]) for i in range(len(synth_rows))]
t.ok(all(e <= b for e, b in zip(errors, r["error_bound"])),
     "interactions: every row's estimates are within its error_bound of the closed form",
     "errors: %s" % errors, "bounds: %s" % r["error_bound"])
t.ok(all(0 < b < 0.2 * np.abs(v).max() for b, v in zip(r["error_bound"], truth)),
     "interactions: the error bound is positive and small against the values",
     "bounds: %s" % r["error_bound"])
t.note("sampling d=14: largest errors %s, bounds %s"
       % (np.round(errors, 4).tolist(), np.round(r["error_bound"], 4).tolist()))
again = ex.Explainer(Function(interacting), synth_bg).explain(synth_rows)
t.ok(t.same(again, r), "sampling is deterministic for a fixed seed")
other = ex.Explainer(Function(interacting), synth_bg, seed=1).explain(synth_rows)
t.ok(worst(other["feature_importance"], r["feature_importance"]) > 0,
     "another seed samples other permutations")
enumerated = ex.Explainer(Function(interacting), synth_bg, max_exact_features=D)
r_enum = enumerated.explain(synth_rows[:3])
truth = interacting_values(synth_rows[:3], enumerated.background, enumerated.weights, TERMS)
t.is_(r_enum["method"], "exact", "max_exact_features=14 enumerates all 16384 coalitions")
gap = worst(r_enum["feature_importance"], truth)
t.ok(gap <= EXACT, "d=14 enumeration equals the closed form (difference %.2e)" % gap)

wide_bg = rng.normal(size=(200, 15))
wide = ex.Explainer(Function(lambda X: np.tanh(X[:, :10] @ np.arange(1.0, 11.0) / 10) *
                             np.exp(X[:, 10] / 3) + X[:, 11] * X[:, 12]), wide_bg)
r = wide.explain(rng.normal(size=(10, 15)))
t.is_(r["method"], "sampling", "15 features are sampled")
check_efficiency(r, "nonlinear model, d=15 (sampling)")
ignored = max(max(abs(v[13]), abs(v[14])) for v in r["feature_importance"])
t.ok(ignored < 1e-12, "sampling: the columns the model ignores get 0 (largest |value| %.1e)" % ignored)

# ---- background summarisation ------------------------------------------------

big = rng.normal(size=(500, 4)) * [1, 2, 3, 4] + [0, 1, 2, 3]
small = ex.Explainer(forest, big, max_background=20)
t.is_(small.background.shape, (20, 4), "500 background rows are summarised to max_background=20")
t.ok(abs(small.weights.sum() - 1) <= 1e-12 and (small.weights > 0).all(),
     "the summary's weights are positive and sum to 1")
t.ok(worst(small.weights @ small.background, big.mean(axis=0)) <= 1e-12,
     "the summary keeps the background mean")
twin = ex.Explainer(forest, big, max_background=20)
t.ok(np.array_equal(twin.background, small.background) and
     np.array_equal(twin.weights, small.weights) and
     t.same(twin.explain(iris_rows), small.explain(iris_rows)),
     "summary and explanations are deterministic for a fixed seed")
r = small.explain(iris_rows)
check_efficiency(r, "iris forest on a summarised background")
repeated = ex.Explainer(forest, np.vstack([iris_bg[:10]] * 30), max_background=20)
t.ok(len(repeated.background) == 10 and worst(repeated.weights, np.full(10, 0.1)) <= 1e-15,
     "300 rows with 10 distinct values are summarised losslessly to those 10")

# ---- input checks -------------------------------------------------------------


def refuses(fn):
    try:
        fn()
    except ValueError:
        return True
    return False


t.ok(refuses(lambda: explainer.explain(iris_rows[:, :3])), "X with the wrong width is refused")
t.ok(refuses(lambda: explainer.explain([[1.0, float("nan"), 1.0, 1.0]])), "NaN in X is refused")
t.ok(refuses(lambda: ex.Explainer(forest, iris_bg[:, :3])), "a background of the wrong width is refused")
t.ok(refuses(lambda: ex.Explainer(Function(additive), synth_bg, n_permutations=7)),
     "an odd number of permutations is refused")

t.done()
