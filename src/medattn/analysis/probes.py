"""Shortcut probes: insert an artefact into test images that lack it (or remove it where masks exist) and
measure how each model's predictions move.

Insertion reuses derm-synth's artefact renderers (`medattn.data.synthetic`): a colour calibration patch in a
corner, ruler marks along an edge, a violet ink circle in a corner, with derm-synth's random placement and
look (seeded) unless `position` (corner 0-3 = TL, TR, BL, BR for patch and ink; edge 0-3 = top, bottom, left,
right for the ruler), `scale` (size factor) or `colour` (RGB, patch and ink) are given. Removal (only where
`ImageSet.artefact_masks` exist, i.e. derm-synth) fills the artefact's pixels from their surroundings by
harmonic (diffusion) inpainting: masked pixels repeatedly take the mean of their 3 x 3 neighbours.

Inpainting itself changes images (it smooths texture under the mask), so removal has a control: the `sham`
arm inpaints the same-sized regions in images *without* the artefact (the artefact masks of images that have it,
dealt at random to clean images). A removal flip rate near the sham's says the artefact did not matter.

Per model and probe: the prediction flip rate with its exact Clopper-Pearson 95 % interval (statsmodels; zero
flips in 60 images give [0, 0.060], not [0, 0]), the mean change of the positive-class probability and the
balanced-accuracy change, each with a percentile bootstrap 95 % CI over images (`PROBE_BOOTSTRAP` resamples,
vectorised); across the seeds of a model, a two-level bootstrap (seeds, then the shared images) gives the
interval of the mean flip rate and change of P(positive) (`*_seeds_low/high`, the same on every seed's row).
As in Bissoto et al. ("(De)constructing bias on skin lesion datasets", CVPR-W 2019) and the shortcut tests of
Geirhos et al. 2020, a model that ignores the artefact flips few predictions. The artefacts'
random placement and look are drawn from the probe seed *and the run's seed*, so every run sees its own draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from medattn.data import artefacts, shortcut, synthetic
from medattn.data.imageset import ImageSet
from medattn.errors import DataError
from medattn.rundir import layout, writer
from medattn.stats.resampling import PROBE_BOOTSTRAP

ARTEFACTS = synthetic.ARTEFACTS
REAL_ARTEFACTS = tuple(a for a in artefacts.TYPES if a not in ARTEFACTS)  # only in datasets with shortcut=
POSITIVE_NAMES = ("malignant", "melanoma", "mel", "MEL")
PROBES_FILE = layout.PROBES
_PLACE = {"patch": "patch_corner", "ruler": "ruler_edge", "ink": "ink_corner"}
_SIZE_KEYS = {"patch": ("patch_side",), "ruler": ("ruler_depth",), "ink": ("ink_radius",)}


@dataclass(frozen=True)
class ProbeOptions:
    """Artefacts to insert, their optional position / size / colour, removal on or off, bootstrap size, seed."""

    artefacts: tuple[str, ...] = ARTEFACTS
    position: int | None = None
    scale: float = 1.0
    colour: tuple[int, int, int] | None = None
    removal: bool = True
    split: str = "test"
    bootstrap: int = PROBE_BOOTSTRAP
    seed: int = 0


def parse_artefacts(text: str) -> tuple[str, ...]:
    """Artefact names from a comma list; DataError naming the valid ones for an unknown name."""
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [n for n in names if n not in ARTEFACTS + REAL_ARTEFACTS]
    if unknown or not names:
        raise DataError(f"--artefact: unknown artefact '{unknown[0] if unknown else text}'; valid names: "
                        f"{', '.join(ARTEFACTS + REAL_ARTEFACTS)}")
    return names


def insert_artefact(images: torch.Tensor, name: str, seed: int = 0, position: int | None = None,
                    scale: float = 1.0, colour: tuple[int, int, int] | None = None) -> torch.Tensor:
    """uint8 RGB images (N, 3, S, S) with artefact `name` drawn in by derm-synth's renderer."""
    n, _, size, _ = images.shape
    rng = np.random.default_rng(seed)
    flags = {a: np.full(n, a == name) for a in ARTEFACTS} | {"hair": np.zeros(n, bool)}
    p = synthetic._artefact_params(rng, flags, size)
    if position is not None:
        p = _placed(p, name, position, size)
    for key in _SIZE_KEYS[name]:
        p[key] = p[key] * scale
    if name == "patch":
        p = _patch_geometry(p, size)
    if colour is not None and name == "patch":
        p["patch_chart"] = np.broadcast_to(np.asarray(colour, np.float32), p["patch_chart"].shape).copy()
    p = {k: v if v.dtype.kind in "bi" else v.astype(np.float32) for k, v in p.items()}
    grid = synthetic._Grid(size)
    img = images.numpy().astype(np.float32)
    if colour is not None and name == "ink":
        alpha = np.zeros_like(img)
        synthetic._draw_artefact(alpha, p, grid, name)  # on black the drawn value is INK * alpha
        alpha = alpha / synthetic._INK
        img = img + (np.asarray(colour, np.float32).reshape(1, 3, 1, 1) - img) * alpha
    else:
        synthetic._draw_artefact(img, p, grid, name)
    return torch.from_numpy(np.clip(img + 0.5, 0, 255).astype(np.uint8))


def _placed(p: dict, name: str, position: int, size: int) -> dict:
    """Parameters with every image's artefact at one corner/edge (0-3)."""
    if not 0 <= position <= 3:
        raise DataError(f"--position {position}: use 0-3 (corner TL, TR, BL, BR; ruler edge top, bottom, left, right)")
    p = dict(p)
    p[_PLACE[name]] = np.full_like(p[_PLACE[name]], position)
    if name == "ink":
        off = np.where(p["ink_cx"] > size / 2, size - p["ink_cx"], p["ink_cx"])
        p["ink_cx"] = np.where(position % 2 == 1, size - off, off)
        p["ink_cy"] = np.where(position >= 2, size - off, off)
    return p


def _patch_geometry(p: dict, size: int) -> dict:
    """Patch corner coordinates recomputed from its corner, side and margin (after a move or a resize)."""
    p = dict(p)
    margin = np.minimum(p["patch_x0"], size - p["patch_x0"] - p["patch_side"]).clip(min=1)
    side = np.minimum(p["patch_side"], 0.24 * size)  # the renderer draws within a corner window of 0.245 size
    p["patch_side"] = side
    p["patch_x0"] = np.where(p["patch_corner"] % 2 == 1, size - margin - side, margin)
    p["patch_y0"] = np.where(p["patch_corner"] >= 2, size - margin - side, margin)
    return p


def remove_artefact(images: torch.Tensor, mask: torch.Tensor, iterations: int | None = None) -> torch.Tensor:
    """uint8 images with the pixels where `mask` (N, S, S) > 0 filled by harmonic (diffusion) inpainting."""
    x = images.float()
    hole = (mask > 0)[:, None].expand_as(x)
    known = (~hole).float()
    # start from the mean of the known pixels, then relax: hole pixels take their neighbours' mean
    mean = (x * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp_min(1)
    x = torch.where(hole, mean.expand_as(x), x)
    for _ in range(iterations or images.shape[-1]):
        x = torch.where(hole, F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1), x)
    return x.round().clamp(0, 255).to(torch.uint8)


def positive_class(class_names: list[str]) -> int:
    """Index of the malignant class (by name), else the last class."""
    for name in POSITIVE_NAMES:
        if name in class_names:
            return class_names.index(name)
    return len(class_names) - 1


def balanced_accuracy(pred: np.ndarray, label: np.ndarray, classes: int) -> np.ndarray:
    """Balanced accuracy of each row of (B, n) predictions and labels (classes absent from a row left out)."""
    pred, label = np.atleast_2d(pred), np.atleast_2d(label)
    onehot = label[..., None] == np.arange(classes)  # (B, n, K)
    correct = (onehot & (pred == label)[..., None]).sum(-2)
    support = onehot.sum(-2)
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.where(support > 0, correct / np.maximum(support, 1), np.nan), -1)


def flip_interval(flips: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact Clopper-Pearson interval of a flip rate (statsmodels' proportion_confint, method 'beta')."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return float("nan"), float("nan")
    low, high = proportion_confint(flips, n, alpha=1 - level, method="beta")
    return float(low), float(high)


def probe_effects(before: np.ndarray, after: np.ndarray, label: np.ndarray, positive: int, bootstrap: int,
                  seed: int) -> dict[str, float]:
    """Flip rate (exact interval), mean change of P(positive) and balanced-accuracy change (bootstrap 95 % CIs)."""
    classes = before.shape[1]
    p0, p1 = before.argmax(1), after.argmax(1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(label), (bootstrap, len(label)))
    flips = p0 != p1
    delta = after[:, positive] - before[:, positive]
    bacc = float((balanced_accuracy(p1, label, classes) - balanced_accuracy(p0, label, classes))[0])
    boot_bacc = balanced_accuracy(p1[idx], label[idx], classes) - balanced_accuracy(p0[idx], label[idx], classes)
    out = {"n": int(len(label)), "flip_rate": float(flips.mean()), "delta_positive_prob": float(delta.mean()),
           "delta_balanced_accuracy": float(bacc)}
    out["_flips"], out["_delta"] = flips.astype(float), delta.astype(float)  # per image, for the seed summary
    out["flips"] = int(flips.sum())
    out["flip_rate_low"], out["flip_rate_high"] = flip_interval(int(flips.sum()), len(label))
    for key, boot in (("delta_positive_prob", delta[idx].mean(1)), ("delta_balanced_accuracy", boot_bacc)):
        low, high = np.quantile(boot, [0.025, 0.975]) if len(boot) else (np.nan, np.nan)
        out[f"{key}_low"], out[f"{key}_high"] = float(low), float(high)
    return out


def two_level_interval(values: np.ndarray, resamples: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of (seeds, images) values, resampling seeds and then the shared images.

    The two-level (hierarchical) bootstrap of Davison and Hinkley (1997, section 3.8): seeds are drawn with
    replacement, then images, the same image draw for every seed (the runs saw the same test images).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[0] < 2 or values.shape[1] == 0 or resamples <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, values.shape[0], (resamples, values.shape[0]))
    images = rng.integers(0, values.shape[1], (resamples, values.shape[1]))
    means = values[seeds[:, :, None], images[:, None, :]].mean((1, 2))
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def seed_intervals(table: pd.DataFrame, arrays: list[dict], resamples: int, seed: int) -> pd.DataFrame:
    """Add the two-level intervals over seeds (flip rate, change of P(positive)) to every row of its group."""
    keys = ["dataset", "model", "probe", "artefact"]
    out = table.copy()
    for column in ("flip_rate", "delta_positive_prob"):
        out[f"{column}_seeds_low"] = np.nan
        out[f"{column}_seeds_high"] = np.nan
    for _, part in out.groupby(keys, sort=False):
        for column, key in (("flip_rate", "_flips"), ("delta_positive_prob", "_delta")):
            stacked = [arrays[i][key] for i in part.index]
            if len({len(a) for a in stacked}) != 1:
                continue
            low, high = two_level_interval(np.stack(stacked), resamples, seed)
            out.loc[part.index, f"{column}_seeds_low"] = low
            out.loc[part.index, f"{column}_seeds_high"] = high
    return out


def run_seed(probe_seed: int, run: int, artefact: int) -> int:
    """The seed of one run's artefact draw: the probe seed, the run's seed and the artefact's position mixed."""
    return int(np.random.SeedSequence([probe_seed, run, artefact]).generate_state(1)[0])


def sham_masks(masks: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """`count` artefact masks dealt at random (with replacement) from `masks`, for the sham inpainting arm."""
    pick = np.random.default_rng(seed).integers(0, len(masks), count)
    return masks[torch.from_numpy(pick)]


def probe_images(data: ImageSet, name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(positions without the artefact, positions with it) in a split, from the concept table when it says."""
    idx = np.flatnonzero(data.split == split)
    if data.concepts is not None and name in data.concepts.columns:
        present = data.concepts[name].to_numpy()[idx] > 0
        return idx[~present], idx[present]
    return idx, idx[:0]


def probe_run(model_probs, data: ImageSet, opts: ProbeOptions, seed: int) -> list[dict]:
    """Probe rows of one model: `model_probs(uint8 images) -> probabilities (N, K)`, for every artefact asked."""
    rows = []
    labels = data.labels.numpy()
    positive = positive_class(data.class_names)
    for k, name in enumerate(opts.artefacts):
        without, with_it = probe_images(data, name, opts.split)
        if data.in_chans != 3:
            raise DataError(f"{data.source}: artefact insertion draws RGB artefacts; this dataset has "
                            f"{data.in_chans} channel(s)")
        draw = run_seed(opts.seed, seed, k)
        before_clean = model_probs(data.images[without]) if len(without) else None
        if len(without):
            # a dataset whose spec plants real artefacts (shortcut=) gets them inserted by its own rules
            real = shortcut.insert_like(data, without, name, seed=draw)
            if real is None and name in REAL_ARTEFACTS:
                raise DataError(f"{data.source}: artefact '{name}' is a real template type; insert it only into "
                                f"a dataset whose spec has shortcut={name}")
            after = model_probs(real if real is not None else insert_artefact(
                data.images[without], name, seed=draw, position=opts.position, scale=opts.scale,
                colour=opts.colour))
            rows.append({"probe": "insert", "artefact": name,
                         **probe_effects(before_clean, after, labels[without], positive, opts.bootstrap, draw)})
        if opts.removal and len(with_it) and name in data.artefact_masks:
            dirty = data.images[with_it]
            masks = data.artefact_masks[name][with_it]
            before = model_probs(dirty)
            after = model_probs(remove_artefact(dirty, masks))
            rows.append({"probe": "remove", "artefact": name,
                         **probe_effects(before, after, labels[with_it], positive, opts.bootstrap, draw)})
            if len(without):  # the control: inpaint artefact-shaped regions of clean images
                after = model_probs(remove_artefact(data.images[without], sham_masks(masks, len(without), draw)))
                rows.append({"probe": "sham", "artefact": name,
                             **probe_effects(before_clean, after, labels[without], positive, opts.bootstrap, draw)})
    return rows


def probe_table(run_dir: Path, opts: ProbeOptions = ProbeOptions()) -> pd.DataFrame:
    """Probe rows for every run of a study (final weights), with the run's ID vs OOD gap; written to features/."""
    from medattn.analysis.usage import FEATURES_DIR, predict_checkpoint, study_runs
    from medattn.data.dataset_spec import load_context, load_dataset
    from medattn.rundir.reader import RUN_KEYS, load_run

    run = load_run(Path(run_dir))
    runs = study_runs(run)
    ctx = load_context(run.study)
    gaps = ood_gaps(run.results)
    rows = []
    for spec, group in runs.groupby("dataset_spec", sort=False):
        data = load_dataset(spec, ctx)
        for row in group.itertuples():
            path = Path(row.artifact_dir) / layout.CHECKPOINT
            for r in probe_run(lambda imgs, p=path: predict_checkpoint(p, imgs), data, opts, int(row.seed)):
                key = {k: getattr(row, k) for k in RUN_KEYS}
                rows.append({**key, **r, "ood_gap": gaps.get((row.dataset, row.model, int(row.seed)), np.nan)})
    arrays = [{k: r.pop(k) for k in ("_flips", "_delta")} for r in rows]
    table = pd.DataFrame(rows)
    if not table.empty:
        table = seed_intervals(table, arrays, opts.bootstrap, opts.seed)
    writer.write_table(run_dir / FEATURES_DIR / PROBES_FILE, table)
    return table


def ood_gaps(results: pd.DataFrame) -> dict[tuple, float]:
    """Balanced accuracy on test minus on every test_* split (mean), per (dataset, model, seed)."""
    ba = results[results["metric"] == "balanced_accuracy"]
    test = ba[ba["split"] == "test"].set_index(["dataset", "model", "seed"])["value"]
    ood = ba[ba["split"].str.startswith("test_")].groupby(["dataset", "model", "seed"])["value"].mean()
    gap = (test - ood).dropna()
    return {(d, m, int(s)): float(v) for (d, m, s), v in gap.items()}


def seed_summary(rows, column: str) -> str:
    """'value [low, high]': the run's own interval for one seed, the t interval of the mean over several."""
    from medattn.stats.interval import mean_t_interval

    if len(rows) == 1:
        r = rows.iloc[0]
        return f"{r[column]:+.3f} [{r[column + '_low']:+.3f}, {r[column + '_high']:+.3f}]"
    if f"{column}_seeds_low" in rows and rows[f"{column}_seeds_low"].notna().all():  # two-level bootstrap
        mean = rows[column].mean()
        return f"{mean:+.3f} [{rows[column + '_seeds_low'].iloc[0]:+.3f}, {rows[column + '_seeds_high'].iloc[0]:+.3f}]"
    t = mean_t_interval(rows[column])
    low, high = (max(t.ci_low, 0.0), min(t.ci_high, 1.0)) if column == "flip_rate" else (t.ci_low, t.ci_high)
    return f"{t.mean:+.3f} [{low:+.3f}, {high:+.3f}]"  # a rate's t interval clipped to [0, 1]
