"""Bayesian ROPE probabilities: Student t posterior (rho = 0) and baycomp's correlated t-test (rho=1/n)."""

import baycomp
import numpy as np
import pytest
from scipy import stats

from medattn.errors import DataError
from medattn.stats.bayes import posterior_parameters, rope_probabilities, rope_probabilities_many

MODEL = np.array([0.812, 0.825, 0.804, 0.831, 0.818, 0.809, 0.822])
REFERENCE = np.array([0.801, 0.819, 0.806, 0.815, 0.805, 0.807, 0.811])


def test_rho_zero_is_the_student_t_posterior_of_the_mean():
    d = MODEL - REFERENCE
    n = len(d)
    post = stats.t(df=n - 1, loc=d.mean(), scale=d.std(ddof=1) / np.sqrt(n))
    expected = (post.cdf(-0.01), post.cdf(0.01) - post.cdf(-0.01), post.sf(0.01))
    assert rope_probabilities(d, rope=0.01) == pytest.approx(expected)


def test_rho_one_over_n_equals_baycomp_correlated_ttest():
    # baycomp's CorrelatedTTest uses rho = 1 / n_folds; with runs=1, n_folds = n; diff = y - x
    d = MODEL - REFERENCE
    expected = baycomp.CorrelatedTTest.probs(REFERENCE, MODEL, rope=0.005)
    assert rope_probabilities(d, rope=0.005, rho=1 / len(d)) == pytest.approx(expected)


def test_probabilities_sum_to_one_and_orient():
    low, mid, high = rope_probabilities(np.array([0.03, 0.035, 0.025, 0.04, 0.03]), rope=0.01)
    assert low + mid + high == pytest.approx(1.0)
    assert high > 0.99


def test_degenerate_differences():
    # zero variance: the posterior is undefined (no point mass claiming certainty)
    assert all(np.isnan(rope_probabilities(np.zeros(5))))
    assert all(np.isnan(rope_probabilities(np.full(5, 0.05))))
    assert all(np.isnan(rope_probabilities(np.array([0.02]))))
    low, mid, high = rope_probabilities(MODEL - REFERENCE, rope=0.0)
    assert mid == 0.0 and low + high == pytest.approx(1.0)


def test_vectorised_rows_equal_the_baycomp_posterior():
    rng = np.random.default_rng(4)
    d = np.vstack([rng.normal(0.01, 0.01, (5, 6)), np.full((1, 6), 0.02)])
    rope = np.array([0.01, 0.005, 0.0, 0.01, 0.02, 0.01])
    low, mid, high = rope_probabilities_many(d, rope=rope)
    for i in range(5):
        assert (low[i], mid[i], high[i]) == pytest.approx(rope_probabilities(d[i], rope=rope[i]))
    assert np.isnan([low[5], mid[5], high[5]]).all()


def test_posterior_parameters_and_bad_input():
    mean, var, df = posterior_parameters([0.01, 0.02, 0.03])
    assert (mean, var, df) == pytest.approx((0.02, 0.01**2 / 3, 2))
    with pytest.raises(DataError, match="rho"):
        rope_probabilities([0.1, 0.2], rho=1.0)
    with pytest.raises(DataError, match="rope"):
        rope_probabilities([0.1, 0.2], rope=-0.01)
