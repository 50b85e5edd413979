"""Stand-alone local self-attention over k x k windows (SASA), computed on HaloNet-style blocks.

SASA: Ramachandran, Parmar, Vaswani, Bello, Levskaya, Shlens, "Stand-Alone Self-Attention in Vision Models",
NeurIPS 2019, https://arxiv.org/abs/1906.05909 -- every pixel attends to the k x k neighbourhood around it
(inside the image), with 2D relative position logits.
HaloNet: Vaswani, Ramachandran, Srinivas, Parmar, Hechtman, Shlens, "Scaling Local Self-Attention for Parameter
Efficient Visual Backbones", CVPR 2021, https://arxiv.org/abs/2103.12731 -- queries in b x b blocks share the
(b + 2h) x (b + 2h) window around their block.

`mode="sasa"` (default) gives exact per-pixel k x k neighbourhoods: queries are processed in blocks with a
halo of k // 2, and keys outside a query's neighbourhood or outside the image are masked inside the fused
attention call, so the block size changes speed only, never the output. `mode="halo"` reproduces
`timm.layers.HaloAttn` (every query of a block sees its whole window, zero padding included) with the same
parameters (q projection, kv projection with per-head [k | v] channels, position tables of 2*window-1 rows).
Recorded maps are (B, heads, HW, HW), zero outside each query's window; in `mode="halo"` the weight a query
puts on zero padding is not part of the map, so its rows may sum to less than 1 at the border.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import trunc_normal_

from medattn.attention.blocked import (
    Axis,
    attend,
    axis_logits,
    dense_map,
    key_windows,
    merge_blocks,
    query_blocks,
    relative_index,
    sasa_axis,
    window_penalty,
)
from medattn.attention.mechanism import Mechanism
from medattn.attention.mhsa import check_choice, downsample, head_dims
from medattn.attention.record import Emit, register_extractor
from medattn.errors import ModelError

MODES = ("sasa", "halo")


class LocalSelfAttention2d(nn.Module):
    """Multi-head self-attention of every pixel over its k x k neighbourhood; replaces a 3x3 convolution.

    Args:
        channels: input channels.
        out_channels: output channels (default: ``channels``); must be divisible by ``heads``.
        stride: 1, or 2 for a 2x2 average pool after attention (as a strided 3x3 convolution would halve the map).
        heads: number of attention heads.
        dim_head: query/key channels per head (default: timm's rule, ``out_channels * qk_ratio`` rounded to a
            multiple of 8, divided by ``heads``); value channels per head are always ``out_channels // heads``.
        qk_ratio: query/key width relative to ``out_channels`` when ``dim_head`` is not given.
        window_size: k, the odd side of the neighbourhood each pixel attends to (halo ``k // 2``).
        block_size: side of the query blocks computed together; in ``sasa`` mode it changes speed and memory
            only, in ``halo`` mode it also sets the window, ``block_size + 2 * (window_size // 2)``.
        mode: ``"sasa"``, exact per-pixel k x k neighbourhoods inside the image, or ``"halo"``, timm's
            ``HaloAttn`` arithmetic (whole block windows, zero padding attended).
        qkv_bias: add a bias to the query and key/value projections.
        scale_pos: scale the relative position logits by ``dim_head ** -0.5`` like the content logits
            (timm's ``scale_pos_embed``).
    """

    def __init__(self, channels: int, out_channels: int | None = None, stride: int = 1, heads: int = 8,
                 dim_head: int | None = None, qk_ratio: float = 1.0, window_size: int = 7, block_size: int = 8,
                 mode: str = "sasa", qkv_bias: bool = False, scale_pos: bool = False):
        super().__init__()
        check_choice("mode", mode, MODES)
        if window_size < 3 or window_size % 2 == 0:
            raise ModelError(f"window_size={window_size} must be an odd number >= 3 (the k of k x k windows)")
        if block_size < 1:
            raise ModelError(f"block_size={block_size} must be >= 1")
        out_channels = out_channels or channels
        self.heads, self.mode, self.block, self.radius = heads, mode, block_size, window_size // 2
        self.dim_qk, self.dim_v = head_dims(out_channels, heads, dim_head, qk_ratio)
        self.scale = self.dim_qk ** -0.5
        self.scale_pos = scale_pos
        self.q = nn.Conv2d(channels, heads * self.dim_qk, 1, bias=qkv_bias)
        self.kv = nn.Conv2d(channels, heads * (self.dim_qk + self.dim_v), 1, bias=qkv_bias)
        self.max_offset = self.radius if mode == "sasa" else block_size + 2 * self.radius - 1
        self.rel_rows = nn.Parameter(torch.empty(2 * self.max_offset + 1, self.dim_qk))
        self.rel_cols = nn.Parameter(torch.empty(2 * self.max_offset + 1, self.dim_qk))
        self.pool = downsample(stride)
        self.attention_sink: Emit | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """timm's initialisation: fan-in truncated normal projections, std = dim_head ** -0.5 position tables."""
        std = self.q.weight.shape[1] ** -0.5
        trunc_normal_(self.q.weight, std=std)
        trunc_normal_(self.kv.weight, std=std)
        trunc_normal_(self.rel_rows, std=self.scale)
        trunc_normal_(self.rel_cols, std=self.scale)

    def axes(self, height: int, width: int) -> tuple[Axis, Axis]:
        """How rows and columns are cut into query blocks and key windows for an H x W input."""
        if self.mode == "halo":
            return Axis(height, self.block, self.radius), Axis(width, self.block, self.radius)
        return sasa_axis(height, self.block, self.radius), sasa_axis(width, self.block, self.radius)

    def _index(self, axis: Axis, device: torch.device) -> torch.Tensor:
        if self.mode == "sasa":
            return relative_index(axis, self.radius, device)
        # timm HaloAttn: window slot m seen from block offset y uses table row m - y + window - 1
        return relative_index(axis, self.max_offset, device) + axis.halo

    def _penalty(self, axis: Axis, device: torch.device) -> torch.Tensor | None:
        if self.mode == "halo":
            return None
        return window_penalty(axis, self.radius, True, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, out_channels, H / stride, W / stride)."""
        h, w = x.shape[-2:]
        rows, cols = self.axes(h, w)
        qb = query_blocks(self.q(x), self.heads, rows, cols)  # B, heads, nbh, nbw, bh, bw, d
        factor = self.scale if self.scale_pos else 1.0
        logits = (axis_logits(qb, self.rel_rows, self._index(rows, x.device), True, factor,
                              self._penalty(rows, x.device)),
                  axis_logits(qb, self.rel_cols, self._index(cols, x.device), False, factor,
                              self._penalty(cols, x.device)))
        kv = self.kv(x).unflatten(1, (self.heads, -1))  # per head [k | v], as timm's HaloAttn
        k = key_windows(kv[:, :, : self.dim_qk].flatten(1, 2), self.heads, rows, cols)
        v = key_windows(kv[:, :, self.dim_qk:].flatten(1, 2), self.heads, rows, cols)
        out, probs = attend(qb, k, v, self.scale, logits, want_probs=self.attention_sink is not None)
        if probs is not None:
            self.attention_sink("self", dense_map(probs, rows, cols), grid=(h, w), query_grid=(h, w))
        return self.pool(merge_blocks(out, rows, cols))


register_extractor(LocalSelfAttention2d, "local")

MECHANISMS = [
    Mechanism(
        name="local", family="self-attention", factory=LocalSelfAttention2d, source="medattn",
        placements=("replace_3x3",), context=("out_channels", "stride"),
        default_placement={"stages": "last", "where": "replace_3x3", "blocks": "all"},
        timm_counterpart="timm.layers.HaloAttn (mode='halo')",
        paper="Ramachandran et al., Stand-Alone Self-Attention in Vision Models, NeurIPS 2019, arXiv:1906.05909; "
              "blocked as in Vaswani et al., HaloNet, CVPR 2021, arXiv:2103.12731",
        summary="multi-head self-attention over each pixel's k x k neighbourhood with 2D relative positions, "
                "computed on halo blocks",
    ),
]
