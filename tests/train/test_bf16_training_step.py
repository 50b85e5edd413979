"""A bf16 run trains under autocast: the logits of its first training step are bfloat16.

The dtype is recorded by a forward hook on the model `train_run` builds, at training time (`model.training`),
so a training step that skips autocast fails here even if evaluation and the recorded precision name are right
(PyTorch autocast runs convolutions and linear layers in the low-precision dtype; the weights stay fp32, see
`tests/train/test_loop.py::test_bf16_run_keeps_fp32_weights_and_predictions`). The hook stops the run after that
forward: one step of ResNet-18 on 8 images of 32 px, about a second even where bf16 is emulated.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medattn.data.imageset import ImageSet
from medattn.train import loop
from medattn.train.config import ModelConfig, TrainConfig


def _tiny() -> ImageSet:
    """16 train, 8 val, 8 test random 32 px RGB images of two classes."""
    rng = np.random.default_rng(0)
    n = 32
    return ImageSet(name="tiny", images=torch.from_numpy(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)),
                    labels=torch.from_numpy(np.tile([0, 1], n // 2).astype(np.int64)), class_names=["a", "b"],
                    split=np.array(["train"] * 16 + ["val"] * 8 + ["test"] * 8))


class _Recorded(Exception):
    """Raised by the hook once a training forward is recorded: the rest of the run is not needed."""


def test_bf16_training_forward_runs_under_autocast(monkeypatch):
    seen: list[torch.dtype] = []
    build = loop.make_model

    def record(module, args, out):
        if module.training:
            seen.append(out.dtype)
            raise _Recorded

    def recording_model(cfg, data):
        model = build(cfg, data)
        model.register_forward_hook(record)
        return model

    monkeypatch.setattr(loop, "make_model", recording_model)
    cfg = TrainConfig(epochs=1, batch_size=8, warmup_epochs=0, progress=False, device="cpu", precision="bf16",
                      augment={"enabled": False})
    with pytest.raises(_Recorded):
        loop.train_run(_tiny(), ModelConfig(backbone="resnet18", stem="standard"), cfg, 0, None)
    assert seen == [torch.bfloat16]
