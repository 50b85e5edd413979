"""The run-directory contract: a copied run reads its own files, the recorded contrast plan is used, old tables
migrate, newer schemas are refused. Fabricated run directories only (no training): milliseconds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from medattn.errors import DataError


def _results(run_dir: Path, *, absolute: bool) -> pd.DataFrame:
    """Two final runs whose artifact paths are absolute (tables written before relative paths) or relative."""
    rows = []
    for model, attention in (("resnet18", "none"), ("resnet18+se", "se")):
        rel = f"artifacts/toy/{model}/seed0-trial1"
        folder = run_dir / rel
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"weights of " + model.encode())
        where = str(folder) if absolute else rel
        for split in ("val", "test"):
            rows.append({"dataset": "toy", "dataset_spec": "synthetic:toy", "model": model, "backbone": "resnet18",
                         "attention": attention, "is_baseline": False, "stage": "final", "seed": 0, "split": split,
                         "metric": "balanced_accuracy", "value": 0.7, "artifact_dir": where,
                         "checkpoint": f"{where}/model.safetensors"})
    table = pd.DataFrame(rows)
    table.to_csv(run_dir / "results.csv", index=False)
    return table


@pytest.mark.parametrize("absolute", [True, False])
def test_a_copied_run_explains_its_own_runs_not_the_originals(tmp_path, absolute):
    """`medattn explain COPY` used to resolve the copy's runs to the original's folders and overwrite its maps."""
    from medattn.explain.runner import final_runs

    original = tmp_path / "original"
    _results(original, absolute=absolute)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    refs, _, _ = final_runs(copy, "all")
    assert len(refs) == 2
    for ref in refs:
        assert ref.path.resolve().is_relative_to(copy.resolve()), ref.path
        assert (ref.path / "model.safetensors").read_bytes() == b"weights of " + ref.model.encode()


def _two_stems() -> pd.DataFrame:
    """resnet18 at two stems + resnet18+cbam, as `medattn study results` writes it: the plan's reference column
    names the standard-stem resnet18 (same backbone and stem) for the variant; +2 pp planted for the variant."""
    rows = []
    plan = {"resnet18": ("none", None), "resnet18-s1": ("none", None), "resnet18+cbam": ("cbam", "resnet18")}
    for model, (attention, reference) in plan.items():
        for seed in range(3):
            for split in ("val", "test"):
                rows.append({"dataset": "toy", "model": model, "backbone": "resnet18", "attention": attention,
                             "is_baseline": False, "reference": reference, "stage": "final", "seed": seed,
                             "split": split, "metric": "balanced_accuracy",
                             "value": 0.7 + 0.01 * seed + (0.02 if attention == "cbam" else 0.0)})
    return pd.DataFrame(rows)


def test_two_plain_stems_and_a_variant_compare_with_the_planned_reference():
    """Such a spec plans fine; stats used to refuse it ("backbone 'resnet18' has several plain models")."""
    from medattn.stats.compare import comparison_pairs

    pairs = comparison_pairs(_two_stems())
    assert pairs[["model", "reference", "kind"]].values.tolist() == [["resnet18+cbam", "resnet18",
                                                                      "attention_vs_plain"]]


def test_a_two_stem_study_gets_its_report(tmp_path):
    """... and the report was refused after everything had trained; now it compares the planned pair."""
    from medattn.report import build_report

    _two_stems().to_csv(tmp_path / "results.csv", index=False)
    build_report(tmp_path)
    comparisons = pd.read_csv(tmp_path / "report" / "comparisons.csv")
    assert set(zip(comparisons["model"], comparisons["reference"], strict=True)) == {("resnet18+cbam", "resnet18")}
    assert comparisons["mean_diff"].round(6).eq(0.02).all()


def test_old_absolute_paths_migrate_on_read(tmp_path):
    from medattn.rundir.reader import load_run

    original = tmp_path / "original"
    _results(original, absolute=True)
    moved = tmp_path / "moved"
    shutil.move(original, moved)
    run = load_run(moved)
    assert run.run_path("toy", "resnet18", 0) == moved / "artifacts/toy/resnet18/seed0-trial1"
    assert run.predictions_path("toy", "resnet18+se", 0, "test") == (
        moved / "artifacts/toy/resnet18+se/seed0-trial1/predictions_test.csv")


@pytest.mark.parametrize("name", ["study.json", "model.json"])
def test_a_newer_schema_is_refused_in_one_line(tmp_path, name):
    from medattn.rundir.reader import read_sidecar, read_study
    from medattn.rundir.version import SCHEMA_VERSION

    path = tmp_path / name
    path.write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(DataError) as err:
        (read_study if name == "study.json" else read_sidecar)(path)
    message = str(err.value)
    assert "\n" not in message and name in message and "upgrade medattn" in message


def test_every_layout_path_is_relative_and_unique():
    from medattn.rundir import LAYOUT

    paths = [p.path for p in LAYOUT]
    assert len(set(paths)) == len(paths) and len({p.key for p in LAYOUT}) == len(LAYOUT)
    assert not any(p.startswith("/") or ".." in p.split("/") for p in paths)


def test_training_reports_every_registered_metric():
    """The metric registry and what training computes are the same set (hand-made 2-class probabilities)."""
    import numpy as np

    from medattn.rundir.metrics import CLASSIFICATION_METRIC_NAMES
    from medattn.train.metrics import classification_metrics

    got = classification_metrics(np.array([0, 1, 1, 0]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]))
    assert tuple(got) == CLASSIFICATION_METRIC_NAMES
    assert got["accuracy"] == 0.75 and got["balanced_accuracy"] == 0.75


def test_study_json_carries_schema_provenance_and_the_plan(tmp_path):
    from medattn.rundir.reader import read_study
    from medattn.rundir.version import SCHEMA_VERSION
    from medattn.rundir.writer import write_study

    plan = [{"model": "resnet18+cbam", "reference": "resnet18", "kind": "attention_vs_plain"}]
    path = write_study(tmp_path, {"name": "s"}, {"medattn": "9.9", "commit": "abc"}, plan)
    assert path == tmp_path / "study.json"
    study = read_study(path)
    assert study["schema_version"] == SCHEMA_VERSION >= 1 and study["provenance"]["commit"] == "abc"
    assert study["contrasts"] == plan and study["name"] == "s"
