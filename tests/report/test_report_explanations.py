"""The report's explanation section on a hand-made explanation store with planted scores.

The maps and sample come from tests/helpers/rundir.py (`explained_run`); scores.csv and settings.json are
written here with the values planted, so every expected sentence follows from the numbers below:

- the mask through the grid (`oracle_grid`) scores energy 0.70 and IoU 0.50, far above the uniform map (0.20,
  0.10), but pointing 0.30, inside the uniform map's interval around 0.30: pointing cannot separate models;
- `gradcampp` is model independent (Spearman 0.97 +- 0.01 after randomisation: flagged), `gradcam` is not
  (0.05 +- 0.3); the same for data randomisation;
- one NaN among resnet18's 24 Grad-CAM energy scores.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from helpers.rundir import ATTENTION_TRIO, explained_run, result_rows, run_folder, write_results

from medattn.explain.randomisation import flag_interval
from medattn.explain.summary import cascade_curves, ceiling_for, metric_summary, oracle_check, randomisation_checks
from medattn.report.context import ReportContext, ReportSettings
from medattn.report.document import Table
from medattn.report.markdown import render_block
from medattn.report.sections.explanations import explanations_section, localisation_table, settings_blocks
from medattn.rundir.reader import load_run

N_IMAGES, SEEDS, STAGES = 12, (0, 1), ("head", "layer4", "layer3", "layer2", "layer1", "stem")
SETTINGS = {"layer": "auto", "upsample": "bilinear", "min_grid": 5, "force_layer": False, "baseline": "blur",
            "steps": 8, "tolerance": 1, "top_fraction": 0.2}


def planted_scores(grid: int = 7, layer: str = "layer1") -> pd.DataFrame:
    """scores.csv rows with the planted values of the module docstring."""
    rng = np.random.default_rng(0)
    ids = [f"img{i:03d}" for i in range(N_IMAGES)]
    uniform = {"energy": 0.2 + rng.normal(0, 0.05, N_IMAGES), "pointing": 0.3 + rng.normal(0, 0.05, N_IMAGES),
               "iou": 0.1 + rng.normal(0, 0.03, N_IMAGES)}
    frames = []

    def add(model, seed, method, metric, values, lay="", g=0):
        frames.append(pd.DataFrame({"dataset": "pneu", "model": model, "seed": seed, "image_id": ids, "method": method,
                                    "target": "predicted", "metric": metric, "value": values, "layer": lay,
                                    "grid": g}))

    for model, (_, attention) in ATTENTION_TRIO.items():
        bonus = 0.1 if attention == "cbam" else 0.0
        for seed in SEEDS:
            for method in ("gradcam", "gradcampp"):
                energy = 0.45 + bonus + rng.normal(0, 0.02, N_IMAGES)
                if (model, seed, method) == ("resnet18", 1, "gradcam"):
                    energy[3] = np.nan
                add(model, seed, method, "energy", energy, layer, grid)
                add(model, seed, method, "pointing", (rng.random(N_IMAGES) < 0.6).astype(float), layer, grid)
                add(model, seed, method, "iou", 0.3 + bonus + rng.normal(0, 0.02, N_IMAGES), layer, grid)
                add(model, seed, method, "deletion_auc", 0.4 + rng.normal(0, 0.02, N_IMAGES), layer, grid)
                add(model, seed, method, "insertion_auc", 0.8 + rng.normal(0, 0.02, N_IMAGES), layer, grid)
                add(model, seed, method, "insertion_gain", 0.3 + rng.normal(0, 0.02, N_IMAGES), layer, grid)
                rho = (0.97 + rng.normal(0, 0.01, N_IMAGES) if method == "gradcampp"
                       else np.clip(0.05 + rng.normal(0, 0.3, N_IMAGES), -1, 1))
                add(model, seed, method, "randomisation_spearman", rho, layer, grid)
                add(model, seed, method, "data_randomisation_spearman", rho - 0.02, layer, grid)
                if seed == SEEDS[0]:
                    for k, stage in enumerate(STAGES):
                        level = 0.97 if method == "gradcampp" else 0.8 - 0.16 * k
                        add(model, seed, method, f"cascade_spearman:{stage}", level + rng.normal(0, 0.02, N_IMAGES),
                            layer, grid)
            for metric, values in uniform.items():
                add(model, seed, "uniform", metric, values)
                add(model, seed, "oracle", metric, np.ones(N_IMAGES), "", 28)
                add(model, seed, "random", metric, values + rng.normal(0, 0.01, N_IMAGES), layer, grid)
            add(model, seed, "oracle_grid", "energy", np.full(N_IMAGES, 0.7), layer, grid)
            add(model, seed, "oracle_grid", "iou", np.full(N_IMAGES, 0.5), layer, grid)
            add(model, seed, "oracle_grid", "pointing", uniform["pointing"] + 0.001, layer, grid)
            for metric, value in (("deletion_auc", 0.6), ("insertion_auc", 0.65), ("insertion_gain", 0.1)):
                add(model, seed, "random", metric, value + rng.normal(0, 0.02, N_IMAGES), "", 28)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An explained run directory with results.csv, the planted scores.csv and settings.json."""
    root = explained_run(tmp_path_factory.mktemp("explained"), n_images=N_IMAGES, seeds=SEEDS)
    rows = []
    for model, (backbone, attention) in ATTENTION_TRIO.items():
        for seed in SEEDS:
            identity = {"dataset": "pneu", "dataset_spec": "synthetic:derm-synth", "model": model,
                        "backbone": backbone, "attention": attention, "is_baseline": False, "stage": "final",
                        "seed": seed}
            rows += result_rows(identity, {"test": {"balanced_accuracy": 0.7 + 0.01 * seed}},
                                artifact_dir=run_folder("pneu", model, seed).as_posix())
    write_results(root, rows)
    sample_path = root / "explanations" / "sample.npz"
    with np.load(sample_path) as z:
        arrays = dict(z)
    artefact = np.zeros_like(arrays["masks"])
    artefact[::2, 1:6, 1:6] = 1  # a ruler patch on every other image
    np.savez(sample_path, **arrays, artefact_patch=artefact, class_names=np.array(["normal", "pneumonia"]))
    scores = planted_scores()
    scores.to_csv(root / "explanations" / "scores.csv", index=False)
    (root / "explanations" / "settings.json").write_text(json.dumps(SETTINGS))
    return root, scores


@pytest.fixture(scope="module")
def section_text(store):
    """The explanation section rendered as Markdown, and its blocks."""
    root, _ = store
    ctx = ReportContext(run=load_run(root), settings=ReportSettings())
    section = explanations_section(ctx, "pneu")
    return "\n\n".join(render_block(b) for b in section.blocks), section


def test_settings_and_references_are_stated(section_text):
    text, _ = section_text
    assert "`layer: auto`" in text and "min_grid = 5" in text and "`bilinear` interpolation" in text
    assert "baseline `blur`, 8 steps" in text and "within 1 px" in text and "top 20 % of pixels" in text
    assert re.search(r"\| resnet18\+cbam +\| gradcam +\| layer1 \(7×7\) +\|", text)
    for label in ("uniform map", "random map", "oracle: the mask", "oracle: mask through the grid", "random ranking"):
        assert label in text
    assert "Insertion gain = insertion AUC - p(class | start image)" in text
    assert "(NaN 1/24)" in text  # resnet18's Grad-CAM energy: 1 of 12 images x 2 seeds
    assert "⚠" not in text  # 7x7 is not coarser than min_grid 5


def test_oracle_check_withholds_the_verdict_on_pointing_only(section_text):
    text, _ = section_text
    assert "**pointing cannot separate models at this resolution**" in text
    assert "energy: the mask through layer1 (7×7) scores 0.700, above" in text and "energy cannot separate" not in text
    assert "resnet18+cbam vs resnet18 (pneu, gradcam energy)" in text  # a verdict where the check passes
    assert "gradcam pointing" in text.split("No verdict")[1]  # listed as withheld
    assert "(pneu, gradcam pointing)" not in text.split("No verdict")[0]


def test_oracle_check_both_ways_on_a_hand_made_summary():
    def row(method, metric, mean, low, high, grid=7):
        return {"dataset": "d", "model": "m", "method": method, "target": "predicted", "metric": metric,
                "layer": "layer4", "grid": grid, "images": 8, "seeds": 1, "scores": 8, "nan": 0, "mean": mean,
                "ci_low": low, "ci_high": high}

    summary = pd.DataFrame([row("uniform", "energy", 0.20, 0.15, 0.25), row("oracle_grid", "energy", 0.24, 0.2, 0.3),
                            row("uniform", "iou", 0.10, 0.08, 0.12), row("oracle_grid", "iou", 0.13, 0.1, 0.2),
                            row("oracle", "iou", 1.0, 1.0, 1.0, grid=40)])
    table = oracle_check(summary)
    checks = table.set_index(["metric", "reference"])
    assert not checks.loc[("energy", "oracle_grid"), "separable"]  # 0.24 inside [0.15, 0.25]
    assert checks.loc[("iou", "oracle_grid"), "separable"]  # 0.13 above 0.12
    assert checks.loc[("iou", "oracle", ), "separable"].item()
    assert ceiling_for(table, "d", "m", "iou", 7)["reference"] == "oracle_grid"  # maps on the scored grid
    assert ceiling_for(table, "d", "m", "iou", 40)["reference"] == "oracle"  # pixel-resolution maps
    assert ceiling_for(table, "d", "m", "iou", 2) is None  # coarser than any ceiling computed


def test_planted_model_independent_method_is_flagged_and_gradcam_is_not(section_text, store):
    text, _ = section_text
    for model in ATTENTION_TRIO:
        assert f"{model} / gradcampp: fails the model randomisation check" in text
        assert f"{model} / gradcampp: fails the data randomisation check" in text
        assert f"{model} / gradcampp: fails the cascade, all random (down to stem) check" in text
        assert f"{model} / gradcam: fails" not in text
    _, scores = store
    checks = randomisation_checks(scores, min_grid=5).set_index(["model", "method", "metric"])
    rho = scores[(scores["model"] == "resnet18") & (scores["method"] == "gradcam")
                 & (scores["metric"] == "randomisation_spearman")].groupby("image_id")["value"].mean()
    import torch

    mean, low, flagged = flag_interval(torch.tensor(rho.to_numpy()))
    row = checks.loc[("resnet18", "gradcam", "randomisation_spearman")]
    assert (row["mean"], row["lower"], row["flagged"]) == pytest.approx((mean, low, flagged))
    assert not flagged and row["mean"] < 0.5


def test_cascade_curve_is_in_cascade_order_with_its_figure(section_text, store):
    text, section = section_text
    _, scores = store
    curves = cascade_curves(scores)
    plain = curves[(curves["model"] == "resnet18") & (curves["method"] == "gradcam")]
    assert plain["stage"].tolist() == list(STAGES)
    assert plain["mean"].is_monotonic_decreasing and plain["mean"].iloc[0] == pytest.approx(0.8, abs=0.03)
    names = [b.name for b in section.blocks if hasattr(b, "name")]
    assert "explanations-pneu-cascade" in names
    assert re.search(r"\| model +\| method +\| +head \| +layer4 \| +layer3 \| +layer2 \| +layer1 \| +stem \|", text)


def test_one_gallery_per_seed_with_the_selection_rule(section_text):
    text, section = section_text
    names = [b.name for b in section.blocks if hasattr(b, "name")]
    assert names[:2] == ["explanations-pneu", "explanations-pneu-seed1"]
    assert "Gallery, seed 0: rows: per true class, the first sample image that resnet18 (seed 0)" in text
    assert "Gallery, seed 1" in text


def test_a_forced_coarse_layer_carries_a_warning_wherever_its_numbers_appear():
    scores = planted_scores(grid=2, layer="layer3")
    summary = metric_summary(scores)
    settings = {**SETTINGS, "layer": "layer3", "force_layer": True}
    blocks = settings_blocks(settings, summary, list(ATTENTION_TRIO), 5)
    table = next(b for b in blocks if isinstance(b, Table))
    assert all(row[3].startswith("⚠ coarser than min_grid 5") for row in table.rows)
    local = localisation_table(summary, list(ATTENTION_TRIO), 5)
    gradcam = [row for row in local.rows if row[1] == "gradcam"]
    assert gradcam and all(c.startswith("⚠ ") for row in gradcam for c in row[3:])
    uniform = next(row for row in local.rows if row[1] == "uniform map")
    assert not any(c.startswith("⚠") for c in uniform[3:])
    assert randomisation_checks(scores, min_grid=5)["underpowered"].all()


def test_gallery_outlines_every_map_and_marks_each_prediction(section_text, store):
    from matplotlib.contour import ContourSet

    from medattn.explain.sample import read_sample

    root, _ = store
    _, section = section_text
    sample = read_sample(root / "explanations" / "sample.npz")
    position = {str(i): k for k, i in enumerate(sample.ids)}
    figure = next(b for b in section.blocks if getattr(b, "name", "") == "explanations-pneu").figure
    grid = [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]
    columns = 1 + 3 + 2  # image, Grad-CAM of three models, own attention of SE and CBAM (gradcampp is not shown)
    assert len(grid) % columns == 0
    assert any(ax.get_label() == "<colorbar>" for ax in figure.axes)
    rows = [grid[r * columns:(r + 1) * columns] for r in range(len(grid) // columns)]
    for row in rows:
        image_id = row[0].get_ylabel().split("(image ")[1].rstrip(")")
        pos = position[image_id]
        label = int(sample.labels[pos])
        assert row[0].get_ylabel().startswith(f"true: {['normal', 'pneumonia'][label]}")
        for ax in row[1:]:
            assert ax.images[-1].get_cmap().name == "inferno"
            contours = [c for c in ax.collections if isinstance(c, ContourSet)]
            has_artefact = bool(sample.artefact_masks["patch"][pos].any())
            assert len(contours) == 1 + has_artefact  # the lesion outline, and the artefact's where there is one
            mark = "✓" if label == 1 else "✗"  # the fabricated index predicts class 1 with p = 0.8
            assert ax.get_xlabel() == f"{mark} pneumonia p=0.80"
    labels = [int(sample.labels[position[r[0].get_ylabel().split("(image ")[1].rstrip(")")]]) for r in rows]
    assert labels == sorted(labels)  # rows grouped by true class, in class order
