"""`medattn features` corrects the usage p-values across the features of one run and epoch: Holm by default,
Benjamini-Hochberg on request (`--correction bh`), both as statsmodels' `multipletests` computes them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from medattn.analysis import usage  # the module, not `test_features` itself, which pytest would collect


def _one_run() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """400 images: the prediction copies feature `used` on 40 % of them, else the label; three unused features."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 400)
    features = pd.DataFrame({name: rng.integers(0, 2, 400) for name in ("used", "a", "b", "c")})
    prediction = np.where(rng.random(400) < 0.4, features["used"], label)
    return prediction, label, features


@pytest.mark.parametrize(("correction", "method"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_p_adjusted_is_the_chosen_correction_across_the_features(correction, method):
    prediction, label, features = _one_run()
    table = usage.test_features(prediction, label, features, usage.UsageOptions(correction=correction),
                                seed=0)
    assert table["feature"].tolist() == ["used", "a", "b", "c"] and (table["correction"] == correction).all()
    assert table["pvalue"].iloc[0] < 1e-6 < table["pvalue"].iloc[1:].min()  # the planted use is found
    assert table["p_adjusted"].to_numpy() == pytest.approx(multipletests(table["pvalue"], method=method)[1])
    # by hand: the smallest of m = 4 p-values is multiplied by 4 (Holm's first step) or by 4 / 1 (BH's last)
    assert table["p_adjusted"].iloc[0] == pytest.approx(4 * table["pvalue"].iloc[0])
