"""holm_grouped against statsmodels' Holm applied to each family separately (survivors of `make mutate`)."""

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from medattn.stats.correction import holm_grouped


def test_each_family_equals_multipletests_and_an_all_missing_family_stays_missing():
    # families by first appearance: a, b, c; c (the last code) has no p-value, so it counts 0 tests
    p = np.array([0.01, 0.02, 0.5, 0.04, 0.03, np.nan, np.nan])
    groups = np.array(["a", "b", "b", "a", "b", "c", "c"])
    adjusted, size = holm_grouped(p, groups)
    assert adjusted[[0, 3]] == pytest.approx(multipletests([0.01, 0.04], method="holm")[1])
    assert adjusted[[1, 2, 4]] == pytest.approx(multipletests([0.02, 0.5, 0.03], method="holm")[1])
    assert np.isnan(adjusted[5:]).all()
    assert size.tolist() == [2, 3, 3, 2, 3, 0, 0]


def test_large_p_values_are_clipped_at_one():
    adjusted, size = holm_grouped([0.6, 0.7, 0.9], ["x", "x", "x"])
    assert adjusted == pytest.approx(multipletests([0.6, 0.7, 0.9], method="holm")[1])
    assert adjusted == pytest.approx([1, 1, 1])  # 3 x 0.6, running max, clipped
    assert size.tolist() == [3, 3, 3]


def test_no_p_values_give_empty_arrays():
    adjusted, size = holm_grouped(np.array([]), np.array([]))
    assert adjusted.shape == (0,) and size.shape == (0,)
