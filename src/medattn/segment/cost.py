"""A segmentation model's cost: parameters and forward FLOPs per image (torch's FlopCounterMode on the meta
device, as `medattn.models.cost.forward_flops` does for the classifiers; nothing is computed)."""

from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from medattn.data.imageset import ImageSet
from medattn.segment.unet import build_segmenter
from medattn.train.config import ModelConfig


def segmentation_cost(cfg: ModelConfig, data: ImageSet) -> dict[str, float]:
    """Params and forward FLOPs for one image of this dataset's size and channels."""
    with torch.device("meta"):
        model = build_segmenter(cfg.backbone, cfg.attention, 2, data.in_chans, data.image_size, cfg.placement,
                                **cfg.attention_kwargs).eval()
        x = torch.empty(1, data.in_chans, data.image_size, data.image_size)
    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel([SDPBackend.MATH]), torch.no_grad():
        model(x)
    return {"params": float(sum(p.numel() for p in model.parameters())), "flops": float(counter.get_total_flops())}
