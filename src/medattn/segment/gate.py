"""Additive attention gate on a U-Net skip connection (Oktay et al., "Attention U-Net: Learning Where to Look
for the Pancreas", MIDL 2018, arXiv:1804.03999).

The gate computes psi = sigmoid(BN(conv1x1(relu(BN(W_g g) + BN(W_x x))))) and returns x * psi, a single
spatial map in [0, 1] per image that re-weights the skip features x using the decoder's coarser signal g.

This follows MONAI's `AttentionBlock` (monai.networks.nets.attentionunet), and gives the same output for
the same weights (tests/segment/test_gate_monai.py). Where both depart from the paper: the paper keeps g at
its coarse resolution, down-samples x with a strided 1x1 convolution (W_x without bias), and up-samples the
coefficients psi by trilinear resampling; here (as in MONAI) g is first up-sampled by the decoder's up-conv,
so the gate works at the skip's resolution and needs no resampling. Batch norm follows W_g, W_x and psi
(the paper has none inside the gate) and the paper's multi-scale deep supervision is not used.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class AttentionGate(nn.Module):
    """x * psi(g, x): an additive attention gate on skip features x, gated by decoder features g.

    Args:
        g_channels: channels of the gating signal g (the up-sampled decoder features).
        x_channels: channels of the skip features x (same spatial size as g).
        inter_channels: channels of the intermediate space (MONAI and the paper: half of x's).
    """

    def __init__(self, g_channels: int, x_channels: int, inter_channels: int | None = None) -> None:
        super().__init__()
        inter = inter_channels or max(1, x_channels // 2)
        self.w_g = nn.Sequential(nn.Conv2d(g_channels, inter, 1), nn.BatchNorm2d(inter))
        self.w_x = nn.Sequential(nn.Conv2d(x_channels, inter, 1), nn.BatchNorm2d(inter))
        self.psi = nn.Sequential(nn.Conv2d(inter, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())
        self.relu = nn.ReLU()
        self.last_map: torch.Tensor | None = None  # (B, 1, H, W) coefficients of the last forward, when recording
        self.record = False

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        psi = self.psi(self.relu(self.w_g(g) + self.w_x(x)))
        if self.record:
            self.last_map = psi.detach()
        return x * psi
