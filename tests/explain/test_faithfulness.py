"""Deletion / insertion AUC on a model whose output is a known function of the pixels."""

from __future__ import annotations

import torch
import torch.nn as nn

from medattn.explain.faithfulness import auc, baseline_images, deletion_insertion, pixel_ranks


class LinearPixels(nn.Module):
    """logit_1 = sum(w * x) - bias, logit_0 = 0: each pixel's contribution is known exactly."""

    def __init__(self, weights: torch.Tensor, bias: float):
        super().__init__()
        self.weights, self.bias = weights, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = (x * self.weights).flatten(1).sum(1) - self.bias
        return torch.stack([torch.zeros_like(logit), logit], 1)


def test_true_importance_ordering_beats_its_reverse():
    torch.manual_seed(0)
    size = 12
    weights = torch.rand(1, 1, size, size) * 0.2
    x = torch.rand(4, 1, size, size)
    base = baseline_images(x, "mean")
    model = LinearPixels(weights, bias=float(((x - base) * weights).flatten(1).sum(1).mean() / 2
                                              + (base * weights).flatten(1).sum(1).mean()))
    importance = ((x - base) * weights)[:, 0]  # exact contribution of each pixel to the class-1 logit
    classes = torch.ones(4, dtype=torch.long)
    true = deletion_insertion(model, x, importance, classes, steps=16, baseline="mean")
    reverse = deletion_insertion(model, x, -importance, classes, steps=16, baseline="mean")
    assert (true["deletion_auc"] < reverse["deletion_auc"]).all()
    assert (true["insertion_auc"] > reverse["insertion_auc"]).all()


def test_ranks_are_a_stable_permutation_and_auc_is_the_trapezoid():
    maps = torch.tensor([[[0.5, 0.9], [0.5, 0.1]]])
    assert pixel_ranks(maps).tolist() == [[1, 0, 2, 3]]
    curve = torch.tensor([[1.0, 0.5, 0.0]])
    assert abs(auc(curve).item() - 0.5) < 1e-7


def test_batched_curves_equal_one_image_at_a_time():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3)).eval()
    x, maps = torch.randn(3, 3, 16, 16), torch.rand(3, 16, 16)
    classes = torch.tensor([0, 2, 1])
    batched = deletion_insertion(model, x, maps, classes, steps=8)
    for i in range(3):
        single = deletion_insertion(model, x[i:i + 1], maps[i:i + 1], classes[i:i + 1], steps=8)
        for name in batched:
            assert torch.allclose(batched[name][i], single[name][0], atol=1e-6)
