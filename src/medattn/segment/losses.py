"""The segmentation loss: soft Dice plus cross-entropy, from MONAI (`monai.losses.DiceCELoss`).

Milletari et al. 2016 (V-Net, soft Dice) plus pixel cross-entropy, the default of nnU-Net (Isensee et al.
2021). Two output channels (background, lesion), softmax; the Dice term covers the lesion channel only
(`include_background=False`) and is computed per image (`batch=False`) and averaged, so every image weighs
the same whatever its lesion size. An image whose truth is empty gets Dice loss 1 - 1e-5 / (sum p + 1e-5):
about 0 when the model predicts no lesion there, up to 1 when it predicts one, so empty masks push the
prediction towards empty rather than being skipped. Cross-entropy weighs every pixel equally.
"""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss


def dice_ce_loss(dice_weight: float = 1.0, ce_weight: float = 1.0) -> torch.nn.Module:
    """MONAI's DiceCELoss for (B, 2, H, W) logits and (B, 1, H, W) integer 0/1 targets."""
    return DiceCELoss(include_background=False, to_onehot_y=True, softmax=True, batch=False,
                      lambda_dice=dice_weight, lambda_ce=ce_weight)
