"""The segmentation model registry: a U-Net (plain or timm encoder) and its named attention variants.

`build_segmenter(backbone, attention, ...)` builds one of:

- backbones (`SEG_BACKBONES`): `unet`, the plain U-Net with levels of 16, 32, 64, 128 channels (three
  2x poolings, so the image side must be divisible by 8); `unet_resnet18` / `unet_resnet34`, whose
  contracting path is the timm ResNet's feature pyramid (strides 2..32, side divisible by 32), decoded back
  to stride 2 and bilinearly up-sampled to full size.
- attentions (`SEG_ATTENTIONS`): `none`; `gate`, Oktay's attention gates on every skip (`gate.py`);
  `canet`, CA-Net-style spatial + channel + scale attention (`canet.py`); `transformer`, global MHSA on
  the deepest map (`bottleneck.py`); or any shape-keeping mechanism of the zoo (`se`, `eca`, `cbam`,
  `bam`, `gc`, `nonlocal`), placed by `placement`.

Placement of a zoo mechanism: `{where: decoder | skip | both, levels: all | [i, ...]}` (default
`{where: decoder, levels: all}`). `decoder` puts it after each decoder level's double convolution (the
classifiers' `after_conv`), `skip` on the skip features before they are concatenated; level 0 is the
finest. This replaces the classifiers' `stages`/`blocks` grammar, which names residual blocks a U-Net
decoder does not have. The zoo's conv-replacing self-attention (`mhsa`, `local`, `aa`) is refused: use
`transformer` for self-attention in a U-Net.

The output is (B, num_classes, H, W) logits (2 classes: background, lesion).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from medattn.attention.registry import create_attention, get_mechanism, mechanism_names
from medattn.errors import ModelError
from medattn.segment.blocks import ConvBlock, PlainEncoder, TimmEncoder, Up
from medattn.segment.bottleneck import TransformerBottleneck
from medattn.segment.canet import PooledChannelAttention, ScaleAttention
from medattn.segment.gate import AttentionGate


@dataclass(frozen=True)
class SegBackbone:
    """A named encoder: plain U-Net widths or a timm model name, and what it is."""

    name: str
    summary: str
    widths: tuple[int, ...] = ()
    timm_name: str | None = None


SEG_BACKBONES: dict[str, SegBackbone] = {b.name: b for b in (
    SegBackbone("unet", "U-Net (Ronneberger 2015), 4 levels of 16/32/64/128 channels, plain encoder",
                widths=(16, 32, 64, 128)),
    SegBackbone("unet_resnet18", "U-Net decoder on a timm ResNet-18 feature pyramid (random init)",
                timm_name="resnet18"),
    SegBackbone("unet_resnet34", "U-Net decoder on a timm ResNet-34 feature pyramid (random init)",
                timm_name="resnet34"),
)}
SEG_ATTENTIONS: dict[str, str] = {
    "none": "plain U-Net",
    "gate": "attention gates on the skip connections (Oktay et al. 2018; MONAI AttentionBlock)",
    "canet": "CA-Net-style spatial + channel + scale attention (Gu et al. 2021)",
    "transformer": "global MHSA on the deepest feature map (TransUNet / TransAttUnet-style)",
}
WHERE = ("decoder", "skip", "both")


def zoo_mechanisms() -> list[str]:
    """Zoo mechanisms a U-Net accepts in its decoder or skips: those that keep the feature shape."""
    return [n for n in mechanism_names() if n != "none" and not get_mechanism(n).context]


def segmentation_attentions() -> list[str]:
    """Every attention name `build_segmenter` accepts."""
    return [*SEG_ATTENTIONS, *zoo_mechanisms()]


class SegmentationUNet(nn.Module):
    """A U-Net with optional attention; forward returns (B, num_classes, H, W) logits.

    Args:
        backbone: a `SEG_BACKBONES` name.
        attention: a `segmentation_attentions()` name.
        num_classes: output channels (2: background, lesion).
        in_chans: image channels.
        image_size: the side the model is built for (the transformer's position embedding).
        placement: where a zoo mechanism goes ({where, levels}); None: its default.
        **attention_kwargs: options of the zoo mechanism (checked by the attention registry).
    """

    def __init__(self, backbone: str = "unet", attention: str = "none", num_classes: int = 2, in_chans: int = 3,
                 image_size: int = 64, placement: dict | None = None, **attention_kwargs: Any) -> None:
        super().__init__()
        spec = _backbone(backbone)
        _check_attention(attention, placement, attention_kwargs)
        self.encoder = PlainEncoder(in_chans, spec.widths) if spec.timm_name is None else TimmEncoder(
            spec.timm_name, in_chans)
        _check_size(image_size, self.encoder.reductions[-1], backbone)
        widths = self.encoder.widths
        self.attention, self.num_classes = attention, num_classes
        self.medattn_spec = {"backbone": backbone, "attention": attention, "placement": placement,
                             "image_size": image_size, "stem": "unet"}
        deep = widths[-1]
        if attention == "transformer":
            side = image_size // self.encoder.reductions[-1]
            self.bottleneck: nn.Module = TransformerBottleneck(deep, (side, side))
        elif attention == "canet":
            self.bottleneck = create_attention("nonlocal", deep)
        else:
            self.bottleneck = nn.Identity()
        levels = range(len(widths) - 2, -1, -1)  # decoder levels, coarse to fine (level 0 is the finest)
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i]) for i in levels)
        self.gates = nn.ModuleList(AttentionGate(widths[i], widths[i]) if attention in ("gate", "canet")
                                   else nn.Identity() for i in levels)
        self.channel = nn.ModuleList(PooledChannelAttention(2 * widths[i]) if attention == "canet"
                                     else nn.Identity() for i in levels)
        self.blocks = nn.ModuleList(ConvBlock(2 * widths[i], widths[i]) for i in levels)
        where, chosen = _zoo_places(attention, placement, len(widths) - 1)
        self.skip_attn = nn.ModuleList(_zoo(attention, widths[i], attention_kwargs, where in ("skip", "both")
                                            and i in chosen) for i in levels)
        self.dec_attn = nn.ModuleList(_zoo(attention, widths[i], attention_kwargs, where in ("decoder", "both")
                                           and i in chosen) for i in levels)
        self.scale = ScaleAttention(tuple(widths[i] for i in levels)) if attention == "canet" else None
        head_in = self.scale.out_channels if self.scale is not None else widths[0]
        self.head = nn.Conv2d(head_in, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        feats = self.encoder(x)
        y = self.bottleneck(feats[-1])
        outs = []
        for k, i in enumerate(range(len(feats) - 2, -1, -1)):
            up = self.ups[k](y)
            skip = self.skip_attn[k](self.gates[k](up, feats[i]) if isinstance(self.gates[k], AttentionGate)
                                     else feats[i])
            y = self.dec_attn[k](self.blocks[k](self.channel[k](torch.cat([skip, up], 1))))
            outs.append(y)
        if self.scale is not None:
            y = self.scale(outs, tuple(y.shape[-2:]))
        logits = self.head(y)
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits


def build_segmenter(backbone: str = "unet", attention: str = "none", num_classes: int = 2, in_chans: int = 3,
                    image_size: int = 64, placement: dict | None = None, **attention_kwargs: Any) -> SegmentationUNet:
    """Return the untrained segmentation network a (backbone, attention, placement) names; ModelError if not."""
    return SegmentationUNet(backbone, attention, num_classes, in_chans, image_size, placement, **attention_kwargs)


def set_recording(model: nn.Module, on: bool = True) -> None:
    """Make every attention gate and scale attention keep its last map (`last_map`) during forward."""
    for m in model.modules():
        if isinstance(m, (AttentionGate, ScaleAttention)):
            m.record, m.last_map = on, None


def gate_maps(model: nn.Module, size: tuple[int, int]) -> torch.Tensor:
    """The recorded gate maps (B, n_gates, H, W) resized to `size`, finest gate last; recording must be on."""
    maps = [m.last_map for m in model.modules() if isinstance(m, AttentionGate) and m.last_map is not None]
    if not maps:
        raise ModelError("no attention-gate maps were recorded; use attention 'gate' or 'canet' and set_recording")
    return torch.cat([F.interpolate(m.float(), size=size, mode="bilinear", align_corners=False) for m in maps], 1)


def _backbone(name: str) -> SegBackbone:
    if name not in SEG_BACKBONES:
        raise ModelError(f"unknown segmentation backbone '{name}'; use one of {', '.join(SEG_BACKBONES)}")
    return SEG_BACKBONES[name]


def _check_attention(attention: str, placement: dict | None, kwargs: dict) -> None:
    if attention in SEG_ATTENTIONS:
        if placement is not None or kwargs:
            raise ModelError(f"segmentation attention '{attention}' takes no placement or options; remove them")
        return
    if attention not in mechanism_names():
        raise ModelError(f"unknown segmentation attention '{attention}'; use one of "
                         f"{', '.join(segmentation_attentions())}")
    if get_mechanism(attention).context:
        raise ModelError(f"attention '{attention}' replaces a convolution and has no place in a U-Net decoder; "
                         f"use 'transformer' (self-attention at the bottleneck) or one of "
                         f"{', '.join(zoo_mechanisms())}")


def _zoo_places(attention: str, placement: dict | None, n_levels: int) -> tuple[str, set[int]]:
    """(where, levels) of a zoo mechanism; ModelError naming the placement key for a bad one."""
    if attention in SEG_ATTENTIONS:
        return "none", set()
    placement = dict(placement or {})
    unknown = sorted(set(placement) - {"where", "levels"})
    if unknown:
        raise ModelError(f"unknown placement key(s) {', '.join(unknown)} for a U-Net; use where "
                         f"({'|'.join(WHERE)}) and levels (all or a list of 0..{n_levels - 1})")
    where = placement.get("where", "decoder")
    if where not in WHERE:
        raise ModelError(f"placement where='{where}' for a U-Net; use one of {', '.join(WHERE)}")
    levels = placement.get("levels", "all")
    chosen = set(range(n_levels)) if levels == "all" else set(levels if isinstance(levels, list) else [levels])
    bad = sorted(str(i) for i in chosen if not isinstance(i, int) or not 0 <= i < n_levels)
    if bad:
        raise ModelError(f"placement levels {', '.join(bad)} out of range; this U-Net has decoder levels "
                         f"0..{n_levels - 1} (0 is the finest)")
    return where, chosen


def _zoo(attention: str, channels: int, kwargs: dict, here: bool) -> nn.Module:
    return (create_attention(attention, channels, **kwargs) or nn.Identity()) if here else nn.Identity()


def _check_size(image_size: int, stride: int, backbone: str) -> None:
    if image_size % stride:
        raise ModelError(f"image size {image_size} is not divisible by {stride}, the deepest stride of "
                         f"'{backbone}'; resize the images (size= in the dataset spec) to a multiple of {stride}")
