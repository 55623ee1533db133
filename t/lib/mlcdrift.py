"""mlcdrift - helpers of the drift tests (t/0013-unit-drift-stats.t,
t/0700-drift-unit.t): compute() on one numeric feature, and a comparison
with scipy's numbers to 12 digits."""

import numpy as np
import pandas as pd

from mlcpy import drift

ALPHA = 0.05
TOL = 1e-12
FEAT = [("x", "cont")]


def close(got, expected, tol=TOL):
    return (got is not None and expected is not None
            and abs(float(got) - float(expected)) <= tol * max(1.0, abs(float(expected))))


def one(train, infer, method, seed=0, features=FEAT):
    """compute() on one numeric feature 'x'."""
    df = pd.DataFrame({features[0][0]: train})
    return drift.compute(df, np.asarray(infer, dtype=float).reshape(-1, 1), features, method,
                         ALPHA, seed)[0]
