"""Spearman (ties averaged) against scipy; attention maps and rollout against direct computations."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr

from medattn.explain.attention_maps import attention_maps, rollout
from medattn.explain.randomisation import spearman
from medattn.models import build_model


def test_batched_spearman_with_ties_equals_scipy():
    rng = np.random.default_rng(0)
    a = np.maximum(rng.normal(size=(6, 64)), 0)  # ReLU'd maps: many tied zeros
    b = np.round(rng.normal(size=(6, 64)) + a, 1)
    ours = spearman(torch.tensor(a), torch.tensor(b)).numpy()
    expected = [spearmanr(a[i], b[i]).statistic for i in range(6)]
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    assert np.isnan(spearman(torch.ones(1, 9), torch.rand(1, 9)).item())


def test_cbam_gives_spatial_maps_and_se_gives_none():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    cbam = build_model("resnet18", "cbam", image_size=32).eval()
    maps, _ = attention_maps(cbam, x)
    assert [m.layer for m in maps][:2] == ["layer1.0.se", "layer1.1.se"] and len(maps) == 8
    for m in maps:
        assert m.maps.shape == (2, 32, 32) and m.maps.min() >= 0 and m.maps.max() <= 1
    se = build_model("resnet18", "se", image_size=32).eval()
    assert attention_maps(se, x)[0] == []


def test_rollout_equals_a_direct_product_of_the_blocks():
    torch.manual_seed(0)
    vit = build_model("vit_tiny", "none", image_size=32).eval()
    x = torch.randn(2, 3, 32, 32)
    _, recorded = attention_maps(vit, x)
    ours = rollout(recorded, (32, 32))
    blocks = [m for m in recorded if m.mechanism == "vit"]
    assert len(blocks) == 12
    for i in range(2):
        r = np.eye(blocks[0].values.shape[-1])
        for blk in blocks:
            a = blk.values[i].double().mean(0).numpy() + np.eye(r.shape[0])
            r = (a / a.sum(1, keepdims=True)) @ r
        grid = torch.tensor(r[0, 1:]).view(1, 1, *blocks[0].grid).float()
        direct = torch.nn.functional.interpolate(grid, size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
        direct = (direct - direct.min()) / (direct - direct.min()).max()
        assert torch.allclose(ours[i], direct, atol=1e-4)
    assert rollout([m for m in recorded if m.mechanism != "vit"], (32, 32)) is None


def test_randomised_model_has_the_architecture_of_the_checkpoint():
    """The randomisation check compares a trained model with its random twin: same stem, not the policy's."""
    from medattn.explain.runner import randomised_model
    from medattn.models.stem import default_stem

    sidecar = {"model": {"backbone": "resnet18", "attention": "none", "placement": None, "attention_kwargs": {},
                         "small_stem": None, "stem": "s1", "drop_rate": 0.0},
               "data": {"num_classes": 2, "in_chans": 1, "image_size": 28}}
    assert default_stem(28) != "s1"
    model = randomised_model(sidecar, seed=0, device=torch.device("cpu"))
    assert model.medattn_spec["stem"] == "s1"
