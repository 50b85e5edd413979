"""Paired comparison of two models over the same seeds: t interval and test, Wilcoxon, effect sizes.

The statistics are scipy's (``ttest_rel`` and its ``confidence_interval``, ``wilcoxon``); this module
only orients them (difference = model - reference), drops unpaired seeds and handles degenerate input:

* all differences identical (zero variance): the t statistic, its interval and Cohen's d_z are
  undefined (scipy returns nan or warns about precision loss), and they stay NaN here. A zero-width
  interval or p = 0 would claim certainty that two seeds agreeing by chance do not give. The p-value is
  the exact sign-flip p instead: for n equal nonzero differences 2 / 2^n (only the observed signs and
  their mirror are as extreme), for all-zero differences 1.
* Wilcoxon (zero_method 'wilcox': zero differences are dropped): exact null distribution for up to
  50 untied differences; with ties or zeros scipy's 'exact' table is no longer exact, so for up to 13
  remaining differences the p-value comes from enumerating all 2^n sign flips
  (``scipy.stats.PermutationMethod``), beyond that from the tie-corrected normal approximation.
  All-zero differences give statistic 0 and p = 1. With n nonzero differences the exact test cannot give
  a p below 2 / 2^n (all signs equal): with fewer than 6 seeds it cannot reach p < 0.05
  (``PairedResult.p_wilcoxon_min`` says how low it could go).

Effect size: Cohen's d_z = mean(diff) / sd(diff) (Cohen 1988, for paired data), and Hedges' small
sample correction g_z = J(n - 1) * d_z with J(df) = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2)).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

from medattn.errors import DataError

_EXACT_PERMUTATION_MAX_N = 13  # 2**13 sign flips < PermutationMethod's 9999 resamples: exact enumeration


class PairedT(NamedTuple):
    """Paired t results along the last axis (arrays, or floats for 1-D input)."""

    n: int
    mean: np.ndarray
    sd: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    t: np.ndarray
    p: np.ndarray


@dataclass(frozen=True)
class PairedResult:
    """One paired comparison: difference = model - reference, per seed."""

    n: int
    mean_diff: float
    sd_diff: float
    ci_low: float
    ci_high: float
    t: float
    p_t: float
    wilcoxon_stat: float
    p_wilcoxon: float
    p_wilcoxon_min: float
    effect_size: float
    effect_size_hedges: float


def _constant(diff: np.ndarray) -> np.ndarray:
    """Return True along the last axis where all differences are equal up to float round-off."""
    spread = np.ptp(diff, axis=-1)
    scale = np.maximum(np.max(np.abs(diff), axis=-1), 1e-300)
    return spread <= 1e-12 * scale


def paired_t(diff: ArrayLike, *, confidence: float = 0.95) -> PairedT:
    """Return the paired t test and t confidence interval of the mean of ``diff`` along its last axis."""
    d = np.asarray(diff, dtype=float)
    n = d.shape[-1]
    if n < 2:
        nan = np.full(d.shape[:-1], np.nan)
        mean = d[..., 0] if n == 1 else nan
        return PairedT(n, mean, nan, nan, nan, nan, nan)
    if np.isnan(d).any():
        raise DataError("paired_t got NaN differences; drop unpaired seeds first (paired_difference does)")
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_rel(d, np.zeros_like(d), axis=-1)
        ci = res.confidence_interval(confidence_level=confidence)
    mean = d.mean(axis=-1)
    sd = d.std(axis=-1, ddof=1)
    t, p, lo, hi = (np.array(v, dtype=float) for v in (res.statistic, res.pvalue, ci.low, ci.high))
    const = _constant(d)
    if np.any(const):
        t = np.where(const, np.nan, t)
        p = np.where(const, sign_flip_p_constant(mean, n), p)
        lo = np.where(const, np.nan, lo)
        hi = np.where(const, np.nan, hi)
        sd = np.where(const, 0.0, sd)
    return PairedT(n, mean, sd, lo, hi, t, p)


def sign_flip_p_constant(mean: ArrayLike, n: int) -> np.ndarray:
    """Return the exact two-sided sign-flip p of ``n`` equal differences with value ``mean``: 2 / 2^n, or 1 if 0."""
    return np.where(np.asarray(mean) == 0, 1.0, min(1.0, 2.0 ** (1 - n)))


def wilcoxon_min_p(n_nonzero: int) -> float:
    """Return the smallest two-sided p the exact signed-rank test can give with ``n_nonzero`` differences."""
    return float("nan") if n_nonzero < 1 else min(1.0, 2.0 ** (1 - n_nonzero))


def _wilcoxon_method(d: np.ndarray) -> str | stats.PermutationMethod:
    """Return the scipy method giving an exact p-value where feasible (see module docstring)."""
    nonzero = d[d != 0]
    tied = len(np.unique(np.abs(nonzero))) < len(nonzero) or len(nonzero) < len(d)
    if not tied:
        return "exact" if len(d) <= 50 else "asymptotic"
    if len(nonzero) <= _EXACT_PERMUTATION_MAX_N:
        return stats.PermutationMethod()
    return "asymptotic"


def wilcoxon_signed_rank(diff: ArrayLike) -> tuple[float, float]:
    """Return (statistic, two-sided p) of the Wilcoxon signed-rank test of 1-D ``diff`` against zero."""
    d = np.asarray(diff, dtype=float)
    if d.ndim != 1:
        raise DataError(f"wilcoxon_signed_rank needs a 1-D array of differences, got shape {d.shape}")
    if len(d) < 2:
        return float("nan"), float("nan")
    if not np.any(d != 0):
        return 0.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.wilcoxon(d, method=_wilcoxon_method(d))
    return float(res.statistic), float(res.pvalue)


def signed_rank_many(diff: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return (statistic, two-sided p) of the exact Wilcoxon signed-rank test of every row of 2-D ``diff``.

    Zeros are dropped (zero_method 'wilcox'), ties get average ranks, and the p-value enumerates all 2^n
    sign flips (n <= 13), i.e. the exact conditional null distribution: equal to scipy's exact test without
    ties and to its ``PermutationMethod`` with them. Rows of all zeros give statistic 0 and p = 1.
    """
    d = np.asarray(diff, dtype=float)
    rows, n = d.shape
    if n > _EXACT_PERMUTATION_MAX_N:
        raise DataError(f"signed_rank_many enumerates 2^n sign flips; n = {n} > {_EXACT_PERMUTATION_MAX_N}")
    zero = d == 0
    ranks = stats.rankdata(np.where(zero, -1.0, np.abs(d)), axis=-1)  # zeros take the lowest ranks ...
    ranks = np.where(zero, 0.0, ranks - zero.sum(axis=1, keepdims=True))  # ... and are then dropped
    total = ranks.sum(axis=1)
    plus = np.where(d > 0, ranks, 0.0).sum(axis=1)
    observed = np.minimum(plus, total - plus)
    flips = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(float)
    p = np.empty(rows)
    chunk = max(1, 4_000_000 // 2**n)
    for start in range(0, rows, chunk):
        part = slice(start, start + chunk)
        null_plus = ranks[part] @ flips.T
        null_stat = np.minimum(null_plus, total[part, None] - null_plus)
        p[part] = np.mean(null_stat <= observed[part, None] + 1e-9, axis=1)
    return observed, p


def cohens_dz(diff: ArrayLike) -> np.ndarray:
    """Return Cohen's d_z = mean / sd (ddof=1) of paired differences along the last axis (NaN if sd = 0)."""
    d = np.asarray(diff, dtype=float)
    mean = d.mean(axis=-1)
    sd = d.std(axis=-1, ddof=1) if d.shape[-1] > 1 else np.full(mean.shape, np.nan)
    const = _constant(d) if d.shape[-1] > 1 else np.zeros(mean.shape, bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        dz = mean / sd
    return np.where(const, np.nan, dz)  # zero variance: no standardised effect


def hedges_correction(df: ArrayLike) -> np.ndarray:
    """Return Hedges' exact small-sample factor J(df) = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2))."""
    df = np.asarray(df, dtype=float)
    with np.errstate(invalid="ignore"):
        j = np.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / np.sqrt(df / 2)
    return np.where(df >= 2, j, np.nan)


def paired_difference(model: ArrayLike, reference: ArrayLike, *, confidence: float = 0.95) -> PairedResult:
    """Return the paired comparison of 1-D ``model`` vs ``reference`` (same seed order; NaN pairs dropped)."""
    a = np.asarray(model, dtype=float)
    b = np.asarray(reference, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise DataError(
            f"paired_difference needs two 1-D arrays of equal length (one value per seed), "
            f"got shapes {a.shape} and {b.shape}"
        )
    keep = ~(np.isnan(a) | np.isnan(b))
    d = a[keep] - b[keep]
    n = len(d)
    tt = paired_t(d, confidence=confidence)
    w_stat, w_p = wilcoxon_signed_rank(d)
    dz = float(cohens_dz(d)) if n >= 2 else float("nan")
    gz = float(hedges_correction(n - 1) * dz) if n >= 3 else float("nan")
    return PairedResult(
        n=n,
        mean_diff=float(tt.mean),
        sd_diff=float(tt.sd),
        ci_low=float(tt.ci_low),
        ci_high=float(tt.ci_high),
        t=float(tt.t),
        p_t=float(tt.p),
        wilcoxon_stat=w_stat,
        p_wilcoxon=w_p,
        p_wilcoxon_min=wilcoxon_min_p(int(np.count_nonzero(d))) if n >= 2 else float("nan"),
        effect_size=dz,
        effect_size_hedges=gz,
    )
