"""Per-model summary of the tidy results table: mean and spread over seeds, with the model's costs."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from medattn.rundir.columns import COST_COLUMNS
from medattn.rundir.metrics import METRIC_NAMES
from medattn.rundir.table import validate_results


def summarize(
    results: pd.DataFrame, *, split: str = "test", metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    """Return one row per (dataset, model, metric): n seeds, mean, std (ddof=1), sem, and cost columns."""
    results = validate_results(results)
    if metrics is None:
        metrics = [m for m in METRIC_NAMES if m in set(results["metric"])]
    sub = results[(results["split"] == split) & results["metric"].isin(list(metrics))]
    keys = ["dataset", "model", "backbone", "attention", "is_baseline", "metric"]
    grouped = sub.groupby(keys, sort=True)["value"]
    out = grouped.agg(n="count", mean="mean", std="std", sem="sem").reset_index()
    costs = [c for c in COST_COLUMNS if c in results.columns]
    if costs:
        per_model = results.groupby(["dataset", "model"])[costs].first().reset_index()
        out = out.merge(per_model, on=["dataset", "model"], how="left")
    return out
