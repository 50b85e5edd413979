"""Verdict and correction at their boundaries, hand cases: Holm p exactly at alpha is not significant (the
module docstring of `stats/verdict.py`: "Holm-adjusted paired t p < alpha"), a posterior probability exactly at
`equiv_prob` counts (">= equiv_prob"), and Holm within groups equals statsmodels family by family."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from medattn.stats.correction import holm, holm_grouped
from medattn.stats.verdict import decide


def test_holm_p_exactly_at_alpha_is_not_significant():
    # a clear gain (P(better) = 1) whose Holm p equals alpha exactly: no evidence, never "significant"
    assert decide(0.05, 0.03, 0.0, 0.0, 1.0) == "no evidence"
    assert decide(0.01, 0.03, 0.0, 0.0, 1.0, alpha=0.01) == "no evidence"
    assert decide(np.nextafter(0.05, 0), 0.03, 0.0, 0.0, 1.0) == "significant gain"
    assert decide(np.nextafter(0.05, 0), -0.03, 1.0, 0.0, 0.0) == "significant loss"
    # Holm of raw p 0.025 in a family of two is 2 x 0.025 = 0.05, exactly alpha
    adjusted = holm([0.025, 0.04])
    assert adjusted[0] == 0.05
    assert decide(adjusted[0], 0.03, 0.0, 0.0, 1.0) == "no evidence"


def test_posterior_exactly_at_equiv_prob_decides():
    assert decide(0.5, 0.001, 0.0, 0.95, 0.05) == "practically equivalent"
    assert decide(0.5, 0.001, 0.0, np.nextafter(0.95, 0), 0.05) == "no evidence"
    assert decide(0.001, 0.03, 0.0, 0.05, 0.95) == "significant gain"
    assert decide(0.001, 0.03, 0.0, 0.05, np.nextafter(0.95, 0)) == "significant gain of unclear size"
    assert decide(0.001, 0.003, 0.0, 0.95, 0.05) == "significant but negligible gain"


def test_holm_within_groups_equals_statsmodels_per_family_with_nan_ties_and_clipping():
    p = np.array([0.01, 0.6, np.nan, 0.7, 0.02, 0.02, 0.03, 0.5, 0.001])
    groups = np.array(["a", "a", "a", "a", "b", "b", "b", "c", "c"])
    adjusted, size = holm_grouped(p, groups)
    assert size.tolist() == [3, 3, 3, 3, 3, 3, 3, 2, 2]  # the NaN is not a member of family a
    assert np.isnan(adjusted[2])
    for g in "abc":
        keep = (groups == g) & ~np.isnan(p)
        assert adjusted[keep] == pytest.approx(multipletests(p[keep], method="holm")[1])
    # by hand, family a: 0.01 x 3 = 0.03, 0.6 x 2 = 1.2 -> 1, 0.7 -> max(1, 0.7) = 1
    assert adjusted[[0, 1, 3]] == pytest.approx([0.03, 1.0, 1.0])
