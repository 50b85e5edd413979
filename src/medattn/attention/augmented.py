"""Attention-augmented convolution (AA): a convolution concatenated with multi-head self-attention.

Paper: Bello, Zoph, Vaswani, Shlens, Le, "Attention Augmented Convolutional Networks", ICCV 2019,
https://arxiv.org/abs/1904.09925. The output's first `out - dv` channels come from the original convolution,
the last `dv` from multi-head self-attention over all positions with 2D relative position logits
(scaled with the content logits, as in the paper's Eq. 5) followed by a 1x1 output projection. Defaults
follow the paper's AA-ResNet setting: 8 heads, dk = 0.2 * out, dv = 0.1 * out (rounded to whole heads).
For a strided convolution the attention runs on the input average-pooled to the output grid. Replacing a
depthwise convolution keeps it depthwise on the first `out - dv` channels. timm has no AA module.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from timm.layers import trunc_normal_

from medattn.attention.mechanism import Mechanism
from medattn.attention.mhsa import PositionTables, global_attention
from medattn.attention.record import Emit, register_extractor
from medattn.errors import ModelError


def whole_heads(fraction: float, channels: int, heads: int) -> int:
    """`fraction * channels` rounded to a positive multiple of `heads`."""
    return max(heads, round(fraction * channels / heads) * heads)


class AugmentedConv2d(nn.Module):
    """concat(conv(x), proj(MHSA(x))) along channels; a drop-in replacement for a k x k convolution.

    Args:
        channels: input channels.
        out_channels: output channels (default: ``channels``); the last ``dv`` of them come from attention.
        kernel_size: kernel size of the replaced convolution (kept for the convolution part).
        stride: stride of the replaced convolution; attention runs on the input average-pooled by it.
        groups: 1 (dense) or ``channels`` (depthwise, kept depthwise on the convolution's channels).
        bias: bias of the convolution part.
        feat_size: (H, W) of the input feature map; required, ``build_model`` supplies it from the image size.
        heads: number of attention heads (the paper's AA-ResNet: 8).
        key_ratio: dk, query/key channels, as a fraction of ``out_channels`` (rounded to whole heads; paper 0.2).
        value_ratio: dv, attention output channels, as a fraction of ``out_channels`` (paper 0.1).
        position: ``"relative"`` 2D relative logits (paper), ``"learned"`` absolute row/column embeddings, or
            ``"none"``.
    """

    def __init__(self, channels: int, out_channels: int | None = None, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, bias: bool = False, feat_size: tuple[int, int] | None = None, heads: int = 8,
                 key_ratio: float = 0.2, value_ratio: float = 0.1, position: str = "relative"):
        super().__init__()
        out = out_channels or channels
        if feat_size is None:
            raise ModelError("aa needs feat_size=(H, W) of its input; build_model supplies it from image_size")
        self.heads = heads
        self.dk, self.dv = whole_heads(key_ratio, out, heads), whole_heads(value_ratio, out, heads)
        if self.dv >= out:
            raise ModelError(f"aa: value_ratio={value_ratio} with heads={heads} leaves no convolution channels "
                             f"out of {out}; lower value_ratio or heads")
        self.conv_in = self._conv_input(channels, out, groups)
        conv_groups = 1 if groups == 1 else out - self.dv
        self.conv = nn.Conv2d(self.conv_in, out - self.dv, kernel_size, stride, kernel_size // 2,
                              groups=conv_groups, bias=bias)
        self.pool = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()
        grid = tuple(math.ceil(n / stride) for n in feat_size)
        self.scale = (self.dk // heads) ** -0.5
        self.qkv = nn.Conv2d(channels, 2 * self.dk + self.dv, 1)
        self.pos = PositionTables(position, grid, self.dk // heads, self.scale)
        self.proj = nn.Conv2d(self.dv, self.dv, 1)
        self.attention_sink: Emit | None = None
        trunc_normal_(self.qkv.weight, std=channels ** -0.5)

    def _conv_input(self, channels: int, out: int, groups: int) -> int:
        if groups == 1:
            return channels
        if groups == channels == out:
            return out - self.dv
        raise ModelError(f"aa can replace dense or depthwise convolutions, not groups={groups}; "
                         f"use mhsa or local here")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, out_channels, H / stride, W / stride)."""
        conv = self.conv(x[:, : self.conv_in])
        q, k, v = self.qkv(self.pool(x)).split([self.dk, self.dk, self.dv], dim=1)
        attn = global_attention(q, k, v, self.heads, self.pos, self.scale, True, self.attention_sink)
        return torch.cat([conv, self.proj(attn)], dim=1)


register_extractor(AugmentedConv2d, "aa")

MECHANISMS = [
    Mechanism(
        name="aa", family="self-attention", factory=AugmentedConv2d, source="medattn",
        placements=("replace_3x3",), context=("out_channels", "stride", "feat_size", "kernel_size", "groups", "bias"),
        default_placement={"stages": "last", "where": "replace_3x3", "blocks": "all"},
        paper="Bello et al., Attention Augmented Convolutional Networks, ICCV 2019, arXiv:1904.09925",
        summary="convolution output concatenated with relative-position multi-head self-attention output",
    ),
]
