"""The `medattn` command as a user runs it: real output, exit code 0, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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


@pytest.mark.parametrize("args, expected", [
    (["train", "--data", "medmnist:/no/such.npz"], "/no/such.npz: file not found"),
    (["train", "--data", "synthetic:derm-synth?n=200", "--backbone", "resnet19"], "resnet19"),
    (["train", "--data", "synthetic:derm-synth?n=200", "--attention", "sse"], "sse"),
    (["train", "--data", "synthetic:derm-synth?n=200", "--epochs", "-1"], "train.epochs"),
    (["data", "info", "imagenet:x"], "unknown kind 'imagenet'"),
    (["models", "cost", "--attention", "foo"], "unknown mechanism 'foo'"),
    (["report", "/no/run/dir"], "/no/run/dir"),
])
def test_user_errors_are_one_line_with_exit_code_2(args, expected):
    out = run(*args)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in out.stderr


def test_every_command_group_is_mounted():
    out = run("--help")
    assert out.returncode == 0
    for command in ("train", "data", "models", "study", "report"):
        assert command in out.stdout
