"""Transformer bottleneck: global multi-head self-attention on the U-Net's deepest feature map.

TransUNet (Chen et al., arXiv:2102.04306, 2021) and TransAttUnet (Chen et al., IEEE TETCI 2023) put
transformer self-attention where the U-Net is coarsest, so every position sees the whole image. Here the
deepest map (B, C, h, w) becomes h*w tokens of width C plus a learned position embedding, goes through
`depth` pre-norm transformer encoder layers (torch's nn.TransformerEncoderLayer, `heads` heads, MLP
2C, GELU) and is reshaped back; pre-norm layers are residual, so at initialisation the block is close to
the identity (plus the small position embedding).

Where it departs: TransUNet embeds ViT patches of the CNN features and uses 12 pre-trained layers;
TransAttUnet adds a self-aware attention module and multi-scale skips; here the tokens are the deepest
feature map's pixels, one layer by default, trained from scratch. The position embedding is learned for
the build size and bilinearly resized for another input size.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class TransformerBottleneck(nn.Module):
    """Transformer(x + pos) on the pixels of a (B, C, h, w) map (pre-norm, residual inside each layer).

    Args:
        channels: C, the token width (must be divisible by `heads`).
        feat_size: (h, w) the position embedding is learned for.
        heads: attention heads.
        depth: transformer encoder layers.
    """

    def __init__(self, channels: int, feat_size: tuple[int, int], heads: int = 4, depth: int = 1) -> None:
        super().__init__()
        if channels % heads:
            heads = 1
        self.pos = nn.Parameter(torch.zeros(1, channels, *feat_size))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(channels, heads, 2 * channels, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        pos = self.pos if self.pos.shape[-2:] == (h, w) else F.interpolate(self.pos, size=(h, w), mode="bilinear")
        tokens = (x + pos).flatten(2).transpose(1, 2)  # (B, h*w, C)
        return self.encoder(tokens).transpose(1, 2).reshape(b, c, h, w)
