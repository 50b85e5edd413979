"""Conditional independence test of feature usage, H0: prediction _||_ feature | true label.

Following Reimers, Runge and Denzler, "Determining the relevance of features for deep neural networks"
(ECCV 2020): a model *uses* a feature when its prediction depends on the feature beyond what the true label
explains. Prediction, feature and label are discrete codes here (continuous features are binned by
`medattn.analysis.encode`), so the test is the stratified (conditional) G-test of independence:

    G = 2 sum_z sum_{x,y} n_xyz log(n_xyz n_z / (n_xz n_yz)),   df = sum_z (r_z - 1)(c_z - 1),

where r_z and c_z count the non-empty prediction and feature levels of label stratum z, so a feature that is
constant within a stratum (or a stratum of one image) adds nothing to G nor to df. G equals 2 N ln(2) times the
plug-in conditional mutual information in bits, the effect size reported (with the Miller-Madow style bias
correction (G - df) / (2 N ln 2), which has mean 0 under H0, beside it).

Departure from the paper, which uses CMIknn / kernel tests on continuous outputs: when the chi-square
approximation is doubtful (Cochran's rule: an expected cell count below 1, or more than 20 % of them below 5)
the p-value comes from a permutation test within label strata. Permuting the feature inside each stratum keeps
all margins fixed, so each permutation's table is drawn directly from the fixed-margins distribution
(`scipy.stats.random_table`, Patefield's algorithm) instead of shuffling samples. The CMI's confidence
interval is a percentile bootstrap that resamples images within label strata, again done on the table
(multinomial draws per stratum). Everything is vectorised over a leading batch axis (features or simulations).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from medattn.stats.resampling import CMI_BOOTSTRAP, PERMUTATIONS

LN2 = float(np.log(2.0))
MIN_EXPECTED, SMALL_EXPECTED, SMALL_SHARE = 1.0, 5.0, 0.2


@dataclass(frozen=True)
class UsageTest:
    """One test's outcome: statistic, df, p-value, effect size with CI, and the counts it used."""

    statistic: float
    df: int
    pvalue: float
    method: str  # "asymptotic", "permutation" or "untestable"
    cmi_bits: float
    cmi_corrected_bits: float
    cmi_low: float
    cmi_high: float
    n: int
    n_missing: int
    strata_used: int

    def as_dict(self) -> dict:
        """The fields as a plain dict (one row of the usage table)."""
        return asdict(self)


def contingency(x: np.ndarray, y: np.ndarray, z: np.ndarray, kx: int, ky: int, kz: int) -> np.ndarray:
    """Counts (..., kz, kx, ky) of integer codes x, y, z shaped (..., n); a negative code marks a missing value."""
    x, y, z = np.broadcast_arrays(np.asarray(x), np.asarray(y), np.asarray(z))
    batch = x.shape[:-1]
    b = int(np.prod(batch)) if batch else 1
    x, y, z = (a.reshape(b, -1) for a in (x, y, z))
    valid = (x >= 0) & (y >= 0) & (z >= 0)
    cells = kz * kx * ky
    flat = ((np.arange(b)[:, None] * kz + z) * kx + x) * ky + y
    counts = np.bincount(flat[valid], minlength=b * cells)
    return counts.reshape(*batch, kz, kx, ky)


def g_statistic(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The conditional G statistic and its degrees of freedom for tables (..., kz, kx, ky)."""
    counts = np.asarray(counts, dtype=float)
    n_z = counts.sum(axis=(-2, -1), keepdims=True)
    n_xz = counts.sum(axis=-1, keepdims=True)
    n_yz = counts.sum(axis=-2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = counts * np.log(counts * n_z / (n_xz * n_yz))
    g = 2.0 * np.nansum(np.where(counts > 0, terms, 0.0), axis=(-3, -2, -1))
    rows = (n_xz[..., 0] > 0).sum(-1)
    cols = (n_yz[..., 0, :] > 0).sum(-1)
    df = (np.maximum(rows - 1, 0) * np.maximum(cols - 1, 0)).sum(-1)
    return np.maximum(g, 0.0), df


def cmi_bits(counts: np.ndarray) -> np.ndarray:
    """Plug-in conditional mutual information I(X; Y | Z) in bits of tables (..., kz, kx, ky)."""
    n = np.asarray(counts).sum(axis=(-3, -2, -1))
    g, _ = g_statistic(counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, g / (2.0 * n * LN2), 0.0)


def asymptotic_pvalue(counts: np.ndarray) -> np.ndarray:
    """Chi-square p-values of the conditional G-test (1.0 where df is 0: nothing to test)."""
    g, df = g_statistic(counts)
    return np.where(df > 0, stats.chi2.sf(g, np.maximum(df, 1)), 1.0)


def is_sparse(counts: np.ndarray) -> bool:
    """Cochran's rule on one table (kz, kx, ky): an expected count < 1, or > 20 % of them < 5."""
    counts = np.asarray(counts, dtype=float)
    expected = []
    for table in counts:
        rows, cols = table.sum(1), table.sum(0)
        if table.sum() == 0 or (rows > 0).sum() < 2 or (cols > 0).sum() < 2:
            continue
        e = np.outer(rows[rows > 0], cols[cols > 0]) / table.sum()
        expected.append(e.ravel())
    if not expected:
        return False
    e = np.concatenate(expected)
    return bool(e.min() < MIN_EXPECTED or (e < SMALL_EXPECTED).mean() > SMALL_SHARE)


def permutation_tables(counts: np.ndarray, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Tables (permutations, kz, kx, ky) with the margins of `counts` per stratum, as within-stratum shuffles give."""
    counts = np.asarray(counts, dtype=np.int64)
    kz, kx, ky = counts.shape
    out = np.zeros((permutations, kz, kx, ky), dtype=np.int64)
    for z in range(kz):  # one draw per label stratum (a handful), each vectorised over all permutations
        rows, cols = counts[z].sum(1), counts[z].sum(0)
        r, c = rows > 0, cols > 0
        if r.sum() < 2 or c.sum() < 2:
            out[:, z] = counts[z]
            continue
        draws = stats.random_table(rows[r], cols[c], seed=rng).rvs(permutations)
        out[np.ix_(np.arange(permutations), [z], np.flatnonzero(r), np.flatnonzero(c))] = draws[:, None]
    return out


def permutation_pvalue(counts: np.ndarray, permutations: int, rng: np.random.Generator) -> float:
    """Within-stratum permutation p-value (1 + #{G_perm >= G_obs}) / (1 + permutations) for one table."""
    observed, _ = g_statistic(counts)
    null, _ = g_statistic(permutation_tables(counts, permutations, rng))
    return float((1 + np.sum(null >= observed - 1e-9)) / (1 + permutations))


def bootstrap_cmi(counts: np.ndarray, resamples: int, rng: np.random.Generator, level: float = 0.95) -> tuple[float,
                                                                                                               float]:
    """Percentile CI of the plug-in CMI (bits), resampling images with replacement within each label stratum."""
    counts = np.asarray(counts, dtype=np.int64)
    kz, kx, ky = counts.shape
    boot = np.zeros((resamples, kz, kx * ky), dtype=np.int64)
    for z in range(kz):
        n_z = int(counts[z].sum())
        if n_z:
            boot[:, z] = rng.multinomial(n_z, counts[z].ravel() / n_z, size=resamples)
    values = cmi_bits(boot.reshape(resamples, kz, kx, ky))
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def usage_test(prediction: np.ndarray, feature: np.ndarray, label: np.ndarray, *, permutations: int = PERMUTATIONS,
               bootstrap: int = CMI_BOOTSTRAP, method: str = "auto", seed: int = 0) -> UsageTest:
    """Test H0: prediction _||_ feature | label on integer codes (feature < 0 = missing, dropped and counted)."""
    prediction, feature, label = (np.asarray(a, dtype=np.int64) for a in (prediction, feature, label))
    missing = feature < 0
    kx, ky, kz = (int(a.max()) + 1 if a.size else 1 for a in (prediction, feature, label))
    counts = contingency(prediction, feature, label, kx, max(ky, 1), kz)
    rng = np.random.default_rng(seed)
    g, df = g_statistic(counts)
    n = int(counts.sum())
    strata = int(sum(1 for t in counts if t.sum() > 0 and (t.sum(1) > 0).sum() > 1 and (t.sum(0) > 0).sum() > 1))
    if df == 0:
        how, p = "untestable", 1.0
    elif method == "permutation" or (method == "auto" and is_sparse(counts)):
        how, p = "permutation", permutation_pvalue(counts, permutations, rng)
    else:
        how, p = "asymptotic", float(stats.chi2.sf(g, df))
    cmi = float(g / (2 * n * LN2)) if n else 0.0
    low, high = bootstrap_cmi(counts, bootstrap, rng) if bootstrap and n else (float("nan"), float("nan"))
    corrected = max(0.0, float((g - df) / (2 * n * LN2))) if n else 0.0
    return UsageTest(float(g), int(df), p, how, cmi, corrected, low, high, n, int(missing.sum()), strata)
