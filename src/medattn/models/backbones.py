"""Backbones: timm CNNs with named stages and attention slots, and ViT / Swin baselines sized from the image.

A CNN adapter knows, for its architecture, the list of stages (each an nn.Sequential of blocks), where a
gating module sits in a block (`after_conv`: on the residual branch after its last convolution, before the
addition), which convolution is the block's spatial one (`replace_3x3`), and how to build the stride-1 and
stride-2 stems for small images (which stem a size gets is medattn.models.stem's policy). Transformers are
built by timm with patch (and window) sizes chosen from the image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import timm
import torch.nn as nn

from medattn.errors import ModelError
from medattn.models.stem import SMALL_IMAGE, resolve_stem

__all__ = ["SMALL_IMAGE", "BACKBONES", "get_backbone"]


class CnnAdapter:
    """How medattn reaches into one timm CNN family; subclasses fill in the architecture-specific parts."""

    timm_name: str = ""
    stride16_stage: int = 3  # 1-based stage whose output has stride 16 with the standard stem

    def create(self, num_classes: int, in_chans: int, drop_rate: float) -> nn.Module:
        """The plain timm model (no attention, untrained)."""
        return timm.create_model(self.timm_name, pretrained=False, num_classes=num_classes, in_chans=in_chans,
                                 drop_rate=drop_rate, **self.create_kwargs())

    def create_kwargs(self) -> dict:
        """Extra timm.create_model arguments for the plain model."""
        return {}

    def stages(self, model: nn.Module) -> list[nn.Sequential]:
        """The stages in order, each a Sequential of blocks (stage-end modules are appended to it)."""
        raise NotImplementedError

    def conv_name(self, block: nn.Module) -> str:
        """Attribute name of the block's spatial (k x k) convolution."""
        raise NotImplementedError

    def gate_channels(self, block: nn.Module) -> int:
        """Channels of the feature map a gate inserted `after_conv` sees."""
        raise NotImplementedError

    def set_gate(self, block: nn.Module, module: nn.Module) -> None:
        """Insert `module` on the block's residual branch after its convolutions."""
        raise NotImplementedError

    def out_channels(self, block: nn.Module) -> int:
        """Channels of the block's output (what a stage-end module sees)."""
        raise NotImplementedError

    def gate_defaults(self, mechanism: str, block: nn.Module) -> dict:
        """Options this architecture uses by default for a gating mechanism (the user's options win)."""
        return {}

    def shrink_stem(self, model: nn.Module, in_chans: int) -> None:
        """Replace the stride-4 stem by a stride-1 3x3 conv so 28-64 px images keep spatial detail."""
        raise NotImplementedError

    def stride2_stem(self, model: nn.Module, in_chans: int) -> None:
        """Make the stem downsample by 2 only (the standard stem of a stride-2-stem family is left as is)."""
        raise NotImplementedError

    def apply_stem(self, model: nn.Module, in_chans: int, stem: str) -> None:
        """Give the model the stem `stem` (see medattn.models.stem): s1, s2 or standard."""
        if stem == "s1":
            self.shrink_stem(model, in_chans)
        elif stem == "s2":
            self.stride2_stem(model, in_chans)


class ResNetAdapter(CnnAdapter):
    """timm ResNet (BasicBlock / Bottleneck): gate at `block.se`, spatial conv `conv2`."""

    def __init__(self, timm_name: str):
        self.timm_name = timm_name

    def stages(self, model: nn.Module) -> list[nn.Sequential]:
        return [model.layer1, model.layer2, model.layer3, model.layer4]

    def conv_name(self, block: nn.Module) -> str:
        return "conv2"

    def gate_channels(self, block: nn.Module) -> int:
        return self.out_channels(block)

    def out_channels(self, block: nn.Module) -> int:
        return (block.conv3 if hasattr(block, "conv3") else block.conv2).out_channels

    def set_gate(self, block: nn.Module, module: nn.Module) -> None:
        block.se = module

    def shrink_stem(self, model: nn.Module, in_chans: int) -> None:
        out = model.conv1.out_channels
        model.conv1 = nn.Conv2d(in_chans, out, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()

    def stride2_stem(self, model: nn.Module, in_chans: int) -> None:
        model.maxpool = nn.Identity()  # the 7x7 stride-2 convolution stays


class EfficientNetAdapter(CnnAdapter):
    """timm EfficientNet: gate at `block.se` (after the depthwise conv), spatial conv `conv_dw`."""

    timm_name = "efficientnet_b0"
    stride16_stage = 5

    def create(self, num_classes: int, in_chans: int, drop_rate: float) -> nn.Module:
        """EfficientNet-B0 without its squeeze-and-excitation (attention 'se' puts EfficientNet's own back).

        timm reads `se_layer=None` as "the default SE", so the SE modules are removed after creation.
        """
        model = super().create(num_classes, in_chans, drop_rate)
        for stage in self.stages(model):
            for block in stage:
                block.se = nn.Identity()
        return model

    def stages(self, model: nn.Module) -> list[nn.Sequential]:
        return list(model.blocks)

    def conv_name(self, block: nn.Module) -> str:
        return "conv_dw"

    def gate_channels(self, block: nn.Module) -> int:
        return block.conv_dw.out_channels

    def out_channels(self, block: nn.Module) -> int:
        return (block.conv_pwl if hasattr(block, "conv_pwl") else block.conv_pw).out_channels

    def set_gate(self, block: nn.Module, module: nn.Module) -> None:
        block.se = module

    def gate_defaults(self, mechanism: str, block: nn.Module) -> dict:
        if mechanism != "se":
            return {}
        block_in = (block.conv_pw if hasattr(block, "conv_pwl") else block.conv_dw).in_channels
        return {"rd_channels": round(block_in * 0.25), "act_layer": "silu"}  # EfficientNet-B0's own SE

    def shrink_stem(self, model: nn.Module, in_chans: int) -> None:
        out = model.conv_stem.out_channels
        model.conv_stem = nn.Conv2d(in_chans, out, kernel_size=3, stride=1, padding=1, bias=False)

    def stride2_stem(self, model: nn.Module, in_chans: int) -> None:
        return None  # EfficientNet's own stem is a stride-2 3x3 convolution


class ConvNeXtAdapter(CnnAdapter):
    """timm ConvNeXt: gate before the drop-path of the residual branch, spatial conv `conv_dw` (7x7 dw)."""

    def __init__(self, timm_name: str):
        self.timm_name = timm_name

    def stages(self, model: nn.Module) -> list[nn.Sequential]:
        return [stage.blocks for stage in model.stages]

    def conv_name(self, block: nn.Module) -> str:
        return "conv_dw"

    def gate_channels(self, block: nn.Module) -> int:
        return block.conv_dw.out_channels

    def out_channels(self, block: nn.Module) -> int:
        return block.conv_dw.out_channels

    def set_gate(self, block: nn.Module, module: nn.Module) -> None:
        block.drop_path = nn.Sequential(module, block.drop_path)

    def shrink_stem(self, model: nn.Module, in_chans: int) -> None:
        out = model.stem[0].out_channels
        model.stem[0] = nn.Conv2d(in_chans, out, kernel_size=3, stride=1, padding=1)

    def stride2_stem(self, model: nn.Module, in_chans: int) -> None:
        out = model.stem[0].out_channels
        model.stem[0] = nn.Conv2d(in_chans, out, kernel_size=2, stride=2)  # patchify 2x2 instead of 4x4


def _pow2_floor(n: int, low: int, high: int) -> int:
    p = low
    while p * 2 <= min(n, high):
        p *= 2
    return p


def vit_patch_size(image_size: int) -> int:
    """Patch size giving a 14-28 token grid side: 16 at 224 px, 4 at 64 px, 2 at 28 px."""
    return _pow2_floor(image_size // 14, 1, 16)


def swin_geometry(image_size: int) -> tuple[int, int]:
    """(patch size, window size) for Swin: 4/7 at 224 px, 2/8 at 64 px, 1/7 at 28 px."""
    patch = _pow2_floor(image_size // 32, 1, 4)
    grid = image_size // patch
    return patch, 7 if grid % 7 == 0 else 8 if grid % 8 == 0 else 7


@dataclass(frozen=True)
class Backbone:
    """A registered backbone: a CNN with attention slots, or a transformer baseline (attention 'none' only)."""

    name: str
    kind: str  # 'cnn' | 'transformer'
    timm_name: str
    summary: str
    adapter: CnnAdapter | None = None

    def create(self, num_classes: int, in_chans: int, image_size: int, drop_rate: float,
               small_stem: bool | None, stem: str = "auto") -> nn.Module:
        """The plain network for this image size, CNNs with the stem `resolve_stem` picks (models/stem.py)."""
        if self.adapter is None:
            return _create_transformer(self.name, num_classes, in_chans, image_size, drop_rate)
        model = self.adapter.create(num_classes, in_chans, drop_rate)
        self.adapter.apply_stem(model, in_chans, resolve_stem(image_size, small_stem, stem))
        return model


def _create_transformer(name: str, num_classes: int, in_chans: int, image_size: int,
                        drop_rate: float) -> nn.Module:
    common = dict(pretrained=False, num_classes=num_classes, in_chans=in_chans, img_size=image_size,
                  drop_rate=drop_rate)
    if name == "vit_tiny":
        return timm.create_model("vit_tiny_patch16_224", patch_size=vit_patch_size(image_size), **common)
    patch, window = swin_geometry(image_size)
    return timm.create_model("swin_tiny_patch4_window7_224", patch_size=patch, window_size=window, **common)


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in [
        Backbone("resnet18", "cnn", "resnet18", "ResNet-18, basic blocks, 4 stages", ResNetAdapter("resnet18")),
        Backbone("resnet50", "cnn", "resnet50", "ResNet-50, bottleneck blocks, 4 stages", ResNetAdapter("resnet50")),
        Backbone("efficientnet_b0", "cnn", "efficientnet_b0",
                 "EfficientNet-B0 without its SE (attention 'se' restores it), 7 stages", EfficientNetAdapter()),
        Backbone("convnext_atto", "cnn", "convnext_atto", "ConvNeXt-Atto (3.7M params), 4 stages",
                 ConvNeXtAdapter("convnext_atto")),
        Backbone("vit_tiny", "transformer", "vit_tiny_patch16_224",
                 "ViT-Tiny / DeiT-Tiny (192 wide, 12 deep, 3 heads); patch size from the image size"),
        Backbone("swin_tiny", "transformer", "swin_tiny_patch4_window7_224",
                 "Swin-T (hierarchical, shifted windows); patch and window size from the image size"),
    ]
}


def get_backbone(name: str) -> Backbone:
    """The registered backbone `name`; ModelError listing the choices otherwise."""
    if name not in BACKBONES:
        raise ModelError(f"unknown backbone '{name}'; use one of {', '.join(BACKBONES)}")
    return BACKBONES[name]
