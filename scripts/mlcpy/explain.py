"""Shapley-value explanations of a model's predictions, on numpy.

What is explained
-----------------
For a regressor the explained output f(x) is predict(x).  For a classifier
it is the probability predict_proba(x)[k] of the predicted class k, the
class with the highest probability (what predict() returns for
scikit-learn's probabilistic classifiers), so that one model evaluation
gives both the class and the number that is explained.

The game
--------
Values are interventional Shapley values with respect to a weighted
background B = {(b, w_b)} taken from the training data.  The worth of a
coalition S of features is the expected output when the features in S take
their values from x and the others from the background:

    v(S) = sum_b w_b f(x_S, b_notS),      sum_b w_b = 1.

v(empty) is the base value (the mean output over the background, the same
for every row) and v(all) = f(x).  The Shapley value of feature i is

    phi_i = sum_{S not containing i} |S|! (d - |S| - 1)! / d! * (v(S + i) - v(S))

and the values add up to the output (efficiency):
base_value + sum_i phi_i = f(x).

Three ways to compute them
--------------------------
"linear"   Regressors that are affine functions of their input (a final
           estimator with coef_ and intercept_, alone or after affine
           preprocessing such as StandardScaler, verified by probing):
           f(x) = f(m) + c.(x - m) gives v(S) = f(m) + sum_{i in S} c_i (x_i - m_i)
           with m the background mean, so phi_i = c_i (x_i - m_i) exactly.
"exact"    d <= max_exact_features: all 2^d coalitions are enumerated; the
           hybrid rows (x_S, b_notS) of every coalition, background point and
           explained row go to the model in as few calls as memory allows.
"sampling" More features: antithetic permutation sampling.  Along a
           permutation, the marginal contributions v(prefix + i) - v(prefix)
           of the features telescope to f(x) - v(empty), so every
           permutation, and hence the average, satisfies efficiency exactly.
           Each sampled permutation is paired with its reverse: a feature
           that comes after another in one comes before it in the other,
           so the pair's mean is exact for models whose interactions
           involve at most two features, and only higher-order
           interactions leave sampling error.  The pair means are
           independent, which gives the standard error of every value.

Background summarisation
------------------------
The cost of an exact explanation is (2^d - 2) * |B| model evaluations per
row, so the background is summarised to at most
max(MIN_BACKGROUND, EVALUATION_BUDGET // coalitions per row) points (and at
most max_background): all 100 points up to 7 features, 16 at 10, 8 from
11 on and for sampling.
The values are exact with respect to the summarised background.

The summary is a weighted k-means: the distinct background rows (weighted
by multiplicity) are clustered, each cluster is replaced by the mean of its
members and weighted by its share of the rows.  Compared with a random
subsample of the same size it covers the whole distribution with
mass-proportional weights instead of the few points a draw happens to hit,
and it keeps the background mean exactly, so the base value of any affine
part of the model is the one of the full data (and the linear closed form
agrees with enumeration over the summary).  The price: centroids are
averages, not observed rows.  KMeans runs with a fixed n_init and
random_state=seed, so explanations are reproducible.
"""

import math

import numpy as np
import pandas as pd
from scipy.stats import t as student_t
from sklearn.base import is_classifier
from sklearn.cluster import KMeans
from sklearn.pipeline import Pipeline

# Model evaluations (rows passed to predict) spent per explained row: at
# d = 10 (1022 coalitions) it leaves 16 background points, which keeps a
# 100-tree forest well under 0.15 s per explained row.
EVALUATION_BUDGET = 16384
# The background is never summarised below this many points.
MIN_BACKGROUND = 8
# Upper bound on the size of one matrix of hybrid rows passed to the model.
CHUNK_BYTES = 48 * 2 ** 20
# Default number of antithetic pairs: ceil(PAIR_SAMPLES / d), at least
# MIN_PAIRS, i.e. about 2 * PAIR_SAMPLES coalitions per row, half the cost
# of the largest default enumeration (2^12), so the price of an explanation
# does not jump where sampling takes over.
PAIR_SAMPLES = 1000
MIN_PAIRS = 10
# error_bound covers all d values of a row at this level (Bonferroni).
CONFIDENCE = 0.95
KMEANS_N_INIT = 4
# Probing the model for affinity: points this many standard deviations out,
# how many, and the relative deviation that rules the closed form out.
PROBE_SPREAD = 10.0
PROBE_POINTS = 16
AFFINE_RTOL = 1e-7


class Explainer:
    """Shapley values of one fitted model's outputs against a background.

    model            fitted scikit-learn estimator or Pipeline (classifier
                     with predict_proba, or single-output regressor)
    background       2-D float array of training rows, same columns as X
    feature_names    names for the columns (default: the model's
                     feature_names_in_, else x0, x1, ...)
    max_background   most background points kept after summarisation
    max_exact_features  enumerate all coalitions up to this many features
    n_permutations   permutations sampled beyond that (even, >= 4; default
                     2 * max(MIN_PAIRS, ceil(PAIR_SAMPLES / d)))
    seed             seeds k-means and the permutations

    After construction, `method` names the computation, `background` and
    `weights` are the (summarised) background the values refer to.
    """

    def __init__(self, model, background, feature_names=None, max_background=100,
                 max_exact_features=12, n_permutations=None, seed=0):
        raw = _as_rows(background, "background")
        self.model = model
        self.n_features = raw.shape[1]
        self._check_width(raw, "background")
        self._columns = getattr(model, "feature_names_in_", None)
        self.feature_names = self._names(feature_names)
        self.is_classifier = is_classifier(model)
        if self.is_classifier and not hasattr(model, "predict_proba"):
            raise ValueError("a classifier is explained through predict_proba, "
                             "which this model lacks")
        self._chunk_rows = max(1, CHUNK_BYTES // (8 * self.n_features))
        affine = None if self.is_classifier else self._affine_form(raw, seed)
        if affine is not None:
            self._init_linear(*affine)
            return
        if self.n_features <= max_exact_features:
            self._init_exact()
        else:
            self._init_sampling(n_permutations, seed)
        size = _background_size(max_background, len(self._masks))
        self.background, self.weights = summarise(raw, size, seed)
        self._base = self._weighted_means(self._outputs(self.background), 1)[0]

    # ---- set-up -------------------------------------------------------

    def _check_width(self, rows, what):
        expected = getattr(self.model, "n_features_in_", self.n_features)
        if rows.shape[1] != self.n_features or rows.shape[1] != expected:
            raise ValueError("%s has %d columns; the model takes %d"
                             % (what, rows.shape[1], expected))

    def _names(self, names):
        if names is None:
            names = self._columns if self._columns is not None else \
                ["x%d" % i for i in range(self.n_features)]
        names = [str(n) for n in names]
        if len(names) != self.n_features:
            raise ValueError("%d feature names for %d columns" % (len(names), self.n_features))
        return names

    def _affine_form(self, raw, seed):
        """(m, c, f(m)) when the model is an affine function of its input,
        else None.

        Only regressors whose final estimator has a 1-D coef_ and an
        intercept_ qualify.  The whole model (with its preprocessing) is then
        probed: c_i = (f(m + s_i e_i) - f(m)) / s_i with m the background mean
        and s_i its standard deviation, and f must equal f(m) + c.(z - m) at
        random points z up to PROBE_SPREAD deviations away.  That rules out
        link functions (Poisson/Gamma GLMs), clipping scalers and nonlinear
        feature maps, which a type check alone would not.
        """
        final = self.model.steps[-1][1] if isinstance(self.model, Pipeline) else self.model
        if np.ndim(getattr(final, "coef_", None)) != 1 or not hasattr(final, "intercept_"):
            return None
        d = self.n_features
        mean = raw.mean(axis=0)
        step = raw.std(axis=0)
        step[step == 0] = 1.0
        noise = np.random.default_rng(seed).standard_normal((PROBE_POINTS, d))
        far = mean + PROBE_SPREAD * step * noise
        with np.errstate(all="ignore"):
            out = self._outputs(np.vstack([mean, mean + np.diag(step), far]))[:, 0]
        if not np.isfinite(out).all():
            return None
        coef = (out[1:d + 1] - out[0]) / step
        predicted = out[0] + (far - mean) @ coef
        scale = np.abs(out).max() + np.abs(coef * step).sum() * PROBE_SPREAD
        if np.abs(out[d + 1:] - predicted).max() > AFFINE_RTOL * scale:
            return None
        return mean, coef, out[0]

    def _init_linear(self, mean, coef, base):
        """An affine model's values only depend on the background mean, so
        that single point (weight 1) is the whole background."""
        self.method = "linear"
        self.background = mean[None, :]
        self.weights = np.ones(1)
        self._coef = coef
        self._base = np.array([base])

    def _init_exact(self):
        """All coalitions as bit masks (coalition s holds feature i when bit i
        of s is set), and for every feature i the pairs (S, S + i) with their
        Shapley weights |S|! (d-|S|-1)! / d!.  Only the 2^d - 2 coalitions
        other than the empty and the full one need background rows."""
        d = self.n_features
        codes = np.arange(2 ** d)
        member = (codes[:, None] >> np.arange(d)) & 1 == 1
        sizes = member.sum(axis=1)
        weight = np.array([math.factorial(k) * math.factorial(d - k - 1) / math.factorial(d)
                           for k in range(d)])
        self.method = "exact"
        self._masks = member[1:-1]
        self._without = np.array([codes[~member[:, i]] for i in range(d)])
        self._with = self._without | (1 << np.arange(d))[:, None]
        self._pair_weights = weight[sizes[self._without]]

    def _init_sampling(self, n_permutations, seed):
        """Draw the permutations (each followed by its reverse) and list the
        distinct coalitions their prefixes visit.  _prefix[p, j] indexes the
        worth of the first j features of permutation p in the vector
        [v(empty), v(masks[0]), ..., v(all)] built per row."""
        d = self.n_features
        if n_permutations is None:
            n_permutations = 2 * max(MIN_PAIRS, math.ceil(PAIR_SAMPLES / d))
        if n_permutations < 4 or n_permutations % 2:
            raise ValueError("n_permutations must be even and at least 4 (antithetic pairs)")
        rng = np.random.default_rng(seed)
        forward = np.array([rng.permutation(d) for _ in range(n_permutations // 2)])
        orders = np.empty((n_permutations, d), dtype=np.intp)
        orders[0::2], orders[1::2] = forward, forward[:, ::-1]
        rank = np.argsort(orders, axis=1)
        inside = rank[:, None, :] < np.arange(1, d)[None, :, None]
        masks, where = np.unique(inside.reshape(-1, d), axis=0, return_inverse=True)
        prefix = np.empty((n_permutations, d + 1), dtype=np.intp)
        prefix[:, 0] = 0
        prefix[:, 1:d] = 1 + where.reshape(n_permutations, d - 1)
        prefix[:, d] = len(masks) + 1
        pairs = n_permutations // 2
        self.method = "sampling"
        self._masks = masks
        self._prefix = prefix
        self._rank = rank
        self._quantile = student_t.ppf(1 - (1 - CONFIDENCE) / (2 * d), pairs - 1)

    # ---- model evaluation ---------------------------------------------

    def _outputs(self, rows):
        """The model's outputs for rows: class probabilities (m, K) for a
        classifier, predictions (m, 1) for a regressor."""
        if self._columns is not None:
            rows = pd.DataFrame(rows, columns=self._columns)
        if self.is_classifier:
            return np.asarray(self.model.predict_proba(rows), dtype=float)
        out = np.asarray(self.model.predict(rows), dtype=float).reshape(len(rows), -1)
        if out.shape[1] != 1:
            raise ValueError("only single-output regressors can be explained")
        return out

    def _weighted_means(self, out, blocks):
        """Sum_b w_b out[b] for each of the blocks of len(background)
        consecutive rows of out: (blocks, K).  The sum runs along a
        contiguous last axis, so identical blocks give bit-identical means
        wherever they are: v(S + i) == v(S) exactly when the model ignores i."""
        per_block = out.reshape(blocks, len(self.weights), out.shape[1]).transpose(0, 2, 1)
        return (np.ascontiguousarray(per_block) * self.weights).sum(axis=2)

    def _worths(self, X):
        """(v, f(X)): v for every row and coalition, (n, len(masks) + 2, K)
        ordered as [v(empty), v(masks[0]), ..., v(masks[-1]), v(all)], and
        the model's outputs for X, (n, K).

        The hybrid rows where(mask_c, x_i, b) of all rows i, coalitions c and
        background points b form one matrix, passed to the model in chunks of
        at most CHUNK_BYTES, the first chunk preceded by X itself: usually a
        single call.  Each chunk is reduced to its weighted means at once.
        v(all) is the weighted mean of copies of f(x), reduced like every
        other coalition (it differs from f(x) by rounding only)."""
        n, d = X.shape
        masks, bg = self._masks, self.background
        n_masks, per_pair = len(masks), len(bg)
        chunk = max(1, self._chunk_rows // per_pair)
        worth = np.empty((n * n_masks, len(self._base)))
        for lo in range(0, max(n * n_masks, 1), chunk):
            hi = min(lo + chunk, n * n_masks)
            row, coalition = np.divmod(np.arange(lo, hi), max(n_masks, 1))
            hybrid = np.where(masks[coalition][:, None, :], X[row][:, None, :], bg[None, :, :])
            rows = hybrid.reshape(-1, d)
            if lo == 0:
                rows = np.concatenate([X, rows])
            out = self._outputs(rows)
            if lo == 0:
                fx, out = out[:n], out[n:]
            worth[lo:hi] = self._weighted_means(out, hi - lo)
        empty = np.broadcast_to(self._base, (n, 1, len(self._base)))
        full = self._weighted_means(np.repeat(fx, per_pair, axis=0), n)
        worth = worth.reshape(n, n_masks, worth.shape[1])
        worths = np.concatenate([empty, worth, full[:, None, :]], axis=1)
        return worths, fx

    # ---- explanations -------------------------------------------------

    def explain(self, X):
        """Explain every row of X (2-D, the model's columns).  Returns
        per-row lists: feature_importance (the Shapley values), base_value,
        output, explained (what output is), and for "sampling" error_bound,
        the half-width of a simultaneous CONFIDENCE interval around all the
        values of the row."""
        X = _as_rows(X, "X")
        self._check_width(X, "X")
        if self.method == "linear":
            return self._explain_linear(X)
        worths, fx = self._worths(X)
        column = fx.argmax(axis=1)
        worth = worths[np.arange(len(X)), :, column]
        if self.method == "exact":
            values, extra = self._exact_values(worth), {}
        else:
            values, bound = self._sampled_values(worth)
            extra = {"error_bound": bound.tolist()}
        if self.is_classifier:
            explained = ["probability of class %s" % self.model.classes_[k] for k in column]
        else:
            explained = ["predicted value"] * len(X)
        output = fx[np.arange(len(X)), column]
        return self._result(values, worth[:, 0], output, explained, extra)

    def _explain_linear(self, X):
        values = (X - self.background[0]) * self._coef
        base = np.full(len(X), self._base[0])
        return self._result(values, base, base + values.sum(axis=1),
                            ["predicted value"] * len(X), {})

    def _exact_values(self, worth):
        """phi_i = sum over S without i of weight(|S|) (v(S + i) - v(S)), with
        the differences taken first so that a feature the model ignores gets
        exactly 0."""
        return ((worth[:, self._with] - worth[:, self._without]) * self._pair_weights).sum(axis=2)

    def _sampled_values(self, worth):
        """Mean marginal contributions over the sampled permutations, and
        the error bound: Student-t quantile (Bonferroni over d features) times
        the largest standard error, from the spread of the pair means."""
        steps = worth[:, self._prefix[:, 1:]] - worth[:, self._prefix[:, :-1]]
        by_feature = np.take_along_axis(steps, self._rank[None, :, :], axis=2)
        pair_means = (by_feature[:, 0::2] + by_feature[:, 1::2]) / 2
        pairs = pair_means.shape[1]
        stderr = pair_means.std(axis=1, ddof=1) / math.sqrt(pairs)
        return pair_means.mean(axis=1), self._quantile * stderr.max(axis=1)

    def _result(self, values, base, output, explained, extra):
        result = {
            "method": self.method,
            "feature_names": list(self.feature_names),
            "feature_importance": values.tolist(),
            "base_value": base.tolist(),
            "output": output.tolist(),
            "explained": explained,
        }
        result.update(extra)
        return result


def _as_rows(data, what):
    rows = np.asarray(data, dtype=float)
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] == 0:
        raise ValueError("%s must be a non-empty 2-D array of rows" % what)
    if not np.isfinite(rows).all():
        raise ValueError("%s must hold finite numbers" % what)
    return rows


def _background_size(max_background, n_coalitions):
    """Background points kept when n_coalitions coalitions per explained row
    need background rows: EVALUATION_BUDGET evaluations per row, but never
    fewer than MIN_BACKGROUND points nor more than max_background."""
    return min(max_background, max(MIN_BACKGROUND, EVALUATION_BUDGET // max(n_coalitions, 1)))


def summarise(rows, size, seed):
    """(points, weights) standing for rows: the distinct rows weighted by
    multiplicity when there are at most size of them, else a weighted
    k-means with size clusters, each replaced by the weighted mean of its
    members and weighted by its share of the rows (so the weighted mean of
    the points is the mean of rows).  Weights sum to 1."""
    distinct, counts = np.unique(rows, axis=0, return_counts=True)
    counts = counts.astype(float)
    if len(distinct) <= size:
        return distinct, counts / counts.sum()
    labels = KMeans(n_clusters=size, n_init=KMEANS_N_INIT, random_state=seed).fit(
        distinct, sample_weight=counts).labels_
    mass = np.bincount(labels, weights=counts, minlength=size)
    sums = np.zeros((size, rows.shape[1]))
    np.add.at(sums, labels, distinct * counts[:, None])
    used = mass > 0
    return sums[used] / mass[used, None], mass[used] / counts.sum()
