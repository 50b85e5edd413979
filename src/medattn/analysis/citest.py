"""Conditional independence test of feature usage, H0: prediction _||_ feature | true label.

Following Reimers, Runge and Denzler, "Determining the relevance of features for deep neural networks"
(ECCV 2020): a model *uses* a feature when its prediction depends on the feature beyond what the true label
explains. Prediction, feature and label are discrete codes here (continuous features are binned by
`medattn.analysis.features.encode_feature`), so the omnibus test is the stratified (conditional) G-test:

    G = 2 sum_z sum_{x,y} n_xyz log(n_xyz n_z / (n_xz n_yz)),   df = sum_z (r_z - 1)(c_z - 1),

where r_z and c_z count the non-empty prediction and feature levels of label stratum z. G equals 2 N ln(2) times
the plug-in conditional mutual information (CMI) in bits.

p-value. The chi-square p where Cochran's rule holds (no expected count below 1, at most 20 % below 5); else a
Monte Carlo permutation test within label strata (each permutation's table drawn from the fixed-margins
distribution, `scipy.stats.random_table`). Its size is set by the caller for the family (`max_permutations`,
e.g. 20 m / alpha, so the smallest p can survive Holm) and it stops early by Besag and Clifford's sequential rule
("Sequential Monte Carlo p-values", Biometrika 1991): at the `STOP_HITS`-th permuted G >= G_obs after L draws
p = STOP_HITS / L, otherwise p = (1 + hits) / (1 + B). Both are valid p-values (P(p <= u) <= u under H0).

Effect size. The plug-in CMI is biased upwards (by about df / (2 N ln 2) under H0). The reported corrected CMI
is (G - E0[G]) / (2 N ln 2), not clipped, where E0[G] is the mean of G over the within-stratum permutations:
given the margins, the observed G under H0 has exactly that distribution, so the corrected CMI has mean 0 under
H0 (it is negative about half the time). Departure from the paper, which uses CMIknn on continuous outputs.

Interval (test inversion, not a bootstrap). Under local alternatives G is approximately a scaled noncentral
chi-square, G ~ a chi2'(nu, lambda / a) with lambda = 2 N ln(2) CMI; a and nu are matched to the permutation
null's mean and variance (a = var / (2 mean), nu = 2 mean^2 / var; a = 1, nu = df in large tables). The interval
is the set of lambda whose distribution puts G inside its central region, with ALPHA_LOW in the lower tail and
ALPHA_HIGH in the upper one. CMI >= 0, so at CMI = 0 only the lower bound can miss: a 2.5 % / 2.5 % split would
cover 0.975 there; the 3.5 % / 1.5 % split covers 0.95 inside and 0.965 at 0 (checked by simulation in
`bench/usage_calibration.py`). The bounds are >= 0 while the unbiased estimate may be negative.

Directional test. The omnibus G spends a df per stratum and level. Beside it, Mantel's (1963) 1-df
correlation test of the generalised Cochran-Mantel-Haenszel family, with a common effect across label strata:
prediction scored 1 for the positive class (else 0), feature scored by its level order (binary or ordered
features only). For a binary feature it is the CMH test without continuity correction and its effect size the
Mantel-Haenszel common odds ratio (statsmodels' `StratifiedTable`); `direction` +1 means a higher feature level
goes with more positive-class predictions at a fixed label.

Continuous outputs. Where the positive-class probability is given, the generalised covariance measure (Shah and
Peters, "The hardness of conditional independence testing and the generalised covariance measure", Ann. Stat.
2020) tests P(positive) _||_ feature score | label: residuals of both on the label (with a discrete label the
regression is the stratum mean, fitted exactly), R_i their product, T = sqrt(n) mean(R) / sd(R) ~ N(0, 1).
Ordered features only; its sign is the direction.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, special, stats

from medattn.errors import DataError
from medattn.stats.resampling import PERMUTATIONS

LN2 = float(np.log(2.0))
MIN_EXPECTED, SMALL_EXPECTED, SMALL_SHARE = 1.0, 5.0, 0.2
ALPHA_LOW, ALPHA_HIGH = 0.035, 0.015  # tails of the CMI interval (see the module docstring)
STOP_HITS = 10  # Besag-Clifford: stop the permutations at the 10th permuted G >= observed G
FIRST_BATCH = 1000  # permutations drawn first (they also give the null moments)
MAX_LEVELS = 1000  # more levels than this in a code array is refused (a table of N x 1000 x 1000 cells)
MISSING = -1  # the feature code of a missing value


@dataclass(frozen=True)
class UsageTest:
    """One test's outcome: omnibus statistic, df, p; CMI (plug-in, corrected, interval); the directional test."""

    statistic: float
    df: int
    pvalue: float
    method: str  # "asymptotic", "permutation" or "untestable"
    permutations: int  # permutations drawn (for the null moments, and the p-value when method is permutation)
    cmi_bits: float  # plug-in CMI (biased upwards)
    cmi_corrected_bits: float  # (G - E0[G]) / (2 N ln 2), unclipped
    cmi_low: float
    cmi_high: float
    direction: int  # +1 / -1 / 0 (no directional test: unordered feature or no variation)
    direction_statistic: float  # Mantel's chi-square (1 df)
    direction_pvalue: float
    common_odds_ratio: float  # Mantel-Haenszel, binary features only
    gcm_statistic: float  # generalised covariance measure on P(positive) (NaN without probabilities)
    gcm_pvalue: float
    n: int
    n_missing: int
    strata_used: int  # label strata where both prediction and feature vary
    label_groups: int  # label strata in which the feature takes two or more levels

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


@dataclass(frozen=True)
class PermutationNull:
    """The permutation null of G: its mean and variance (first batch) and the sequential Monte Carlo p-value."""

    mean: float
    var: float
    pvalue: float
    draws: int


def permutation_null(counts: np.ndarray, max_permutations: int, rng: np.random.Generator,
                     first: int = FIRST_BATCH, hits: int = STOP_HITS) -> PermutationNull:
    """Null moments of G and the Besag-Clifford sequential p-value with at most `max_permutations` draws."""
    observed = float(g_statistic(counts)[0]) - 1e-9
    total = max(int(max_permutations), 1)
    drawn, exceed, batch, moments = 0, 0, min(first, total), None
    while drawn < total:
        null = g_statistic(permutation_tables(counts, batch, rng))[0]
        if moments is None:
            moments = (float(null.mean()), float(null.var(ddof=1)) if batch > 1 else 0.0)
        running = exceed + np.cumsum(null >= observed)
        stop = np.flatnonzero(running >= hits)
        if stop.size:
            return PermutationNull(*moments, hits / (drawn + stop[0] + 1), drawn + int(stop[0]) + 1)
        exceed, drawn = int(running[-1]), drawn + batch
        batch = min(2 * batch, total - drawn)
    return PermutationNull(*moments, (1 + exceed) / (1 + drawn), drawn)


def permutation_pvalue(counts: np.ndarray, permutations: int, rng: np.random.Generator) -> float:
    """Within-stratum permutation p-value (1 + #{G_perm >= G_obs}) / (1 + permutations) for one table."""
    observed, _ = g_statistic(counts)
    null, _ = g_statistic(permutation_tables(counts, permutations, rng))
    return float((1 + np.sum(null >= observed - 1e-9)) / (1 + permutations))


def cmi_interval(g: float, null_mean: float, null_var: float, n: int, alpha_low: float = ALPHA_LOW,
                 alpha_high: float = ALPHA_HIGH) -> tuple[float, float]:
    """Test-inversion interval (bits) of the CMI from G ~ a chi2'(nu, lambda / a), a and nu from the null moments."""
    if n <= 0 or null_mean <= 0 or null_var <= 0:
        return float("nan"), float("nan")
    a = null_var / (2 * null_mean)
    nu, x = 2 * null_mean**2 / null_var, g / a

    def tail(lam: float) -> float:  # P(G >= g | lambda): increasing in lambda (scipy.special, no dist overhead)
        return 1.0 - float(special.chndtr(x, nu, lam / a)) if lam > 0 else float(special.chdtrc(nu, x))

    scale = 2 * n * LN2
    top = 4 * (g + 10 * math.sqrt(null_var) + 10)
    low = 0.0 if tail(0.0) >= alpha_low else optimize.brentq(lambda lam: tail(lam) - alpha_low, 0.0, top)
    high = 0.0 if tail(0.0) >= 1 - alpha_high else optimize.brentq(lambda lam: tail(lam) - (1 - alpha_high),
                                                                    0.0, top)
    return low / scale, high / scale


def mantel_test(counts: np.ndarray, x_scores: np.ndarray, y_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                         np.ndarray]:
    """Mantel's 1-df correlation chi-square over label strata of tables (..., kz, kx, ky): (statistic, p, sign)."""
    counts = np.asarray(counts, dtype=float)
    u, v = np.asarray(x_scores, float), np.asarray(y_scores, float)
    n_z = counts.sum(axis=(-2, -1))
    n_x, n_y = counts.sum(-1), counts.sum(-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        u_bar = np.where(n_z > 0, (n_x * u).sum(-1) / n_z, 0.0)
        v_bar = np.where(n_z > 0, (n_y * v).sum(-1) / n_z, 0.0)
        ssu = (n_x * (u - u_bar[..., None]) ** 2).sum(-1)
        ssv = (n_y * (v - v_bar[..., None]) ** 2).sum(-1)
        cross = np.einsum("...zxy,...zx,...zy->...z", counts, u - u_bar[..., None], v - v_bar[..., None])
        var = np.where(n_z > 1, ssu * ssv / (n_z - 1), 0.0)
    total, variance = cross.sum(-1), var.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = np.where(variance > 0, total**2 / variance, 0.0)
    pvalue = np.where(variance > 0, stats.chi2.sf(statistic, 1), 1.0)
    return statistic, pvalue, np.where(variance > 0, np.sign(total), 0).astype(int)


def gcm_test(probability: np.ndarray, score: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Generalised covariance measure of (..., n) arrays given integer labels: (T, two-sided normal p)."""
    p, v, z = np.broadcast_arrays(np.asarray(probability, float), np.asarray(score, float), np.asarray(label))
    k = int(z.max()) + 1 if z.size else 1
    onehot = z[..., None] == np.arange(k)  # (..., n, k)
    counts = onehot.sum(-2).clip(min=1)

    def residual(a: np.ndarray) -> np.ndarray:
        means = np.einsum("...n,...nk->...k", a, onehot) / counts
        return a - np.einsum("...nk,...k->...n", onehot, means)

    r = residual(p) * residual(v)
    n = r.shape[-1]
    sd = r.std(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(sd > 0, np.sqrt(n) * r.mean(-1) / sd, 0.0)
    return t, np.where(sd > 0, 2 * stats.norm.sf(np.abs(t)), 1.0)


def common_odds_ratio(counts: np.ndarray, positive: int) -> float:
    """Mantel-Haenszel common odds ratio (statsmodels) of positive-class prediction vs feature level 1 (binary)."""
    from statsmodels.stats.contingency_tables import StratifiedTable

    tables = []
    for t in np.asarray(counts, dtype=float):
        pos = t[positive] if positive < len(t) else np.zeros(t.shape[1])
        two = np.array([[pos[1], pos[0]], [t[:, 1].sum() - pos[1], t[:, 0].sum() - pos[0]]])
        if two.sum(0).min() > 0 and two.sum(1).min() > 0:
            tables.append(two)
    if not tables:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(StratifiedTable(tables).oddsratio_pooled)


def check_codes(values, name: str, role: str, allow_missing: bool = False) -> np.ndarray:
    """int64 codes of one input, or a one-line DataError naming it (strings, NaN, non-integers, bad negatives)."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise DataError(f"{role} '{name}': expected a 1-D array of codes, got shape {array.shape}")
    if array.dtype.kind == "b":
        array = array.astype(np.int64)
    if array.dtype.kind not in "iuf":
        raise DataError(f"{role} '{name}': values of type {array.dtype} (e.g. {array[:1].tolist()}); give integer "
                        f"codes, or pass the raw column through medattn.analysis.features.encode_feature")
    if array.dtype.kind == "f":
        if np.isnan(array).any() or np.isinf(array).any():
            what = "NaN" if np.isnan(array).any() else "inf"
            raise DataError(f"{role} '{name}': {what} among the codes; code missing values as {MISSING}"
                            + (" (encode_feature does)" if allow_missing else " or drop those images"))
        if (array != np.round(array)).any():
            raise DataError(f"{role} '{name}': non-integer values (e.g. {array[array != np.round(array)][0]:g}); "
                            f"bin a continuous feature first (encode_feature: quartiles fitted on the training "
                            f"split)")
    codes = array.astype(np.int64)
    lowest = MISSING if allow_missing else 0
    if codes.size and codes.min() < lowest:
        raise DataError(f"{role} '{name}': code {codes.min()} is negative; codes are 0..levels-1"
                        + (f", {MISSING} for missing" if allow_missing else ""))
    if codes.size and codes.max() >= MAX_LEVELS:
        raise DataError(f"{role} '{name}': code {codes.max()} asks for more than {MAX_LEVELS} levels; re-code the "
                        f"levels as 0..levels-1 (encode_feature does) or bin the feature")
    return codes


def usage_test(prediction: np.ndarray, feature: np.ndarray, label: np.ndarray, *, permutations: int = PERMUTATIONS,
               max_permutations: int | None = None, method: str = "auto", seed: int = 0, name: str = "feature",
               positive: int | None = None, ordered: bool = True,
               probability: np.ndarray | None = None) -> UsageTest:
    """Test H0: prediction _||_ feature | label on integer codes (feature -1 = missing, dropped and counted).

    Args:
        prediction, feature, label: 1-D integer codes of equal length (checked; DataError names `name`).
        permutations: first batch of permutations (null moments of G; the p-value where tables are sparse).
        max_permutations: most permutations for the p-value (default `permutations`); set it to 20 m / alpha for
            a family of m features read at level alpha.
        method: "auto" (chi-square unless sparse), "permutation" or "asymptotic".
        positive: the prediction code scored 1 by the directional test (default: the largest code seen).
        ordered: whether the feature's codes are ordered (binary or binned); else no directional test.
        probability: P(positive class) per image, for the generalised covariance measure (ordered features).
    """
    prediction = check_codes(prediction, name, "prediction")
    feature = check_codes(feature, name, "feature", allow_missing=True)
    label = check_codes(label, name, "label")
    if not len(prediction) == len(feature) == len(label):
        raise DataError(f"feature '{name}': {len(feature)} values for {len(prediction)} predictions and "
                        f"{len(label)} labels; give one value per tested image")
    kx, ky, kz = (int(a.max()) + 1 if a.size else 1 for a in (prediction, feature, label))
    counts = contingency(prediction, feature, label, kx, max(ky, 1), kz)
    rng = np.random.default_rng(seed)
    g, df = (float(v) for v in g_statistic(counts))
    n = int(counts.sum())
    strata = int(sum(1 for t in counts if (t.sum(1) > 0).sum() > 1 and (t.sum(0) > 0).sum() > 1))
    groups = int(sum(1 for t in counts if (t.sum(0) > 0).sum() > 1))
    nan = float("nan")
    gcm_t, gcm_p = nan, nan
    if probability is not None and ordered:
        prob = np.asarray(probability, dtype=float)
        if prob.shape != prediction.shape or not np.isfinite(prob).all():
            raise DataError(f"feature '{name}': probabilities must be {len(prediction)} finite values, one per image")
        ok = feature >= 0
        gcm_t, gcm_p = (float(v) for v in gcm_test(prob[ok], feature[ok], label[ok]))
    if df == 0:
        return UsageTest(g, 0, 1.0, "untestable", 0, 0.0 if n else nan, 0.0, nan, nan, 0, 0.0, 1.0, nan, gcm_t,
                         gcm_p, n, int((feature < 0).sum()), strata, groups)
    cap = max(int(max_permutations or permutations), int(permutations))
    sparse = method == "permutation" or (method == "auto" and is_sparse(counts))
    null = permutation_null(counts, cap if sparse else permutations, rng, first=permutations,
                            hits=STOP_HITS if sparse else permutations + 1)
    p = null.pvalue if sparse else float(stats.chi2.sf(g, df))
    scale = 2 * n * LN2
    low, high = cmi_interval(g, null.mean, null.var, n)
    positive = kx - 1 if positive is None else int(positive)
    direction, d_stat, d_p, odds = 0, nan, nan, nan
    if ordered:
        stat, d_pv, sign = mantel_test(counts, np.arange(kx) == positive, np.arange(counts.shape[-1]))
        direction, d_stat, d_p = int(sign), float(stat), float(d_pv)
        if counts.shape[-1] == 2:
            odds = common_odds_ratio(counts, positive)
    return UsageTest(g, int(df), float(p), "permutation" if sparse else "asymptotic", null.draws, g / scale,
                     (g - null.mean) / scale, low, high, direction, d_stat, d_p, odds, gcm_t, gcm_p, n,
                     int((feature < 0).sum()), strata, groups)
