"""Paired t / Wilcoxon / effect sizes: equal to scipy on the same numbers, a hand-computed case, coverage."""

import itertools

import numpy as np
import pytest
from scipy import stats

from medattn.errors import DataError
from medattn.stats.paired import (
    cohens_dz,
    hedges_correction,
    paired_difference,
    paired_t,
    signed_rank_many,
    wilcoxon_signed_rank,
)

MODEL = np.array([0.812, 0.825, 0.804, 0.831, 0.818, 0.809, 0.822])
REFERENCE = np.array([0.801, 0.819, 0.806, 0.815, 0.805, 0.807, 0.811])


def test_matches_scipy_on_hand_made_arrays():
    res = paired_difference(MODEL, REFERENCE)
    tt = stats.ttest_rel(MODEL, REFERENCE)
    ci = tt.confidence_interval(confidence_level=0.95)
    w = stats.wilcoxon(MODEL - REFERENCE, method="exact")
    assert res.n == 7
    assert res.mean_diff == pytest.approx(np.mean(MODEL - REFERENCE))
    assert res.t == pytest.approx(tt.statistic)
    assert res.p_t == pytest.approx(tt.pvalue)
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high))
    assert res.wilcoxon_stat == pytest.approx(w.statistic)
    assert res.p_wilcoxon == pytest.approx(w.pvalue)


def test_hand_computed_tiny_case():
    # diffs 0.02, 0.03, 0.01: mean 0.02, sd 0.01, se 0.01/sqrt(3); t_{0.975, 2} = 4.302653 (t table)
    res = paired_difference([0.80, 0.82, 0.81], [0.78, 0.79, 0.80])
    half = 4.302653 * 0.01 / np.sqrt(3)
    assert res.mean_diff == pytest.approx(0.02)
    assert res.sd_diff == pytest.approx(0.01)
    assert res.t == pytest.approx(0.02 / (0.01 / np.sqrt(3)))
    assert res.ci_low == pytest.approx(0.02 - half, abs=1e-7)
    assert res.ci_high == pytest.approx(0.02 + half, abs=1e-7)
    assert res.effect_size == pytest.approx(2.0)
    # exact Hedges factor for df = 2: Gamma(1) / (1 * Gamma(0.5)) = 1 / sqrt(pi)
    assert res.effect_size_hedges == pytest.approx(2.0 / np.sqrt(np.pi))


def test_other_confidence_level_matches_scipy():
    res = paired_difference(MODEL, REFERENCE, confidence=0.9)
    ci = stats.ttest_rel(MODEL, REFERENCE).confidence_interval(confidence_level=0.9)
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high))


def test_unpaired_seeds_are_dropped():
    a = np.append(MODEL, np.nan)
    b = np.append(REFERENCE, 0.9)
    assert paired_difference(a, b).t == pytest.approx(paired_difference(MODEL, REFERENCE).t)
    assert paired_difference(a, b).n == 7


def test_all_zero_differences_are_handled():
    # zero variance: t, its interval and d_z are undefined; the exact sign-flip p of all-zero differences is 1
    res = paired_difference(REFERENCE, REFERENCE.copy())
    assert (res.mean_diff, res.p_t) == (0.0, 1.0)
    assert np.isnan([res.ci_low, res.ci_high, res.t, res.effect_size]).all()
    assert (res.wilcoxon_stat, res.p_wilcoxon) == (0.0, 1.0)


def test_constant_nonzero_difference_gets_the_exact_sign_flip_p():
    # 7 equal nonzero differences: only the observed signs and their mirror are as extreme, p = 2 / 2^7
    res = paired_difference(REFERENCE + 0.01, REFERENCE)
    assert np.isnan(res.t) and res.p_t == pytest.approx(2 / 2**7)
    assert np.isnan(res.ci_low) and np.isnan(res.ci_high) and np.isnan(res.effect_size)
    assert res.p_wilcoxon == pytest.approx(2 / 2**7)


def test_too_few_seeds_give_nan_not_an_error():
    res = paired_difference([0.8], [0.7])
    assert res.n == 1 and res.mean_diff == pytest.approx(0.1)
    assert np.isnan(res.p_t) and np.isnan(res.p_wilcoxon) and np.isnan(res.ci_low)


def test_shape_mismatch_raises_user_error():
    with pytest.raises(DataError, match="equal length"):
        paired_difference([0.1, 0.2], [0.1, 0.2, 0.3])


def _brute_force_signed_rank_p(d):
    """Two-sided p of the signed-rank statistic by enumerating all sign flips (zeros dropped)."""
    d = d[d != 0]
    ranks = stats.rankdata(np.abs(d))
    observed = min(ranks[d > 0].sum(), ranks[d < 0].sum())
    flips = np.array(list(itertools.product([1, -1], repeat=len(d))))
    plus = (flips > 0) @ ranks
    minus = (flips < 0) @ ranks
    return observed, np.mean(np.minimum(plus, minus) <= observed + 1e-9)


def test_wilcoxon_with_ties_and_zeros_is_exact():
    d = np.array([0.01, 0.01, 0.02, -0.03, 0.01, 0.0, 0.02])
    stat, p = wilcoxon_signed_rank(d)
    expected_stat, expected_p = _brute_force_signed_rank_p(d)
    assert stat == pytest.approx(expected_stat)
    assert p == pytest.approx(expected_p)
    assert p == pytest.approx(stats.wilcoxon(d, method=stats.PermutationMethod()).pvalue)


def test_wilcoxon_without_ties_uses_the_exact_distribution():
    d = np.array([0.011, -0.002, 0.016, 0.013, 0.004, 0.021])
    _, expected_p = _brute_force_signed_rank_p(d)
    assert wilcoxon_signed_rank(d)[1] == pytest.approx(expected_p)
    assert wilcoxon_signed_rank(d)[1] == pytest.approx(stats.wilcoxon(d, method="exact").pvalue)


def test_vectorised_signed_rank_equals_the_brute_force_and_scipy():
    rng = np.random.default_rng(9)
    d = np.round(rng.normal(0.005, 0.01, (40, 6)), 3)  # rounding makes ties and zeros
    d[0] = 0.0
    stat, p = signed_rank_many(d)
    for i in range(len(d)):
        assert (stat[i], p[i]) == pytest.approx(wilcoxon_signed_rank(d[i]))
        if np.any(d[i] != 0):
            assert (stat[i], p[i]) == pytest.approx(_brute_force_signed_rank_p(d[i]))


def test_effect_sizes():
    d = MODEL - REFERENCE
    assert cohens_dz(d) == pytest.approx(d.mean() / d.std(ddof=1))
    # the exact Hedges factor is close to the usual approximation 1 - 3 / (4 df - 1)
    for df in (4, 9, 29):
        assert hedges_correction(df) == pytest.approx(1 - 3 / (4 * df - 1), rel=3e-3)


def test_vectorised_t_equals_row_by_row():
    rng = np.random.default_rng(1)
    d = rng.normal(0.01, 0.02, size=(6, 5))
    out = paired_t(d)
    for i in range(6):
        tt = stats.ttest_1samp(d[i], 0.0)
        assert out.t[i] == pytest.approx(tt.statistic)
        assert out.p[i] == pytest.approx(tt.pvalue)


def test_ci_covers_true_difference_at_nominal_rate():
    # 2000 simulated studies of 5 seeds; shared seed effects cancel in the paired difference
    rng = np.random.default_rng(20240601)
    studies, seeds, true_diff = 2000, 5, 0.02
    shared = rng.normal(0, 0.02, size=(studies, seeds))
    reference = 0.80 + shared + rng.normal(0, 0.01, size=(studies, seeds))
    model = 0.80 + true_diff + shared + rng.normal(0, 0.01, size=(studies, seeds))
    out = paired_t(model - reference)
    coverage = np.mean((out.ci_low <= true_diff) & (true_diff <= out.ci_high))
    se = np.sqrt(0.95 * 0.05 / studies)
    assert abs(coverage - 0.95) <= 3 * se
