"""Per-image segmentation scores, batched: Dice, IoU, HD95 and average symmetric surface distance (ASD).

Definitions are MONAI's (`DiceMetric`, `MeanIoU`, `HausdorffDistanceMetric(percentile=95)`,
`SurfaceDistanceMetric(symmetric=True)`, 2-D, unit pixel spacing, foreground channel only), computed for a
whole stack of masks at once instead of MONAI's loop over images; tests/segment/test_seg_metrics.py checks
equality with MONAI on random masks and hand-computed small cases. Surface pixels are the mask minus its
binary erosion (4-connected cross, outside the image counts as background, as MONAI's crop with margin 1);
distances are Euclidean, from each surface pixel of one mask to the nearest surface pixel of the other.
HD95 is the larger of the two directed 95th percentiles (linear interpolation, as torch.quantile); ASD is
the mean of both directions' distances pooled.

Empty masks, stated (MONAI leaves the distances undefined, nan or inf, with a warning):

- Dice and IoU: prediction and truth both empty score 1; exactly one empty scores 0 (MONAI's
  `ignore_empty=False`). So a model predicting the empty mask everywhere scores the share of empty truths.
- HD95 and ASD, in pixels: both empty score 0; exactly one empty scores the image diagonal
  sqrt(H^2 + W^2), the largest distance two pixels can have, so a missed or hallucinated lesion counts as
  the worst boundary error instead of dropping out of the mean (the fixed worst value challenges such as
  BraTS assign).

Every image counts once in a mean, whatever its lesion size (the per-size-bin table of the report shows
small lesions separately). Calibration of the foreground probability is the binary ECE over pixels
(15 equal-width bins of p, |mean p - lesion rate| weighted by bin size; Guo et al. 2017, binary form).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import binary_erosion, distance_transform_edt

SCORES = ("dice", "iou", "hd95", "asd")
_CROSS = np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], dtype=bool)  # 2-D cross, no reach across images


def _as_bool(masks: torch.Tensor | np.ndarray) -> np.ndarray:
    arr = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if arr.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {arr.shape}")
    return arr.astype(bool)


def overlap_scores(pred: torch.Tensor | np.ndarray, truth: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """Per-image Dice and IoU of two (N, H, W) binary stacks (both empty: 1; one empty: 0)."""
    p, t = _as_bool(pred), _as_bool(truth)
    inter = (p & t).sum((1, 2)).astype(np.float64)
    sp, st = p.sum((1, 2)).astype(np.float64), t.sum((1, 2)).astype(np.float64)
    union = sp + st - inter
    empty = (sp + st) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(empty, 1.0, 2 * inter / (sp + st))
        iou = np.where(empty, 1.0, inter / union)
    return {"dice": dice, "iou": iou}


def surfaces(masks: np.ndarray) -> np.ndarray:
    """Surface pixels (mask minus its 4-connected erosion) of a (N, H, W) bool stack."""
    return masks & ~binary_erosion(masks, structure=_CROSS, border_value=0)


def _directed(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances from every surface pixel in `src` to the nearest in `dst` (same image), and their image ids."""
    far = 10.0 * (src.shape[1] + src.shape[2])  # an image spacing no in-image distance reaches
    dist = distance_transform_edt(~dst, sampling=(far, 1.0, 1.0))
    ids = np.nonzero(src)[0]
    return dist[src], ids


def _grouped_quantile(values: np.ndarray, ids: np.ndarray, n: int, q: float) -> np.ndarray:
    """Per-group q-quantile (linear interpolation) of `values` grouped by `ids` in 0..n-1 (nan for empty)."""
    order = np.lexsort((values, ids))
    v = values[order]
    counts = np.bincount(ids, minlength=n)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = q * np.maximum(counts - 1, 0)
    lo, hi = np.floor(pos).astype(int), np.ceil(pos).astype(int)
    out = np.full(n, np.nan)
    has = counts > 0
    a, b = v[(start + lo)[has]], v[(start + hi)[has]]
    out[has] = a + (b - a) * (pos - lo)[has]
    return out


def distance_scores(pred: torch.Tensor | np.ndarray, truth: torch.Tensor | np.ndarray,
                    percentile: float = 95.0) -> dict[str, np.ndarray]:
    """Per-image HD95 and ASD in pixels of two (N, H, W) binary stacks (empty cases as the module states)."""
    p, t = _as_bool(pred), _as_bool(truth)
    n, h, w = p.shape
    ep, et = surfaces(p), surfaces(t)
    d_pt, id_pt = _directed(ep, et)
    d_tp, id_tp = _directed(et, ep)
    hd = np.fmax(_grouped_quantile(d_pt, id_pt, n, percentile / 100), _grouped_quantile(d_tp, id_tp, n,
                                                                                        percentile / 100))
    total = np.bincount(id_pt, weights=d_pt, minlength=n) + np.bincount(id_tp, weights=d_tp, minlength=n)
    count = np.bincount(id_pt, minlength=n) + np.bincount(id_tp, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        asd = total / count
    has_p, has_t = p.any((1, 2)), t.any((1, 2))
    diagonal = float(np.hypot(h, w))
    for arr in (hd, asd):
        arr[~has_p & ~has_t] = 0.0
        arr[has_p != has_t] = diagonal
    return {"hd95": hd, "asd": asd}


def segmentation_scores(pred: torch.Tensor | np.ndarray, truth: torch.Tensor | np.ndarray,
                        distances: bool = True) -> dict[str, np.ndarray]:
    """Per-image dice, iou (and hd95, asd when `distances`) plus truth and predicted lesion area fractions."""
    p, t = _as_bool(pred), _as_bool(truth)
    out = overlap_scores(p, t)
    if distances:
        out.update(distance_scores(p, t))
    out["area"] = t.mean((1, 2))
    out["pred_area"] = p.mean((1, 2))
    return out


def foreground_ece(prob: np.ndarray, truth: np.ndarray, bins: int = 15) -> float:
    """Binary ECE of pixel foreground probabilities against 0/1 truth (equal-width bins)."""
    p, y = np.asarray(prob, dtype=np.float64).ravel(), np.asarray(truth, dtype=np.float64).ravel()
    if p.size == 0:
        return float("nan")
    which = np.minimum((p * bins).astype(int), bins - 1)
    n = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, weights=p, minlength=bins) - np.bincount(which, weights=y, minlength=bins))
    return float(gap.sum() / p.size) if n.sum() else float("nan")
