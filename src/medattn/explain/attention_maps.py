"""The models' own attention maps (from `record_attention`) and attention rollout for the ViT baseline.

Spatial gates (CBAM, BAM, GC, ...) are used as they are; self-attention becomes the attention each key
position receives, averaged over heads and queries (`AttentionMap.to_image`). Channel-only mechanisms (SE,
ECA) and plain CNNs have no spatial map: `attention_maps` returns nothing for them. Every map is resized
bilinearly to the input and min-max scaled to [0, 1].
Rollout: Abnar and Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020: per block the
head-averaged attention plus the identity (residual), rows renormalised, multiplied through the blocks; the
map is the class token's row over the patch tokens (the mean over query rows when there is no class token).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from medattn.attention import record_attention
from medattn.attention.record import AttentionMap


def unit_range(maps: torch.Tensor) -> torch.Tensor:
    """Each map min-max scaled to [0, 1] (scale-free; a constant map becomes 0)."""
    flat = maps.flatten(1)
    low, high = flat.min(1).values.view(-1, 1, 1), flat.max(1).values.view(-1, 1, 1)
    span = high - low
    return torch.where(span > 0, (maps - low) / torch.where(span > 0, span, 1), torch.zeros_like(maps))


@dataclass(frozen=True)
class ModuleMaps:
    """One module's (B, H, W) maps in [0, 1]; `layer` is the module's dotted name (':part' for several gates)."""

    layer: str
    mechanism: str
    maps: torch.Tensor
    grid: tuple[int, int] | None = None  # (h, w) of the map before resizing


def _layer_names(recorded: list[AttentionMap]) -> list[str]:
    counts: dict[str, int] = {}
    for m in recorded:
        counts[m.module] = counts.get(m.module, 0) + 1
    return [f"{m.module}:{m.part}" if counts[m.module] > 1 and m.part else m.module for m in recorded]


def attention_maps(model: nn.Module, x: torch.Tensor) -> tuple[list[ModuleMaps], list[AttentionMap]]:
    """Every spatial or self-attention map of one forward pass (forward order), and the raw recorded maps."""
    with torch.no_grad(), record_attention(model) as recorded:
        model(x)
    spatial = [m for m in recorded if m.kind != "channel"]
    size = tuple(x.shape[-2:])
    out = [ModuleMaps(name, m.mechanism, unit_range(m.to_image(size).float()), m.grid)
           for name, m in zip(_layer_names(spatial), spatial, strict=True)]
    return out, recorded


def rollout(recorded: list[AttentionMap], size: tuple[int, int]) -> torch.Tensor | None:
    """(B, H, W) attention rollout over the recorded ViT blocks in [0, 1]; None when there is no ViT attention."""
    blocks = [m for m in recorded if m.mechanism == "vit" and m.kind == "self"]
    if not blocks:
        return None
    result = None
    for block in blocks:
        attn = block.values.float().mean(dim=1)  # (B, N, N), heads averaged
        attn = attn + torch.eye(attn.shape[-1], device=attn.device)
        attn = attn / attn.sum(dim=-1, keepdim=True)
        result = attn if result is None else attn @ result
    prefix, grid = blocks[-1].prefix_tokens, blocks[-1].grid
    rows = result[:, 0, prefix:] if prefix else result.mean(dim=1)
    maps = rows.reshape(-1, 1, *grid)
    maps = torch.nn.functional.interpolate(maps, size=size, mode="bilinear", align_corners=False)[:, 0]
    return unit_range(maps)
