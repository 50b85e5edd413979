"""Joint augmentation of an image batch and its masks: geometry on both, colour on the image only.

The image and its mask are stacked into one tensor (the mask as an extra channel), so the classifiers'
batched augmentation (`medattn.train.augment`: flips, right-angle rotations, rotation, scale and shift
folded into one affine warp per sample, reflection padding) moves both with the same per-sample matrix
in one resampling. The warped mask is bilinear and is thresholded at 0.5; brightness, contrast and
saturation then act on the image channels alone. Random draws come from the run's CPU generator, in the
same order as for the classifiers.
"""

from __future__ import annotations

import torch

from medattn.train.augment import _colour, _geometry  # the classifiers' own warp and jitter, reused as is
from medattn.train.config import AugmentConfig


def augment_pair(images: torch.Tensor, masks: torch.Tensor, cfg: AugmentConfig,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (float images in [0, 1], int64 0/1 masks) after one joint random transform per sample.

    Args:
        images: float (B, C, H, W) in [0, 1].
        masks: (B, H, W) 0/1 masks of any integer or float dtype.
        cfg: the run's augmentation settings (`strength` scales every range; `enabled: false` is a no-op).
        gen: CPU generator the random parameters are drawn from.
    """
    if not cfg.enabled or cfg.strength == 0:
        return images, masks.long()
    both = _geometry(torch.cat([images, masks[:, None].to(images.dtype)], 1), cfg, gen)
    x, m = both[:, :-1], both[:, -1]
    return _colour(x, cfg, gen).clamp_(0, 1), (m > 0.5).long()
