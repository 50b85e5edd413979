"""Channel attention: squeeze-and-excitation (SE) and efficient channel attention (ECA), timm's modules.

SE: Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018, https://arxiv.org/abs/1709.01507
ECA: Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks", CVPR 2020,
https://arxiv.org/abs/1910.03151

timm has both (`timm.layers.SEModule`, `timm.layers.EcaModule`); they are used as they are. Their channel
gates are read while recording by a forward hook on the sigmoid gate, so nothing runs when not recording.
"""

from __future__ import annotations

import torch.nn as nn
from timm.layers import EcaModule, SEModule

from medattn.attention.mechanism import Mechanism
from medattn.attention.record import Emit, gate_hook, register_extractor


def gate_extractor(module: nn.Module, emit: Emit) -> list:
    """SE / ECA: the output of `module.gate` is the (B, C) channel gate."""
    return [module.gate.register_forward_hook(gate_hook(emit, "channel"))]


register_extractor(SEModule, "se", gate_extractor)
register_extractor(EcaModule, "eca", gate_extractor)

_GATING = {"stages": "all", "where": "after_conv", "blocks": "all"}

MECHANISMS = [
    Mechanism(
        name="se", family="channel", factory=SEModule, placements=("after_conv", "stage_end"),
        default_placement=_GATING, timm_counterpart="timm.layers.SEModule",
        paper="Hu et al., Squeeze-and-Excitation Networks, CVPR 2018, arXiv:1709.01507",
        summary="global average pool -> 2-layer bottleneck MLP -> sigmoid gate per channel",
    ),
    Mechanism(
        name="eca", family="channel", factory=EcaModule, placements=("after_conv", "stage_end"),
        default_placement=_GATING, timm_counterpart="timm.layers.EcaModule",
        paper="Wang et al., ECA-Net: Efficient Channel Attention, CVPR 2020, arXiv:1910.03151",
        summary="global average pool -> 1D conv across channels (adaptive kernel) -> sigmoid gate per channel",
    ),
]
