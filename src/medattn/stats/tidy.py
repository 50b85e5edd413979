"""The tidy results table: validation, metric direction, model roles and per-seed pivots.

One row per run x split x metric with columns ``dataset, model, backbone, attention, is_baseline,
seed, split, metric, value``; cost columns (``params``, ``flops``, ...:
:data:`medattn.study.columns.COST_COLUMNS`) may ride along per model. A value is a finite number or NaN
(missing: that seed is left out of the paired comparisons); an infinite score is refused, since it would
turn every test it enters into p = 0.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from medattn.errors import DataError

REQUIRED_COLUMNS: tuple[str, ...] = (
    "dataset",
    "model",
    "backbone",
    "attention",
    "is_baseline",
    "seed",
    "split",
    "metric",
    "value",
)
KNOWN_METRICS: tuple[str, ...] = ("balanced_accuracy", "auc", "macro_f1", "accuracy", "ece")
LOWER_IS_BETTER: frozenset[str] = frozenset({"ece", "loss", "nll", "brier"})
ROLES: tuple[str, ...] = ("baseline", "plain", "attention")  # the order models are listed in


def higher_is_better(metric: str) -> bool:
    """Return True when larger values of ``metric`` are better (False for ECE, losses, Brier)."""
    return metric not in LOWER_IS_BETTER


def _check_finite(results: pd.DataFrame, keys: list[str]) -> None:
    """Raise DataError naming the first run, split and metric whose value is infinite or not a number."""
    values = pd.to_numeric(results["value"], errors="coerce").to_numpy(float)
    bad = np.isinf(values) | (np.isnan(values) & results["value"].notna().to_numpy())
    if bad.any():
        first = results.loc[bad, keys + ["value"]].iloc[0]
        raise DataError(
            f"results table: dataset {first['dataset']!r}, model {first['model']!r}, seed {first['seed']}, "
            f"split {first['split']!r}, metric {first['metric']!r} has value {first['value']!r} "
            f"({int(bad.sum())} such row(s)); scores must be finite numbers (leave a missing one empty): "
            "check that run's metrics.json or re-run it"
        )


def validate_results(results: pd.DataFrame) -> pd.DataFrame:
    """Return ``results`` checked against the tidy contract (columns, finite values, no duplicates, one role
    per model)."""
    if not isinstance(results, pd.DataFrame):
        raise DataError(f"results must be a pandas DataFrame, got {type(results).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in results.columns]
    if missing:
        raise DataError(
            f"results table lacks column(s) {missing}; a tidy results table needs {list(REQUIRED_COLUMNS)}"
        )
    keys = ["dataset", "model", "seed", "split", "metric"]
    _check_finite(results, keys)
    dup = results.duplicated(keys, keep=False)
    if dup.any():
        first = results.loc[dup, keys].iloc[0].to_dict()
        raise DataError(
            f"results table has {int(dup.sum())} rows sharing (dataset, model, seed, split, metric), "
            f"e.g. {first}; keep one row per run x split x metric"
        )
    roles = results.groupby("model")[["backbone", "attention", "is_baseline"]].nunique()
    bad = roles[(roles > 1).any(axis=1)]
    if len(bad):
        raise DataError(
            f"model(s) {list(bad.index)} have more than one backbone/attention/is_baseline value; "
            "a model name must identify one architecture"
        )
    return results


def model_role(is_baseline: bool, attention: str) -> str:
    """Return 'baseline' (a reference model), 'plain' (a backbone without attention) or 'attention' (a variant)."""
    return "baseline" if is_baseline else ("plain" if attention == "none" else "attention")


def model_roles(results: pd.DataFrame) -> pd.DataFrame:
    """Return one row per model (index ``model``): its ``backbone``, ``attention``, ``is_baseline`` and ``role``."""
    roles = results.groupby("model", sort=True)[["backbone", "attention", "is_baseline"]].first()
    roles["is_baseline"] = roles["is_baseline"].astype(bool)
    roles["attention"] = roles["attention"].astype(str)
    roles["role"] = [model_role(b, a) for b, a in zip(roles["is_baseline"], roles["attention"], strict=True)]
    return roles


def plain_references(roles: pd.DataFrame) -> dict[str, str]:
    """Return {attention variant: its plain model} (same backbone, attention 'none', not a baseline)."""
    plain = roles[(roles["attention"] == "none") & ~roles["is_baseline"]]
    repeated = plain["backbone"][plain["backbone"].duplicated(keep=False)]
    if len(repeated):
        backbone = repeated.iloc[0]
        raise DataError(
            f"backbone {backbone!r} has several plain models {list(repeated[repeated == backbone].index)}; "
            "give exactly one model with attention 'none' per backbone"
        )
    by_backbone = {b: str(m) for m, b in plain["backbone"].items()}
    variants = roles[(roles["attention"] != "none") & ~roles["is_baseline"]]
    return {str(m): by_backbone[b] for m, b in variants["backbone"].items() if b in by_backbone}


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
