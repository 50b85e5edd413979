"""Deletion and insertion AUC (Petsiuk et al., "RISE", BMVC 2018), batched over images and steps.

Pixels are ranked by saliency (ties by position). Deletion replaces the top-ranked pixels, a growing share
at a time, by a baseline image and follows the probability of the target class: a faithful map makes it
fall fast (low AUC). Insertion starts from the baseline and puts the top pixels back: a faithful map makes
it rise fast (high AUC). The AUC is the trapezoid rule over the deleted/inserted share in [0, 1] at `steps`
+ 1 points. Baseline: `blur` (Gaussian, sigma = image size / 8; RISE's insertion baseline) or `mean`
(each image's per-channel mean). Departure: RISE deletes to zero (black); both curves here use one stated
baseline so they are comparable. All (image, step) inputs are built as one tensor and scored in chunks.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from medattn.explain.spec import DEFAULT_STEPS

Baseline = Literal["blur", "mean"]


def baseline_images(x: torch.Tensor, kind: Baseline = "blur") -> torch.Tensor:
    """The image each pixel is replaced by: a strong Gaussian blur or the per-channel mean."""
    if kind == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    if kind != "blur":
        raise ValueError(f"baseline must be 'blur' or 'mean', got {kind!r}")
    from torchvision.transforms.v2.functional import gaussian_blur

    sigma = max(x.shape[-1] / 8, 1.0)
    size = int(2 * round(3 * sigma) + 1)
    size = min(size, 2 * (min(x.shape[-2:]) // 2) - 1)  # reflect padding needs kernel < 2 x size
    return gaussian_blur(x, kernel_size=[size, size], sigma=[sigma, sigma])


def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """(B, H*W) rank of every pixel, 0 = most salient (stable: ties keep row-major order)."""
    flat = maps.float().flatten(1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


def perturbation_curves(model: nn.Module, x: torch.Tensor, maps: torch.Tensor, classes: torch.Tensor,
                        steps: int = DEFAULT_STEPS, baseline: Baseline = "blur",
                        chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, steps + 1) target-class probabilities along deletion and along insertion."""
    b, _, h, w = x.shape
    base = baseline_images(x, baseline)
    ranks = pixel_ranks(maps).to(x.device)
    counts = torch.round(torch.linspace(0, h * w, steps + 1, device=x.device)).long()
    changed = (ranks[:, None, :] < counts[None, :, None]).view(b, steps + 1, 1, h, w)  # (B, S+1, 1, H, W)
    deletion = torch.where(changed, base[:, None], x[:, None])
    insertion = torch.where(changed, x[:, None], base[:, None])
    batch = torch.cat([deletion, insertion], dim=1).flatten(0, 1)  # (B * 2(S+1), C, H, W)
    batch = batch.contiguous(memory_format=torch.channels_last)  # faster CPU convolutions (runtime/memory_format.py)
    target = classes.to(x.device).repeat_interleave(2 * (steps + 1))
    probs = []
    with torch.inference_mode():
        for start in range(0, batch.shape[0], chunk):
            out = model(batch[start:start + chunk]).float().softmax(1)
            probs.append(out.gather(1, target[start:start + chunk, None])[:, 0])
    curves = torch.cat(probs).view(b, 2, steps + 1)
    return curves[:, 0], curves[:, 1]


def auc(curves: torch.Tensor) -> torch.Tensor:
    """(B,) trapezoid area under curves sampled at equal steps over [0, 1]."""
    return torch.trapezoid(curves, dx=1.0 / (curves.shape[1] - 1), dim=1)


def deletion_insertion(model: nn.Module, x: torch.Tensor, maps: torch.Tensor, classes: torch.Tensor,
                       steps: int = DEFAULT_STEPS, baseline: Baseline = "blur") -> dict[str, torch.Tensor]:
    """(B,) deletion AUC (lower is more faithful), insertion AUC (higher is more faithful) and insertion gain =
    insertion AUC - p(start image) (higher is more faithful; removes the start level, which differs by model)."""
    deletion, insertion = perturbation_curves(model, x, maps, classes, steps, baseline)
    return {"deletion_auc": auc(deletion), "insertion_auc": auc(insertion),
            "insertion_gain": auc(insertion) - insertion[:, 0]}
