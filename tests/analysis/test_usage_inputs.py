"""Bad inputs to the usage test and the feature encoding: one-line errors naming the feature, or a stated rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medattn.analysis.citest import usage_test
from medattn.analysis.features import encode_feature

RNG = np.random.default_rng(0)
LABEL = RNG.integers(0, 2, 200)
PRED = RNG.integers(0, 2, 200)
GOOD = RNG.integers(0, 3, 200)


def _with(values, at=0):
    feature = GOOD.astype(object if isinstance(values, str) else float).copy()
    feature[at] = values
    return feature


@pytest.mark.parametrize(("feature", "message"), [
    (_with(np.nan), "feature 'age': NaN among the codes; code missing values as -1"),
    (RNG.random(200), "feature 'age': non-integer values .*bin a continuous feature first"),
    (_with(-3), "feature 'age': code -3 is negative; codes are 0..levels-1, -1 for missing"),
    (_with(1e7), "feature 'age': code 10000000 asks for more than 1000 levels"),
    (_with("male"), "feature 'age': values of type object .*give integer codes"),
    (GOOD[:150], "feature 'age': 150 values for 200 predictions and 200 labels"),
])
def test_bad_feature_codes_give_one_line_errors_naming_the_feature(feature, message):
    from medattn.errors import DataError

    with pytest.raises(DataError, match=message) as info:
        usage_test(PRED, feature, LABEL, name="age")
    assert "\n" not in str(info.value)


def test_negative_labels_are_refused_not_dropped():
    from medattn.errors import DataError

    label = LABEL.copy()
    label[:5] = -1
    with pytest.raises(DataError, match="label 'sex': code -1 is negative; codes are 0..levels-1$"):
        usage_test(PRED, GOOD, label, name="sex")


def test_minus_one_is_missing_and_counted():
    feature = GOOD.copy()
    feature[:9] = -1
    result = usage_test(PRED, feature, LABEL, permutations=50)
    assert result.n_missing == 9 and result.n == 191


def test_uniform_feature_is_binned_in_quartiles_fitted_on_the_training_rows():
    values = pd.Series(np.linspace(0, 1, 200), name="u")
    train = np.arange(200) < 100  # training values span [0, 0.5): their quartile edges are ~0.125, 0.25, 0.375
    codes, levels = encode_feature(values, fit=train)
    assert len(levels) == 4
    assert np.bincount(codes[train]).tolist() == [25, 25, 25, 25]
    assert (codes[~train] == 3).all()  # every value above the training range falls in the top bin


def test_zero_inflated_feature_keeps_a_zero_level_and_counts_keep_their_levels():
    values = pd.Series(np.r_[np.zeros(60), np.arange(1, 141) / 10.0], name="hair_share")
    codes, levels = encode_feature(values)
    assert levels[0] == "0" and (codes[:60] == 0).all() and len(levels) == 4
    assert np.bincount(codes[60:]).tolist() == [0, 47, 46, 47]  # tertiles of the 140 non-zero values
    count = pd.Series([0, 1, 2, 3, 4, 5, 6] * 10 + [np.nan], name="n_globules")  # a 7-level count is not binned
    codes, levels = encode_feature(count)
    assert levels == ["0.0", "1.0", "2.0", "3.0", "4.0", "5.0", "6.0"] and codes[-1] == -1


def test_id_like_text_and_inf_are_refused_by_the_encoding():
    from medattn.errors import DataError

    with pytest.raises(DataError, match="feature 'lesion_id': 120 distinct values .* look like an id"):
        encode_feature(pd.Series([f"L{i}" for i in range(120)], name="lesion_id"))
    with pytest.raises(DataError, match="feature 'dose': inf among its values"):
        encode_feature(pd.Series([1.5, np.inf, 2.5], name="dose"))
