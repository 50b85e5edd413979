"""Per-seed pivots of the tidy results table (its columns, validation and roles: :mod:`medattn.rundir`)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from medattn.errors import DataError


def seed_table(results: pd.DataFrame, *, split: str, metrics: Iterable[str]) -> pd.DataFrame:
    """Return values pivoted to index (dataset, metric, seed) x columns model for one split."""
    metrics = list(metrics)
    sub = results[(results["split"] == split) & results["metric"].isin(metrics)]
    if sub.empty:
        raise DataError(
            f"results table has no rows for split {split!r} and metrics {metrics}; "
            f"splits present: {sorted(results['split'].unique())}, "
            f"metrics present: {sorted(results['metric'].unique())}"
        )
    return sub.pivot(index=["dataset", "metric", "seed"], columns="model", values="value").sort_index()
