"""The t interval of a mean: Student's t over a sample of independent values, as scipy computes it
(``scipy.stats.ttest_1samp(x, 0).confidence_interval(level)``; Student, "The probable error of a mean", 1908).

Used where a mean is described, not tested: explanation scores over images (``explain/summary.py``) and survey
scores over answers (``survey/analyze.py``). Paired comparisons have their own interval in ``stats/paired.py``.
Degenerate input, where scipy returns nan or warns: non-finite values are dropped; no value left gives NaN
throughout; one value gives its mean and no interval (NaN: one value has no spread to estimate); values that are
all equal give a zero-width interval at their mean (the sample has no spread).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats


class MeanInterval(NamedTuple):
    """A sample mean with its standard deviation (ddof=1) and t interval."""

    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float


def mean_t_interval(values: ArrayLike, confidence: float = 0.95) -> MeanInterval:
    """Return n, mean, sd and the two-sided t interval of the mean of the finite ``values``."""
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    n, nan = len(x), math.nan
    if n == 0:
        return MeanInterval(0, nan, nan, nan, nan)
    mean = float(x.mean())
    if n == 1:
        return MeanInterval(1, mean, nan, nan, nan)
    if np.ptp(x) == 0:
        return MeanInterval(n, mean, 0.0, mean, mean)
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence_level=confidence)
    return MeanInterval(n, mean, float(x.std(ddof=1)), float(ci.low), float(ci.high))
