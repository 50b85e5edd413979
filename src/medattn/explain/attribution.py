"""Pixel-resolution attributions from Captum: Integrated Gradients, batched.

Sundararajan et al., "Axiomatic Attribution for Deep Networks", ICML 2017, computed with Captum's
`IntegratedGradients` (Kokhlikyan et al., 2020). A CAM is as coarse as its layer's grid (2 x 2 to 5 x 5 at the
quickstart's 40 px), so small images need a method that can put saliency on single pixels.
Choices (stated, not the paper's only option): the baseline is the all-zero *normalised* image, i.e. the
training set's mean colour (the paper's black image is off-distribution after normalisation); `steps` = 16
Gauss-Legendre points (Captum's default rule), all images and steps of a chunk in one batch
(`internal_batch_size`); the map is the absolute attribution summed over colour channels, min-max scaled per
image to [0, 1] like the CAMs (a pixel that pushes against the class is still a pixel the model uses).
"""

from __future__ import annotations

import torch
import torch.nn as nn

DEFAULT_IG_STEPS = 16


def integrated_gradients(model: nn.Module, x: torch.Tensor, classes: torch.Tensor,
                         steps: int = DEFAULT_IG_STEPS) -> torch.Tensor:
    """(B, H, W) |IG| summed over channels, min-max scaled per image (baseline: the zero normalised image)."""
    from captum.attr import IntegratedGradients

    with torch.enable_grad():
        attr = IntegratedGradients(model).attribute(
            x.detach().float(), baselines=torch.zeros_like(x, dtype=torch.float32),
            target=classes.to(x.device).long(), n_steps=steps, internal_batch_size=x.shape[0] * steps)
    maps = attr.abs().sum(1)
    low = maps.flatten(1).min(1).values.view(-1, 1, 1)
    high = maps.flatten(1).max(1).values.view(-1, 1, 1)
    return ((maps - low) / (high - low).clamp_min(1e-12)).detach()


PIXEL_METHODS = {"intgrad": ("Integrated Gradients", "Sundararajan et al., ICML 2017 (Captum)",
                             integrated_gradients)}
