"""Explanation scores summarised per model (mean and 95 % CI) and compared attention-vs-plain by seed.

Interval: the scores of an image are first averaged over the seeds (the same images are explained for every
seed), then a t-interval is taken over the images (`medattn.stats.interval`; one image gives no interval).
Comparisons go through `medattn.stats.compare_models` on the per-seed means over images (paired by seed, Holm
within each metric), so their verdicts read exactly like the accuracy verdicts. Only metrics where higher is
better are compared (energy on the lesion, pointing, IoU, insertion AUC, insertion gain); deletion AUC, artefact energy
and the randomisation correlation are described, not tested.

The checks the report states beside the numbers (one function each, tables only):

- `oracle_check`: the ceiling a metric can reach at the maps' resolution (`oracle_grid`: the lesion mask pushed
  through the CAM grid; `oracle`: the mask itself, for pixel-resolution maps) against the uniform map's CI. When
  the ceiling is not above the CI's upper bound, no map at that resolution can score better than an
  uninformative one by a visible margin, so the metric cannot separate models there and gets no verdict.
- `randomisation_checks`: the model- (and, when computed, data-) randomisation Spearman per image and the
  cascade's last point (every stage randomised), flagged by
  `randomisation.flag_interval` (the t-interval's lower bound above 0.5), and underpowered on a grid coarser
  than min_grid (the check cannot tell unrelated maps from related ones there).
- `cascade_curves`: the cascading randomisation curve, stage by stage in cascade order, mean and CI.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from medattn.stats.interval import mean_t_interval

COMPARED = ("energy", "pointing", "iou", "insertion_auc", "insertion_gain")
SPLIT = "explanations"
LOCALISATION = ("energy", "pointing", "iou")  # the metrics with an oracle ceiling (higher is better)
RANDOMISATION = ("randomisation_spearman", "data_randomisation_spearman")
CASCADE_PREFIX = "cascade_spearman:"
REFERENCE_METHODS = ("uniform", "random", "oracle", "oracle_grid")


SUMMARY_COLUMNS = ("dataset", "model", "method", "target", "metric", "layer", "grid", "images", "seeds", "scores",
                   "nan", "mean", "ci_low", "ci_high")


def metric_range(metric: str) -> tuple[float, float]:
    """The values a score can take: [-1, 1] for Spearman correlations and insertion gain, [0, 1] otherwise
    (energies, pointing hits, IoU, deletion/insertion AUCs)."""
    return (-1.0, 1.0) if "spearman" in metric or metric == "insertion_gain" else (0.0, 1.0)


def metric_summary(scores: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (dataset, model, method, target, metric): layer and grid, images with a value, seeds, scores and NaN
    scores (image x seed rows), mean and CI over images (seed-averaged; NaN scores left out and counted). The t
    interval is clipped to the metric's range: on a few images a pointing rate of 0.17 gets a t bound below 0."""
    keys = ["dataset", "model", "method", "target", "metric"]
    if "layer" not in scores.columns:
        scores = scores.assign(layer="", grid=0)
    per_image = scores.groupby([*keys, "image_id"], sort=False)["value"].mean().reset_index()
    grouped = scores.groupby(keys, sort=False)
    seeds, counts = grouped["seed"].nunique(), grouped.size()
    nans = grouped["value"].apply(lambda v: int(v.isna().sum()))
    layers = grouped["layer"].agg(lambda v: "/".join(dict.fromkeys(str(x) for x in v)))
    grids = grouped["grid"].min()
    rows = []
    for key, block in per_image.groupby(keys, sort=False):
        _, mean, _, low, high = mean_t_interval(block["value"].dropna(), confidence)
        floor, ceiling = metric_range(str(key[-1]))
        low, high = np.clip(low, floor, ceiling), np.clip(high, floor, ceiling)  # NaN stays NaN
        rows.append({**dict(zip(keys, key, strict=True)), "layer": layers[key], "grid": int(grids[key]),
                     "images": int(block["value"].notna().sum()), "seeds": int(seeds[key]),
                     "scores": int(counts[key]), "nan": int(nans[key]), "mean": mean, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def seed_table(scores: pd.DataFrame, roles: pd.DataFrame, method_of: dict[str, str]) -> pd.DataFrame:
    """A tidy results table (split 'explanations') of per-seed means over images, one metric per (method, metric).

    `method_of` maps a model to the explanation method compared for it (e.g. 'gradcam'); `roles` has one row
    per model with backbone, attention and is_baseline.
    """
    sub = scores[scores["metric"].isin(COMPARED) & (scores["target"] == "predicted")]
    sub = sub[[method_of.get(m) == meth for m, meth in zip(sub["model"], sub["method"], strict=True)]]
    table = sub.groupby(["dataset", "model", "seed", "metric"], as_index=False)["value"].mean()
    planned = ["reference"] if "reference" in roles.columns else []  # the study's contrast plan, when recorded
    table = table.merge(roles[["model", "backbone", "attention", "is_baseline", *planned]], on="model", how="left")
    table["split"] = SPLIT
    return table


def compare_explanations(scores: pd.DataFrame, roles: pd.DataFrame, method: str = "gradcam", alpha: float = 0.05,
                         rope: float = 0.01) -> pd.DataFrame:
    """compare_models' table of each attention variant vs its plain backbone on `method`'s scores."""
    from medattn.stats import compare_models

    table = seed_table(scores, roles, {m: method for m in roles["model"]})
    if table.empty:
        return pd.DataFrame()
    table = table.assign(metric=method + " " + table["metric"])
    metrics = sorted(table["metric"].unique())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return compare_models(table, split=SPLIT, metrics=metrics, primary_metric=metrics[0], rope=rope, alpha=alpha)


def coarse(grid: int, min_grid: int) -> bool:
    """Whether maps upsampled from a `grid` x `grid` grid are coarser than `min_grid` (grid 0: unknown, not coarse)."""
    return 0 < int(grid) < int(min_grid)


ORACLE_COLUMNS = ("dataset", "model", "metric", "reference", "layer", "grid", "ceiling", "uniform", "uniform_low",
                  "uniform_high", "separable")


def oracle_check(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, localisation metric, ceiling in oracle_grid / oracle): the ceiling's mean beside the
    uniform map's mean and CI, and `separable` = ceiling above the CI's upper bound (the uniform mean when there is
    no interval). Rows only where both the ceiling and the uniform baseline were scored."""
    sub = summary[(summary["target"] == "predicted") & summary["metric"].isin(LOCALISATION)]
    lookup = {(r.dataset, r.model, r.method, r.metric): r for r in sub.itertuples()}
    rows = []
    for (dataset, model, method, metric), r in lookup.items():
        base = lookup.get((dataset, model, "uniform", metric))
        if method not in ("oracle_grid", "oracle") or base is None or pd.isna(r.mean):
            continue
        high = base.ci_high if pd.notna(base.ci_high) else base.mean
        rows.append({"dataset": dataset, "model": model, "metric": metric, "reference": method, "layer": r.layer,
                     "grid": int(r.grid), "ceiling": float(r.mean), "uniform": float(base.mean),
                     "uniform_low": float(base.ci_low), "uniform_high": float(base.ci_high),
                     "separable": bool(r.mean > high)})
    return pd.DataFrame(rows, columns=list(ORACLE_COLUMNS))


def ceiling_for(checks: pd.DataFrame, dataset: str, model: str, metric: str, grid: int) -> pd.Series | None:
    """The oracle check that applies to maps of `grid` cells: oracle_grid for maps on its grid (or of unknown grid,
    0), the pixel-resolution oracle for finer maps (the higher ceiling: lenient), None for maps coarser than the
    scored grid (no ceiling was computed there) or when nothing was scored."""
    sub = checks[(checks["dataset"] == dataset) & (checks["model"] == model) & (checks["metric"] == metric)]
    by_ref = {r["reference"]: r for _, r in sub.iterrows()}
    on_grid = by_ref.get("oracle_grid")
    if on_grid is None:
        return by_ref.get("oracle")
    if grid <= 0 or grid == on_grid["grid"]:
        return on_grid
    return by_ref.get("oracle", on_grid) if grid > on_grid["grid"] else None


RANDOMISATION_COLUMNS = ("dataset", "model", "method", "metric", "layer", "grid", "images", "mean", "lower",
                         "flagged", "underpowered")


def randomisation_checks(scores: pd.DataFrame, min_grid: int, confidence: float = 0.95) -> pd.DataFrame:
    """Per (dataset, model, method, randomisation metric), maps for the predicted class: the per-image Spearman
    (seed-averaged) through `randomisation.flag_interval` (mean, lower bound, flagged), and `underpowered` when the
    maps come from a grid coarser than `min_grid`. The metrics: whole-model and data randomisation, and the last
    point of the cascading curve (`cascade_spearman:<last stage>`, every stage randomised)."""
    import torch

    from medattn.explain.randomisation import flag_interval

    sub = scores[scores["metric"].isin(RANDOMISATION) & (scores["target"] == "predicted")]
    cascade = scores[scores["metric"].str.startswith(CASCADE_PREFIX) & (scores["target"] == "predicted")]
    if not cascade.empty:  # the cascade's last point: every stage randomised
        last = cascade.groupby(["dataset", "model", "method"], sort=False)["metric"].transform("last")
        sub = pd.concat([sub, cascade[cascade["metric"] == last]], ignore_index=True)
    keys = ["dataset", "model", "method", "metric"]
    rows = []
    for key, block in sub.groupby(keys, sort=False):
        per_image = block.groupby("image_id", sort=False)["value"].mean()
        mean, lower, flagged = flag_interval(torch.tensor(per_image.to_numpy(dtype=float)), confidence)
        grid = int(block["grid"].min()) if "grid" in block else 0
        layer = "/".join(dict.fromkeys(str(x) for x in block["layer"])) if "layer" in block else ""
        rows.append({**dict(zip(keys, key, strict=True)), "layer": layer, "grid": grid,
                     "images": int(per_image.notna().sum()), "mean": mean, "lower": lower, "flagged": flagged,
                     "underpowered": coarse(grid, min_grid)})
    return pd.DataFrame(rows, columns=list(RANDOMISATION_COLUMNS))


CASCADE_COLUMNS = ("dataset", "model", "method", "layer", "grid", "position", "stage", "images", "mean", "ci_low",
                   "ci_high")


def cascade_curves(scores: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The cascading randomisation curve per (dataset, model, method), predicted class: one row per stage in
    cascade order (the order of the rows in scores.csv, top layer first), mean and t-interval of the per-image
    Spearman (seed-averaged) after that stage and every one above it is randomised."""
    sub = scores[scores["metric"].str.startswith(CASCADE_PREFIX) & (scores["target"] == "predicted")]
    rows = []
    for (dataset, model, method), block in sub.groupby(["dataset", "model", "method"], sort=False):
        for position, metric in enumerate(dict.fromkeys(block["metric"])):
            per_image = block[block["metric"] == metric].groupby("image_id", sort=False)["value"].mean().dropna()
            _, mean, _, low, high = mean_t_interval(per_image, confidence)
            low, high = np.clip(low, -1.0, 1.0), np.clip(high, -1.0, 1.0)  # a correlation's range
            rows.append({"dataset": dataset, "model": model, "method": method, "layer": str(block["layer"].iloc[0]),
                         "grid": int(block["grid"].min()), "position": position,
                         "stage": metric[len(CASCADE_PREFIX):], "images": len(per_image), "mean": mean,
                         "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=list(CASCADE_COLUMNS))
