"""Target layers for the CAM family: the last convolutional stage of a CNN, the last block of a transformer.

Selvaraju et al. (Grad-CAM, ICCV 2017) take the last convolutional layer: its maps keep spatial layout and
carry the most class-specific features. Departure: at tiny inputs (32 px with the stride-4 stem) the
last stage is 1 x 1 and every CAM would be constant, so the deepest stage at least 2 x 2 is taken.
For ViT and Swin, pytorch-grad-cam's tutorial takes the first norm of the last block and turns the
tokens back into a (B, C, h, w) grid (a *reshape transform*); the class token carries no position and
is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from medattn.models.backbones import get_backbone

Reshape = Callable[[torch.Tensor], torch.Tensor] | None


@dataclass(frozen=True)
class TargetLayer:
    """The module CAMs are computed on, its dotted name, and how its output becomes (B, C, h, w)."""

    name: str
    module: nn.Module
    reshape: Reshape = None


def tokens_to_grid(tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, C) ViT tokens (leading class/register tokens allowed) or (B, h, w, C) Swin maps -> (B, C, h, w)."""
    if tokens.ndim == 4:  # Swin: channels last
        return tokens.permute(0, 3, 1, 2)
    side = math.isqrt(tokens.shape[1])
    prefix = tokens.shape[1] - side * side
    return tokens[:, prefix:].reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)


def _name_of(model: nn.Module, module: nn.Module) -> str:
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise ValueError("target module is not part of the model")


MIN_GRID = 2  # a stage whose output is 1 x 1 gives a constant map: take the deepest one at least 2 x 2


def _spatial_sizes(model: nn.Module, stages: list[nn.Module], image_size: int, in_chans: int) -> list[int]:
    sizes: list[int] = []
    handles = [s.register_forward_hook(lambda _m, _a, out: sizes.append(int(out.shape[-1]))) for s in stages]
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, in_chans, image_size, image_size, device=next(model.parameters()).device))
    finally:
        model.train(training)
        for h in handles:
            h.remove()
    return sizes


def target_layer(model: nn.Module, backbone: str, image_size: int | None = None, in_chans: int = 3) -> TargetLayer:
    """The CAM target layer of `model` (built by medattn from `backbone`): the deepest stage at least 2 x 2."""
    spec = get_backbone(backbone)
    if spec.adapter is not None:
        stages = spec.adapter.stages(model)
        module = stages[-1]
        if image_size is not None:
            sizes = _spatial_sizes(model, stages, image_size, in_chans)
            wide = [s for s, n in zip(stages, sizes, strict=True) if n >= MIN_GRID]
            module = wide[-1] if wide else stages[0]
        return TargetLayer(_name_of(model, module), module)
    if backbone == "vit_tiny":
        module = model.blocks[-1].norm1
    else:  # swin
        module = model.layers[-1].blocks[-1].norm1
    return TargetLayer(_name_of(model, module), module, tokens_to_grid)
