"""train.lr_milestones: MedMNIST v2's step schedule (lr x0.1 at the given epochs) instead of the cosine."""

import pytest
import torch

from medattn.train.config import TrainConfig
from medattn.train.loop import _cosine_with_warmup


def test_lr_drops_tenfold_at_each_milestone_epoch():
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    schedule = _cosine_with_warmup(opt, TrainConfig(epochs=4, warmup_epochs=0, lr_milestones=[2, 3]), 5)
    per_epoch = []
    for step in range(20):
        if step % 5 == 0:
            per_epoch.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert per_epoch == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5])  # epochs 1-2 full, 3 x0.1, 4 x0.01
