"""Every (backbone x mechanism x valid placement) builds, runs forward and backward, and all weights get gradients.

Fast suite: every combination at 28 px (1 channel) and 64 px (3 channels), every alternative placement (all
stages) at 28 px with 3 channels, and a representative subset at 224 px. Slow: every combination with its default
placement at 224 px (3 channels), and every alternative placement at 64 px with 1 channel. The channel count
only changes the stem convolution, so each size is run with one channel count per placement set and both counts
are covered at 28 and 64 px; no case is run twice.
"""

from __future__ import annotations

import pytest
import torch

from medattn.attention import MECHANISMS, create_attention
from medattn.models import BACKBONES, build_model
from medattn.models.describe import combinations

CNNS = [b for b, spec in BACKBONES.items() if spec.kind == "cnn"]
COMBOS = combinations()
# the module class of every registered mechanism (a factory function: the class of what it builds), so that a new
# mechanism is covered without editing this file
INSERTED = tuple({m.factory if isinstance(m.factory, type) else type(create_attention(name, 32))
                  for name, m in MECHANISMS.items() if m.factory is not None})


def run_and_check(backbone: str, attention: str, size: int, in_chans: int, batch: int = 2,
                  placement: dict | None = None, **options) -> torch.nn.Module:
    """Build, forward a batch in train mode, backward, and check outputs and gradients."""
    torch.manual_seed(0)
    model = build_model(backbone, attention, num_classes=3, in_chans=in_chans, image_size=size,
                        placement=placement, **options)
    _unzero_norms(model)
    out = model.train()(torch.randn(batch, in_chans, size, size))
    assert out.shape == (batch, 3) and torch.isfinite(out).all()
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    inserted = [p for m in model.modules() if isinstance(m, INSERTED) for p in m.parameters()]
    if attention != "none":
        assert inserted, "no attention module found in the model"
        assert sum(p.grad.abs().sum() for p in inserted) > 0
    return model


@pytest.mark.parametrize(("backbone", "attention"), COMBOS)
@pytest.mark.parametrize(("size", "in_chans"), [(28, 1), (64, 3)])
def test_every_combination_trains_at_small_sizes(backbone, attention, size, in_chans):
    run_and_check(backbone, attention, size, in_chans)


def _unzero_norms(model: torch.nn.Module) -> None:
    """Set norm weights to 1: zero-initialised last BNs (timm ResNet, non-local) make branch gates' gradients 0
    at initialisation, which would hide a gate cut off from the loss."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.modules.batchnorm._NormBase, torch.nn.LayerNorm, torch.nn.GroupNorm)) \
                    and getattr(m, "weight", None) is not None:
                m.weight.fill_(1.0)


def alternative_placements():
    """(backbone, mechanism, placement) for every place a mechanism can go other than its default, all stages."""
    cases = []
    for backbone in CNNS:
        for name, m in MECHANISMS.items():
            for where in m.placements:
                if where != m.default_placement["where"] or m.default_placement["stages"] != "all":
                    cases.append((backbone, name, {"where": where, "stages": "all", "blocks": "all"}))
    return cases


@pytest.mark.parametrize(("backbone", "attention", "placement"), alternative_placements())
def test_every_valid_place_trains(backbone, attention, placement):
    run_and_check(backbone, attention, 28, 3, placement=placement)


@pytest.mark.parametrize(
    ("backbone", "attention", "in_chans"),
    [("resnet18", "mhsa", 1), ("resnet50", "local", 3), ("efficientnet_b0", "cbam", 3), ("convnext_atto", "aa", 1),
     ("vit_tiny", "none", 3)],
)
def test_representative_combinations_train_at_224(backbone, attention, in_chans):
    run_and_check(backbone, attention, 224, in_chans, batch=1)


@pytest.mark.slow
@pytest.mark.parametrize(("backbone", "attention"), COMBOS)
def test_every_combination_trains_at_224(backbone, attention):
    """Every default placement at the ImageNet size (self-attention defaults sit in the last stage: 7 x 7 tokens)."""
    run_and_check(backbone, attention, 224, 3, batch=2)


@pytest.mark.slow
@pytest.mark.parametrize(("backbone", "attention", "placement"), alternative_placements())
def test_every_valid_place_trains_at_64_px_with_one_channel(backbone, attention, placement):
    run_and_check(backbone, attention, 64, 1, placement=placement)
