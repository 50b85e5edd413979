"""Integrated Gradients (Captum) as a pixel-resolution method: exact on a linear model, batch-invariant, wired.

Expected values: for a linear logit w . x with a zero baseline, IG = x * w exactly (Sundararajan et al. 2017,
completeness), so the map is |x * w| summed over channels, min-max scaled, computed here with numpy.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from medattn.explain.attribution import integrated_gradients
from medattn.explain.maps import spec_cam_sets
from medattn.explain.spec import ExplainSpec


class Linear(nn.Module):
    """Logits of two classes, each a weighted sum of the pixels (class 1 looks at one square only)."""

    def __init__(self, size: int = 12):
        super().__init__()
        w = torch.zeros(2, 3, size, size)
        w[0] = torch.linspace(-1, 1, 3 * size * size).view(3, size, size)
        w[1, :, 3:6, 7:10] = 2.0
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bchw,kchw->bk", x, self.w)


def test_integrated_gradients_is_x_times_w_on_a_linear_model_and_localises_the_square():
    torch.manual_seed(0)
    model, x, classes = Linear(), torch.randn(4, 3, 12, 12), torch.tensor([0, 1, 0, 1])
    ours = integrated_gradients(model, x, classes).numpy()
    w = model.w.detach().numpy()[classes.numpy()]
    expected = np.abs(x.numpy() * w).sum(1)
    lo, hi = expected.min(axis=(1, 2), keepdims=True), expected.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(ours, (expected - lo) / (hi - lo), atol=1e-4)
    outside = np.ones((12, 12), bool)
    outside[3:6, 7:10] = False
    assert ours[1][outside].max() == 0 and ours[3][outside].max() == 0  # class 1: only the square


def test_batched_equals_one_by_one_and_the_spec_wires_it_at_pixel_resolution():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2)).eval()
    x, classes = torch.randn(3, 3, 10, 10), torch.tensor([1, 0, 1])
    batched = integrated_gradients(model, x, classes)
    single = torch.cat([integrated_gradients(model, x[i:i + 1], classes[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)
    (s,) = spec_cam_sets(model, "resnet18", x, {"predicted": classes}, ExplainSpec(methods=["intgrad"]))
    assert (s.method, s.layer, s.grid, s.coarse) == ("intgrad", "input", 10, False)
