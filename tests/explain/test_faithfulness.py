"""Deletion / insertion AUC on a model whose output is a known function of the pixels."""

from __future__ import annotations

import torch
import torch.nn as nn

from medattn.explain.faithfulness import auc, baseline_images, deletion_insertion, perturbation_curves, pixel_ranks


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


def test_mean_baseline_is_each_images_own_channel_mean():
    # image 0: channel means 3 and 1; image 1: channel means 15 and -2 (the batch means would be 9 and -0.5)
    x = torch.tensor([[[[0.0, 2.0], [4.0, 6.0]], [[1.0, 1.0], [1.0, 1.0]]],
                      [[[10.0, 10.0], [10.0, 30.0]], [[-2.0, 0.0], [-4.0, -2.0]]]])
    expected = torch.tensor([3.0, 1.0, 15.0, -2.0]).view(2, 2, 1, 1).expand(2, 2, 2, 2)
    torch.testing.assert_close(baseline_images(x, "mean"), expected, rtol=0, atol=0)


def test_fully_deleted_or_inserted_image_scores_as_its_own_mean():
    """A model that sums the pixels cannot tell an image from its own mean image: with the `mean` baseline the
    deletion curve ends where it starts and insertion starts where it ends, at sigmoid((sum - 36) / 12)."""
    x = torch.tensor([[[[0.0, 2.0], [4.0, 6.0]]], [[[10.0, 10.0], [10.0, 30.0]]]])  # sums 12 and 60
    model = LinearPixels(torch.full((1, 1, 2, 2), 1 / 12), bias=3.0)
    maps = torch.tensor([[[0.1, 0.2], [0.3, 0.4]], [[0.4, 0.3], [0.2, 0.1]]])
    deletion, insertion = perturbation_curves(model, x, maps, torch.ones(2, dtype=torch.long), steps=4,
                                              baseline="mean")
    expected = torch.sigmoid(torch.tensor([-2.0, 2.0]))  # the batch mean image (sum 36) would give 0.5 for both
    for curve in (deletion, insertion):
        torch.testing.assert_close(curve[:, 0], expected)
        torch.testing.assert_close(curve[:, -1], expected)
