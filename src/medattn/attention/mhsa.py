"""Global multi-head self-attention replacing a residual block's 3x3 convolution (BoTNet-style MHSA).

Paper: Srinivas, Lin, Parmar, Shlens, Abbeel, Vaswani, "Bottleneck Transformers for Visual Recognition",
CVPR 2021, https://arxiv.org/abs/2101.11605. 2D relative position logits as in Bello et al. 2019
(https://arxiv.org/abs/1904.09925); learned absolute row/column embeddings as BoTNet's alternative.

Same parameters and arithmetic as `timm.layers.BottleneckAttn` (one 1x1 qkv projection split [q | k | v],
head-major channels, position tables of shape (2H-1, d) / (2W-1, d), logits s*q.k + q.r, 2x2 average pool
after attention for stride 2), but computed by one fused `scaled_dot_product_attention` call with the
position logits folded into the dot product (see `blocked.py`), so the HW x HW matrix is never stored.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import make_divisible, trunc_normal_

from medattn.attention.blocked import (
    absolute_index,
    attend,
    axis_logits,
    global_axis,
    key_windows,
    merge_blocks,
    query_blocks,
    relative_index,
)
from medattn.attention.mechanism import Mechanism
from medattn.attention.record import Emit, register_extractor
from medattn.errors import ModelError

POSITIONS = ("relative", "learned", "none")


def head_dims(out_channels: int, heads: int, dim_head: int | None, qk_ratio: float) -> tuple[int, int]:
    """(query/key dim per head, value dim per head) by timm's rule for BottleneckAttn and HaloAttn."""
    if out_channels % heads:
        raise ModelError(f"heads={heads} must divide the {out_channels} output channels; choose another `heads`")
    return dim_head or make_divisible(out_channels * qk_ratio, divisor=8) // heads, out_channels // heads


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Refuse an option value outside `choices` with a message listing them."""
    if value not in choices:
        raise ModelError(f"{name}={value!r} is not valid; use one of {', '.join(choices)}")


def downsample(stride: int) -> nn.Module:
    """Output stride after attention: 2x2 average pool (ceil mode, matching a padded stride-2 3x3 conv)."""
    if stride not in (1, 2):
        raise ModelError(f"stride={stride} is not supported by self-attention; only 1 or 2")
    return nn.AvgPool2d(2, 2, ceil_mode=True) if stride == 2 else nn.Identity()


class PositionTables(nn.Module):
    """Row and column embeddings giving position logits q . r_row + q . r_col for a (H, W) query/key grid.

    Args:
        position: ``"relative"`` (tables of 2H-1 and 2W-1 rows, indexed by offset), ``"learned"`` (H and W rows,
            indexed by absolute position) or ``"none"`` (no tables, no position logits).
        feat_size: (H, W) of the query/key grid.
        dim: channels per head of the queries the tables are multiplied with.
        std: standard deviation of the truncated-normal initialisation (timm: ``dim ** -0.5``).
    """

    def __init__(self, position: str, feat_size: tuple[int, int], dim: int, std: float):
        super().__init__()
        check_choice("position", position, POSITIONS)
        self.position, self.feat_size = position, tuple(feat_size)
        lengths = [2 * n - 1 if position == "relative" else n for n in self.feat_size]
        self.rows = nn.Parameter(torch.empty(lengths[0], dim)) if position != "none" else None
        self.cols = nn.Parameter(torch.empty(lengths[1], dim)) if position != "none" else None
        self.std = std
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated normal with std = dim_head ** -0.5, as timm."""
        if self.rows is not None:
            trunc_normal_(self.rows, std=self.std)
            trunc_normal_(self.cols, std=self.std)

    def logits(self, q: torch.Tensor, factor: float = 1.0) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Row and column logits (B, h, 1, 1, H, W, H) and (..., W) of queries q (B, h, 1, 1, H, W, d)."""
        if self.rows is None:
            return None
        height, width = q.shape[-3], q.shape[-2]
        self._check_size(height, width)
        rows, cols = global_axis(height), global_axis(width)
        if self.position == "relative":
            ih, iw = (relative_index(rows, self.feat_size[0] - 1, q.device),
                      relative_index(cols, self.feat_size[1] - 1, q.device))
        else:
            ih, iw = absolute_index(rows, q.device), absolute_index(cols, q.device)
        return (axis_logits(q, self.rows, ih, True, factor), axis_logits(q, self.cols, iw, False, factor))

    def _check_size(self, height: int, width: int) -> None:
        built = self.feat_size
        too_big = height > built[0] or width > built[1]
        if too_big or (self.position == "learned" and (height, width) != built):
            raise ModelError(f"self-attention was built for {built[0]}x{built[1]} feature maps but got "
                             f"{height}x{width}; build the model with the image_size you train and test on")


class MultiHeadSelfAttention2d(nn.Module):
    """BoTNet MHSA over all positions of a feature map; a drop-in replacement for a 3x3 convolution.

    Args:
        channels: input channels.
        out_channels: output channels (default: ``channels``); must be divisible by ``heads``.
        feat_size: (H, W) of the input feature map; required, ``build_model`` supplies it from the image size.
        stride: 1, or 2 for a 2x2 average pool after attention (BoTNet's stride-2 block).
        heads: number of attention heads (BoTNet: 4).
        dim_head: query/key channels per head (default: timm's rule, ``out_channels * qk_ratio`` rounded to a
            multiple of 8, divided by ``heads``); value channels per head are always ``out_channels // heads``.
        qk_ratio: query/key width relative to ``out_channels`` when ``dim_head`` is not given.
        qkv_bias: add a bias to the 1x1 qkv projection.
        position: ``"relative"`` 2D relative logits (BoTNet default), ``"learned"`` absolute row/column
            embeddings, or ``"none"``.
        scale_pos: scale the position logits by ``dim_head ** -0.5`` like the content logits
            (timm's ``scale_pos_embed``).
    """

    def __init__(self, channels: int, out_channels: int | None = None, feat_size: tuple[int, int] | None = None,
                 stride: int = 1, heads: int = 4, dim_head: int | None = None, qk_ratio: float = 1.0,
                 qkv_bias: bool = False, position: str = "relative", scale_pos: bool = False):
        super().__init__()
        out_channels = out_channels or channels
        if feat_size is None:
            raise ModelError("mhsa needs feat_size=(H, W) of its input; build_model supplies it from image_size")
        self.heads = heads
        self.dim_qk, self.dim_v = head_dims(out_channels, heads, dim_head, qk_ratio)
        self.scale = self.dim_qk ** -0.5
        self.scale_pos = scale_pos
        self.qkv = nn.Conv2d(channels, heads * (2 * self.dim_qk + self.dim_v), 1, bias=qkv_bias)
        self.pos = PositionTables(position, feat_size, self.dim_qk, self.scale)
        self.pool = downsample(stride)
        self.attention_sink: Emit | None = None
        trunc_normal_(self.qkv.weight, std=channels ** -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, out_channels, H / stride, W / stride)."""
        q, k, v = self.qkv(x).split([self.heads * self.dim_qk] * 2 + [self.heads * self.dim_v], dim=1)
        out = global_attention(q, k, v, self.heads, self.pos, self.scale, self.scale_pos, self.attention_sink)
        return self.pool(out)


def global_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, pos: PositionTables,
                     scale: float, scale_pos: bool, sink: Emit | None) -> torch.Tensor:
    """Multi-head attention of all positions to all positions of (B, heads*d, H, W) maps; (B, heads*dv, H, W)."""
    h, w = q.shape[-2:]
    rows, cols = global_axis(h), global_axis(w)
    qb = query_blocks(q, heads, rows, cols)  # B, heads, 1, 1, H, W, d
    logits = pos.logits(qb, scale if scale_pos else 1.0)
    kb, vb = key_windows(k, heads, rows, cols), key_windows(v, heads, rows, cols)
    out, probs = attend(qb, kb, vb, scale, logits, want_probs=sink is not None)
    if probs is not None:
        sink("self", probs[:, :, 0], grid=(h, w), query_grid=(h, w))
    return merge_blocks(out, rows, cols)


register_extractor(MultiHeadSelfAttention2d, "mhsa")

MECHANISMS = [
    Mechanism(
        name="mhsa", family="self-attention", factory=MultiHeadSelfAttention2d, source="medattn",
        placements=("replace_3x3",), context=("out_channels", "stride", "feat_size"),
        default_placement={"stages": "last", "where": "replace_3x3", "blocks": "all"},
        timm_counterpart="timm.layers.BottleneckAttn",
        paper="Srinivas et al., Bottleneck Transformers for Visual Recognition, CVPR 2021, arXiv:2101.11605",
        summary="global multi-head self-attention with 2D relative (or learned) positions replacing the 3x3 "
                "conv (BoTNet)",
    ),
]
