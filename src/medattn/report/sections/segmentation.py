"""Segmentation studies: test Dice per lesion-size bin, mean +- sd over seeds (a plugin section).

Attention gates are claimed to help most on small structures (Oktay et al. 2018), so the per-image Dice of each
run's `predictions_<split>.csv` (written by `medattn.segment.train`) is averaged within bins of the true lesion
area (share of the image): empty, small (< 5 %), medium (5-20 %) and large (>= 20 %); the table gives the mean
and sd of those per-run means over seeds, and the number of test images per bin. Returns nothing for a
classification study (its prediction tables have no `dice` column).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medattn.report.context import ReportContext
from medattn.report.document import Paragraph, Section, Table
from medattn.report.registry import DATASET_SECTIONS

SIZE_BINS: tuple[tuple[str, float, float], ...] = (
    ("empty", -1.0, 0.0), ("small (<5 %)", 0.0, 0.05), ("medium (5-20 %)", 0.05, 0.20), ("large (>=20 %)", 0.20, 2.0))


def size_bin_dice(ctx: ReportContext, dataset: str, split: str) -> pd.DataFrame:
    """One row per (model, seed, bin): the mean per-image Dice of that run's images in the bin, and their count."""
    rows = []
    for model in ctx.run.models(dataset):
        for seed in ctx.run.seeds(dataset, model):
            path = ctx.run.predictions_path(dataset, model, seed, split)  # (the reader's predictions() wants
            if path is None or not path.is_file():                        # class probabilities: read it here)
                continue
            table = pd.read_csv(path)
            if not {"dice", "area"} <= set(table.columns):
                continue
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
    return Section("Dice by lesion size", [note, Table(header, tuple(rows), ("l",) + ("r",) * len(bins),
                                                       caption=f"Dice (%) by lesion size on {split}")])


DATASET_SECTIONS.register("segmentation-size-bins", size_bin_section, before="training-curves")
