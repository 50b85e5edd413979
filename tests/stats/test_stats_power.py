"""Minimum detectable difference: equals statsmodels, fits the normal formula, has the power it claims."""

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import TTestPower

from medattn.stats.paired import paired_t
from medattn.stats.power import detectable_effect_size, minimum_detectable_difference


@pytest.mark.parametrize("n", [3, 5, 10])
def test_equals_statsmodels_solve_power_times_sd(n):
    expected = TTestPower().solve_power(
        effect_size=None, nobs=n, alpha=0.05, power=0.8, alternative="two-sided"
    )
    assert minimum_detectable_difference(0.013, n) == pytest.approx(expected * 0.013)


def test_large_n_approaches_the_normal_formula():
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert detectable_effect_size(400) == pytest.approx(z / np.sqrt(400), rel=5e-3)


def test_vectorised_and_degenerate():
    out = minimum_detectable_difference(np.array([0.01, 0.02]), np.array([5, 10]))
    assert out.shape == (2,)
    assert out[0] == pytest.approx(detectable_effect_size(5) * 0.01)
    assert np.isnan(minimum_detectable_difference(0.01, 1))


def test_true_difference_equal_to_mdd_is_detected_with_power_080():
    rng = np.random.default_rng(7)
    sims, n, sd = 3000, 5, 0.012
    mdd = minimum_detectable_difference(sd, n)
    d = rng.normal(mdd, sd, size=(sims, n))
    rate = np.mean(paired_t(d).p < 0.05)
    assert abs(rate - 0.8) <= 3 * np.sqrt(0.8 * 0.2 / sims)
