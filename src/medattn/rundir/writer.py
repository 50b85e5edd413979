"""The one writer of a run directory's files: results table, study.json, a run's metrics.json and predictions,
and the analyses' tidy tables (explanation run list and scores, feature usage, probes, ABCD measures).

Every JSON record carries :data:`~medattn.rundir.version.SCHEMA_VERSION` and the provenance its caller passes
(:func:`medattn.provenance.provenance`; this package stays below the layers that compute it). Paths inside a
run directory are written relative to it (:func:`~medattn.rundir.reader.relative_path`). Weights are written
by :mod:`medattn.train.checkpoint` (safetensors), whose sidecar record comes from :func:`stamped`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from medattn.errors import SpecError
from medattn.rundir import layout
from medattn.rundir.version import SCHEMA_KEY, SCHEMA_VERSION

PROVENANCE_KEY = "provenance"
CONTRASTS_KEY = "contrasts"


def stamped(record: dict[str, Any], provenance: dict[str, Any] | None) -> dict[str, Any]:
    """Return ``record`` with the schema version first and the provenance (when given) beside it."""
    head: dict[str, Any] = {SCHEMA_KEY: SCHEMA_VERSION}
    if provenance is not None:
        head[PROVENANCE_KEY] = provenance
    return {**head, **{k: v for k, v in record.items() if k not in head}}


def write_json(path: Path, record: dict[str, Any]) -> Path:
    """Write a JSON record (indented, non-JSON values as strings); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str))
    return path


def write_study(run_dir: Path, study: dict[str, Any], provenance: dict[str, Any] | None,
                contrasts: list[dict[str, str]]) -> Path:
    """Write RUN_DIR/study.json: the study description, schema version, provenance and the comparison plan
    (one ``{model, reference, kind}`` per planned contrast)."""
    return write_json(Path(run_dir) / layout.STUDY_JSON,
                      stamped({**study, CONTRASTS_KEY: contrasts}, provenance))


def write_results(frame: pd.DataFrame, path: str | Path, fmt: Literal["csv", "parquet"] = "csv") -> Path:
    """Write the results table as CSV or Parquet; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        raise SpecError(f"results format '{fmt}' is not supported; use csv or parquet")
    return path


def write_table(path: Path, table: pd.DataFrame, digits: int = 6) -> Path:
    """Write one of the run directory's tidy tables as CSV (``digits`` significant digits); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, float_format=f"%.{digits}g")
    return path


def write_predictions(run: Path, split: str, table: pd.DataFrame) -> Path:
    """Write one run's per-image probabilities on ``split``; returns the path."""
    return write_table(Path(run) / layout.predictions_name(split), table)


def write_metrics(run: Path, record: dict[str, Any]) -> Path:
    """Write one run's metrics.json (status, metrics, history, timing, artifacts relative to the run)."""
    return write_json(Path(run) / layout.METRICS_JSON, record)
