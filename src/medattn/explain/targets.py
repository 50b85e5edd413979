"""Target layers for the CAM family: an explicit, recorded choice of layer and upsampling.

Selvaraju et al. (Grad-CAM, ICCV 2017) take the last convolutional layer: its maps keep spatial layout and
carry the most class-specific features. Departure: at small inputs the last stage is a 2 x 2 (or 1 x 1) grid,
and a map upsampled from it measures the grid's geometry, not the model (a lesion-shaped map pushed through a
2 x 2 grid scores below a uniform map on pointing and IoU). `layer: auto` therefore takes the deepest stage whose
grid is at least `min_grid` cells a side (default MIN_GRID = 5: on derm-synth masks at 40 and 64 px the mask
itself pushed through a g x g grid keeps more than half its energy on the lesion from g = 5 on, for bilinear
and nearest upsampling alike, while 2 x 2 keeps 0.10 against a uniform 0.095 and 4 x 4 0.38 (odd grids do better
than even ones: derm-synth lesions sit near the centre); measured with `bench/explain_grid.py`). When no stage
reaches it, `auto` takes the finest stage and marks it coarse. `layer: NAME` names any module (`layer3`,
`layer2.1.conv2`); one coarser than `min_grid` is refused unless `force_layer` is set, and every score on it
then carries a warning in the report.
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

from medattn.errors import SpecError
from medattn.explain.spec import DEFAULT_MIN_GRID
from medattn.models.backbones import get_backbone

Reshape = Callable[[torch.Tensor], torch.Tensor] | None


@dataclass(frozen=True)
class TargetLayer:
    """The module CAMs are computed on, its dotted name, how its output becomes (B, C, h, w), its grid (the
    shorter side, 0 when not measured), how maps are upsampled to pixels, and whether the grid is below the
    minimum (a forced or fallback choice whose scores carry a warning)."""

    name: str
    module: nn.Module
    reshape: Reshape = None
    grid: int = 0
    upsample: str = "bilinear"
    coarse: bool = False


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


MIN_GRID = DEFAULT_MIN_GRID  # the default minimum grid of `layer: auto` (measurement: module docstring)
ATTENTION_MIN_GRID = 2  # an attention map whose grid is 1 x 1 is constant


def _spatial_sizes(model: nn.Module, stages: list[nn.Module], image_size: int, in_chans: int,
                   reshape: Reshape = None) -> list[int]:
    sizes: list[int] = []

    def keep(_m, _a, out):
        grid = reshape(out) if reshape is not None else out
        sizes.append(int(min(grid.shape[-2:])))

    handles = [s.register_forward_hook(keep) for s in stages]
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, in_chans, image_size, image_size, device=next(model.parameters()).device))
    finally:
        model.train(training)
        for h in handles:
            h.remove()
    return sizes


def candidate_stages(model: nn.Module, backbone: str) -> tuple[list[nn.Module], Reshape]:
    """The modules `layer: auto` chooses from (a CNN's stages; a transformer's last block norm) and the reshape."""
    spec = get_backbone(backbone)
    if spec.adapter is not None:
        return list(spec.adapter.stages(model)), None
    if backbone == "vit_tiny":
        return [model.blocks[-1].norm1], tokens_to_grid
    return [model.layers[-1].blocks[-1].norm1], tokens_to_grid  # swin


def target_layer(model: nn.Module, backbone: str, image_size: int | None = None, in_chans: int = 3,
                 layer: str = "auto", min_grid: int = MIN_GRID, force: bool = False,
                 upsample: str = "bilinear") -> TargetLayer:
    """The CAM target layer of `model` (built by medattn from `backbone`): `auto` = the deepest stage whose grid is
    at least `min_grid` (the finest stage, marked coarse, when none is), or the module named `layer`.

    Raises SpecError for an unknown name, or a named layer coarser than `min_grid` without `force`.
    """
    stages, reshape = candidate_stages(model, backbone)
    names = [_name_of(model, s) for s in stages]
    if layer == "auto":
        if image_size is None:
            return TargetLayer(names[-1], stages[-1], reshape, upsample=upsample)
        sizes = _spatial_sizes(model, stages, image_size, in_chans, reshape)
        wide = [i for i, n in enumerate(sizes) if n >= min_grid]
        pick = wide[-1] if wide else max(range(len(sizes)), key=lambda i: (sizes[i], i))
        return TargetLayer(names[pick], stages[pick], reshape, sizes[pick], upsample, coarse=not wide)
    modules = dict(model.named_modules())
    if layer not in modules or layer == "":
        raise SpecError(f"layer: '{layer}' is not a module of {backbone}; use auto or one of {', '.join(names)} "
                        f"(or any dotted module name, e.g. {names[0]}.0)")
    grid = _spatial_sizes(model, [modules[layer]], image_size, in_chans, reshape)[0] if image_size else 0
    if image_size and grid < min_grid and not force:
        raise SpecError(f"layer: '{layer}' of {backbone} is a {grid}x{grid} grid at {image_size} px, coarser than "
                        f"min_grid {min_grid}: its maps measure the grid, not the model; use layer: auto, a finer "
                        "layer, or set force_layer: true (scores then carry a warning)")
    return TargetLayer(layer, modules[layer], reshape, grid, upsample, coarse=bool(image_size) and grid < min_grid)
