"""Bayesian paired comparison with a region of practical equivalence (ROPE).

The posterior of the mean difference is the Student t of baycomp's correlated t-test (Corani & Benavoli
2015): location mean(diff), scale^2 = var(diff) * (1/n + rho / (1 - rho)), n - 1 degrees of freedom.
baycomp's ``CorrelatedTTest`` hard-codes rho = 1 / n_folds (Nadeau-Bengio, for overlapping
cross-validation training sets). Repeated seeds on a fixed split share no training data beyond what
every seed shares, so their differences are independent and rho = 0: the posterior is then the usual
Student t posterior of a mean under the flat prior. We build that posterior with baycomp's
``Posterior`` and read the three probabilities from it (``Posterior.probs``): P(diff < -rope),
P(-rope <= diff <= rope), P(diff > rope).

Zero variance (all paired differences equal, e.g. two seeds that both differ by +0.1 pp) leaves the
posterior undefined: the scale estimate is 0, and a point mass would claim certainty that a handful of
agreeing seeds does not give. The probabilities are then NaN (no posterior), like for fewer than 2 seeds.
"""

from __future__ import annotations

import numpy as np
from baycomp.single import Posterior
from numpy.typing import ArrayLike
from scipy import stats

from medattn.errors import DataError


def posterior_parameters(diff: ArrayLike, *, rho: float = 0.0) -> tuple[float, float, int]:
    """Return (mean, variance, df) of the Student t posterior of the mean of 1-D ``diff`` (NaN variance: none)."""
    d = np.asarray(diff, dtype=float)
    d = d[~np.isnan(d)]
    n = len(d)
    if not 0.0 <= rho < 1.0:
        raise DataError(f"rho must lie in [0, 1), got {rho}; use 0 for independent seeds")
    if n < 2:
        return float("nan"), float("nan"), n - 1
    var = float(np.var(d, ddof=1)) * (1.0 / n + rho / (1.0 - rho))
    if np.ptp(d) <= 1e-12 * max(float(np.max(np.abs(d))), 1e-300):
        var = float("nan")  # identical differences: the spread is unknown, not zero
    return float(np.mean(d)), var, n - 1


def rope_probabilities(
    diff: ArrayLike, *, rope: float = 0.01, rho: float = 0.0
) -> tuple[float, float, float]:
    """Return (P(diff < -rope), P(|diff| <= rope), P(diff > rope)) for the mean paired difference."""
    if rope < 0:
        raise DataError(f"rope must be >= 0 (half-width, in metric units, e.g. 0.01 = 1 pp), got {rope}")
    mean, var, df = posterior_parameters(diff, rho=rho)
    if np.isnan(mean) or np.isnan(var):
        return float("nan"), float("nan"), float("nan")
    probs = Posterior(mean, var, df, rope).probs()
    if rope == 0:
        return float(probs[0]), 0.0, float(probs[1])
    low, inside, high = (float(p) for p in probs)
    return low, inside, high


def rope_probabilities_many(
    diff: ArrayLike, *, rope: ArrayLike = 0.01, rho: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return :func:`rope_probabilities` for every row of 2-D ``diff`` (no NaNs; ``rope`` one or one per row)."""
    d = np.asarray(diff, dtype=float)
    rows, n = d.shape
    rope = np.broadcast_to(np.asarray(rope, dtype=float), (rows,))
    if np.any(rope < 0):
        raise DataError(f"rope must be >= 0 (half-width, in metric units, e.g. 0.01 = 1 pp), got {rope.min()}")
    if not 0.0 <= rho < 1.0:
        raise DataError(f"rho must lie in [0, 1), got {rho}; use 0 for independent seeds")
    nan = np.full(rows, np.nan)
    if n < 2:
        return nan, nan.copy(), nan.copy()
    mean = d.mean(axis=1)
    var = d.var(axis=1, ddof=1) * (1.0 / n + rho / (1.0 - rho))
    constant = np.ptp(d, axis=1) <= 1e-12 * np.maximum(np.abs(d).max(axis=1), 1e-300)
    scale = np.where(constant, np.nan, np.sqrt(var))
    low = stats.t.cdf(-rope, n - 1, mean, scale)
    high = np.where(rope > 0, stats.t.sf(rope, n - 1, mean, scale), 1 - low)
    inside = np.where(constant, np.nan, np.where(rope > 0, 1 - low - high, 0.0))
    return low, inside, high
