"""Self-attention of the ViT and Swin baselines (timm), recorded for comparison with the CNN mechanisms.

Papers: Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
ICLR 2021, https://arxiv.org/abs/2010.11929; DeiT: Touvron et al., ICML 2021, https://arxiv.org/abs/2012.12877;
Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021,
https://arxiv.org/abs/2103.14030.
timm computes attention with a fused kernel and keeps no weights, so while recording (only) a forward hook
recomputes the softmax from the block's own projections. ViT blocks give the full (B, heads, N, N) matrix.
Swin attends within 7 x 7 windows, so its full matrix would be block-sparse and large (3,136 tokens per image
in the first stage at 224 px); a Swin block gives instead the attention each position receives, averaged over
heads and over the queries of its (shifted) window, put back on the feature grid: a (B, H, W) map of kind
'spatial', the same quantity `AttentionMap.to_image` derives from a full matrix.
"""

from __future__ import annotations

import math

import torch
from timm.layers import Attention
from timm.models.swin_transformer import SwinTransformerBlock, window_reverse

from medattn.attention.record import Emit, register_extractor


def vit_extractor(module: Attention, emit: Emit) -> list:
    """(B, heads, N, N) token attention; the grid is the square patch grid after the prefix (class) tokens."""

    def hook(mod, args, _out):
        x = args[0]
        b, n, _ = x.shape
        qkv = mod.qkv(x).reshape(b, n, 3, mod.num_heads, mod.head_dim).permute(2, 0, 3, 1, 4)
        q, k = mod.q_norm(qkv[0]), mod.k_norm(qkv[1])
        attn = (q * mod.scale @ k.transpose(-2, -1)).softmax(-1)
        side = math.isqrt(n)
        prefix = n - side * side
        emit("self", attn, grid=(side, side), query_grid=(side, side), prefix_tokens=prefix)

    return [module.register_forward_hook(hook)]


register_extractor(Attention, "vit", vit_extractor)


def swin_extractor(block: SwinTransformerBlock, emit: Emit) -> list:
    """(B, H, W) attention received per position in one (shifted-)window block."""
    seen: dict = {}

    def note_grid(_mod, args):
        seen["grid"] = tuple(args[0].shape[1:3])  # the block's input is (B, H, W, C)

    def hook(attn, args, kwargs, _out):
        x, mask = args[0], kwargs.get("mask", args[1] if len(args) > 1 else None)
        windows, n, _ = x.shape
        q, k, _v = attn.qkv(x).reshape(windows, n, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
        scores = (q * attn.scale) @ k.transpose(-2, -1) + attn._get_rel_pos_bias()
        if mask is not None:  # shifted windows: -100 between pixels from different image regions
            scores = (scores.view(-1, mask.shape[0], attn.num_heads, n, n) + mask[None, :, None]).flatten(0, 1)
        received = scores.softmax(-1).mean(dim=(1, 2))  # (windows, n): per key, over heads and queries
        (h, w), (wh, ww) = seen["grid"], block.window_size
        padded = (math.ceil(h / wh) * wh, math.ceil(w / ww) * ww)
        grid = window_reverse(received.view(-1, wh, ww, 1), (wh, ww), *padded)[:, :h, :w, 0]
        if any(block.shift_size):
            grid = torch.roll(grid, shifts=tuple(block.shift_size), dims=(1, 2))
        emit("spatial", grid, grid=(h, w))

    return [block.register_forward_pre_hook(note_grid), block.attn.register_forward_hook(hook, with_kwargs=True)]


register_extractor(SwinTransformerBlock, "swin", swin_extractor)
