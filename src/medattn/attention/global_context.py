"""Global context attention: global context block (GC) and the embedded-Gaussian non-local block, timm's modules.

GC: Cao et al., "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond", ICCVW 2019,
https://arxiv.org/abs/1904.11492 (`timm.layers.GlobalContext`, default fuse by scaling).
Non-local: Wang, Girshick, Gupta, He, "Non-local Neural Networks", CVPR 2018, https://arxiv.org/abs/1711.07971
(`timm.layers.NonLocalAttn`: embedded Gaussian, 1/sqrt(C) scaled, residual with a zero-initialised BN, so a
freshly inserted block is the identity).

Maps are read by hooks while recording only: GC's softmax context weights (B, H, W) and its channel gate
(B, C); the non-local affinity softmax(theta^T phi) is recomputed from the theta/phi projections it already
computed, as one-head self-attention (B, 1, HW, HW).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import GlobalContext, NonLocalAttn

from medattn.attention.mechanism import Mechanism
from medattn.attention.record import Emit, gate_hook, register_extractor


def gc_extractor(module: GlobalContext, emit: Emit) -> list:
    """GC: context weights softmax(conv_attn(x)) over positions, and the sigmoid channel gate if it scales."""

    def context_hook(_module, _args, out):
        b, _, h, w = out.shape
        emit("spatial", out.reshape(b, h * w).softmax(-1).view(b, h, w), grid=(h, w), part="context")

    handles = []
    if module.conv_attn is not None:
        handles.append(module.conv_attn.register_forward_hook(context_hook))
    if module.mlp_scale is not None:
        handles.append(module.gate.register_forward_hook(gate_hook(emit, "channel", part="channel")))
    return handles


def nonlocal_extractor(module: NonLocalAttn, emit: Emit) -> list:
    """Non-local: the (B, 1, HW, HW) affinity softmax(scale * theta^T phi) of the pass just run."""
    seen: dict[str, torch.Tensor] = {}

    def keep(key: str):
        def hook(_module, _args, out):
            seen[key] = out

        return hook

    def affinity_hook(_module, _args, _out):
        t, p = seen.pop("t"), seen.pop("p")
        b, c, h, w = t.shape
        att = (t.reshape(b, c, -1).transpose(1, 2) @ p.reshape(b, c, -1) * module.scale).softmax(-1)
        emit("self", att[:, None], grid=(h, w), query_grid=(h, w))

    return [module.t.register_forward_hook(keep("t")), module.p.register_forward_hook(keep("p")),
            module.register_forward_hook(affinity_hook)]


register_extractor(GlobalContext, "gc", gc_extractor)
register_extractor(NonLocalAttn, "nonlocal", nonlocal_extractor)


def _nonlocal(channels: int, use_scale: bool = True, rd_ratio: float = 1 / 8, rd_channels: int | None = None,
              rd_divisor: int = 8) -> nn.Module:
    """timm's NonLocalAttn with its options spelled out (its own signature swallows unknown keywords)."""
    return NonLocalAttn(channels, use_scale=use_scale, rd_ratio=rd_ratio, rd_channels=rd_channels,
                        rd_divisor=rd_divisor)


MECHANISMS = [
    Mechanism(
        name="gc", family="context", factory=GlobalContext, placements=("after_conv", "stage_end"),
        default_placement={"stages": "all", "where": "after_conv", "blocks": "all"},
        timm_counterpart="timm.layers.GlobalContext",
        paper="Cao et al., GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond, ICCVW 2019, "
              "arXiv:1904.11492",
        summary="softmax-pooled global context -> bottleneck MLP with LayerNorm -> sigmoid channel gate",
    ),
    Mechanism(
        name="nonlocal", family="context", factory=_nonlocal, placements=("stage_end", "after_conv"),
        default_placement={"stages": "stride16", "where": "stage_end", "blocks": 1},
        timm_counterpart="timm.layers.NonLocalAttn", aliases=("nl",),
        paper="Wang et al., Non-local Neural Networks, CVPR 2018, arXiv:1711.07971",
        summary="embedded-Gaussian non-local block: every position attends to all positions, residual, "
                "zero-initialised",
    ),
]
