"""CA-Net-style comprehensive attention: spatial, channel and scale attention in a U-Net decoder.

Gu et al., "CA-Net: Comprehensive Attention Convolutional Neural Networks for Explainable Medical Image
Segmentation", IEEE TMI 40(2), 2021 (ISIC 2018 skin lesions: Dice 92.08 % vs 87.77 % for their U-Net).

What is kept: (1) spatial attention = a non-local block on the deepest features plus an attention gate on
every skip connection (the paper's joint spatial attention); (2) channel attention on the concatenation of
the (gated) skip and the up-sampled decoder features at every decoder level: sigmoid(MLP(avgpool) +
MLP(maxpool)) re-weights the channels before the level's convolutions; (3) scale attention: every decoder
level's output is projected to `scale_channels` (4, as in the paper) channels, up-sampled to full resolution
and concatenated; channel weights beta over the scales (same avg+max MLP) and a spatial map gamma
(conv3x3 - ReLU - conv1x1 - sigmoid on the beta-weighted features) give F * beta * gamma + F (a residual
form, as the paper's code), which the segmentation head reads.

Where it departs: the spatial gates are the single-pathway Oktay/MONAI gate (`segment/gate.py`), not the
paper's dual-pathway variant; the non-local block is medattn's `nonlocal` mechanism (timm's NonLocalAttn);
widths and depth follow the chosen U-Net, not the paper's 16..256 five-level network; no deep supervision.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class PooledChannelAttention(nn.Module):
    """Channel weights sigmoid(MLP(avg) + MLP(max)) times the input (CA-Net's channel attention).

    Args:
        channels: input channels.
        reduction: hidden size of the shared MLP is channels // reduction (at least 1).
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        peak = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return x * self.gate(avg + peak)


class ScaleAttention(nn.Module):
    """Fuse decoder levels at full resolution with scale (channel) weights and a spatial map, residually.

    Args:
        level_channels: channels of each decoder level's output (any order).
        scale_channels: channels each level is projected to (the paper: 4).
    """

    def __init__(self, level_channels: tuple[int, ...], scale_channels: int = 4) -> None:
        super().__init__()
        self.project = nn.ModuleList(nn.Conv2d(c, scale_channels, 1) for c in level_channels)
        fused = scale_channels * len(level_channels)
        self.out_channels = fused
        self.scale = PooledChannelAttention(fused, reduction=2)
        self.spatial = nn.Sequential(nn.Conv2d(fused, scale_channels, 3, padding=1), nn.ReLU(inplace=True),
                                     nn.Conv2d(scale_channels, 1, 1), nn.Sigmoid())
        self.last_map: torch.Tensor | None = None
        self.record = False

    def forward(self, levels: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        parts = [F.interpolate(p(x), size=size, mode="bilinear", align_corners=False) if x.shape[-2:] != size
                 else p(x) for p, x in zip(self.project, levels, strict=True)]
        feats = torch.cat(parts, 1)
        weighted = self.scale(feats)
        gamma = self.spatial(weighted)
        if self.record:
            self.last_map = gamma.detach()
        return weighted * gamma + feats
