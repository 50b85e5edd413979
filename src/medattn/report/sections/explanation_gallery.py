"""The explanation gallery of the report: the same images for every model, one figure per seed.

Built for a reader who is not an ML engineer (a clinician rating where the models look):

- rows are images, chosen by a stated rule (`SELECTION_RULE`): per true class, the first image of the sample
  that the reference model's first seed classifies correctly and the first it misclassifies, so each class
  shows a success and a failure; the same rows in every seed's figure;
- the first column is the image with the lesion outline (cyan) and the artefact outline (dashed lime, the
  union of the dataset's artefact masks) and the true class; every map column repeats both outlines;
- each map is drawn in the perceptually uniform `inferno` colour map over a grey copy of the image (colour on
  colour would mix hues that the colour bar does not show), with one colour bar for the figure;
- under each map: that model's prediction, its probability and a right/wrong mark.

Not a section: `explanations.py` places the figures. Reads the maps through `medattn.explain.store`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from medattn.explain import store
from medattn.explain.sample import Sample, read_sample
from medattn.rundir.reader import migrate_path

COLOUR_MAP = "inferno"
LESION, ARTEFACT = "#00e5ff", "#7CFC00"
MAP_ALPHA = 0.6
PER_CLASS = 2  # one right and one wrong image per class, where there are
METHOD_TITLES = {"gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++", "scorecam": "Score-CAM", "layercam": "LayerCAM",
                 "eigencam": "EigenCAM", "intgrad": "Integr. Gradients", "attention": "own attention",
                 "rollout": "attention rollout"}
CAM_FAMILY = ("gradcam", "gradcampp", "scorecam", "layercam", "eigencam")  # explain.cam (not imported: it loads timm)
SELECTION_RULE = ("rows: per true class, the first sample image that {ref} (seed {seed}) classifies correctly and "
                  "the first it misclassifies, where there is one; the same rows for every seed")


def picks(index: pd.DataFrame, ids: np.ndarray, labels: np.ndarray, per_class: int = PER_CLASS) -> list[int]:
    """Sample positions: per class (in class order), the first correctly and the first wrongly predicted image."""
    predicted = index.drop_duplicates("image_id").set_index("image_id")["predicted"]
    chosen = []
    for c in np.unique(labels):
        for correct in (True, False):
            hits = [i for i, (img, lab) in enumerate(zip(ids, labels, strict=True))
                    if lab == c and img in predicted.index and (int(predicted[img]) == lab) == correct]
            chosen += hits[:per_class // 2]
    return chosen


def _maps_of(run_dir: Path, runs: pd.DataFrame, model: str, seed: int) -> tuple[np.ndarray, pd.DataFrame] | None:
    rows = runs[(runs["model"] == model) & (runs["seed"] == seed)]
    return None if rows.empty else store.read_maps(migrate_path(rows["maps"].iloc[0], run_dir))


def scored_layers(scores: pd.DataFrame) -> dict[tuple[str, str], tuple[str, int]]:
    """(model, method) -> (layer, grid) of the maps that were scored (the gallery shows those)."""
    sub = scores[scores["target"] == "predicted"].drop_duplicates(["model", "method"])
    return {(r.model, r.method): (str(r.layer), int(r.grid)) for r in sub.itertuples()}


def columns(loaded: dict[str, tuple[np.ndarray, pd.DataFrame]], layers: dict[tuple[str, str], tuple[str, int]],
            methods: list[str]) -> list[tuple[str, str, str, int]]:
    """(model, method, layer, grid) per map column: each method in `methods` order, then each model."""
    cols = []
    for method in methods:
        for model, (_, index) in loaded.items():
            sub = index[(index["method"] == method) & (index["target"] == "predicted")]
            if sub.empty:
                continue
            layer, grid = layers.get((model, method), (str(sub["layer"].iloc[-1]), 0))
            if layer not in set(sub["layer"]):
                layer = str(sub["layer"].iloc[-1])
            cols.append((model, method, layer, grid))
    return cols


def _outlines(ax, lesion: np.ndarray | None, artefact: np.ndarray | None, width: float) -> None:
    """Draw the lesion outline (solid cyan) and the artefact outline (dashed lime) where there are."""
    if lesion is not None and lesion.any():
        ax.contour(lesion, levels=[0.5], colors=LESION, linewidths=width)
    if artefact is not None and artefact.any():
        ax.contour(artefact, levels=[0.5], colors=ARTEFACT, linewidths=width, linestyles="--")


def _where(layer: str, grid: int) -> str:
    if layer == "input":
        return "(pixel resolution)"
    if grid > 0:
        return f"({layer}, {grid}×{grid})" if layer else f"({grid}×{grid})"
    return f"({layer})" if layer else ""


def gallery_methods(present: set[str], order: tuple[str, ...]) -> list[str]:
    """The methods shown: the first CAM method present (in `order`), then every non-CAM one (pixel-resolution
    attributions, own attention, rollout), so the figure stays a few columns wide."""
    cams = [m for m in order if m in present and m in CAM_FAMILY]
    return cams[:1] + [m for m in order if m in present and m not in CAM_FAMILY]


def _class_name(sample: Sample, c: int) -> str:
    return sample.class_names[c] if sample.class_names and c < len(sample.class_names) else str(c)


def figure(sample: Sample, loaded: dict[str, tuple[np.ndarray, pd.DataFrame]],
           cols: list[tuple[str, str, str, int]], rows: list[int], title: str, min_grid: int = 0) -> Figure:
    """Rows: images; columns: the image with its outlines and true class, then one map per column with the
    model's prediction, probability and a right/wrong mark; one colour bar."""
    images = sample.images[rows].permute(0, 2, 3, 1).float().numpy() / 255.0
    grey = images.mean(-1)
    artefacts = None
    if sample.artefact_masks:
        artefacts = np.stack([m.numpy() > 0 for m in sample.artefact_masks.values()]).any(0)[rows]
    lookup = {m: (maps, index[index["target"] == "predicted"]) for m, (maps, index) in loaded.items()}
    fig = Figure(figsize=(1.75 * (len(cols) + 1) + 1.0, 1.95 * len(rows) + 0.9), layout="constrained")
    axes = fig.subplots(len(rows), len(cols) + 1, squeeze=False)
    shown = None
    for r, pos in enumerate(rows):
        image_id, label = sample.ids[pos], int(sample.labels[pos])
        ax = axes[r, 0]
        ax.imshow(images[r] if images.shape[-1] == 3 else grey[r], cmap=None if images.shape[-1] == 3 else "gray",
                  vmin=0, vmax=1)
        lesion = None if sample.masks is None else sample.masks[pos].numpy()
        artefact = None if artefacts is None else artefacts[r]
        _outlines(ax, lesion, artefact, 1.1)
        ax.set_ylabel(f"true: {_class_name(sample, label)}\n(image {image_id})", fontsize=8)
        for c, (model, method, layer, _) in enumerate(cols, start=1):
            ax = axes[r, c]
            maps, index = lookup[model]
            hit = index[(index["method"] == method) & (index["layer"] == layer) & (index["image_id"] == image_id)]
            ax.imshow(grey[r], cmap="gray", vmin=0, vmax=1)
            if hit.empty:
                ax.set_xlabel("no map", fontsize=7)
                continue
            row = hit.iloc[0]
            shown = ax.imshow(maps[int(row["row"])].astype(np.float32), cmap=COLOUR_MAP, vmin=0, vmax=1,
                              alpha=MAP_ALPHA)
            _outlines(ax, lesion, artefact, 0.9)
            right = int(row["predicted"]) == label
            ax.set_xlabel(f"{'✓' if right else '✗'} {_class_name(sample, int(row['predicted']))} "
                          f"p={float(row['probability']):.2f}", fontsize=8,
                          color="#1a7f37" if right else "#cf222e", fontweight="bold")
    axes[0, 0].set_title(f"{title}\nimage", fontsize=8)
    for c, (model, method, layer, grid) in enumerate(cols, start=1):
        warn = f"\n⚠ coarser than {min_grid}×{min_grid}" if 0 < grid < min_grid else ""
        axes[0, c].set_title(f"{model}\n{METHOD_TITLES.get(method, method)}\n{_where(layer, grid)}{warn}",
                             fontsize=7.5, color="#9a6700" if warn else "black")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if shown is not None:  # the bar shows the colour map itself (opaque); over the grey image it is blended
        opaque = ScalarMappable(norm=Normalize(0, 1), cmap=COLOUR_MAP)
        bar = fig.colorbar(opaque, ax=axes, shrink=0.5, aspect=25, pad=0.02)
        bar.set_label("saliency (each map scaled 0-1; one scale)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    handles = [Line2D([], [], color=LESION, lw=1.5, label="lesion outline")]
    if artefacts is not None:
        handles.append(Line2D([], [], color=ARTEFACT, lw=1.5, ls="--", label="artefact outline"))
    handles += [Line2D([], [], ls="", marker="$✓$", color="#1a7f37", label="prediction right"),
                Line2D([], [], ls="", marker="$✗$", color="#cf222e", label="prediction wrong")]
    fig.legend(handles=handles, loc="outside upper center", ncols=len(handles), fontsize=8, frameon=False)
    return fig


def seed_galleries(run_dir: Path, runs: pd.DataFrame, sample_path: Path, models: list[str], scores: pd.DataFrame,
                   methods: list[str] | tuple[str, ...], min_grid: int = 0) -> tuple[list[tuple[int, Figure]], str]:
    """One gallery figure per seed (the same rows in each) and the selection rule; ([], '') when nothing to show.
    Column titles of maps from a grid coarser than `min_grid` carry a warning."""
    sample = read_sample(sample_path)
    seeds = sorted(int(s) for s in runs["seed"].unique())
    first = {m: _maps_of(run_dir, runs, m, seeds[0]) for m in models}
    reference = next((m for m in models if first.get(m) is not None), None)
    if reference is None:
        return [], ""
    rows = picks(first[reference][1], sample.ids, sample.labels.numpy())
    if not rows:
        return [], ""
    layers = scored_layers(scores)
    present = set().union(*(set(v[1]["method"]) for v in first.values() if v is not None))
    methods = gallery_methods(present, tuple(methods))
    out = []
    for seed in seeds:
        loaded = {m: v for m in models if (v := _maps_of(run_dir, runs, m, seed)) is not None}
        cols = columns(loaded, layers, methods)
        if cols:
            out.append((seed, figure(sample, loaded, cols, rows, f"seed {seed}", min_grid)))
    rule = SELECTION_RULE.format(ref=reference, seed=seeds[0])
    if sample.artefact_masks:
        rule += f"; artefacts outlined from the dataset's masks: {', '.join(sample.artefact_masks)}"
    return out, rule
