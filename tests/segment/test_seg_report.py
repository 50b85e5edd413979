"""The report's Dice-by-lesion-size table: per-run bin means, mean +- sd over seeds, from hand-made score tables."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from medattn.report.sections.segmentation import size_bin_dice, size_bin_section


def _ctx(tmp_path, tables: dict[tuple[str, int], pd.DataFrame]):
    paths = {}
    for (model, seed), table in tables.items():
        paths[(model, seed)] = tmp_path / f"{model}-{seed}.csv"
        table.to_csv(paths[(model, seed)], index=False)
    run = SimpleNamespace(models=lambda d: sorted({m for m, _ in tables}),
                          seeds=lambda d, m: sorted(s for mm, s in tables if mm == m),
                          predictions_path=lambda d, m, s, split: paths[(m, s)])
    return SimpleNamespace(run=run, settings=SimpleNamespace(split="test"))


def test_bins_by_true_area_and_averages_over_seeds(tmp_path):
    area = [0.0, 0.01, 0.04, 0.10, 0.30]  # empty, small, small, medium, large
    ctx = _ctx(tmp_path, {("unet", 0): pd.DataFrame({"dice": [1.0, 0.2, 0.4, 0.8, 0.9], "area": area}),
                          ("unet", 1): pd.DataFrame({"dice": [0.0, 0.4, 0.6, 0.6, 0.9], "area": area})})
    per_run = size_bin_dice(ctx, "d", "test").set_index(["seed", "bin"])
    assert per_run.loc[(0, "small (<5 %)"), "dice"] == pytest.approx(0.3)
    assert per_run.loc[(1, "small (<5 %)"), "dice"] == pytest.approx(0.5)
    assert per_run.loc[(0, "small (<5 %)"), "n"] == 2 and per_run.loc[(1, "empty"), "dice"] == 0.0
    table = size_bin_section(ctx, "d").blocks[1]
    # small: seed means 30 and 50 -> 40.0 +- 14.1; empty: 100 and 0 -> 50.0 +- 70.7
    assert table.rows == (("unet", "50.0 ± 70.7", "40.0 ± 14.1", "70.0 ± 14.1", "90.0 ± 0.0"),)
    assert table.columns[2] == "small (<5 %) (n=2)"


def test_classification_tables_give_no_section(tmp_path):
    ctx = _ctx(tmp_path, {("resnet18", 0): pd.DataFrame({"index": [0], "label": [1], "prob_0": [0.2]})})
    assert size_bin_section(ctx, "d") is None
