"""`medattn explain` end to end on a tiny study: the store's fixed format, notes for what does not apply, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.rundir import EXPLAIN_SPEC, checkpoint_run, run_folder
from pydantic import ValidationError

from medattn.errors import DataError, SpecError
from medattn.explain import ExplainSpec, explain_study
from medattn.explain.sample import draw_sample, read_sample, stratified_indices
from medattn.explain.store import INDEX_COLUMNS, SCORES_COLUMNS, read_maps, read_runs

FAST = dict(samples=4, device="cpu", steps=4, targets=["predicted"], data_randomisation_steps=2)


@pytest.fixture(scope="module")
def explained(tiny_study: Path):
    """The tiny study explained once with Grad-CAM and attention maps."""
    return explain_study(tiny_study, ExplainSpec(methods=["gradcam", "attention"], **FAST)), tiny_study


def test_stratified_sample_takes_classes_in_turn_and_is_seeded():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 5)
    picked = stratified_indices(labels, 9, seed=0)
    assert np.bincount(labels[picked]).tolist() == [3, 3, 3]
    assert picked.tolist() == stratified_indices(labels, 9, seed=0).tolist()
    assert picked.tolist() != stratified_indices(labels, 9, seed=1).tolist()
    assert np.bincount(labels[stratified_indices(labels, 14, seed=0)]).tolist() == [6, 3, 5]


def test_store_has_the_fixed_format(explained):
    result, root = explained
    out = root / "explanations"
    sample = np.load(out / "sample.npz", allow_pickle=False)
    assert sample["images"].dtype == np.uint8 and sample["images"].shape == (4, 3, 32, 32)
    assert sample["labels"].dtype == np.int64 and sample["masks"].shape == (4, 32, 32)
    assert set(np.unique(sample["masks"])) <= {0, 1} and str(sample["split"]) == "test"
    assert sample["seed"].dtype == np.int64 and sample["ids"].dtype.kind == "U"
    runs = read_runs(root)
    assert list(runs.columns[:7]) == ["dataset", "model", "backbone", "attention", "seed", "run_dir", "maps"]
    assert len(runs) == 6
    for row in runs.itertuples():
        maps, index = read_maps(root / row.maps)
        assert maps.dtype == np.float16 and maps.ndim == 3 and maps.shape[1:] == (32, 32)
        assert maps.min() >= 0 and maps.max() <= 1 and len(index) == len(maps)
        assert list(index.columns) == list(INDEX_COLUMNS) and index["row"].tolist() == list(range(len(maps)))
        assert set(index["image_id"]) == set(sample["ids"])
        methods = set(index["method"])
        assert methods == ({"gradcam", "attention"} if row.attention == "cbam" else {"gradcam"})
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == list(SCORES_COLUMNS)
    metrics = set(scores["metric"])
    assert {"energy", "pointing", "iou", "artefact_energy", "deletion_auc", "insertion_auc",
            "randomisation_spearman"} <= metrics
    gradcam = scores[scores["method"] == "gradcam"]
    assert set(gradcam["layer"]) == {"layer1"} and set(gradcam["grid"]) == {8}  # auto at 32 px: 8, 4, 2, 1 cells
    assert {"random", "oracle", "oracle_grid", "uniform"} <= set(scores["method"])
    cascade = sorted(m for m in metrics if m.startswith("cascade_spearman:"))
    assert cascade == [f"cascade_spearman:{g}" for g in ("head", "layer1", "layer2", "layer3", "layer4", "stem")]
    assert scores[scores["metric"] == "cascade_spearman:head"]["seed"].unique().tolist() == [0]  # first seed only
    data_check = scores[scores["metric"] == "data_randomisation_spearman"]
    assert data_check["seed"].unique().tolist() == [0] and set(data_check["method"]) == {"gradcam", "attention"}
    assert data_check["value"].dropna().between(-1, 1).all() and len(data_check) == 4 * 4  # 3 Grad-CAM, 1 attention
    summary = pd.read_csv(out / "summary.csv")
    assert {"nan", "scores", "layer", "grid", "mean", "ci_low"} <= set(summary.columns)
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["layer"], settings["upsample"], settings["min_grid"]) == ("auto", "bilinear", 5)
    uniform = scores[(scores["method"] == "uniform") & (scores["metric"] == "energy")]
    masks = sample["masks"].reshape(4, -1).mean(1)
    assert np.allclose(sorted(uniform.groupby("image_id")["value"].first()), sorted(masks), atol=1e-5)


def test_methods_that_do_not_apply_are_notes_not_crashes(explained):
    result, _ = explained
    se_notes = [n for n in result.notes if "resnet18+se" in n and "data randomisation" not in n]
    assert se_notes and all("n/a" in n for n in se_notes)
    data_notes = [n for n in result.notes if "data randomisation" in n]
    assert len(data_notes) == 3 and all("seed 0" in n and "balanced accuracy" in n for n in data_notes)


def test_dataset_without_masks_skips_localisation_only(tmp_path, shared_data):
    root = checkpoint_run(tmp_path, models={"resnet18": ("resnet18", "none")}, seeds=(0,),
                          data_spec=f"medmnist:{shared_data / 'medmnist' / 'pneumoniamnist.npz'}", dataset="pneu")
    result = explain_study(root, ExplainSpec(methods=["gradcam"], randomisation=False, **FAST))
    assert any("no lesion masks" in n for n in result.notes)
    assert set(result.scores["metric"]) == {"deletion_auc", "insertion_auc", "insertion_gain"}


def test_bad_input_names_the_problem(explained, tmp_path):
    _, tiny_study = explained  # an explained study: a refused run must leave its sample in place
    with pytest.raises(DataError, match="--samples 999: split 'test'"):
        explain_study(tiny_study, ExplainSpec(**{**FAST, "samples": 999}))
    with pytest.raises(DataError, match="--split nope"):
        explain_study(tiny_study, ExplainSpec(**{**FAST, "split": "nope"}))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_study, broken)
    (broken / run_folder("derm", "resnet18", 1) / "model.safetensors").unlink()
    with pytest.raises(DataError, match="seed 1 has no checkpoint"):
        explain_study(broken, ExplainSpec(**FAST))
    assert read_sample(tiny_study / "explanations" / "sample.npz").split == "test"
    with pytest.raises(SpecError, match=r"layer: 'layer3' of resnet18 is a 2x2 grid at 32 px, coarser than min_grid 5"):
        explain_study(tiny_study, ExplainSpec(**{**FAST, "layer": "layer3", "methods": ["gradcam"]}))


def test_a_forced_coarse_layer_is_scored_and_recorded(tiny_study, tmp_path):
    copy = tmp_path / "forced"
    shutil.copytree(tiny_study, copy)
    spec = ExplainSpec(**{**FAST, "layer": "layer3", "force_layer": True, "methods": ["gradcam"], "runs": "first-seed",
                          "randomisation": False, "faithfulness": False})
    result = explain_study(copy, spec)
    gradcam = result.scores[result.scores["method"] == "gradcam"]
    assert set(gradcam["layer"]) == {"layer3"} and set(gradcam["grid"]) == {2}
    warned = [n for n in result.notes if "layer3: a 2x2 grid, coarser than min_grid 5" in n]
    assert len(warned) == 3  # one per explained run (first seed of 3 models)


def test_cli_unknown_method_exits_2_with_the_valid_names(tiny_study):
    script = Path(sys.executable).parent / "medattn"
    proc = subprocess.run([str(script), "explain", str(tiny_study), "--methods", "gradcam,saliency"],
                          capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "saliency" in proc.stderr and "gradcam, gradcampp, scorecam, layercam, eigencam" in proc.stderr


def test_sample_draw_is_shared_and_deterministic(tiny_study):
    from medattn.data.dataset_spec import LoadContext, load_dataset

    data = load_dataset(EXPLAIN_SPEC, LoadContext.from_env())
    a, b = draw_sample(data, "test", 4, 0), draw_sample(data, "test", 4, 0)
    assert a.ids.tolist() == b.ids.tolist()
    with pytest.raises(ValidationError, match="gradcam, gradcampp"):
        ExplainSpec(methods=["nope"])


@pytest.mark.slow
def test_report_has_the_explanations_section_and_its_gallery_loads_in_chromium(explained, tmp_path):
    import re

    from medattn.report import build_report

    _, root = explained
    paths = build_report(root, out=tmp_path / "report")
    text = paths.markdown.read_text()
    assert "### Explanations" in text and "figures/explanations-derm.png" in text
    assert "n/a (no such map)" in text  # plain and SE models have no attention map
    assert "resnet18+cbam vs resnet18 (derm, gradcam energy)" in text
    assert (tmp_path / "report" / "figures" / "explanations-derm.png").is_file()
    chromium = Path("/usr/bin/chromium")
    if not chromium.is_file():
        pytest.fail("/usr/bin/chromium not found: run `make venv` (or `apt-get install -y chromium`)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}",
             "--virtual-time-budget=10000", "--dump-dom", paths.html.resolve().as_uri()]
    dom = subprocess.run([str(chromium), *flags], capture_output=True, text=True, timeout=120).stdout
    n = len(paths.figures)
    assert re.search(r'data-images-loaded="([^"]*)"', dom).group(1) == f"{n}/{n}"


def test_study_spec_takes_an_explain_block_with_file_line_errors():
    from medattn.errors import SpecError
    from medattn.study.spec import parse_spec_text

    base = "name: q\ndatasets: [\"synthetic:derm-synth?n=60&size=32\"]\nmodels: {grid: {backbones: [resnet18]}}\n"
    spec = parse_spec_text(base + "\nexplain: {samples: 8, methods: [gradcam, attention]}\n", "q.yaml")
    assert spec.explain.samples == 8 and spec.explain.methods == ["gradcam", "attention"]
    with pytest.raises(SpecError, match=r"q.yaml:\d+: explain.methods: unknown explanation method\(s\) foo; use"):
        parse_spec_text(base + "\nexplain: {methods: [gradcam, foo]}\n", "q.yaml")
