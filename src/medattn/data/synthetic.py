"""Procedural dermoscopy-like images with known concepts, nuisances and shortcut artefacts.

Spec: `synthetic:derm-synth?n=2000&size=64&seed=0&shortcut_corr=0.9&artefacts=patch&classes=2&views=1`
(the defaults). `n` >= 1 images, `size` in 32..512 pixels, `seed` >= 0, `shortcut_corr` in [0, 1],
`artefacts` a comma list of patch, ruler, ink (or none), `classes` 2 (benign, malignant) or 3 (benign,
atypical, malignant), `views` >= 1 images per lesion (a divisor of `n`).

Every image shows skin (a random skin tone with smooth shading, redness blotches, fine texture and grain)
and one lesion: a blob whose radius is a random Fourier series of the angle, stretched into an ellipse,
with a mean radius of 0.14-0.20 x size; its binary mask is `ImageSet.masks`. The lesion carries binary
dermoscopic concepts drawn independently given the class with the probabilities in `CONCEPT_PROBS`
(P(concept = 1 | class)); all of them are drawn inside the lesion mask:

- asymmetry: elongated, lopsided outline (strong first harmonic, axis ratio 1.3-1.6)
- irregular_border: large high-frequency radial noise on the outline
- multicolour: three colour zones across the lesion (near-black, brown, and blue-grey / tan / red)
- dots_globules: 5-12 small dark dots inside the lesion
- streaks: 8-14 dark radial lines across the border (their pixels belong to the lesion mask)
- pigment_network: a warped grid of dark lines inside the lesion

Nuisances are drawn independently of the class with `NUISANCE_PROBS`: hair (1-4 dark curved strands
anywhere) and vignetting (dark corners). Shortcut artefacts lie outside the lesion, which always stays
inside a central disc of radius 0.35 x size: `patch`, a 2 x 2 colour calibration chart in one corner;
`ruler`, a light strip with tick marks along the middle of one edge; `ink`, a violet marker circle in
another corner. Each enabled artefact has a mask in `ImageSet.artefact_masks[name]` (non-zero exactly in
the images whose concept-table column says it is present). Enabling or disabling an artefact changes
nothing else in the images.

Shortcut strength: with two classes, in the splits train, val and test (the in-distribution splits),

    P(artefact | malignant) = shortcut_corr,   P(artefact | benign) = 1 - shortcut_corr,

so `shortcut_corr` is the probability that an artefact's presence agrees with the class (present <=>
malignant), independently for each enabled artefact; 0.5 means no association, 1.0 a perfect shortcut,
0.0 a perfectly reversed one. With three classes the probability is interpolated linearly in the class
index (benign 1 - c, atypical 0.5, malignant c). In `test_ood` every artefact is present with probability
0.5 independently of the class, so a model that learned the shortcut loses accuracy there.

Splits are a random partition with the fractions in `SPLIT_FRACTIONS` (train 0.60, val 0.15, test 0.15,
test_ood 0.10); classes are balanced overall; `group` is the lesion index (with views=1 every image shows its
own lesion). The
concept table has one 0/1 column per concept, nuisance and enabled artefact. Output is a pure function of
the options: the same seed gives byte-identical images. All per-image parameters are drawn first, then
images are rendered in vectorised numpy chunks (no per-image Python loop), about 0.3 ms per 64 x 64 image.

Several photographs of one lesion (`views=K`, for MICLe's multi-instance positives): the n / K lesions are
drawn as above (label, split, concepts) and each is rendered K times, as images K*j .. K*j + K - 1 with group
j. The K views share the lesion: outline, size, centre, colours, opacity, dots, streaks and network (so its
concepts and class), seen at a fresh random rotation; everything else is drawn afresh for each view: skin
tone, shading, redness and texture, grain, hair, vignetting, artefacts (presence and placement) and an
illumination colour cast (a per-channel gain in 0.85..1.15 on the whole image, only when K > 1). The
colour-zone boundary noise and the network's phase are fields in image coordinates, so they do not rotate
with the lesion exactly. With views=1 the images are those of earlier versions, byte for byte.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy.ndimage import correlate1d
from threadpoolctl import threadpool_limits

from medattn.data.dataset_spec import DataSpec, LoadContext, check_options, option, register_loader
from medattn.data.imageset import ImageSet
from medattn.errors import DataError

GENERATORS = ("derm-synth",)
CLASS_NAMES = {2: ["benign", "malignant"], 3: ["benign", "atypical", "malignant"]}

# P(concept = 1 | class). Naive-Bayes balanced accuracy from these six concepts alone is about 0.80.
CONCEPT_PROBS: dict[str, dict[str, float]] = {
    "asymmetry": {"benign": 0.25, "atypical": 0.45, "malignant": 0.60},
    "irregular_border": {"benign": 0.20, "atypical": 0.40, "malignant": 0.60},
    "multicolour": {"benign": 0.25, "atypical": 0.45, "malignant": 0.60},
    "dots_globules": {"benign": 0.30, "atypical": 0.45, "malignant": 0.55},
    "streaks": {"benign": 0.10, "atypical": 0.20, "malignant": 0.35},
    "pigment_network": {"benign": 0.60, "atypical": 0.50, "malignant": 0.40},
}
CONCEPTS = tuple(CONCEPT_PROBS)
NUISANCE_PROBS: dict[str, float] = {"hair": 0.30, "vignette": 0.30}
ARTEFACTS = ("patch", "ruler", "ink")
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.60, "val": 0.15, "test": 0.15, "test_ood": 0.10}
OOD_SPLIT = "test_ood"
OPTIONS = {"n", "size", "seed", "shortcut_corr", "artefacts", "classes", "views"}
MIN_SIZE, MAX_SIZE = 32, 512

_CHUNK_PIXELS = 2**18  # pixels rendered at once (64 images of 64 x 64): small enough to stay in cache
_T = 256  # angular resolution of the per-image radius and streak tables
_MAX_DOTS, _MAX_STREAKS, _MAX_HAIRS = 12, 14, 4
_MEAN_RADIUS = (0.14, 0.20)  # range of the lesion's mean radius, as a fraction of `size`
_LESION_DISC = 0.35  # lesion (streaks included) stays within this fraction of `size` from the centre
_CHART = np.array([[205, 40, 45], [45, 160, 70], [45, 75, 195], [235, 205, 45], [245, 245, 240],
                   [40, 185, 200], [215, 90, 180], [25, 25, 25]], dtype=np.float32)
_Params = dict[str, np.ndarray]
# parameters of the lesion itself, shared by its views (rotation-dependent ones are rotated in _share_lesions)
_LESION_KEYS = ("cx", "cy", "stretch", "radius", "opacity", "zone_noise", "zone_angle", "lesion_colours",
                "net_period", "net_on", "dots_on", "streak_table", "streak_on")
_CAST = (0.85, 1.15)  # range of the per-channel illumination gain of a view (views > 1)


@register_loader("synthetic")
def load_synthetic(spec: DataSpec, ctx: LoadContext) -> ImageSet:
    """The procedural dataset a `synthetic:<generator>?...` spec names (nothing is read or cached)."""
    if spec.target not in GENERATORS:
        raise DataError(f"dataset spec '{spec}': unknown synthetic generator '{spec.target}'; "
                        f"use one of {', '.join(GENERATORS)}")
    check_options(spec, OPTIONS)
    where = f"dataset spec '{spec}': option"
    artefacts = option(spec, "artefacts", "patch")
    images = generate_derm_synth(
        n=option(spec, "n", 2000, int), size=option(spec, "size", 64, int), seed=option(spec, "seed", 0, int),
        shortcut_corr=option(spec, "shortcut_corr", 0.9, float), artefacts=_parse_artefacts(artefacts),
        classes=option(spec, "classes", 2, int, allowed=tuple(CLASS_NAMES)), views=option(spec, "views", 1, int),
        where=where)
    images.source = str(spec)
    return images


def generate_derm_synth(n: int = 2000, size: int = 64, seed: int = 0, shortcut_corr: float = 0.9,
                        artefacts: tuple[str, ...] = ("patch",), classes: int = 2, views: int = 1,
                        where: str = "derm-synth:") -> ImageSet:
    """An ImageSet of `n` derm-synth images (`views` per lesion) with lesion masks, concept and artefact masks."""
    _validate(n, size, seed, shortcut_corr, artefacts, classes, where)
    _validate_views(n, views, where)
    rng = np.random.default_rng(seed)
    labels, split = (np.repeat(a, views) for a in _labels_and_splits(rng, n // views, classes))
    table = _sample_table(rng, labels, split, classes, shortcut_corr, artefacts)
    first = np.arange(n) // views * views  # each image's first view: the lesion's concepts and parameters
    table[list(CONCEPTS)] = table[list(CONCEPTS)].to_numpy()[first]
    params = _sample_params(rng, table, size)
    if views > 1:
        params = _share_lesions(rng, params, first)
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=np.uint8)
    art_masks = {a: np.empty((n, size, size), dtype=np.uint8) for a in artefacts}
    grid = _Grid(size)
    step = max(1, _CHUNK_PIXELS // (size * size))
    # the matrix products are small: BLAS threads only spin and compete for the cores
    with threadpool_limits(1, user_api="blas"):
        for start in range(0, n, step):
            part = slice(start, min(start + step, n))
            grain = rng.integers(0, 256, (part.stop - start, size, size), dtype=np.uint8)
            images[part], masks[part], arts = _render({k: v[part] for k, v in params.items()}, grain, grid,
                                                      artefacts)
            for a in artefacts:
                art_masks[a][part] = arts[a]
    return ImageSet(name="derm-synth", images=torch.from_numpy(images), labels=torch.from_numpy(labels),
                    split=split, class_names=list(CLASS_NAMES[classes]), group=(np.arange(n) // views).astype(str),
                    concepts=table, masks=torch.from_numpy(masks),
                    artefact_masks={a: torch.from_numpy(m) for a, m in art_masks.items()},
                    source="synthetic:derm-synth")


def _parse_artefacts(text: str) -> tuple[str, ...]:
    """The artefact names of a comma list ('' or 'none' for no artefacts)."""
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    return () if names == ("none",) else names


def _validate(n: int, size: int, seed: int, corr: float, artefacts: tuple[str, ...], classes: int,
              where: str) -> None:
    """Raise a one-line DataError naming the first bad generator option."""
    if n <= 0:
        raise DataError(f"{where} n={n} must be a positive number of images")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise DataError(f"{where} size={size} must lie in {MIN_SIZE}..{MAX_SIZE} pixels")
    if seed < 0:
        raise DataError(f"{where} seed={seed} must be a non-negative integer")
    if not 0.0 <= corr <= 1.0:
        raise DataError(f"{where} shortcut_corr={corr} must lie in [0, 1] (0.5 = no shortcut)")
    unknown = [a for a in artefacts if a not in ARTEFACTS]
    if unknown:
        raise DataError(f"{where} artefacts has unknown name(s) {', '.join(unknown)}; use a comma list of "
                        f"{', '.join(ARTEFACTS)} (or none)")
    if classes not in CLASS_NAMES:
        raise DataError(f"{where} classes={classes} not allowed; use one of "
                        f"{', '.join(map(str, CLASS_NAMES))}")


def _validate_views(n: int, views: int, where: str) -> None:
    """Raise a one-line DataError unless `views` is a positive divisor of `n`."""
    if views < 1 or n % views:
        raise DataError(f"{where} views={views} must be a positive divisor of n={n} (images per lesion)")


def _share_lesions(rng: np.random.Generator, p: _Params, first: np.ndarray) -> _Params:
    """Each view keeps its own nuisances and orientation but shows its first view's lesion, plus a colour cast."""
    out = dict(p)
    for key in _LESION_KEYS:
        out[key] = p[key][first]
    delta = np.arctan2(p["sin_a"], p["cos_a"]) - np.arctan2(p["sin_a"], p["cos_a"])[first]
    c, s = np.cos(delta)[:, None], np.sin(delta)[:, None]
    dx, dy = p["dots_xy"][first, :, 0] - p["cx"][first, None], p["dots_xy"][first, :, 1] - p["cy"][first, None]
    out["dots_xy"] = np.stack([out["cx"][:, None] + dx * c - dy * s, out["cy"][:, None] + dx * s + dy * c], -1)
    out["net_angle"] = p["net_angle"][first] + delta
    out["cast"] = rng.uniform(*_CAST, (first.size, 3))
    return {k: v if v.dtype.kind in "bi" else v.astype(np.float32) for k, v in out.items()}


def _labels_and_splits(rng: np.random.Generator, n: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Balanced int64 labels in random order and a random split assignment with SPLIT_FRACTIONS."""
    labels = rng.permutation(np.arange(n) % classes).astype(np.int64)
    counts = [int(math.floor(f * n)) for f in SPLIT_FRACTIONS.values()]
    counts[0] += n - sum(counts)
    split = np.repeat(np.array(list(SPLIT_FRACTIONS), dtype=object), counts)
    return labels, rng.permutation(split).astype(str)


def artefact_probability(labels: np.ndarray, classes: int, shortcut_corr: float) -> np.ndarray:
    """P(artefact present | class) in the in-distribution splits: 1 - c for benign up to c for malignant."""
    return (1.0 - shortcut_corr) + (2.0 * shortcut_corr - 1.0) * labels / (classes - 1)


def _sample_table(rng: np.random.Generator, labels: np.ndarray, split: np.ndarray, classes: int,
                  corr: float, artefacts: tuple[str, ...]) -> pd.DataFrame:
    """The 0/1 concept, nuisance and artefact table, one row per image."""
    names = CLASS_NAMES[classes]
    columns: dict[str, np.ndarray] = {}
    for concept, probs in CONCEPT_PROBS.items():
        p = np.array([probs[c] for c in names])[labels]
        columns[concept] = rng.random(labels.size) < p
    for nuisance, p in NUISANCE_PROBS.items():
        columns[nuisance] = rng.random(labels.size) < p
    p_art = np.where(split == OOD_SPLIT, 0.5, artefact_probability(labels, classes, corr))
    for art in ARTEFACTS:  # drawn even when disabled, so enabling an artefact leaves the lesions unchanged
        present = rng.random(labels.size) < p_art
        if art in artefacts:
            columns[art] = present
    return pd.DataFrame({k: v.astype(np.int64) for k, v in columns.items()})


def _sample_params(rng: np.random.Generator, table: pd.DataFrame, size: int) -> _Params:
    """Every per-image random parameter the renderer needs (leading dim n; floats as float32)."""
    flag = {c: table[c].to_numpy().astype(bool) for c in table.columns}
    p: _Params = {}
    p.update(_shape_params(rng, flag, size))
    p.update(_colour_params(rng, flag))
    p.update(_dot_params(rng, flag, p))
    p.update(_streak_params(rng, flag, p, max(size / 64, 0.75)))
    p.update(_hair_params(rng, flag, size))
    p.update(_artefact_params(rng, flag, size))
    p["vignette"] = np.where(flag["vignette"], rng.uniform(0.35, 0.6, flag["vignette"].size), 0.0)
    return {k: v if v.dtype.kind in "bi" else v.astype(np.float32) for k, v in p.items()}


def _shape_params(rng: np.random.Generator, flag: dict[str, np.ndarray], size: int) -> _Params:
    """Lesion centre, ellipse stretch/angle and the radius table r(theta) in pixels (n, _T)."""
    n = flag["asymmetry"].size
    asym, irregular = flag["asymmetry"], flag["irregular_border"]
    stretch = np.where(asym, rng.uniform(1.3, 1.6, n), rng.uniform(1.0, 1.12, n))
    angle = rng.uniform(0, np.pi, n)
    offset = np.clip(rng.normal(0, 0.015 * size, (n, 2)), -0.03 * size, 0.03 * size)
    amp = np.where(irregular[:, None], rng.uniform(0.025, 0.05, (n, 12)), rng.uniform(0, 0.012, (n, 12)))
    amp[:, 0] = np.where(asym, rng.uniform(0.12, 0.2, n), rng.uniform(0, 0.03, n))
    amp[:, 1] = np.where(asym, rng.uniform(0.05, 0.1, n), rng.uniform(0, 0.03, n))
    phase = rng.uniform(0, 2 * np.pi, (n, 12))
    k_theta = np.arange(1, 13)[:, None] * _angles()[None]
    # sum_k amp_k cos(k theta + phase_k), expanded so that it is two matrix products
    rel = 1 + (amp * np.cos(phase)) @ np.cos(k_theta) - (amp * np.sin(phase)) @ np.sin(k_theta)
    rel = np.maximum(rel, 0.5)
    r0 = rng.uniform(*_MEAN_RADIUS, n) * size
    # shrink the few lesions whose stretched outline (plus streaks, up to 1.22 r) would leave the central disc
    reach = np.where(flag["streaks"], 1.22, 1.04)
    extent = rel.max(1) * r0 * np.sqrt(stretch) * reach + np.hypot(offset[:, 0], offset[:, 1])
    r0 *= np.minimum(1.0, _LESION_DISC * size / extent)
    return {"cx": size / 2 + offset[:, 0], "cy": size / 2 + offset[:, 1], "stretch": np.sqrt(stretch),
            "cos_a": np.cos(angle), "sin_a": np.sin(angle), "radius": rel * r0[:, None],
            "opacity": rng.uniform(0.85, 1.0, n), "zone_noise": rng.standard_normal((n, 2, 9, 9)),
            "zone_angle": rng.uniform(0, 2 * np.pi, n),
            "skin_noise": rng.standard_normal((n, 2, 5, 5)),
            "texture_noise": rng.standard_normal((n, _fine_grid(size), _fine_grid(size)))}


def _angles() -> np.ndarray:
    """The angles (radians, -pi..pi) of the _T bins of every per-image angular table."""
    return np.linspace(-np.pi, np.pi, _T, endpoint=False)


def _colour_params(rng: np.random.Generator, flag: dict[str, np.ndarray]) -> _Params:
    """Skin tone, the three lesion colours (n, 3, 3) that coincide unless multicolour, network look."""
    n = flag["multicolour"].size
    light, dark = np.array([238, 202, 182]), np.array([150, 100, 76])
    skin = light + rng.uniform(0, 0.85, n)[:, None] * (dark - light) + rng.normal(0, 5, (n, 3))
    base = skin * rng.uniform(0.35, 0.62, n)[:, None] * np.array([1.0, 0.86, 0.78])
    third = np.array([[105, 118, 145], [190, 140, 105], [175, 82, 78]])[rng.integers(0, 3, n)]
    multi = flag["multicolour"][:, None]
    colours = np.stack([np.where(multi, base * 0.38, base * 0.92), base,
                        np.where(multi, third + rng.normal(0, 8, (n, 3)), base * 1.06)], axis=1)
    return {"skin": skin, "lesion_colours": colours, "net_period": rng.uniform(6.0, 8.0, n),
            "net_angle": rng.uniform(0, np.pi, n), "net_on": flag["pigment_network"]}


def _polar_to_xy(p: _Params, theta: np.ndarray, rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of points given in the lesion's normalised polar frame (inverse of the renderer)."""
    u, v = rho * np.cos(theta), rho * np.sin(theta)
    s, ca, sa = p["stretch"][:, None], p["cos_a"][:, None], p["sin_a"][:, None]
    return p["cx"][:, None] + u * s * ca - v / s * sa, p["cy"][:, None] + u * s * sa + v / s * ca


def _radius_at(radius: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Radius tables (n, _T) looked up at angles theta (n, m), nearest lower bin."""
    idx = np.floor((theta + np.pi) / (2 * np.pi) * _T).astype(int) % _T
    return np.take_along_axis(radius, idx, axis=1)


def _dot_params(rng: np.random.Generator, flag: dict[str, np.ndarray], p: _Params) -> _Params:
    """Dot centres (n, _MAX_DOTS, 2) in pixels, inside the lesion, and which of them are drawn."""
    n = flag["dots_globules"].size
    theta = rng.uniform(-np.pi, np.pi, (n, _MAX_DOTS))
    rho = np.sqrt(rng.uniform(0.0, 0.45, (n, _MAX_DOTS))) * _radius_at(p["radius"], theta)
    x, y = _polar_to_xy(p, theta, rho)
    count = rng.integers(5, _MAX_DOTS + 1, n)
    active = (np.arange(_MAX_DOTS)[None] < count[:, None]) & flag["dots_globules"][:, None]
    return {"dots_xy": np.stack([x, y], -1), "dots_on": active}


def _streak_params(rng: np.random.Generator, flag: dict[str, np.ndarray], p: _Params, unit: float) -> _Params:
    """An angular streak profile (n, _T) in 0..1: narrow bumps about one pixel wide at the lesion border."""
    n = flag["streaks"].size
    angles = rng.uniform(-np.pi, np.pi, (n, _MAX_STREAKS))
    count = rng.integers(8, _MAX_STREAKS + 1, n)
    table = np.zeros((n, _T), dtype=np.float32)
    idx = np.flatnonzero(flag["streaks"])
    if idx.size:
        active = np.arange(_MAX_STREAKS)[None] < count[idx, None]
        gap = np.abs(_angles()[None, None] - angles[idx, :, None]).astype(np.float32)
        gap = np.minimum(gap, np.float32(2 * np.pi) - gap)  # angular distance, wrapped
        width = (0.9 * unit / _radius_at(p["radius"][idx], angles[idx])[..., None]).astype(np.float32)
        table[idx] = (np.exp(np.float32(-0.5) * (gap / width) ** 2) * active[..., None]).max(1)
    return {"streak_table": table, "streak_on": flag["streaks"]}


def _hair_params(rng: np.random.Generator, flag: dict[str, np.ndarray], size: int) -> _Params:
    """Hair strands as arcs of large circles: centre (n, H, 2), radius and half-width (n, H)."""
    n = flag["hair"].size
    point = rng.uniform(0, size, (n, _MAX_HAIRS, 2))
    direction = rng.uniform(0, 2 * np.pi, (n, _MAX_HAIRS))
    radius = rng.uniform(0.7, 3.0, (n, _MAX_HAIRS)) * size
    centre = point + radius[..., None] * np.stack([np.cos(direction), np.sin(direction)], -1)
    count = rng.integers(1, _MAX_HAIRS + 1, n)
    active = (np.arange(_MAX_HAIRS)[None] < count[:, None]) & flag["hair"][:, None]
    return {"hair_centre": centre, "hair_radius": radius, "hair_on": active,
            "hair_width": rng.uniform(0.6, 1.0, (n, _MAX_HAIRS))}


def _artefact_params(rng: np.random.Generator, flag: dict[str, np.ndarray], size: int) -> _Params:
    """Placement and look of every artefact; drawn for all images so the random stream is fixed."""
    n = flag["hair"].size
    patch_corner = rng.integers(0, 4, n)
    ink_corner = (patch_corner + rng.integers(1, 4, n)) % 4  # never the patch's corner
    side = rng.uniform(0.14, 0.19, n) * size
    margin = rng.uniform(0.02, 0.05, n) * size
    chart = _CHART[np.argsort(rng.random((n, len(_CHART))), axis=1)[:, :4]]
    p = {"patch_corner": patch_corner, "patch_side": side, "patch_chart": chart,
         "patch_x0": np.where(patch_corner % 2 == 1, size - margin - side, margin),
         "patch_y0": np.where(patch_corner >= 2, size - margin - side, margin),
         "ruler_edge": rng.integers(0, 4, n), "ruler_depth": rng.uniform(0.06, 0.09, n) * size,
         "ruler_from": rng.uniform(0.26, 0.32, n) * size, "ruler_to": rng.uniform(0.68, 0.74, n) * size,
         "ruler_period": rng.uniform(0.045, 0.06, n) * size}
    ink_offset = rng.uniform(0.10, 0.13, n) * size
    p.update({"ink_corner": ink_corner,
              "ink_cx": np.where(ink_corner % 2 == 1, size - ink_offset, ink_offset),
              "ink_cy": np.where(ink_corner >= 2, size - ink_offset, ink_offset),
              "ink_radius": rng.uniform(0.06, 0.09, n) * size, "ink_width": rng.uniform(0.8, 1.3, n)})
    for art in ARTEFACTS:
        p[f"{art}_on"] = flag[art] if art in flag else np.zeros(n, dtype=bool)
    return p


class _Grid:
    """Pixel-centre coordinates, the lesion crop, artefact windows and fixed kernels for one image size."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.unit = max(size / 64, 0.75)  # line widths and dot sizes scale with the image
        centres = np.arange(size, dtype=np.float32) + 0.5
        self.y, self.x = np.meshgrid(centres, centres, indexing="ij")
        # the lesion and its streaks (soft edges included) never leave this central square
        half = 0.37 * size + 1.5 * self.unit
        lo, hi = max(int(size / 2 - half), 0), min(int(math.ceil(size / 2 + half)), size)
        self.crop = (slice(lo, hi), slice(lo, hi))
        self.lo, self.xc, self.yc = lo, self.x[lo:hi, lo:hi], self.y[lo:hi, lo:hi]
        self.coarse = _rbf_basis(size, 5)
        self.lesion_basis = _rbf_basis(size, 9)[lo:hi]  # about three nodes across a lesion
        self.fine = _rbf_basis(size, _fine_grid(size))
        self.vignette = ((((self.x - size / 2) ** 2 + (self.y - size / 2) ** 2) / (size**2 / 2)) ** 1.5)
        sigma = 0.9 * self.unit
        r = np.arange(-math.ceil(3 * sigma), math.ceil(3 * sigma) + 1)
        self.dot_kernel = np.exp(-0.5 * r**2 / sigma**2).astype(np.float32)
        c = int(math.ceil(0.245 * size)) + 1  # corner windows hold the patch and the ink circle
        near, far = slice(0, c), slice(size - c, size)
        self.corners = [(near, near), (near, far), (far, near), (far, far)]  # TL, TR, BL, BR as (rows, cols)
        d, a = int(math.ceil(0.09 * size)) + 1, slice(int(0.26 * size), int(math.ceil(0.74 * size)) + 1)
        top, bottom = slice(0, d), slice(size - d, size)
        self.edges = [(top, a), (bottom, a), (a, top), (a, bottom)]  # top, bottom, left, right strips


def _fine_grid(size: int) -> int:
    """Number of noise nodes per axis of the fine skin texture (one per 4 pixels, 5..32)."""
    return min(max(size // 4, 5), 32)


def _rbf_basis(size: int, k: int) -> np.ndarray:
    """(size, k) Gaussian interpolation weights with unit-norm rows (unit variance for unit noise)."""
    centres = (np.arange(k) + 0.5) * size / k
    x = np.arange(size) + 0.5
    w = np.exp(-0.5 * ((x[:, None] - centres[None]) / (0.8 * size / k)) ** 2)
    return (w / np.linalg.norm(w, axis=1, keepdims=True)).astype(np.float32)


def _smooth(noise: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Smooth unit-variance fields (..., S, S) from noise grids (..., k, k) and a basis (S, k)."""
    return basis @ noise @ basis.T


def _col(values: np.ndarray | list[float]) -> np.ndarray:
    """An RGB colour (3,) or per-image colours (B, 3) shaped to broadcast against (B, 3, H, W)."""
    arr = np.asarray(values, dtype=np.float32)
    return arr.reshape(1, 3, 1, 1) if arr.ndim == 1 else arr[:, :, None, None]


_STREAK, _HAIR, _INK = _col([70, 42, 32]), _col([38, 28, 24]), _col([112, 58, 150])
_RULER, _TICK, _REDNESS = _col([236, 232, 214]), _col([30, 30, 34]), _col([6, -4, -4])


def _render(p: _Params, grain: np.ndarray, g: _Grid,
            artefacts: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Images (B, 3, S, S), lesion masks and artefact masks (B, S, S), all uint8, for one chunk."""
    img = _skin(p, g, grain)
    crop = img[:, :, g.crop[0], g.crop[1]]  # a view: drawing into it draws into img
    f = _lesion_frame(p, g)
    q = f.rho / f.radius
    alpha = np.clip((f.radius - f.rho) / g.unit + 0.5, 0, 1) * p["opacity"][:, None, None]
    crop += (_lesion_colour(p, g, f) - crop) * alpha[:, None]
    lesion = f.rho < f.radius
    idx = np.flatnonzero(p["streak_on"])
    if idx.size:
        profile = _lookup(p["streak_table"][idx], f.i0[idx], f.i1[idx], f.frac[idx])
        streak = profile * _band(q[idx], 0.72, 1.22)
        crop[idx] += (_STREAK - crop[idx]) * (0.9 * streak)[:, None]
        lesion[idx] |= streak > 0.5
    mask = np.zeros((img.shape[0], g.size, g.size), dtype=np.uint8)
    mask[:, g.crop[0], g.crop[1]] = lesion
    arts = {name: _draw_artefact(img, p, g, name) for name in artefacts}
    _draw_hair(img, p, g)
    idx = np.flatnonzero(p["vignette"])
    img[idx] *= 1 - p["vignette"][idx, None, None, None] * g.vignette
    if "cast" in p:
        img *= p["cast"][:, :, None, None]
    np.clip(img, 0, 255, out=img)
    return (img + 0.5).astype(np.uint8), mask, arts


def _band(q: np.ndarray, low: float, high: float, soft: float = 0.06) -> np.ndarray:
    """A soft indicator of low < q < high."""
    return np.clip((q - low) / soft, 0, 1) * np.clip((high - q) / soft, 0, 1)


def _skin(p: _Params, g: _Grid, grain: np.ndarray) -> np.ndarray:
    """Skin (B, 3, S, S) float32: tone x (smooth shading, texture, grain) + redness blotches."""
    fields = _smooth(p["skin_noise"], g.coarse)  # (B, 2, S, S)
    shade = 1 + 0.06 * fields[:, 0] + 0.025 * _smooth(p["texture_noise"], g.fine)
    shade += (grain - np.float32(127.5)) * np.float32(0.012 / 74)  # uniform grain, std 1.2 %
    return _col(p["skin"]) * shade[:, None] + _REDNESS * fields[:, 1:2]


class _Frame(NamedTuple):
    """Crop pixels in the lesion's frame: coordinates (u, v), their radius, the outline radius there, bins."""

    u: np.ndarray
    v: np.ndarray
    rho: np.ndarray
    radius: np.ndarray
    i0: np.ndarray
    i1: np.ndarray
    frac: np.ndarray


def _lesion_frame(p: _Params, g: _Grid) -> _Frame:
    """Every crop pixel in the lesion's normalised (un-stretched, un-rotated) polar frame."""
    dx = g.xc - p["cx"][:, None, None]
    dy = g.yc - p["cy"][:, None, None]
    ca, sa, s = (p[k][:, None, None] for k in ("cos_a", "sin_a", "stretch"))
    u = (dx * ca + dy * sa) / s
    v = (dy * ca - dx * sa) * s
    pos = (np.arctan2(v, u) + np.float32(np.pi)) * np.float32(_T / (2 * np.pi))
    low = np.floor(pos)
    i0 = low.astype(np.intp)
    i0[i0 == _T] = 0  # atan2 = pi
    i1, frac = i0 + 1, pos - low
    i1[i1 == _T] = 0
    return _Frame(u, v, np.hypot(u, v), _lookup(p["radius"], i0, i1, frac), i0, i1, frac)


def _lookup(table: np.ndarray, i0: np.ndarray, i1: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Linear interpolation of per-image tables (B, T) between bins i0 and i1 (B, H, W)."""
    b, t = table.shape
    row = (np.arange(b) * t).reshape(b, 1, 1)
    v0, v1 = np.take(table, i0 + row), np.take(table, i1 + row)
    return v0 + (v1 - v0) * frac


def _lesion_colour(p: _Params, g: _Grid, f: _Frame) -> np.ndarray:
    """Lesion colour (B, 3, C, C) on the crop: colour zones, darker centre, pigment network and dots."""
    q = f.rho / f.radius
    noise = _smooth(p["zone_noise"], g.lesion_basis)  # (B, 2, C, C)
    # a gradient across the lesion (-1 to 1 along a random direction) plus noise: most lesions cross
    # both zone thresholds, so multicolour lesions show all three colours
    ca, sa = np.cos(p["zone_angle"])[:, None, None], np.sin(p["zone_angle"])[:, None, None]
    zone = (f.u * ca + f.v * sa) / f.radius + 0.6 * noise[:, 0]
    w1 = np.clip(zone * 2.5 + 1.75, 0, 1)[:, None]  # ramps from 0 to 1 around zone = -0.5 and +0.5
    w2 = np.clip(zone * 2.5 - 0.75, 0, 1)[:, None]
    c = p["lesion_colours"]
    colour = _col(c[:, 0]) + _col(c[:, 1] - c[:, 0]) * w1 + _col(c[:, 2] - c[:, 1]) * w2
    colour *= (0.8 + 0.2 * np.minimum(q, 1))[:, None]
    idx = np.flatnonzero(p["net_on"])
    if idx.size:
        net = _network({k: p[k][idx] for k in ("net_period", "net_angle")}, g, noise[idx, 1], q[idx])
        colour[idx] += (_col(c[idx, 0] * 0.55) - colour[idx]) * (0.75 * net)[:, None]
    idx = np.flatnonzero(p["dots_on"].any(1))
    if idx.size:
        colour[idx] *= 1 - 0.7 * _dots(p["dots_xy"][idx], p["dots_on"][idx], g)[:, None]  # dark on any colour
    return colour


def _network(p: _Params, g: _Grid, warp: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Pigment network (B, C, C) in 0..1: two warped families of parallel dark lines in the lesion core."""
    period = p["net_period"][:, None, None] * g.unit
    ca, sa = np.cos(p["net_angle"])[:, None, None], np.sin(p["net_angle"])[:, None, None]
    shift = 0.35 * period * warp
    scale = period / (np.pi * 0.55 * g.unit)  # line half-width 0.55 px at 64 x 64
    lines = [np.clip(1 - np.abs(np.sin(np.pi * t / period)) * scale, 0, 1)
             for t in (g.xc * ca + g.yc * sa + shift, g.yc * ca - g.xc * sa - shift)]
    return np.maximum(*lines) * np.clip((0.9 - q) * 10, 0, 1)


def _dots(xy: np.ndarray, on: np.ndarray, g: _Grid) -> np.ndarray:
    """Dots/globules (B, C, C) in 0..1: dot centres (B, D, 2) splatted onto the crop and blurred."""
    b, c = xy.shape[0], g.xc.shape[0]
    ij = np.clip(np.floor(xy - g.lo).astype(np.intp), 0, c - 1)
    flat = (np.arange(b)[:, None] * c * c + ij[..., 1] * c + ij[..., 0]).ravel()
    canvas = np.bincount(flat, weights=on.ravel().astype(np.float32), minlength=b * c * c)
    canvas = canvas.reshape(b, c, c).astype(np.float32)
    blurred = correlate1d(correlate1d(canvas, g.dot_kernel, axis=1, mode="constant"), g.dot_kernel, axis=2,
                          mode="constant")
    return np.clip(1.3 * blurred, 0, 1)


def _draw_artefact(img: np.ndarray, p: _Params, g: _Grid, name: str) -> np.ndarray:
    """Draw one artefact kind into img (in place) window by window; return its masks (B, S, S) uint8."""
    draw, place, windows = {"patch": (_draw_patch, "patch_corner", g.corners),
                            "ruler": (_draw_ruler, "ruler_edge", g.edges),
                            "ink": (_draw_ink, "ink_corner", g.corners)}[name]
    mask = np.zeros((img.shape[0], g.size, g.size), dtype=np.uint8)
    for k, (rows, cols) in enumerate(windows):
        idx = np.flatnonzero(p[f"{name}_on"] & (p[place] == k))
        if idx.size:
            sub = {key: v[idx] for key, v in p.items() if key.startswith(name)}
            img[idx, :, rows, cols], mask[idx, rows, cols] = draw(img[idx, :, rows, cols], sub,
                                                                  g.x[rows, cols], g.y[rows, cols], g)
    return mask


def _draw_patch(win: np.ndarray, p: _Params, x: np.ndarray, y: np.ndarray,
                g: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """A window with a 2 x 2 colour calibration chart drawn in, and the chart's mask."""
    x0, y0, side = (p[k][:, None, None] for k in ("patch_x0", "patch_y0", "patch_side"))
    inside = (x >= x0) & (x < x0 + side) & (y >= y0) & (y < y0 + side)
    cell = (x >= x0 + side / 2).astype(np.intp) + 2 * (y >= y0 + side / 2)
    chart = p["patch_chart"][np.arange(win.shape[0])[:, None, None], cell]  # (B, h, w, 3)
    return np.where(inside[:, None], chart.transpose(0, 3, 1, 2), win), inside


def _draw_ruler(win: np.ndarray, p: _Params, x: np.ndarray, y: np.ndarray,
                g: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """A window with a light ruler strip and tick marks (every fifth long) drawn in, and the strip's mask."""
    edge = p["ruler_edge"][:, None, None]  # 0 top, 1 bottom, 2 left, 3 right
    along = np.where(edge < 2, x, y)
    depth = np.select([edge == 0, edge == 1, edge == 2], [y, g.size - y, x], g.size - x)
    reach, start, stop, period = (p[k][:, None, None] for k in ("ruler_depth", "ruler_from", "ruler_to",
                                                                 "ruler_period"))
    strip = (depth < reach) & (along >= start) & (along < stop)
    phase = (along - start) / period
    tick = np.clip(1 - np.abs(phase - np.round(phase)) * period / (0.6 * g.unit), 0, 1)
    tick *= depth < np.where(np.round(phase) % 5 == 0, 0.95, 0.55) * reach
    win = win + (_RULER - win) * (0.75 * strip)[:, None]
    return win + (_TICK - win) * (tick * strip)[:, None], strip


def _draw_ink(win: np.ndarray, p: _Params, x: np.ndarray, y: np.ndarray,
              g: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """A window with a violet marker-ink circle drawn in, and the ink's mask."""
    dist = np.hypot(x - p["ink_cx"][:, None, None], y - p["ink_cy"][:, None, None])
    width = p["ink_width"][:, None, None] * g.unit
    ring = np.clip(1 - np.abs(dist - p["ink_radius"][:, None, None]) / width, 0, 1)
    return win + (_INK - win) * (0.9 * ring)[:, None], ring > 0


def _draw_hair(img: np.ndarray, p: _Params, g: _Grid) -> None:
    """Draw up to _MAX_HAIRS dark curved strands into img in place (only images with hair are computed)."""
    on = p["hair_on"]
    idx = np.flatnonzero(on.any(1))
    if idx.size == 0:
        return
    hair = np.zeros((idx.size, g.size, g.size), dtype=np.float32)
    for j in range(_MAX_HAIRS):
        sel = np.flatnonzero(on[idx, j])
        ii = idx[sel]
        centre = p["hair_centre"][ii, j, :, None, None]
        dist = np.abs(np.hypot(g.x - centre[:, 0], g.y - centre[:, 1]) - p["hair_radius"][ii, j, None, None])
        strand = np.clip(1 - dist / np.maximum(p["hair_width"][ii, j, None, None] * g.unit, 0.8), 0, 1)
        hair[sel] = np.maximum(hair[sel], strand)
    img[idx] += (_HAIR - img[idx]) * (0.85 * hair)[:, None]
