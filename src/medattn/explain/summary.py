"""Explanation scores summarised per model (mean and 95 % CI) and compared attention-vs-plain by seed.

Interval: the scores of an image are first averaged over the seeds (the same images are explained for every
seed), then a t-interval is taken over the images (`medattn.stats.interval`; one image gives no interval).
Comparisons go through `medattn.stats.compare_models` on the per-seed means over images (paired by seed, Holm
within each metric), so their verdicts read exactly like the accuracy verdicts. Only metrics where higher is
better are compared (energy on the lesion, pointing, IoU, insertion AUC, insertion gain); deletion AUC, artefact energy
and the randomisation correlation are described, not tested.
"""

from __future__ import annotations

import warnings

import pandas as pd

from medattn.stats.interval import mean_t_interval

COMPARED = ("energy", "pointing", "iou", "insertion_auc", "insertion_gain")
SPLIT = "explanations"


SUMMARY_COLUMNS = ("dataset", "model", "method", "target", "metric", "layer", "grid", "images", "seeds", "scores",
                   "nan", "mean", "ci_low", "ci_high")


def metric_summary(scores: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (dataset, model, method, target, metric): layer and grid, images with a value, seeds, scores and NaN
    scores (image x seed rows), mean and CI over images (seed-averaged; NaN scores left out and counted)."""
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
