"""Real dermoscopic artefacts (rulers, gel bubbles, ink markings) pasted into real images, with their masks.

Templates: the 260 PNGs of Katsch, Rinner and Tschandl, "Comparison of convolutional neural network
architectures for robustness against common artefacts in dermatoscopic images", Dermatol Pract Concept
2022;12(3):e2022126, cut from 51 HAM10000 images at their 600 x 450 scale. A template folder holds
`meta.json` (`artefacts`: one entry per source with `class` bubble / marking / ruler, `subclass`
spot / circle / horizontal / vertical, `preprocessor` and `artefact_folder`); a `difference` source holds
`*with*` / `*without*` pairs (the artefact is the per-pixel difference), a marking source holds ink isolated
on white.

Insertion types (`TYPES`) and their placement, after the paper's rules:

- `ruler`: a "vertical" (peripheral) ruler runs along one of the four image edges (up to 15 % of its width
  outside the frame),
  tilted by up to 8 degrees; a "horizontal" ruler runs across the lower third, under the lesion, tilted by up
  to 12 degrees. The source decides which (14 peripheral, 6 across).
- `bubble`: 2-6 bubbles of one source, each at the best of 16 random centres: off the lesion (at least half the
  bubble's size from the lesion mask) when masks are given.
- `ink`: 1-2 spot markings of one source, anywhere but on the lesion (placed as bubbles: the paper lowers the
  probability on the lesion for every type but circles and rulers), at 3 sizes (0.8, 1, 1.25), flipped.
- `ink_circle`: one circle marking centred on the lesion's centre of mass (the image centre without masks),
  scaled so that it encloses the lesion (its box 2 x the lesion's equivalent diameter, +- 15 %), but at most
  0.92 x the shorter image side and moved to lie wholly in the frame: around a large lesion the ring crosses
  it rather than leaving the frame (real circle images show small lesions; stray arcs in the corners read false).

Templates are scaled by the image's own scale: a full image at the templates' scale is `field` pixels
(600 x 450, HAM10000's size), so a (H, W) image scales them by (H / 450, W / 600) (the folder loader stretches
HAM10000 to a square, and the templates are stretched alike). Scaling uses antialiased (area-like) resampling,
as downscaling the photograph itself does, so a thin ruler tick fades at 64 pixels as it does in the real image.

Blending departs from the paper in one place. Difference templates are added, as in the paper
(out = image + (with - without)). Ink is blended multiplicatively, as a transparent dye absorbs light
(out = image x template / 255), where the paper adds template - 255: on a dark lesion the paper's rule turns
ink black, the dye rule keeps its hue. The paper's other augmentations (random resize 0.5-1.5, free rotation
of markings and peripheral rulers) are replaced by the discrete variants above, so that every stamp is
prepared once per image size and the pasting is batched.

Batching: per image size the templates are resampled once into `Stamp`s (a few hundred arrays); placement draws
every image's stamps, positions and flips as numpy arrays; pasting gathers every stamp pixel's destination
index and sums the additive and log-gain contributions with `np.bincount`, chunk by chunk of images. The only
Python loops run over stamps and chunks, never over images or pixels. The output is a pure function of the
images, masks, presence flags and `seed`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from medattn.errors import DataError

TYPES = ("ruler", "bubble", "ink", "ink_circle")
FIELD = (600, 450)  # (width, height) of a full image at the templates' scale
_KIND = {("ruler", "vertical"): "ruler_edge", ("ruler", "horizontal"): "ruler_across", ("bubble", None): "bubble",
         ("marking", "spot"): "ink", ("marking", "circle"): "ink_circle"}
_TYPE_OF = {"ruler_edge": "ruler", "ruler_across": "ruler", "bubble": "bubble", "ink": "ink",
            "ink_circle": "ink_circle"}
_EDGE_TILTS = (-8.0, 0.0, 8.0)
_ACROSS_TILTS = (-12.0, -6.0, 0.0, 6.0, 12.0)
_SPOT_SCALES = (0.8, 1.0, 1.25)
_CIRCLE_SCALES = tuple(float(s) for s in np.geomspace(0.35, 2.5, 11))
_CIRCLE_FIT = 0.92  # largest circle marking, as a fraction of the shorter image side
_SUPPORT = 6.0 / 255  # a stamp pixel belongs to the artefact mask above this change (fraction of full range)
_CANDIDATES = 16
_CHUNK_PIXELS = 2**22


@dataclass(frozen=True)
class Template:
    """One artefact template at the templates' scale: out = image * (1 - absorb) + add (float32, 0..1 units)."""

    kind: str  # ruler_edge, ruler_across, bubble, ink, ink_circle
    source: str  # the HAM10000 image it was cut from
    add: np.ndarray  # (3, h, w)
    absorb: np.ndarray  # (3, h, w), 0 for difference templates


@dataclass(frozen=True, eq=False)
class TemplateBank:
    """Every template of a folder, by kind, and the folder it came from (hashed by identity)."""

    folder: Path
    templates: tuple[Template, ...]

    def of(self, kind: str) -> list[Template]:
        """The templates of one kind."""
        return [t for t in self.templates if t.kind == kind]

    def sources(self, kind: str) -> list[str]:
        """The source images of one kind, in first-seen order."""
        return list(dict.fromkeys(t.source for t in self.of(kind)))


@dataclass
class Stamps:
    """Templates resampled for one image size: per stamp its arrays, kind, source index and size variant."""

    add: list[np.ndarray] = field(default_factory=list)  # (3, h, w) float32
    log_gain: list[np.ndarray] = field(default_factory=list)  # (3, h, w) float32, log(1 - absorb)
    support: list[np.ndarray] = field(default_factory=list)  # (h, w) bool
    kind: list[str] = field(default_factory=list)
    source: list[int] = field(default_factory=list)
    variant: list[float] = field(default_factory=list)  # tilt (rulers), scale (ink, ink_circle)

    def append(self, add: np.ndarray, absorb: np.ndarray, kind: str, source: int, variant: float) -> None:
        """Add one stamp (trimmed to its support, with a one-pixel margin)."""
        change = np.maximum(np.abs(add).max(0), absorb.max(0))
        rows, cols = np.flatnonzero(change.max(1) > _SUPPORT / 4), np.flatnonzero(change.max(0) > _SUPPORT / 4)
        if rows.size == 0:
            return
        box = (slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(cols[0] - 1, 0), cols[-1] + 2))
        self.add.append(np.ascontiguousarray(add[:, box[0], box[1]], dtype=np.float32))
        self.log_gain.append(np.log(np.clip(1 - absorb[:, box[0], box[1]], 0.02, 1)).astype(np.float32))
        self.support.append(change[box] > _SUPPORT)
        self.kind.append(kind)
        self.source.append(source)
        self.variant.append(variant)

    def shape(self) -> np.ndarray:
        """(S, 2) heights and widths."""
        return np.array([s.shape for s in self.support]).reshape(-1, 2)


@dataclass(frozen=True)
class Placement:
    """Instances to paste: image, stamp, top-left corner and flips, one entry per instance (numpy arrays)."""

    image: np.ndarray
    stamp: np.ndarray
    y0: np.ndarray
    x0: np.ndarray
    flip_y: np.ndarray
    flip_x: np.ndarray

    @staticmethod
    def concat(parts: list[Placement]) -> Placement:
        """All instances of several placements."""
        if not parts:
            return Placement(*(np.zeros(0, np.int64) for _ in range(4)), np.zeros(0, bool), np.zeros(0, bool))
        return Placement(*(np.concatenate([getattr(p, k) for p in parts]) for k in
                           ("image", "stamp", "y0", "x0", "flip_y", "flip_x")))


# ------------------------------------------------------------------------------------------ templates
def load_templates(folder: str | Path) -> TemplateBank:
    """Every template of an artefact folder (meta.json + PNGs), or DataError naming what is missing."""
    folder = Path(folder).expanduser()
    return _load_templates(folder.resolve())


@lru_cache(maxsize=4)
def _load_templates(folder: Path) -> TemplateBank:
    """load_templates, memoised per folder (the PNGs are decoded once per process)."""
    meta_path = folder / "meta.json"
    if not folder.is_dir():
        raise DataError(f"artefact templates: folder {folder} does not exist; give the folder that holds "
                        f"meta.json and src/ (e.g. ../shared/data/artefacts)")
    if not meta_path.is_file():
        raise DataError(f"artefact templates: {folder} has no meta.json; give the template folder that holds "
                        f"meta.json (Katsch et al. 2022 layout)")
    try:
        entries = json.loads(meta_path.read_text())["artefacts"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{meta_path}: not a template list ({exc.__class__.__name__}: {exc}); it must be JSON "
                        f"with a list 'artefacts'") from None
    templates: list[Template] = []
    for k, entry in enumerate(entries):
        templates += _entry_templates(folder, meta_path, k, entry)
    if not templates:
        raise DataError(f"{meta_path}: no template PNG found; check the artefact_folder entries")
    return TemplateBank(folder, tuple(templates))


def _entry_templates(folder: Path, meta_path: Path, k: int, entry: dict) -> list[Template]:
    """The templates of one meta.json entry."""
    key = (entry.get("class"), entry.get("subclass") if entry.get("class") != "bubble" else None)
    if key not in _KIND:
        raise DataError(f"{meta_path}: artefacts[{k}] has class/subclass {key[0]}/{key[1]}; use bubble, "
                        f"marking/spot, marking/circle, ruler/horizontal or ruler/vertical")
    sub = folder / str(entry.get("artefact_folder", ""))
    if not sub.is_dir():
        raise DataError(f"{meta_path}: artefacts[{k}].artefact_folder {sub} does not exist; fix the entry")
    kind, source = _KIND[key], str(entry.get("name", sub.name))
    files = sorted(p for p in sub.iterdir() if p.suffix.lower() == ".png")
    if entry.get("preprocessor") == "difference":
        pairs = _pairs(files)
        return [Template(kind, source, _rgb(w) - _rgb(wo), np.zeros((3, *_rgb(w).shape[1:]), np.float32))
                for w, wo in pairs]
    return [Template(kind, source, np.zeros((3, *img.shape[1:]), np.float32), 1 - img)
            for img in map(_rgb, files)]


def _pairs(files: list[Path]) -> list[tuple[Path, Path]]:
    """(with, without) pairs: the without file is the with file's name with 'with' replaced by 'without'."""
    names = {p.name: p for p in files}
    out = []
    for p in files:
        if "without" in p.name or "with" not in p.name:
            continue
        other = p.name.replace("with", "without", 1)
        if other in names:
            out.append((p, names[other]))
    return out


def _rgb(path: Path) -> np.ndarray:
    """A PNG as float32 (3, h, w) in 0..1."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255


# --------------------------------------------------------------------------------------------- stamps
def make_stamps(bank: TemplateBank, height: int, width: int, field_size: tuple[int, int] = FIELD) -> Stamps:
    """Every template resampled (and rotated / rescaled into its variants) for (height, width) images."""
    return _make_stamps(bank, height, width, tuple(field_size))


@lru_cache(maxsize=8)
def _make_stamps(bank: TemplateBank, height: int, width: int, field_size: tuple[int, int]) -> Stamps:
    """make_stamps, memoised per bank and image size."""
    sy, sx = height / field_size[1], width / field_size[0]
    stamps = Stamps()
    for kind in ("ruler_edge", "ruler_across", "bubble", "ink", "ink_circle"):
        sources = bank.sources(kind)
        for t in bank.of(kind):
            for variant, add, absorb in _variants(t, sy, sx):
                stamps.append(add, absorb, kind, sources.index(t.source), variant)
    return stamps


def _variants(t: Template, sy: float, sx: float) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """(variant, add, absorb) of one template at scale (sy, sx): tilts for rulers, sizes for markings."""
    # turned by 90 degrees at the templates' scale, resampled, then tilted (a tilt of a few degrees after an
    # anisotropic resampling shears the strip by a fraction of a degree: invisible)
    if t.kind == "ruler_edge":  # lying along the top/bottom edge (0) or the left/right edge (90)
        out = []
        for turn in (0, 1):
            add, absorb = _resample(np.rot90(t.add, turn, (1, 2)), np.rot90(t.absorb, turn, (1, 2)), sy, sx)
            out += [(90.0 * turn + tilt, _rotate(add, tilt), _rotate(absorb, tilt)) for tilt in _EDGE_TILTS]
        return out
    if t.kind == "ruler_across":
        add, absorb = _resample(t.add, t.absorb, sy, sx)
        return [(tilt, _rotate(add, tilt), _rotate(absorb, tilt)) for tilt in _ACROSS_TILTS]
    scales = {"bubble": (1.0,), "ink": _SPOT_SCALES, "ink_circle": _CIRCLE_SCALES}[t.kind]
    return [(s, *_resample(t.add, t.absorb, sy * s, sx * s)) for s in scales]


def _rotate(arr: np.ndarray, degrees: float) -> np.ndarray:
    """(3, h, w) rotated by `degrees` (bilinear, canvas grown to fit, zero outside)."""
    if degrees == 0:
        return np.ascontiguousarray(arr)
    return ndimage.rotate(arr, degrees, axes=(2, 1), reshape=True, order=1, mode="constant", cval=0.0)


def _resample(add: np.ndarray, absorb: np.ndarray, sy: float, sx: float) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays resized by (sy, sx) with antialiasing (at least one pixel each way)."""
    h, w = add.shape[1:]
    size = (max(1, round(h * sy)), max(1, round(w * sx)))
    both = torch.from_numpy(np.ascontiguousarray(np.stack([add, absorb]), dtype=np.float32))
    out = F.interpolate(both, size=size, mode="bilinear", antialias=True, align_corners=False).numpy()
    return out[0], np.clip(out[1], 0, 1)


# ------------------------------------------------------------------------------------------ placement
@dataclass(frozen=True)
class Lesions:
    """Per image: lesion centre (y, x), equivalent diameter, and the lesion masks (bool, None without masks)."""

    cy: np.ndarray
    cx: np.ndarray
    diameter: np.ndarray
    masks: np.ndarray | None  # (N, H, W) bool

    @staticmethod
    def of(masks: np.ndarray | None, n: int, height: int, width: int) -> Lesions:
        """Lesion geometry from (N, H, W) masks; without masks (or for empty ones) a central disc."""
        default_d = 0.45 * min(height, width)
        cy, cx = np.full(n, (height - 1) / 2), np.full(n, (width - 1) / 2)
        diameter = np.full(n, default_d)
        if masks is None:
            return Lesions(cy, cx, diameter, None)
        m = masks > 0
        area = m.sum((1, 2)).astype(np.float64)
        has = area > 0
        ys, xs = np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            my = (m.sum(2) * ys).sum(1) / area
            mx = (m.sum(1) * xs).sum(1) / area
        cy, cx = np.where(has, my, cy), np.where(has, mx, cx)
        diameter = np.where(has, 2 * np.sqrt(area / np.pi), default_d)
        return Lesions(cy, cx, diameter, m)


def place(stamps: Stamps, present: dict[str, np.ndarray], lesions: Lesions, height: int, width: int,
          rng: np.random.Generator) -> Placement:
    """Every instance of every artefact type present (a bool (N,) array per type), by the type's rules."""
    parts = []
    for name in TYPES:
        flag = present.get(name)
        if flag is None:
            continue
        idx = np.flatnonzero(flag)
        rules = {"ruler": _place_ruler, "bubble": _place_bubbles, "ink": _place_spots, "ink_circle": _place_circle}
        # every type draws from its own stream, so adding a type leaves the others' placements unchanged
        sub = np.random.default_rng([int(rng.integers(2**32)), TYPES.index(name)])
        if idx.size:
            parts.append(rules[name](stamps, idx, lesions, height, width, sub))
    return Placement.concat(parts)


def _pick_source(stamps: Stamps, kinds: tuple[str, ...], n: int, rng: np.random.Generator) -> np.ndarray:
    """One (kind, source) group per image, uniformly among the groups: an int array into `_groups`."""
    groups = _groups(stamps, kinds)
    return rng.integers(0, len(groups), n)


def _groups(stamps: Stamps, kinds: tuple[str, ...]) -> list[tuple[str, int]]:
    """The (kind, source) pairs with at least one stamp."""
    return list(dict.fromkeys((k, s) for k, s in zip(stamps.kind, stamps.source, strict=True) if k in kinds))


def _stamp_in_group(stamps: Stamps, group: tuple[str, int], u: np.ndarray,
                    variant: np.ndarray | None = None) -> np.ndarray:
    """Stamp indices of one group: u in [0, 1) picks among them (or the variant nearest to `variant`)."""
    members = np.flatnonzero((np.asarray(stamps.kind) == group[0]) & (np.asarray(stamps.source) == group[1]))
    if variant is None:
        return members[np.minimum((u * members.size).astype(np.int64), members.size - 1)]
    values = np.asarray(stamps.variant)[members]
    levels = np.unique(values)
    level = levels[np.abs(np.log(levels)[None] - np.log(variant)[:, None]).argmin(1)]
    out = np.empty(u.size, np.int64)
    for lv in levels:  # among the stamps at the chosen level, pick by u
        sel = level == lv
        if sel.any():
            at = members[values == lv]
            out[sel] = at[np.minimum((u[sel] * at.size).astype(np.int64), at.size - 1)]
    return out


def _by_group(stamps: Stamps, kinds: tuple[str, ...], group: np.ndarray, u: np.ndarray,
              variant: np.ndarray | None = None) -> np.ndarray:
    """A stamp per entry: from the entry's group, chosen by u (and the nearest variant level when given)."""
    groups = _groups(stamps, kinds)
    out = np.empty(group.size, np.int64)
    for g in np.unique(group):
        sel = group == g
        out[sel] = _stamp_in_group(stamps, groups[g], u[sel], None if variant is None else variant[sel])
    return out


def _instances(image: np.ndarray, stamp: np.ndarray, cy: np.ndarray, cx: np.ndarray, stamps: Stamps,
               rng: np.random.Generator, flips: bool = True) -> Placement:
    """Instances centred at (cy, cx), random flips when asked."""
    hw = stamps.shape()[stamp]
    y0 = np.round(cy - hw[:, 0] / 2).astype(np.int64)
    x0 = np.round(cx - hw[:, 1] / 2).astype(np.int64)
    fy = rng.random(stamp.size) < 0.5 if flips else np.zeros(stamp.size, bool)
    fx = rng.random(stamp.size) < 0.5 if flips else np.zeros(stamp.size, bool)
    return Placement(image.astype(np.int64), stamp, y0, x0, fy, fx)


def _place_ruler(stamps: Stamps, idx: np.ndarray, les: Lesions, h: int, w: int,
                 rng: np.random.Generator) -> Placement:
    """One ruler per image: along an edge (peripheral sources) or across the lower third (the others)."""
    kinds = ("ruler_edge", "ruler_across")
    groups = _groups(stamps, kinds)
    group = _pick_source(stamps, kinds, idx.size, rng)
    edge = rng.integers(0, 4, idx.size)  # 0 top, 1 bottom, 2 left, 3 right
    across = np.array([groups[g][0] == "ruler_across" for g in group], bool)
    turn = np.where(across | (edge < 2), 0.0, 90.0)
    tilt = np.where(across, rng.choice(_ACROSS_TILTS, idx.size), rng.choice(_EDGE_TILTS, idx.size))
    stamp = np.empty(idx.size, np.int64)
    variants = np.asarray(stamps.variant)
    for g in np.unique(group):  # the stamp of the group with the wanted orientation and tilt
        sel = np.flatnonzero(group == g)
        members = np.flatnonzero((np.asarray(stamps.kind) == groups[g][0])
                                 & (np.asarray(stamps.source) == groups[g][1]))
        want = (turn[sel] + tilt[sel])[:, None]
        pick = members[np.abs(variants[members][None] - want).argmin(1)]
        stamp[sel] = pick
    hw = stamps.shape()[stamp].astype(np.float64)
    # peripheral: the strip's outer part (up to 15 % of its thickness) hangs outside the frame
    out = rng.uniform(0.0, 0.15, idx.size)
    along_y, along_x = rng.uniform(0.3, 0.7, idx.size) * h, rng.uniform(0.3, 0.7, idx.size) * w
    thick = np.where(edge < 2, hw[:, 0], hw[:, 1])
    cy = np.select([edge == 0, edge == 1], [thick * (0.5 - out), h - thick * (0.5 - out)], along_y)
    cx = np.select([edge == 2, edge == 3], [thick * (0.5 - out), w - thick * (0.5 - out)], along_x)
    # across: centred below the lesion in the lower third, near the middle
    low = np.maximum(les.cy[idx] + 0.45 * les.diameter[idx], 0.62 * h)
    cy = np.where(across, rng.uniform(np.minimum(low, 0.9 * h), 0.92 * h), cy)
    cx = np.where(across, w / 2 + rng.uniform(-w / 6, w / 6, idx.size), cx)
    flip = rng.random(idx.size) < 0.5  # a half turn: ticks on the other side, numbers the other way
    inst = _instances(idx, stamp, cy, cx, stamps, rng, flips=False)
    return Placement(inst.image, inst.stamp, inst.y0, inst.x0, flip & ~across, flip & ~across)


def _place_bubbles(stamps: Stamps, idx: np.ndarray, les: Lesions, h: int, w: int,
                   rng: np.random.Generator) -> Placement:
    """2-6 bubbles of one source per image, each at the best of _CANDIDATES centres (off the lesion)."""
    group = _pick_source(stamps, ("bubble",), idx.size, rng)
    count = 2 + rng.binomial(4, 0.5, idx.size)
    image = np.repeat(idx, count)
    stamp = _by_group(stamps, ("bubble",), np.repeat(group, count), rng.random(image.size))
    cy, cx = _off_lesion(stamps, image, stamp, les, h, w, rng)
    return _instances(image, stamp, cy, cx, stamps, rng)


def _off_lesion(stamps: Stamps, image: np.ndarray, stamp: np.ndarray, les: Lesions, h: int, w: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Centres: among _CANDIDATES uniform ones, a random one whose centre and 8 points around it at the stamp's
    half size lie off the lesion (else the one with the fewest such points on it)."""
    cy = rng.uniform(0, h - 1, (image.size, _CANDIDATES))
    cx = rng.uniform(0, w - 1, (image.size, _CANDIDATES))
    if les.masks is None:
        return cy[:, 0], cx[:, 0]
    reach = stamps.shape()[stamp].max(1)[:, None, None] / 2
    angle = np.arange(9) * (2 * np.pi / 8)
    ring = np.where(np.arange(9) == 8, 0.0, 1.0)  # 8 points on the circle, then the centre
    py = np.clip(np.round(cy[..., None] + reach * ring * np.sin(angle)), 0, h - 1).astype(np.int64)
    px = np.clip(np.round(cx[..., None] + reach * ring * np.cos(angle)), 0, w - 1).astype(np.int64)
    hits = les.masks[image[:, None, None], py, px].sum(2)
    best = (-hits + rng.random(cy.shape) * 0.5).argmax(1)
    rows = np.arange(image.size)
    return cy[rows, best], cx[rows, best]


def _place_spots(stamps: Stamps, idx: np.ndarray, les: Lesions, h: int, w: int,
                 rng: np.random.Generator) -> Placement:
    """1-2 ink spots of one source per image, anywhere off the lesion (as bubbles), flipped at random."""
    group = _pick_source(stamps, ("ink",), idx.size, rng)
    count = 1 + rng.binomial(1, 0.4, idx.size)
    image = np.repeat(idx, count)
    stamp = _by_group(stamps, ("ink",), np.repeat(group, count), rng.random(image.size))
    cy, cx = _off_lesion(stamps, image, stamp, les, h, w, rng)
    return _instances(image, stamp, cy, cx, stamps, rng)


def _place_circle(stamps: Stamps, idx: np.ndarray, les: Lesions, h: int, w: int,
                  rng: np.random.Generator) -> Placement:
    """One circle marking per image around the lesion, scaled to enclose it."""
    group = _pick_source(stamps, ("ink_circle",), idx.size, rng)
    groups = _groups(stamps, ("ink_circle",))
    # the nominal (scale 1) size of each group's stamps, to turn the wanted size into a scale level
    nominal = np.array([_nominal_size(stamps, g) for g in groups])[group]
    # at most _CIRCLE_FIT of the frame: a large lesion's 2 x ring ran off the frame and left stray arcs in the
    # corners (gallery review); a marking drawn on the skin is visible in the photograph
    want = np.minimum(2.0 * les.diameter[idx] * rng.uniform(0.85, 1.15, idx.size), _CIRCLE_FIT * min(h, w))
    u, scale = rng.random(idx.size), want / nominal
    stamp = _by_group(stamps, ("ink_circle",), group, u, variant=scale)
    for _ in _CIRCLE_SCALES:  # the nearest size level (or a wide template) can still overflow: step down
        big = stamps.shape()[stamp].max(1) > _CIRCLE_FIT * min(h, w)
        if not big.any():
            break
        scale = np.where(big, scale / 1.2, scale)
        stamp[big] = _by_group(stamps, ("ink_circle",), group[big], u[big], variant=scale[big])
    jitter = 0.08 * les.diameter[idx]
    hw = stamps.shape()[stamp]
    # centred on the lesion, moved just enough to keep the whole ring in the frame where it fits
    cy = _keep_inside(les.cy[idx] + rng.normal(0, 1, idx.size) * jitter, hw[:, 0], h)
    cx = _keep_inside(les.cx[idx] + rng.normal(0, 1, idx.size) * jitter, hw[:, 1], w)
    return _instances(idx, stamp, cy, cx, stamps, rng)


def _keep_inside(centre: np.ndarray, extent: np.ndarray, size: int) -> np.ndarray:
    """Centres moved so that a stamp of `extent` pixels lies within [0, size) (unchanged where it cannot)."""
    low, high = extent / 2, size - extent / 2
    return np.where(extent <= size, np.clip(centre, low, np.maximum(low, high)), centre)


def _nominal_size(stamps: Stamps, group: tuple[str, int]) -> float:
    """Geometric mean of height and width of a group's stamps at scale 1 (their mean over templates)."""
    hw = stamps.shape()
    sel = [i for i, (k, s, v) in enumerate(zip(stamps.kind, stamps.source, stamps.variant, strict=True))
           if (k, s) == group and abs(v - 1.0) == min(abs(np.asarray(_CIRCLE_SCALES) - 1.0))]
    return float(np.mean(np.sqrt(hw[sel, 0] * hw[sel, 1])))


# -------------------------------------------------------------------------------------------- pasting
def paste(images: np.ndarray, stamps: Stamps, placement: Placement) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """uint8 (N, 3, H, W) images with every instance pasted, and a uint8 (N, H, W) 0/1 mask per type."""
    n, _, h, w = images.shape
    out = images.copy()
    types = sorted({_TYPE_OF[k] for k in stamps.kind})
    masks = {t: np.zeros((n, h, w), np.uint8) for t in types}
    touched, local = np.unique(placement.image, return_inverse=True)  # only images that get an artefact
    step = max(1, _CHUNK_PIXELS // (h * w))
    for start in range(0, touched.size, step):
        rows = touched[start:start + step]
        sel = (local >= start) & (local < start + rows.size)
        chunk = Placement(local[sel] - start, *(getattr(placement, k)[sel] for k in ("stamp", "y0", "x0",
                                                                                      "flip_y", "flip_x")))
        out[rows], chunk_masks = _paste_chunk(images[rows], stamps, chunk)
        for t, m in chunk_masks.items():
            masks[t][rows] = m
    return out, masks


def _paste_chunk(images: np.ndarray, stamps: Stamps, p: Placement) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """paste() on one chunk: gather destinations of every stamp pixel, sum contributions with bincount."""
    b, _, h, w = images.shape
    plane = b * h * w
    flat_all, add_all, gain_all, mask_flat = [], [], [], {}
    for s in np.unique(p.stamp):
        k = np.flatnonzero(p.stamp == s)
        sh, sw = stamps.support[s].shape
        ry = np.where(p.flip_y[k, None], sh - 1 - np.arange(sh), np.arange(sh))  # stamp row per output row
        rx = np.where(p.flip_x[k, None], sw - 1 - np.arange(sw), np.arange(sw))
        y = p.y0[k, None] + np.arange(sh)  # (n, sh)
        x = p.x0[k, None] + np.arange(sw)
        inside = ((y >= 0) & (y < h))[:, :, None] & ((x >= 0) & (x < w))[:, None, :]
        flat = (p.image[k, None, None] * h * w + np.clip(y, 0, h - 1)[:, :, None] * w
                + np.clip(x, 0, w - 1)[:, None, :])[inside]
        rows, cols = ry[:, :, None], rx[:, None, :]
        add = stamps.add[s][:, rows, cols][:, inside]  # (3, m)
        gain = stamps.log_gain[s][:, rows, cols][:, inside]
        support = stamps.support[s][rows, cols][inside]
        flat_all.append(flat)
        add_all.append(add)
        gain_all.append(gain)
        mask_flat.setdefault(_TYPE_OF[stamps.kind[s]], []).append(flat[support])
    flat = np.concatenate(flat_all)
    add, gain = np.concatenate(add_all, 1), np.concatenate(gain_all, 1)
    img = images.astype(np.float32) / 255
    for c in range(3):
        d = np.bincount(flat, weights=add[c], minlength=plane).reshape(b, h, w)
        g = np.bincount(flat, weights=gain[c], minlength=plane).reshape(b, h, w)
        img[:, c] = img[:, c] * np.exp(g) + d
    out = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    masks = {}
    for t, parts in mask_flat.items():
        m = np.zeros(plane, np.uint8)
        m[np.concatenate(parts)] = 1
        masks[t] = m.reshape(b, h, w)
    return out, masks


# ------------------------------------------------------------------------------------------ front door
def check_types(names: tuple[str, ...] | list[str], where: str) -> tuple[str, ...]:
    """The names if all are insertion types, else DataError naming the unknown one and the valid ones."""
    unknown = [n for n in names if n not in TYPES]
    if unknown or not names:
        raise DataError(f"{where}: unknown artefact type '{unknown[0] if unknown else ''}'; use a comma list of "
                        f"{', '.join(TYPES)}")
    return tuple(names)


def insert_artefacts(images: np.ndarray | torch.Tensor, present: dict[str, np.ndarray], bank: TemplateBank,
                     lesion_masks: np.ndarray | torch.Tensor | None = None, seed: int = 0,
                     field_size: tuple[int, int] = FIELD) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Images with real artefacts pasted where `present[type]` is true, and a 0/1 mask per type.

    Args:
        images: uint8 RGB (N, 3, H, W).
        present: type name (one of TYPES) -> bool (N,) array: which images get that artefact.
        bank: the templates (`load_templates`).
        lesion_masks: optional (N, H, W) lesion masks (> 0 is lesion): bubbles avoid them, circles enclose them.
        seed: the placement seed (same seed, same images).
        field_size: (width, height) of a full image at the templates' scale; templates are scaled by
            (H / height, W / width).

    Returns:
        uint8 (N, 3, H, W) images and, for every type in `present`, a uint8 (N, H, W) mask (1 where it changed
        the image by more than 6/255 in some channel).
    """
    arr = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1] != 3:
        raise DataError(f"artefact insertion needs uint8 RGB images (N, 3, H, W); got {arr.dtype} "
                        f"{tuple(arr.shape)}")
    check_types(tuple(present), "artefact insertion")
    n, _, h, w = arr.shape
    if lesion_masks is not None:
        lesion_masks = (lesion_masks.numpy() if isinstance(lesion_masks, torch.Tensor)
                        else np.asarray(lesion_masks))
    stamps = make_stamps(bank, h, w, field_size)
    missing = [t for t in present if not any(_TYPE_OF[k] == t for k in stamps.kind)]
    if missing:
        raise DataError(f"artefact templates {bank.folder}: no template of type {missing[0]}; use a folder with "
                        f"{missing[0]} templates or drop the type")
    flags = {t: np.asarray(v, bool).reshape(n) for t, v in present.items()}
    placement = place(stamps, flags, Lesions.of(lesion_masks, n, h, w), h, w, np.random.default_rng(seed))
    out, masks = paste(arr, stamps, placement)
    return out, {t: masks.get(t, np.zeros((n, h, w), np.uint8)) for t in present}

