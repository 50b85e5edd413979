"""Localisation of saliency against a mask, batched over maps: energy share, pointing game, top-k IoU.

Energy inside the mask: the share of the map's total saliency that falls on the mask (the "energy-based
pointing game" of Score-CAM, Wang et al. 2020; Quantus' `AttributionLocalisation` weighted share).
Pointing game: Zhang et al., "Top-down Neural Attention by Excitation Backprop", IJCV 2018: a hit when the
map's maximum lies within `tolerance` pixels of the mask (the mask dilated by a square of that radius). Ties:
Quantus' `PointingGame` semantics, a hit when *any* pixel equal to the maximum lies in the (dilated) mask, so a
plateau made by upsampling a coarse grid counts as pointing at the whole plateau (with tolerance 0 this equals
Quantus exactly, tests/explain/test_quantus_agreement.py). Departure: a constant map (every pixel a maximum)
scores NaN here, where Quantus scores a hit; it points nowhere, and the NaN is counted in the report.
IoU of the top-k %: the `top_fraction` highest pixels
(exactly k = round(fraction x H x W), ties broken by position) against the mask.
Each metric has the value a uniform (uninformative) map would score, from the mask alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medattn.explain.spec import DEFAULT_TOLERANCE, DEFAULT_TOP_FRACTION


def energy_inside(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(M,) share of each map's total saliency inside its mask (NaN for an all-zero map)."""
    maps, masks = maps.float().flatten(1), masks.float().flatten(1)
    total = maps.sum(1)
    return torch.where(total > 0, (maps * masks).sum(1) / total.clamp_min(1e-12), torch.nan)


def dilate(masks: torch.Tensor, tolerance: int) -> torch.Tensor:
    """Masks grown by `tolerance` pixels in every direction (square structuring element)."""
    if tolerance <= 0:
        return masks.float()
    k = 2 * tolerance + 1
    return F.max_pool2d(masks.float()[:, None], kernel_size=k, stride=1, padding=tolerance)[:, 0]


def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance: int = DEFAULT_TOLERANCE) -> torch.Tensor:
    """(M,) 1.0 where any maximum of the map lies within `tolerance` pixels of the mask, else 0.0; NaN for a
    constant map."""
    flat = maps.float().flatten(1)
    high, low = flat.max(1, keepdim=True).values, flat.min(1).values
    peaks = flat == high
    hit = (peaks & (dilate(masks, tolerance).flatten(1) > 0)).any(1).float()
    return torch.where(high[:, 0] > low, hit, torch.nan)


def top_region(maps: torch.Tensor, fraction: float) -> torch.Tensor:
    """(M, H, W) 0/1 region of the round(fraction x H x W) highest pixels of each map."""
    flat = maps.float().flatten(1)
    k = max(1, round(fraction * flat.shape[1]))
    top = flat.topk(k, dim=1).indices
    return torch.zeros_like(flat).scatter_(1, top, 1.0).view_as(maps)


def top_iou(maps: torch.Tensor, masks: torch.Tensor, fraction: float = DEFAULT_TOP_FRACTION) -> torch.Tensor:
    """(M,) IoU of each map's top-`fraction` region with its mask."""
    region, masks = top_region(maps, fraction).flatten(1), masks.float().flatten(1)
    inter = (region * masks).sum(1)
    union = region.sum(1) + masks.sum(1) - inter
    return inter / union.clamp_min(1)


def uniform_baselines(masks: torch.Tensor, tolerance: int = DEFAULT_TOLERANCE,
                      fraction: float = DEFAULT_TOP_FRACTION) -> dict[str, torch.Tensor]:
    """Per mask, what an uninformative map scores on average: energy = area share (a constant map), pointing =
    dilated area share (a peak at a uniformly random pixel; a literal constant map is NaN, see pointing_game),
    IoU = expected intersection over union of a random top-k region."""
    flat = masks.float().flatten(1)
    n = flat.shape[1]
    area = flat.mean(1)
    k = max(1, round(fraction * n)) / n
    inter = k * area
    return {"energy": area, "pointing": dilate(masks, tolerance).flatten(1).mean(1),
            "iou": inter / (k + area - inter).clamp_min(1e-12)}


def localisation_scores(maps: torch.Tensor, masks: torch.Tensor, tolerance: int = DEFAULT_TOLERANCE,
                        fraction: float = DEFAULT_TOP_FRACTION) -> dict[str, torch.Tensor]:
    """Energy, pointing hit and top-k IoU per map, with each metric's uniform-map baseline (`*_baseline`)."""
    scores = {"energy": energy_inside(maps, masks), "pointing": pointing_game(maps, masks, tolerance),
              "iou": top_iou(maps, masks, fraction)}
    for name, value in uniform_baselines(masks, tolerance, fraction).items():
        scores[f"{name}_baseline"] = value
    return scores
