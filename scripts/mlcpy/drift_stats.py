"""Drift statistics: the two-sample tests of a drift check, pure functions
of arrays and counts (no database, no files); mlcpy.drift documents the
methods and calls test_feature() once per feature.

  0  mean_shift  Welch's t-test, scipy.stats.ttest_ind(equal_var=False)
  1  mmd         maximum mean discrepancy, Gaussian kernel, permutation p-value
  2  ks          two-sample Kolmogorov-Smirnov, scipy.stats.ks_2samp
  chi2           categorical features: scipy.stats.chi2_contingency on the
                 2 x K table of category counts
"""

import math
import warnings
import zlib

import numpy as np

MIN_VALUES = 2           # values per side below which a feature is not tested
MMD_MAX_SAMPLE = 500     # values per side the MMD test looks at
MMD_PERMUTATIONS = 200

METHODS = {0: "mean_shift", 1: "mmd", 2: "ks"}
METHOD_NAMES = {0: "mean-shift", 1: "MMD", 2: "Kolmogorov-Smirnov"}


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



def test_feature(typ, method, train, infer, name, seed=0):
    """(statistic, p-value) of one feature, each a finite float or None.
    typ 'cat': train and infer are category Counters (chi-square); else
    float64 arrays tested by method (0, 1 or 2).  name and seed seed the
    MMD generator."""
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
    return _finite(stat), _finite(p)
