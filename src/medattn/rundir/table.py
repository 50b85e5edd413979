"""The results table as read: validation against the contract, model roles and the contrast plan.

A value is a finite number or NaN (missing: that seed is left out of the paired comparisons); an infinite
score is refused, since it would turn every test it enters into p = 0. The contrast plan says which model
each attention variant is compared with: the ``reference`` column the study wrote from its plan (same
backbone and stem, attention 'none'); only a table without that column (a hand-made one) falls back to
"the one plain model of the same backbone".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medattn.errors import DataError
from medattn.rundir.columns import REQUIRED_COLUMNS, model_role

ROLE_COLUMNS: tuple[str, ...] = ("backbone", "attention", "is_baseline")
ATTENTION_VS_PLAIN = "attention_vs_plain"  # a contrast the study plans: a variant vs its plain model
VS_BEST_BASELINE = "vs_best_baseline"  # a contrast chosen at analysis time: a model vs the dataset's best baseline


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
    roles = results.groupby("model")[list(ROLE_COLUMNS)].nunique()
    bad = roles[(roles > 1).any(axis=1)]
    if len(bad):
        raise DataError(
            f"model(s) {list(bad.index)} have more than one backbone/attention/is_baseline value; "
            "a model name must identify one architecture"
        )
    return results


def model_roles(results: pd.DataFrame) -> pd.DataFrame:
    """Return one row per model (index ``model``): backbone, attention, is_baseline, role and, when the table
    records the plan, reference."""
    columns = [*ROLE_COLUMNS, *(["reference"] if "reference" in results.columns else [])]
    roles = results.groupby("model", sort=True)[columns].first()
    roles["is_baseline"] = roles["is_baseline"].astype(bool)
    roles["attention"] = roles["attention"].astype(str)
    roles["role"] = [model_role(b, a) for b, a in zip(roles["is_baseline"], roles["attention"], strict=True)]
    return roles


def plain_references(roles: pd.DataFrame) -> dict[str, str]:
    """Return {attention variant: its plain model}: the recorded plan when ``roles`` has references, else the
    one plain model of the same backbone (a table written without a plan)."""
    variants = roles[(roles["attention"] != "none") & ~roles["is_baseline"]]
    planned = variants["reference"].dropna().astype(str) if "reference" in roles.columns else pd.Series()
    planned = planned[planned.str.strip() != ""]
    if len(planned):
        return {str(m): r for m, r in planned.items()}
    plain = roles[(roles["attention"] == "none") & ~roles["is_baseline"]]
    repeated = plain["backbone"][plain["backbone"].duplicated(keep=False)]
    if len(repeated):
        backbone = repeated.iloc[0]
        raise DataError(
            f"backbone {backbone!r} has several plain models {list(repeated[repeated == backbone].index)} and the "
            "results table has no reference column saying which one each variant is compared with; add it "
            "(`medattn study results SPEC` writes it) or give one plain model per backbone"
        )
    by_backbone = {b: str(m) for m, b in plain["backbone"].items()}
    return {str(m): by_backbone[b] for m, b in variants["backbone"].items() if b in by_backbone}
