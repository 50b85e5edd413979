"""Minimum detectable difference: is a 'not significant' result informative?

For a paired t test with ``n`` seeds, statsmodels' ``TTestPower().solve_power`` gives the smallest
standardised effect (mean diff / sd diff) detected with the requested power at level ``alpha``
(two-sided). Times the observed sd of the per-seed differences it is the smallest raw difference the
study could reliably detect. A non-significant result with an MDD of 5 pp says little about a 1 pp gain.
The comparison table passes the level its test faced after Holm's correction (alpha / family size), and
the sd is the observed one: the MDD is itself an estimate from the same few seeds.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike
from statsmodels.stats.power import TTestPower


@lru_cache(maxsize=256)
def detectable_effect_size(n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Return the smallest standardised paired effect d_z detectable with ``n`` pairs (two-sided t test)."""
    if n < 2:
        return float("nan")
    return float(
        TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power, alternative="two-sided")
    )


def minimum_detectable_difference(
    sd_diff: ArrayLike, n: ArrayLike, *, alpha: ArrayLike = 0.05, power: float = 0.8
) -> np.ndarray | float:
    """Return the minimum detectable paired difference (raw units) = detectable d_z(n, alpha) * sd of differences."""
    sd = np.asarray(sd_diff, dtype=float)
    nn = np.asarray(n)
    es = np.vectorize(lambda k, a: detectable_effect_size(int(k), float(a), power), otypes=[float])(nn, alpha)
    out = es * sd
    return float(out) if np.ndim(out) == 0 else out
