"""U-Net building blocks: the double 3x3 convolution, the plain and timm encoders, the up-sampling step.

Ronneberger, Fischer and Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI
2015. Departures: padded convolutions (output size = input size, as every modern implementation), batch
norm after each convolution, and the number of levels and widths are parameters (`widths`), not the
paper's fixed 64..1024. The timm encoder takes a classifier's feature pyramid (`features_only=True`,
strides 2..32) and is trained from scratch here (no pretrained weights are downloaded).
"""

from __future__ import annotations

import timm
import torch
import torch.nn as nn


class ConvBlock(nn.Sequential):
    """Two 3x3 conv - BN - ReLU layers (the U-Net's unit), `in_ch` -> `out_ch` channels, same spatial size."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
        )


class PlainEncoder(nn.Module):
    """The U-Net contracting path: a ConvBlock per level, 2x2 max-pool between levels.

    Args:
        in_chans: image channels.
        widths: channels per level, finest first; the last level is the bottleneck (stride 2**(len-1)).
    """

    def __init__(self, in_chans: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.reductions = tuple(2 ** i for i in range(len(widths)))
        chans = (in_chans, *widths)
        self.levels = nn.ModuleList(ConvBlock(chans[i], chans[i + 1]) for i in range(len(widths)))
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, level in enumerate(self.levels):
            x = level(x if i == 0 else self.pool(x))
            feats.append(x)
        return feats


class TimmEncoder(nn.Module):
    """A timm backbone's feature pyramid (strides 2, 4, 8, 16, 32) as the contracting path, random init."""

    def __init__(self, name: str, in_chans: int) -> None:
        super().__init__()
        self.body = timm.create_model(name, features_only=True, pretrained=False, in_chans=in_chans)
        self.widths = tuple(self.body.feature_info.channels())
        self.reductions = tuple(self.body.feature_info.reduction())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(x))


class Up(nn.Module):
    """2x up-sampling by a transposed 2x2 convolution, `in_ch` -> `out_ch` channels (the paper's up-conv)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
