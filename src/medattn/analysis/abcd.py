"""ABCD-rule lesion features from a binary lesion mask and the image, vectorised over images (torch, chunked).

The ABCD rule of dermoscopy (Stolz et al., "ABCD rule of dermatoscopy", Eur. J. Dermatol. 1994) scores
Asymmetry, Border, Colour and Differential structures; automated versions measure shape and colour from a
segmentation (e.g. Kasmi and Mokrani, "Classification of malignant melanoma and benign skin lesions:
implementation of automatic ABCD rule", IET Image Processing 10(6), 2016). Here, per image:

- `asymmetry`: the lesion reflected about each of its two principal axes (through the centroid, from the
  second central moments); per axis the non-overlapping area |M xor R(M)| / (2 |M|) in [0, 1]; the mean of the
  two axes. 0 for a shape symmetric about both axes (up to pixel rounding).
- `border_compactness`: P^2 / (4 pi A), 1 for a disc and larger for ragged outlines; the perimeter P is the
  4-direction Cauchy-Crofton estimate (pi / 8)(N_h + N_v + (N_d1 + N_d2) / sqrt 2) from the counts of mask
  transitions along rows, columns and both diagonals (unbiased for a disc, where it gives 2 pi r).
- `colour_count`: how many of the six ABCD colours (white, red, light brown, dark brown, blue-grey, black)
  cover at least `COLOUR_MIN_SHARE` of the lesion. Reference colours in normalised RGB are those of Kasmi and
  Mokrani 2016 (white (1, 1, 1), red (0.8, 0.2, 0.2), light brown (0.6, 0.4, 0), dark brown (0.2, 0, 0),
  blue-grey (0.2, 0.6, 0.6), black (0, 0, 0)). A lesion pixel takes its nearest reference colour when it lies
  within Euclidean distance `COLOUR_MAX_DISTANCE` of it; the distance threshold (0.4) and the 5 % share are
  this module's choices (the paper's thresholds are tuned to its own images), stated here so results can be
  compared. No colour constancy correction is applied, so the counts depend on the camera's white balance.
- `diameter_px`: the maximum Feret diameter in pixels at the loaded image size: the largest extent of the
  pixel centres over 64 directions, plus one pixel (error below 0.2 % from the direction grid).

Images without any lesion pixel get NaN for every feature. Departure from clinical practice: the lesion is
seen at the model's input size (after the loader's resize, which stretches non-square images), so diameters are
in those pixels, not mm. How far that moves the features from the masks' stored resolution is measured by
`bench/abcd_native.py` on HAM10000 (Spearman per feature, time per image); a mask that touches the image edge
(`touches_edge`) is cut off by the frame, so its shape features describe the visible part only.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

ABCD_FEATURES = ("asymmetry", "border_compactness", "colour_count", "diameter_px")
COLOURS = {"white": (1.0, 1.0, 1.0), "red": (0.8, 0.2, 0.2), "light_brown": (0.6, 0.4, 0.0),
           "dark_brown": (0.2, 0.0, 0.0), "blue_grey": (0.2, 0.6, 0.6), "black": (0.0, 0.0, 0.0)}
COLOUR_MAX_DISTANCE = 0.4
COLOUR_MIN_SHARE = 0.05
FERET_DIRECTIONS = 64
CACHE_NAME = "abcd-v1.csv"
CHUNK = 256  # masks per batch: all 10,015 HAM10000 masks at once ran 2-4x slower (bench/features.py)


def abcd_features(masks: torch.Tensor | np.ndarray, images: torch.Tensor | np.ndarray | None = None,
                  chunk: int = CHUNK) -> pd.DataFrame:
    """A table with one row per image: asymmetry, border_compactness, colour_count, diameter_px (NaN: empty mask)."""
    masks = torch.as_tensor(masks)
    parts = []
    for start in range(0, masks.shape[0], chunk):
        m = (masks[start:start + chunk] > 0).float()
        part = {"asymmetry": asymmetry(m), "border_compactness": border_compactness(m),
                "diameter_px": feret_diameter(m)}
        if images is not None:
            part["colour_count"] = colour_count(torch.as_tensor(images[start:start + chunk]), m)
        parts.append({k: v.numpy().astype(np.float64) for k, v in part.items()})
    columns = [c for c in ABCD_FEATURES if c in parts[0]] if parts else []
    table = pd.DataFrame({c: np.concatenate([p[c] for p in parts]) if parts else [] for c in columns})
    empty = (masks.flatten(1) > 0).sum(1).numpy() == 0 if len(masks) else np.zeros(0, bool)
    table.loc[empty, :] = np.nan
    return table


def cached_abcd_features(masks: torch.Tensor, images: torch.Tensor, cache_dir: str | Path | None) -> pd.DataFrame:
    """ABCD features read from (or computed and written to) `cache_dir/abcd-v1.csv` beside a dataset cache."""
    path = Path(cache_dir) / CACHE_NAME if cache_dir else None
    if path is not None and path.is_file():
        table = pd.read_csv(path)
        if len(table) == len(masks) and list(table.columns) == list(ABCD_FEATURES):
            return table
    table = abcd_features(masks, images)
    if path is not None and path.parent.is_dir():
        tmp = path.with_suffix(".tmp")
        table.to_csv(tmp, index=False)
        tmp.replace(path)
    return table


def touches_edge(masks: torch.Tensor | np.ndarray) -> np.ndarray:
    """Whether each mask (N, H, W) has a lesion pixel on the image border (its shape is cut off by the frame)."""
    m = torch.as_tensor(masks) > 0
    if m.numel() == 0:
        return np.zeros(len(m), bool)
    edge = m[:, 0].any(1) | m[:, -1].any(1) | m[:, :, 0].any(1) | m[:, :, -1].any(1)
    return edge.numpy()


def _moments(m: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Area, centroid (x, y) and principal-axis angle of masks (B, H, W)."""
    b, h, w = m.shape
    ys = torch.arange(h, dtype=m.dtype).view(1, h, 1) + 0.5
    xs = torch.arange(w, dtype=m.dtype).view(1, 1, w) + 0.5
    area = m.sum((1, 2)).clamp_min(1)
    cx = (m * xs).sum((1, 2)) / area
    cy = (m * ys).sum((1, 2)) / area
    dx, dy = xs - cx.view(b, 1, 1), ys - cy.view(b, 1, 1)
    mu20, mu02, mu11 = (m * dx * dx).sum((1, 2)), (m * dy * dy).sum((1, 2)), (m * dx * dy).sum((1, 2))
    theta = 0.5 * torch.atan2(2 * mu11, mu20 - mu02)
    return area, cx, cy, theta


def asymmetry(m: torch.Tensor) -> torch.Tensor:
    """Mean over the two principal axes of |M xor reflected M| / (2 |M|) for float masks (B, H, W)."""
    b, h, w = m.shape
    area, cx, cy, theta = _moments(m)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=m.dtype) + 0.5, torch.arange(w, dtype=m.dtype) + 0.5,
                            indexing="ij")
    dx, dy = xs - cx.view(b, 1, 1), ys - cy.view(b, 1, 1)
    scores = []
    for angle in (theta, theta + math.pi / 2):
        ex, ey = torch.cos(angle).view(b, 1, 1), torch.sin(angle).view(b, 1, 1)
        along = dx * ex + dy * ey  # reflection about the axis (ex, ey) through the centroid: 2 (d.e) e - d
        rx, ry = cx.view(b, 1, 1) + 2 * along * ex - dx, cy.view(b, 1, 1) + 2 * along * ey - dy
        grid = torch.stack([rx / w * 2 - 1, ry / h * 2 - 1], dim=-1)
        reflected = F.grid_sample(m[:, None], grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0]
        scores.append((m != reflected).float().sum((1, 2)) / (2 * area))
    return (scores[0] + scores[1]) / 2


def crofton_perimeter(m: torch.Tensor) -> torch.Tensor:
    """4-direction Cauchy-Crofton perimeter (pixels) of float masks (B, H, W), zero outside the image."""
    p = F.pad(m, (1, 1, 1, 1))
    n_h = (p[:, :, 1:] - p[:, :, :-1]).abs().sum((1, 2))
    n_v = (p[:, 1:] - p[:, :-1]).abs().sum((1, 2))
    n_d1 = (p[:, 1:, 1:] - p[:, :-1, :-1]).abs().sum((1, 2))
    n_d2 = (p[:, 1:, :-1] - p[:, :-1, 1:]).abs().sum((1, 2))
    return math.pi / 8 * (n_h + n_v + (n_d1 + n_d2) / math.sqrt(2))


def border_compactness(m: torch.Tensor) -> torch.Tensor:
    """Compactness index P^2 / (4 pi A) of float masks (B, H, W): 1 for a disc, larger for irregular borders."""
    area = m.sum((1, 2)).clamp_min(1)
    return crofton_perimeter(m) ** 2 / (4 * math.pi * area)


def feret_diameter(m: torch.Tensor, directions: int = FERET_DIRECTIONS) -> torch.Tensor:
    """Maximum Feret diameter (pixels) of float masks (B, H, W): largest extent over `directions` angles, + 1.

    Only the first and last lesion pixel of every row can be extreme in any direction, so the projections are
    taken of those 2 H points per image (rows without lesion are left out).
    """
    b, h, w = m.shape
    inside = m > 0
    cols = torch.arange(w, dtype=torch.float32)
    first = torch.where(inside, cols, torch.tensor(float(w))).amin(2)  # (B, H)
    last = torch.where(inside, cols, torch.tensor(-1.0)).amax(2)
    rows = torch.arange(h, dtype=torch.float32).expand(b, h)
    xs, ys = torch.cat([first, last], 1), torch.cat([rows, rows], 1)  # (B, 2H)
    valid = torch.cat([first < w, last >= 0], 1)
    angles = torch.arange(directions) * (math.pi / directions)
    proj = xs[..., None] * torch.cos(angles) + ys[..., None] * torch.sin(angles)  # (B, 2H, K)
    high = torch.where(valid[..., None], proj, torch.tensor(-1e9)).amax(1)
    low = torch.where(valid[..., None], proj, torch.tensor(1e9)).amin(1)
    return (high - low).clamp_min(0).amax(1) + 1


def colour_count(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Number of the six ABCD colours covering >= COLOUR_MIN_SHARE of the lesion, for uint8 RGB (B, 3, H, W)."""
    if images.shape[1] != 3:
        return torch.full((images.shape[0],), float("nan"))
    rgb = images.flatten(2).float() / 255.0  # (B, 3, P)
    ref = torch.tensor(list(COLOURS.values()))  # (6, 3)
    d2 = (rgb * rgb).sum(1, keepdim=True) - 2 * torch.einsum("bcp,kc->bkp", rgb, ref) + (ref * ref).sum(1)[:, None]
    nearest, which = d2.min(1)  # (B, P)
    counted = ((nearest <= COLOUR_MAX_DISTANCE**2) & (m.flatten(1) > 0)).float()
    per_colour = torch.zeros(len(rgb), len(COLOURS)).scatter_add_(1, which, counted)
    share = per_colour / m.flatten(1).sum(1).clamp_min(1)[:, None]
    return (share >= COLOUR_MIN_SHARE).sum(1).float()
