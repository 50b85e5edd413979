"""Holm correction equals statsmodels and a hand-worked example; NaN stays NaN."""

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from medattn.stats.correction import holm


def test_equals_multipletests():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.2, 0.5])
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])


def test_hand_worked_example():
    # sorted 0.01, 0.02, 0.04 times 3, 2, 1 -> 0.03, 0.04, 0.04 (running max)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])


def test_nan_is_kept_and_excluded_from_the_family():
    out = holm([0.01, np.nan, 0.04])
    assert np.isnan(out[1])
    assert out[[0, 2]] == pytest.approx(multipletests([0.01, 0.04], method="holm")[1])
    assert np.isnan(holm([np.nan])).all()
