"""Segmentation studies: test Dice per lesion-size bin, and each variant vs its plain U-Net paired over test images.

Attention gates are claimed to help most on small structures (Oktay et al. 2018), so the per-image Dice of each
run's `predictions_<split>.csv` (written by `medattn.segment.train`) is averaged within bins of the true lesion
area (share of the image): empty, small (< 5 %), medium (5-20 %) and large (>= 20 %); the table gives the mean
and sd of those per-run means over seeds, and the number of test images per bin. Returns nothing for a
classification study (its prediction tables have no `dice` column).

The comparisons section tests differences paired by seed (training noise). The second table here pairs by test
image instead: each image's Dice is averaged over the seeds of a model, and the variant's and the plain U-Net's
per-image values are compared with `stats.paired.paired_difference` (mean difference with its t interval, the
Wilcoxon signed-rank p, robust to the skewed per-image Dice), Holm-corrected over the variants of a dataset on the
Wilcoxon p. It describes test-set sampling noise for these trained models, not training noise.

The gallery section draws, for the first seed of every model, the same first `GALLERY_IMAGES` images of the split
(`medattn.segment.gallery`: true and predicted outlines with the image's Dice, lesion probability, the finest
attention gate's map for gated models), rebuilt from each run's weights on the data re-loaded from its spec
(`MEDATTN_DATA` as for the study); when the data cannot be loaded the section says so instead of failing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medattn.errors import UserError
from medattn.report.context import ReportContext
from medattn.report.document import FigureBlock, FigureRow, Paragraph, Section, Table, slugify
from medattn.report.registry import DATASET_SECTIONS
from medattn.stats.correction import holm
from medattn.stats.paired import paired_difference

SIZE_BINS: tuple[tuple[str, float, float], ...] = (
    ("empty", -1.0, 0.0), ("small (<5 %)", 0.0, 0.05), ("medium (5-20 %)", 0.05, 0.20), ("large (>=20 %)", 0.20, 2.0))
GALLERY_IMAGES = 4


def _scores(ctx: ReportContext, dataset: str, model: str, split: str) -> list[pd.DataFrame]:
    """Every seed's per-image score table of a model on `split` (those with a dice column)."""
    out = []
    for seed in ctx.run.seeds(dataset, model):
        path = ctx.run.predictions_path(dataset, model, seed, split)  # (the reader's predictions() wants
        if path is not None and path.is_file():                       # class probabilities: read it here)
            table = pd.read_csv(path)
            if {"index", "dice", "area"} <= set(table.columns):
                out.append(table.assign(seed=seed))
    return out


def image_paired_dice(ctx: ReportContext, dataset: str, split: str) -> pd.DataFrame:
    """One row per attention variant vs its plain model: per-image Dice (seed-averaged) paired over images."""
    comps = ctx.comparisons(split)
    comps = comps[(comps["dataset"] == dataset) & (comps["metric"] == "dice")
                  & (comps["kind"] == "attention_vs_plain")]
    rows = []
    for model, reference in comps[["model", "reference"]].drop_duplicates().itertuples(index=False):
        a, b = (_scores(ctx, dataset, m, split) for m in (model, reference))
        if not a or not b:
            continue
        mean_a, mean_b = (pd.concat(t).groupby("index")["dice"].mean() for t in (a, b))
        both = mean_a.index.intersection(mean_b.index)
        r = paired_difference(mean_a[both].to_numpy(), mean_b[both].to_numpy())
        rows.append({"model": model, "reference": reference, "n_images": r.n, "mean_diff": r.mean_diff,
                     "ci_low": r.ci_low, "ci_high": r.ci_high, "p_wilcoxon": r.p_wilcoxon})
    table = pd.DataFrame(rows, columns=["model", "reference", "n_images", "mean_diff", "ci_low", "ci_high",
                                        "p_wilcoxon"])
    table["p_holm"] = holm(table["p_wilcoxon"].to_numpy()) if len(table) else []
    return table


def size_bin_dice(ctx: ReportContext, dataset: str, split: str) -> pd.DataFrame:
    """One row per (model, seed, bin): the mean per-image Dice of that run's images in the bin, and their count."""
    rows = []
    for model in ctx.run.models(dataset):
        for table in _scores(ctx, dataset, model, split):
            seed = int(table["seed"].iloc[0]) if len(table) else -1
            for name, low, high in SIZE_BINS:
                part = table[(table["area"] > low) & (table["area"] <= high)] if name != "empty" else \
                    table[table["area"] == 0]
                rows.append({"model": model, "seed": seed, "bin": name, "n": len(part),
                             "dice": float(part["dice"].mean()) if len(part) else np.nan})
    return pd.DataFrame(rows, columns=["model", "seed", "bin", "n", "dice"])


def size_bin_section(ctx: ReportContext, dataset: str) -> Section | None:
    """The Dice-by-lesion-size table of a segmentation study's dataset (None for a classification study)."""
    split = ctx.settings.split
    per_run = size_bin_dice(ctx, dataset, split)
    if per_run.empty:
        return None
    bins = [b for b, _, _ in SIZE_BINS]
    counts = per_run.groupby("bin")["n"].max()
    header = ("Model", *(f"{b} (n={int(counts.get(b, 0))})" for b in bins))
    rows = []
    for model, group in per_run.groupby("model", sort=False):
        cells = []
        for b in bins:
            values = group.loc[group["bin"] == b, "dice"].dropna()
            cells.append("n/a" if values.empty else f"{100 * values.mean():.1f} ± "
                         f"{100 * values.std(ddof=1) if len(values) > 1 else 0.0:.1f}")
        rows.append((str(model), *cells))
    note = Paragraph(f"Per-image Dice (%) on {split} by true lesion area (share of the image), mean ± sd over "
                     f"seeds of each run's mean within the bin; an empty truth scores 100 when the prediction is "
                     f"empty too and 0 otherwise (docs/segmentation.md).")
    blocks = [note, Table(header, tuple(rows), ("l",) + ("r",) * len(bins),
                          caption=f"Dice (%) by lesion size on {split}")]
    paired = image_paired_dice(ctx, dataset, split)
    if len(paired):
        blocks.append(Paragraph(f"Paired over {split} images: each image's Dice averaged over a model's seeds, variant "
                                f"minus plain U-Net, in Dice points; 95% t interval over images, Wilcoxon signed-rank "
                                f"p, Holm-corrected over the variants (test-set sampling noise for these trained "
                                f"models; the comparisons above pair by seed)."))
        blocks.append(Table(("Comparison", "Images", "Diff (points)", "95% CI", "p_W", "p_Holm"),
                            tuple((f"{r.model} vs {r.reference}", str(r.n_images), f"{100 * r.mean_diff:+.1f}",
                                   f"[{100 * r.ci_low:+.1f}, {100 * r.ci_high:+.1f}]", f"{r.p_wilcoxon:.2g}",
                                   f"{r.p_holm:.2g}") for r in paired.itertuples()),
                            ("l", "r", "r", "r", "r", "r"), caption=f"Dice paired over {split} images"))
    return Section("Dice by lesion size", blocks)


def gallery_section(ctx: ReportContext, dataset: str) -> Section | None:
    """Overlays of every model's first seed on the same images (None for a classification study)."""
    split = ctx.settings.split
    if size_bin_dice(ctx, dataset, split).empty:
        return None
    from medattn.segment.gallery import gallery_figure, run_data  # torch only for segmentation reports

    runs = [(model, seeds[0], ctx.run.run_path(dataset, model, seeds[0]))
            for model in ctx.run.models(dataset) if (seeds := ctx.run.seeds(dataset, model))]
    runs = [r for r in runs if r[2] is not None]
    figures = []
    try:
        data = run_data(runs[0][2]) if runs else None  # one load for every model of the dataset
        for model, seed, run in runs:
            figures.append(FigureBlock(slugify(f"{dataset}-seg-gallery-{model}"),
                                       gallery_figure(run, split, GALLERY_IMAGES, data=data), f"{model}, seed {seed}"))
    except (UserError, OSError) as exc:
        return Section("Segmentation gallery", [Paragraph(f"Gallery not drawn: {exc}")])
    if not figures:
        return None
    note = Paragraph(f"The first {GALLERY_IMAGES} {split} images (dataset order, the same for every model), first "
                     f"seed of each model: true lesion outline green, predicted (probability > 0.5) magenta, with "
                     f"the image's Dice; the lesion probability; for gated models the finest attention gate's "
                     f"coefficients.")
    return Section("Segmentation gallery", [note, FigureRow(tuple(figures), caption=f"Overlays on {split}")])


DATASET_SECTIONS.register("segmentation-size-bins", size_bin_section, before="training-curves")
DATASET_SECTIONS.register("segmentation-gallery", gallery_section, after="segmentation-size-bins")
