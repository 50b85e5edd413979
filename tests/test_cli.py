"""The `medattn` command as a user runs it: real output and exit code 0 (errors: tests/test_exit_codes.py)."""

from __future__ import annotations

import json
import subprocess
import sys

MEDATTN = [sys.executable, "-m", "medattn.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*MEDATTN, *args], capture_output=True, text=True, timeout=600)


def test_data_info_prints_official_split_sizes(shared_data):
    out = run("data", "info", "medmnist:pneumoniamnist", "--data-dir", str(shared_data / "medmnist"))
    assert out.returncode == 0, out.stderr
    assert "4708" in out.stdout and "1214" in out.stdout and "3494" in out.stdout


def test_train_writes_metrics_predictions_and_checkpoint(tmp_path):
    out = run("train", "--data", "synthetic:derm-synth?n=300&size=32", "--epochs", "1", "--batch-size", "32",
              "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "ok" and set(metrics["metrics"]) == {"val", "test", "test_ood"}
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "predictions_test_ood.csv").exists()
    assert "balanced_accuracy" in out.stdout
    # a train folder is a one-run run directory: explain and features find its run (they used to refuse it)
    from medattn.analysis.usage import study_runs
    from medattn.explain.runner import final_runs
    from medattn.rundir.reader import load_run

    refs, results, _ = final_runs(tmp_path, "all")
    assert [(r.model, r.seed, r.path.resolve()) for r in refs] == [("resnet18", 0, tmp_path.resolve())]
    assert set(results["split"]) == {"val", "test", "test_ood"}
    runs = study_runs(load_run(tmp_path))
    assert runs["dataset_spec"].tolist() == ["synthetic:derm-synth?n=300&size=32"]


def test_every_command_group_is_mounted():
    out = run("--help")
    assert out.returncode == 0
    for command in ("train", "data", "models", "study", "report"):
        assert command in out.stdout
