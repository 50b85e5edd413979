"""The kept epoch is the best on the study's selection metric, not always on balanced accuracy (issue 21)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import medattn.train.loop as loop
from medattn.data.dataset_spec import LoadContext, load_dataset
from medattn.train.config import ModelConfig, TrainConfig

# planted validation scores per epoch: balanced accuracy peaks at epoch 1, AUC at epoch 3
PLANTED = [{"balanced_accuracy": 0.9, "auc": 0.6}, {"balanced_accuracy": 0.5, "auc": 0.7},
           {"balanced_accuracy": 0.6, "auc": 0.95}]


@pytest.fixture
def planted_validation(monkeypatch):
    """_evaluate returns the planted scores on its first three calls (the epochs' validation), neutral ones after."""
    calls = []

    def evaluate(model, batches, idx, cfg, run):
        k = batches.data.num_classes
        scores = PLANTED[len(calls)] if len(calls) < len(PLANTED) else {"balanced_accuracy": 0.5, "auc": 0.5}
        calls.append(len(idx))
        metrics = {"macro_f1": 0.5, "accuracy": 0.5, "ece": 0.1, **scores}
        return metrics, np.full((len(idx), k), 1.0 / k)

    monkeypatch.setattr(loop, "_evaluate", evaluate)
    return calls


@pytest.mark.parametrize(("select_on", "best"), [("balanced_accuracy", 1), ("auc", 3)])
def test_best_epoch_follows_select_on(planted_validation, tmp_path, select_on, best):
    data = load_dataset("synthetic:derm-synth?n=48&size=32", LoadContext())
    cfg = TrainConfig(epochs=3, batch_size=16, progress=False, precision="fp32", select_on=select_on)
    result = loop.train_run(data, ModelConfig(backbone="resnet18", stem="standard"), cfg, 0, tmp_path)
    assert result.best_epoch == best
    assert json.loads((tmp_path / "model.json").read_text())["epoch"] == best

