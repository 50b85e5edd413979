"""A one-seed study is a legitimate smoke test (issue 28, item 5): no RuntimeWarning, and the report says that no
seed interval exists. Before, the minimum detectable difference divided alpha by a Holm family of size 0
("divide by zero encountered in divide", printed by `study run` and `report`) and the caption read
"alpha/m = 0.05/0"."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from helpers.rundir import PATH, planted_run

from medattn.stats.compare import compare_models


def _one_seed_results() -> pd.DataFrame:
    rows = [{"dataset": "d", "model": model, "backbone": "resnet18", "attention": attention, "is_baseline": False,
             "seed": 0, "split": split, "metric": "balanced_accuracy", "value": value}
            for model, attention, value in (("resnet18", "none", 0.70), ("resnet18+se", "se", 0.74))
            for split in ("val", "test")]
    return pd.DataFrame(rows)


def test_one_seed_comparison_has_no_interval_and_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        table = compare_models(_one_seed_results())
    row = table.iloc[0]
    assert (row["model"], row["reference"], row["n"]) == ("resnet18+se", "resnet18", 1)
    assert np.isclose(row["mean_diff"], 0.04)
    assert np.isnan([row["ci_low"], row["ci_high"], row["p_t"], row["p_holm"], row["mdd"]]).all()
    assert row["holm_family_size"] == 0 and row["verdict"] == "no evidence"


def test_one_seed_report_says_no_seed_interval_exists(tmp_path):
    from typer.testing import CliRunner

    from medattn.cli import app

    run_dir = planted_run(tmp_path / "run", datasets=(PATH,), seeds=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # as `python -W error::RuntimeWarning -m medattn report`
        done = CliRunner().invoke(app, ["report", str(run_dir)])
    assert done.exit_code == 0, done.output
    text = (run_dir / "report" / "report.md").read_text()
    assert "With one seed per model no seed interval exists" in text
    assert "One paired seed: no seed interval exists" in text
    assert "alpha/m = 0.05/0 " not in text
