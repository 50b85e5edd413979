"""Channel + spatial attention: CBAM (timm's module) and BAM (written here; timm has no BAM).

CBAM: Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018,
https://arxiv.org/abs/1807.06521 -- channel gate then spatial gate, applied in sequence inside a block.
BAM: Park, Woo, Lee, Kweon, "BAM: Bottleneck Attention Module", BMVC 2018, https://arxiv.org/abs/1807.06514
-- channel and spatial branches computed in parallel, summed, F' = F * (1 + sigmoid(M_c(F) + M_s(F))),
placed at the bottlenecks between stages. We follow the paper's sum (the authors' code multiplies the two
branches); the channel MLP has BatchNorm as in the paper, so training needs batches of at least 2.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers.cbam import CbamModule

from medattn.attention.mechanism import Mechanism
from medattn.attention.record import Emit, gate_hook, register_extractor


def cbam_extractor(module: CbamModule, emit: Emit) -> list:
    """CBAM: the channel gate (B, C) and the spatial gate (B, H, W) are the outputs of its two sigmoids."""
    return [
        module.channel.gate.register_forward_hook(gate_hook(emit, "channel", part="channel")),
        module.spatial.gate.register_forward_hook(gate_hook(emit, "spatial", part="spatial")),
    ]


register_extractor(CbamModule, "cbam", cbam_extractor)


def _conv_bn_relu(cin: int, cout: int, kernel_size: int = 1, dilation: int = 1) -> list[nn.Module]:
    pad = dilation * (kernel_size - 1) // 2
    return [nn.Conv2d(cin, cout, kernel_size, padding=pad, dilation=dilation), nn.BatchNorm2d(cout), nn.ReLU(True)]


class BottleneckAttentionModule(nn.Module):
    """BAM: x * (1 + sigmoid(channel MLP(avgpool x) + dilated-conv spatial map(x))), a residual 3D gate.

    Args:
        channels: input (and output) channels.
        reduction: bottleneck ratio r of both branches: hidden width ``channels // reduction`` (paper: 16).
        dilation: dilation of the spatial branch's 3x3 convolutions (paper: 4).
        dilated_convs: number of dilated 3x3 convolutions in the spatial branch (paper: 2).
        min_hidden: lower bound on the hidden width for narrow layers (at most ``channels``).
    """

    def __init__(self, channels: int, reduction: int = 16, dilation: int = 4, dilated_convs: int = 2,
                 min_hidden: int = 8):
        super().__init__()
        hidden = max(channels // reduction, min(min_hidden, channels))
        self.channel_mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU(True), nn.Linear(hidden, channels))
        spatial = _conv_bn_relu(channels, hidden)
        for _ in range(dilated_convs):
            spatial += _conv_bn_relu(hidden, hidden, kernel_size=3, dilation=dilation)
        self.spatial = nn.Sequential(*spatial, nn.Conv2d(hidden, 1, 1))
        self.attention_sink: Emit | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the re-weighted feature map (same shape as `x`)."""
        channel = self.channel_mlp(x.mean(dim=(2, 3)))[:, :, None, None]
        gate = torch.sigmoid(channel + self.spatial(x))
        if self.attention_sink is not None:
            self.attention_sink("channel", gate.mean(dim=(2, 3)), part="channel")
            self.attention_sink("spatial", gate.mean(dim=1), grid=tuple(x.shape[-2:]), part="spatial")
        return x * (1 + gate)


register_extractor(BottleneckAttentionModule, "bam")

MECHANISMS = [
    Mechanism(
        name="cbam", family="channel+spatial", factory=CbamModule, placements=("after_conv", "stage_end"),
        default_placement={"stages": "all", "where": "after_conv", "blocks": "all"},
        timm_counterpart="timm.layers.CbamModule",
        paper="Woo et al., CBAM: Convolutional Block Attention Module, ECCV 2018, arXiv:1807.06521",
        summary="channel gate (avg+max pool MLP) then spatial gate (7x7 conv over channel avg/max) in sequence",
    ),
    Mechanism(
        name="bam", family="channel+spatial", factory=BottleneckAttentionModule, source="medattn",
        placements=("stage_end",), default_placement={"stages": "all_but_last", "where": "stage_end", "blocks": 1},
        paper="Park et al., BAM: Bottleneck Attention Module, BMVC 2018, arXiv:1807.06514",
        summary="parallel channel MLP and dilated-conv spatial branches, residual gate x*(1+sigmoid(sum)), "
                "between stages",
    ),
]
