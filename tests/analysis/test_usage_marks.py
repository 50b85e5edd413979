"""How usage rows are named and marked in the CLI summary and the report: `best (epoch N)`, features outside the
family, features tested within one label group, the direction of the 1-df test (issue 28 items 6-7)."""

from __future__ import annotations

import json

import pandas as pd

from medattn.analysis.cli import _feature_name, _usage_cell
from medattn.analysis.usage import epoch_label, kept_epoch
from medattn.report.sections.feature_usage import _direction, _feature_label


def _rows(**columns) -> pd.DataFrame:
    base = {"model": ["m", "m"], "seed": [0, 1], "cmi_corrected_bits": [0.02, 0.04], "p_adjusted": [0.001, 0.02],
            "direction": [1, 1], "direction_pvalue": [0.001, 0.01], "common_odds_ratio": [2.0, 3.0],
            "excluded": ["", ""], "single_label_group": [False, False]}
    return pd.DataFrame({**base, **columns})


def test_kept_weights_are_named_best_with_the_epoch_from_the_runs_model_json(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"epoch": 5}))
    assert kept_epoch(tmp_path, recorded=8) == 5  # the weights' own record wins over results.csv
    assert kept_epoch(tmp_path / "missing", recorded=8) == 8
    assert epoch_label("best", 5) == "best (epoch 5)" == epoch_label("final", 5)
    assert epoch_label(3, 5) == "3" and epoch_label("best") == "best"


def test_single_label_group_and_excluded_features_are_marked():
    one_group = _rows(single_label_group=[True, True])
    assert _feature_label("management", one_group) == "management (one label group)"
    assert _feature_name("management", one_group) == "management (1 group)"
    derived = _rows(excluded=["derived", "derived"], p_adjusted=[float("nan")] * 2)
    assert _feature_label("seven_point_score", derived) == "seven_point_score (derived, not in family)"
    assert "not in family" in _feature_name("seven_point_score", derived)
    assert _usage_cell(derived, 0.05) == "+0.0300+"  # no '*' outside the family, the direction still shown
    assert _feature_label("sex", _rows()) == "sex"


def test_direction_is_shown_only_when_every_seed_agrees_and_rejects():
    assert _direction(_rows()) == "+ (OR 2.5)" and _usage_cell(_rows(), 0.05) == "+0.0300*+"
    assert _direction(_rows(direction=[1, -1])) == ""
    assert _direction(_rows(direction_pvalue=[0.001, 0.2])) == ""
    assert _direction(_rows(direction=[-1, -1], common_odds_ratio=[0.5, 0.5])) == "- (OR 0.5)"
