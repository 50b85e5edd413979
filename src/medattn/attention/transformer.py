"""Self-attention of the ViT baseline (timm's `Attention`), recorded for comparison with the CNN mechanisms.

Paper: Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
ICLR 2021, https://arxiv.org/abs/2010.11929; DeiT: Touvron et al., ICML 2021, https://arxiv.org/abs/2012.12877.
timm computes attention with a fused kernel and keeps no weights, so while recording (only) a forward hook
recomputes softmax(q k^T * scale) from the block's own qkv projection and q/k norms. Swin's windowed maps
are not recorded.
"""

from __future__ import annotations

import math

from timm.layers import Attention

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
