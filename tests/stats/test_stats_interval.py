"""The t interval of a mean against hand-computed values, and its degenerate cases."""

import math

import pytest

from medattn.stats.interval import mean_t_interval


def test_four_values_by_hand():
    # mean 2.5, sd sqrt(5/3) = 1.290994, se 0.645497, t(0.975, 3) = 3.182446 -> half width 2.054260
    r = mean_t_interval([1.0, 2.0, 3.0, 4.0])
    assert (r.n, r.mean) == (4, 2.5)
    assert r.sd == pytest.approx(1.290994, abs=1e-6)
    assert (r.ci_low, r.ci_high) == pytest.approx((0.445740, 4.554260), abs=1e-5)


def test_level_and_non_finite_values():
    # 90 %: t(0.95, 3) = 2.353363 -> half width 1.519099; the NaN and inf are dropped
    r = mean_t_interval([1.0, float("nan"), 2.0, 3.0, float("inf"), 4.0], confidence=0.90)
    assert r.n == 4
    assert (r.ci_low, r.ci_high) == pytest.approx((0.980901, 4.019099), abs=1e-5)


def test_degenerate_samples():
    empty, one, same = mean_t_interval([]), mean_t_interval([0.7]), mean_t_interval([0.5, 0.5, 0.5])
    assert empty.n == 0 and math.isnan(empty.mean)
    assert one.mean == 0.7 and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    assert (same.sd, same.ci_low, same.ci_high) == (0.0, 0.5, 0.5)
