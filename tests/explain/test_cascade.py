"""Cascading model-parameter randomisation: equal to Quantus' MPRT, and a flag that fires when it should.

Expected values: Quantus `MPRT(layer_order="top_down")` on the same model, maps and seed (per module, Spearman
per image); a planted model-independent method (the input's magnitude, and a Sobel edge map) has rho = 1 at
every step and must be flagged; Grad-CAM of a ResNet-18 trained on a planted task must not be.
"""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
import torch.nn as nn
import torch.nn.functional as F
from test_cam import tiny_cnn

from medattn.explain.cam import grad_cam
from medattn.explain.randomisation import cascade_groups, cascading_randomisation, flag_interval
from medattn.explain.targets import target_layer
from medattn.models import build_model


def target_layer_of(model: nn.Module, name: str):
    from medattn.explain.targets import TargetLayer

    return TargetLayer(name, dict(model.named_modules())[name])


def test_cascade_per_module_equals_quantus_mprt():
    model, _ = tiny_cnn()
    torch.manual_seed(3)
    x, y = torch.randn(5, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1])

    def explain(m: nn.Module) -> torch.Tensor:
        return grad_cam(m, target_layer_of(m, "0"), x, y)

    ours = cascading_randomisation(model, explain, seed=42)

    def quantus_explain(model, inputs, targets, **_):
        return grad_cam(model, target_layer_of(model, "0"), torch.as_tensor(inputs),
                        torch.as_tensor(targets)).numpy()[:, None]

    metric = quantus.MPRT(layer_order="top_down", seed=42, disable_warnings=True, display_progressbar=False,
                          normalise=False, abs=False)
    theirs = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=explain(model).numpy()[:, None],
                    explain_func=quantus_explain, device="cpu")
    layers = [k for k in theirs if k != "original"]
    assert [name for name, _ in ours] == layers == ["3", "0.2", "0.0"]  # Linear, then the convs, top down
    for (_, rho), name in zip(ours, layers, strict=True):
        np.testing.assert_allclose(rho.numpy(), theirs[name], atol=1e-5)


def sobel(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) gradient magnitude of the channel mean: a map that ignores the model."""
    g = x.mean(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3)
    return (F.conv2d(g, kx, padding=1).square() + F.conv2d(g, kx.transpose(2, 3), padding=1).square()).sqrt()[:, 0]


def planted(n: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise images; class 1 carries a bright disc at a random place."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 3, size, size, generator=g) * 0.3, torch.arange(n) % 2
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = torch.randint(6, size - 6, (n, 2), generator=g)
    disc = (((yy - c[:, :1, None]) ** 2 + (xx - c[:, 1:, None]) ** 2) <= 16).float()
    return x + 2 * disc[:, None] * y[:, None, None, None], y


@pytest.fixture(scope="module")
def trained_resnet():
    """ResNet-18 fitted to the planted task (12 Adam steps; BN statistics of the final weights)."""
    torch.manual_seed(0)
    model = build_model("resnet18", "none", num_classes=2, image_size=32, small_stem=False).train()
    x, y = planted(24)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(12):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 1.0
    with torch.no_grad():
        model(x)
    model.eval()
    assert (model(x).argmax(1) == y).all()  # trained: it fits the planted task
    return model, x[:12], y[:12]


def test_model_independent_maps_are_flagged_and_gradcam_of_a_trained_resnet_is_not(trained_resnet):
    model, x, y = trained_resnet
    groups = cascade_groups(model, ["layer1", "layer2", "layer3", "layer4"])
    assert [name for name, _ in groups] == ["head", "layer4", "layer3", "layer2", "layer1", "stem"]
    layer = target_layer(model, "resnet18", 32)
    gradcam = cascading_randomisation(model, lambda m: grad_cam(m, target_layer_of(m, layer.name), x, y), groups)
    for fixed in (lambda m: x.abs().sum(1), lambda m: sobel(x)):
        curve = cascading_randomisation(model, fixed, groups)
        assert all(torch.allclose(rho, torch.ones_like(rho)) for _, rho in curve)
        assert flag_interval(curve[-1][1])[2]
    mean, low, flagged = flag_interval(gradcam[-1][1])
    assert not flagged and mean < 0.5


def test_flag_needs_the_whole_interval_above_one_half():
    assert flag_interval(torch.tensor([0.9, 0.8, 0.85, 0.95]))[2]
    assert not flag_interval(torch.tensor([1.0, -1.0, 1.0, 1.0]))[2]  # 2x2-grid-like clusters: mean 0.5, wide CI
    assert not flag_interval(torch.tensor([0.9, float("nan")]))[2]  # one finite image: no interval
