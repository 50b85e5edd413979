"""The usage test H0: prediction _||_ feature | label: exactness against scipy/sklearn, size and power by simulation."""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2, chi2_contingency
from sklearn.metrics import mutual_info_score

from medattn.analysis.citest import (
    asymptotic_pvalue,
    cmi_bits,
    contingency,
    g_statistic,
    permutation_tables,
    usage_test,
)

ALPHA = 0.05


def _null_world(rng: np.random.Generator, sims: int, n: int) -> tuple[np.ndarray, ...]:
    """Label, a feature that depends on the label, a prediction that depends on the label only."""
    label = rng.integers(0, 2, (sims, n))
    feature = (rng.random((sims, n)) < np.where(label == 1, 0.7, 0.3)).astype(np.int64)
    prediction = (rng.random((sims, n)) < np.where(label == 1, 0.8, 0.25)).astype(np.int64)
    return label, feature, prediction


def test_g_statistic_is_the_sum_of_scipy_per_stratum_g_tests():
    rng = np.random.default_rng(0)
    z, x, y = rng.integers(0, 3, 500), rng.integers(0, 2, 500), rng.integers(0, 4, 500)
    counts = contingency(x, y, z, 2, 4, 3)
    g, df = g_statistic(counts)
    ref = [chi2_contingency(counts[k], lambda_="log-likelihood", correction=False) for k in range(3)]
    assert np.isclose(g, sum(r.statistic for r in ref))
    assert df == sum(r.dof for r in ref) == 9
    assert np.isclose(asymptotic_pvalue(counts), chi2.sf(g, 9))


def test_cmi_matches_sklearn_mutual_information_averaged_over_strata():
    rng = np.random.default_rng(1)
    z = rng.integers(0, 2, 2000)
    x = rng.integers(0, 3, 2000)
    y = np.where(rng.random(2000) < 0.4, x, rng.integers(0, 3, 2000))
    expected = sum((z == k).mean() * mutual_info_score(x[z == k], y[z == k]) for k in range(2)) / np.log(2)
    assert np.isclose(cmi_bits(contingency(x, y, z, 3, 3, 2)), expected)


def test_size_at_alpha_005_over_2000_null_simulations():
    """Feature depends on the label, prediction depends on the label only: reject in [0.03, 0.07] of 2000."""
    rng = np.random.default_rng(2)
    label, feature, prediction = _null_world(rng, 2000, 400)
    rate = (asymptotic_pvalue(contingency(prediction, feature, label, 2, 2, 2)) < ALPHA).mean()
    assert 0.03 <= rate <= 0.07, rate


def test_power_at_least_09_against_a_planted_dependence():
    """P(pred = 1 | label, f) moves by +-0.1 with the feature (plug-in CMI about 0.04 bits) at n = 400: power >= 0.9."""
    rng = np.random.default_rng(3)
    label, feature, _ = _null_world(rng, 1000, 400)
    p = np.where(label == 1, 0.8, 0.25) + np.where(feature == 1, 0.1, -0.1)
    prediction = (rng.random(label.shape) < p).astype(np.int64)
    power = (asymptotic_pvalue(contingency(prediction, feature, label, 2, 2, 2)) < ALPHA).mean()
    assert power >= 0.9, power


def test_permutation_path_holds_its_size_on_sparse_tables():
    """Tiny strata (n = 40, 4 feature levels): the public test permutes, and rejects in [0.03, 0.07] of 1000."""
    rng = np.random.default_rng(4)
    pvalues, methods = [], set()
    for _ in range(1000):
        label = rng.integers(0, 2, 40)
        feature = np.minimum(rng.poisson(np.where(label == 1, 1.5, 0.7)), 3)
        prediction = (rng.random(40) < np.where(label == 1, 0.7, 0.3)).astype(np.int64)
        result = usage_test(prediction, feature, label, permutations=199, seed=int(rng.integers(1e9)))
        pvalues.append(result.pvalue)
        methods.add(result.method)
    assert methods == {"permutation"}
    rate = np.mean(np.array(pvalues) < ALPHA)
    assert 0.03 <= rate <= 0.07, rate


def test_permutation_tables_keep_every_stratum_margin():
    rng = np.random.default_rng(5)
    counts = contingency(rng.integers(0, 3, 300), rng.integers(0, 2, 300), rng.integers(0, 2, 300), 3, 2, 2)
    tables = permutation_tables(counts, 50, rng)
    assert (tables.sum(-1) == counts.sum(-1)).all() and (tables.sum(-2) == counts.sum(-2)).all()
    assert not (tables == counts).all(axis=(1, 2, 3)).all()


def test_planted_usage_is_found_with_a_cmi_interval_above_zero():
    rng = np.random.default_rng(6)
    label = rng.integers(0, 2, 3000)
    feature = rng.integers(0, 2, 3000)
    prediction = np.where(rng.random(3000) < 0.3, feature, label)
    result = usage_test(prediction, feature, label, seed=1)
    assert result.method == "asymptotic" and result.pvalue < 1e-10
    assert 0 < result.cmi_low < result.cmi_bits < result.cmi_high
    assert result.n == 3000 and result.strata_used == 2


def test_missing_values_are_dropped_and_counted():
    rng = np.random.default_rng(7)
    label, prediction = rng.integers(0, 2, 500), rng.integers(0, 2, 500)
    feature = rng.integers(0, 3, 500)
    feature[:37] = -1
    result = usage_test(prediction, feature, label)
    assert result.n_missing == 37 and result.n == 463


def test_feature_constant_within_every_stratum_is_untestable_not_significant():
    rng = np.random.default_rng(8)
    label = rng.integers(0, 2, 300)
    result = usage_test(rng.integers(0, 2, 300), label.copy(), label)
    assert result.method == "untestable" and result.pvalue == 1.0 and result.df == 0 and result.cmi_bits == 0
    assert result.strata_used == 0


def test_a_stratum_where_the_feature_is_constant_adds_no_degrees_of_freedom():
    rng = np.random.default_rng(9)
    label = np.repeat([0, 1], 200)
    feature = np.where(label == 0, 0, rng.integers(0, 2, 400))
    prediction = rng.integers(0, 2, 400)
    result = usage_test(prediction, feature, label)
    assert result.df == 1 and result.strata_used == 1


def test_empty_prediction_levels_inside_a_stratum_add_no_degrees_of_freedom():
    """A weak model predicts class 2 only for label 1 and only class 0 for label 2: df counts the levels present
    in each stratum, (2-1)(2-1) + (3-1)(2-1) + 0 = 3, as scipy gives for each stratum's non-empty table."""
    strata = [np.array([[30, 20], [15, 35]]),  # label 0: predictions 0, 1 (never 2)
              np.array([[25, 15], [10, 30], [20, 12]]),  # label 1: predictions 0, 1, 2
              np.array([[40, 22]])]  # label 2: prediction 0 only
    z, x, y = [], [], []
    for label, table in enumerate(strata):
        for (pred, feat), count in np.ndenumerate(table):
            z += [label] * count
            x += [pred] * count
            y += [feat] * count
    ref = [chi2_contingency(t, lambda_="log-likelihood", correction=False) for t in strata[:2]]
    assert [r.dof for r in ref] == [1, 2]
    result = usage_test(np.array(x), np.array(y), np.array(z))
    assert result.df == 3 and result.method == "asymptotic"
    assert np.isclose(result.statistic, sum(r.statistic for r in ref))
    assert np.isclose(result.pvalue, chi2.sf(result.statistic, 3))
    assert result.strata_used == 2
