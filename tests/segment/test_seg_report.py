"""The report's Dice-by-lesion-size table: per-run bin means, mean +- sd over seeds, from hand-made score tables."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from medattn.report.sections.segmentation import image_paired_dice, size_bin_dice, size_bin_section

NO_COMPARISONS = pd.DataFrame(columns=["dataset", "metric", "kind", "model", "reference"])


def _ctx(tmp_path, tables: dict[tuple[str, int], pd.DataFrame], comparisons: pd.DataFrame = NO_COMPARISONS):
    paths = {}
    for (model, seed), table in tables.items():
        paths[(model, seed)] = tmp_path / f"{model}-{seed}.csv"
        table.to_csv(paths[(model, seed)], index=False)
    run = SimpleNamespace(models=lambda d: sorted({m for m, _ in tables}),
                          seeds=lambda d, m: sorted(s for mm, s in tables if mm == m),
                          predictions_path=lambda d, m, s, split: paths[(m, s)])
    return SimpleNamespace(run=run, settings=SimpleNamespace(split="test"), comparisons=lambda split: comparisons)


def test_bins_by_true_area_and_averages_over_seeds(tmp_path):
    area = [0.0, 0.01, 0.04, 0.10, 0.30]  # empty, small, small, medium, large
    dice = {0: [1.0, 0.2, 0.4, 0.8, 0.9], 1: [0.0, 0.4, 0.6, 0.6, 0.9]}
    ctx = _ctx(tmp_path, {("unet", k): pd.DataFrame({"index": range(5), "dice": v, "area": area})
                          for k, v in dice.items()})
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


def test_variant_vs_plain_paired_over_images_matches_scipy(tmp_path):
    from scipy.stats import wilcoxon

    idx, area = [3, 1, 4, 5, 9, 2], [0.1] * 6
    plain = {0: [0.5, 0.6, 0.7, 0.2, 0.9, 0.4], 1: [0.7, 0.6, 0.5, 0.4, 0.9, 0.2]}
    gated = {0: [0.6, 0.9, 0.7, 0.5, 0.8, 0.9], 1: [0.8, 0.7, 0.9, 0.6, 1.0, 0.7]}
    tables = {**{("unet", k): pd.DataFrame({"index": idx, "dice": v, "area": area}) for k, v in plain.items()},
              **{("unet+gate", k): pd.DataFrame({"index": idx[::-1], "dice": v[::-1], "area": area})
                 for k, v in gated.items()}}  # rows in another order: pairing is by image index
    comps = pd.DataFrame({"dataset": ["d"], "metric": ["dice"], "kind": ["attention_vs_plain"], "model": ["unet+gate"],
                          "reference": ["unet"]})
    row = image_paired_dice(_ctx(tmp_path, tables, comps), "d", "test").iloc[0]
    diff = (np.array(gated[0]) + gated[1]) / 2 - (np.array(plain[0]) + plain[1]) / 2
    assert row["n_images"] == 6 and row["mean_diff"] == pytest.approx(diff.mean())
    assert row["p_wilcoxon"] == pytest.approx(wilcoxon(diff).pvalue) and row["p_holm"] == row["p_wilcoxon"]
