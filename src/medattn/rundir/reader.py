"""The one reader of a run directory: the tidy results table, study.json, and each run's artifacts.

RUN_DIR holds the results table (:data:`~medattn.rundir.layout.RESULTS_PARQUET` preferred, else
:data:`~medattn.rundir.layout.RESULTS_CSV`; columns in :mod:`medattn.rundir.columns`), optionally the study
description and one folder per run with its history, predictions and checkpoint sidecar (file names in
:mod:`medattn.rundir.layout`). A run's folder comes from the ``run_dir`` (or the study engine's
``artifact_dir``) column; a prediction file from the row's ``predictions`` column, else the run folder's.

Paths are stored relative to RUN_DIR, so a run directory can be moved, copied and archived. Tables written
before that hold absolute paths; they are migrated on read: an absolute path outside RUN_DIR is re-rooted at
its ``artifacts/`` component inside RUN_DIR, so that a copy reads and writes its own files, never the
original's. Missing artifacts are not errors: the sections that need them say what is missing and the rest
of the report is still built. A study.json or model.json of a newer schema is refused (one-line DataError).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from medattn.errors import DataError
from medattn.rundir import layout
from medattn.rundir.columns import REQUIRED_COLUMNS, ROLES
from medattn.rundir.table import model_roles, validate_results
from medattn.rundir.version import check_schema

RESULTS_FILES: tuple[str, ...] = (layout.RESULTS_PARQUET, layout.RESULTS_CSV)
RUN_DIR_COLUMNS: tuple[str, ...] = ("run_dir", "artifact_dir")
RUN_KEYS: tuple[str, ...] = ("dataset", "model", "backbone", "attention", "seed")
IN_DISTRIBUTION_SPLITS: frozenset[str] = frozenset({"train", "val", "test"})


def find_results_file(run_dir: Path) -> Path:
    """Return RUN_DIR's results table (``results.parquet``, else ``results.csv``); DataError if neither."""
    if not run_dir.exists():
        raise DataError(f"{run_dir}: run directory not found; pass the study's output folder (the one holding "
                        f"{layout.RESULTS_CSV}), e.g. `medattn report runs/quickstart`")
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: not a directory; pass the study's output folder, not a file inside it")
    for name in RESULTS_FILES:
        if (run_dir / name).is_file():
            return run_dir / name
    raise DataError(f"{run_dir}: no {' or '.join(RESULTS_FILES)}; run `medattn study run SPEC` to completion "
                    f"first (it writes OUT/{layout.RESULTS_CSV}) or `medattn train --out {run_dir}`, or "
                    "`medattn study results SPEC` to collect it")


def _as_bool(values: pd.Series) -> pd.Series:
    """Return a boolean column from bools, 0/1 or 'true'/'false' strings (missing counts as False)."""
    if values.dtype == bool:
        return values
    return values.map(lambda v: str(v).strip().lower() in {"true", "1", "1.0", "yes"} if pd.notna(v) else False)


def read_results(path: Path) -> pd.DataFrame:
    """Return the final-stage rows of the tidy results table at ``path``, cleaned and validated."""
    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # any reader failure means a damaged file, which the user can fix
        raise DataError(f"{path}: cannot read the results table ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); re-create it with "
                        "`medattn study results SPEC`") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: results table lacks column(s) {missing}; it needs {list(REQUIRED_COLUMNS)} "
                        "(re-create it with `medattn study results SPEC`)")
    if "stage" in table.columns and table["stage"].notna().any():
        if not (table["stage"] == "final").any():
            stages = sorted(table["stage"].dropna().unique())
            raise DataError(f"{path}: no final-stage rows (stages present: {stages}); the report compares the "
                            "final seeded runs: finish `medattn study run SPEC` first")
        table = table[table["stage"] == "final"]
    table = table[table["split"].notna() & table["metric"].notna()].copy()  # failed runs: no metrics
    if table.empty:
        raise DataError(f"{path}: no final-stage results (every run failed or none finished); "
                        "see `medattn study status SPEC`")
    table["is_baseline"] = _as_bool(table["is_baseline"])
    table["attention"] = table["attention"].fillna("none").astype(str)
    table["backbone"] = table["backbone"].astype(str)
    for col in ("dataset", "model", "split", "metric"):
        table[col] = table[col].astype(str)
    table["seed"] = pd.to_numeric(table["seed"], errors="coerce")
    if table["seed"].isna().any():
        raise DataError(f"{path}: column 'seed' has missing or non-integer values; every final run needs a seed")
    table["seed"] = table["seed"].astype(int)
    table["value"] = pd.to_numeric(table["value"], errors="coerce").astype(float)
    try:
        validate_results(table)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    return table.reset_index(drop=True)


def read_study(path: Path) -> dict[str, Any]:
    """Return the study description in ``path`` (an empty dict when the file does not exist)."""
    if not path.is_file():
        return {}
    try:
        study = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); delete it or re-run the study to rewrite it") from None
    if not isinstance(study, dict):
        raise DataError(f"{path}: expected a JSON object with the study description, got {type(study).__name__}")
    check_schema(study, path)
    return study


def read_sidecar(path: Path) -> dict[str, Any]:
    """Return a checkpoint's JSON sidecar (``model.json``), checked for its schema version; DataError if absent."""
    try:
        sidecar = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the checkpoint sidecar ({type(exc).__name__}); re-train the run "
                        "or restore the file") from None
    if not isinstance(sidecar, dict):
        raise DataError(f"{path}: expected a JSON object (the checkpoint sidecar), got {type(sidecar).__name__}")
    check_schema(sidecar, path)
    return sidecar


def migrate_path(value: Any, run_dir: Path) -> Path | None:
    """Return a stored path resolved in ``run_dir``: relative paths under it, absolute paths of an older table
    re-rooted at their ``artifacts/`` component when they point outside it (a moved or copied run), unless only
    the absolute path exists (artifacts kept in another folder)."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or str(value).strip() == "":
        return None
    path = Path(str(value)).expanduser()
    if not path.is_absolute():
        return run_dir / path
    try:
        path.resolve().relative_to(run_dir.resolve())
        return path
    except ValueError:
        pass
    parts = path.parts
    if layout.ARTIFACTS in parts:
        at = len(parts) - 1 - parts[::-1].index(layout.ARTIFACTS)
        moved = run_dir.joinpath(*parts[at:])
        if moved.exists() or not path.exists():  # artifacts kept elsewhere (study --artifacts) stay where they are
            return moved
    return path


def relative_path(path: Path | str, run_dir: Path) -> str:
    """Return ``path`` as stored in a run directory: POSIX, relative to ``run_dir`` (absolute if outside it)."""
    try:
        return Path(path).resolve().relative_to(Path(run_dir).resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def _read_json(path: Path) -> dict[str, Any] | None:
    """Return a JSON object from ``path``, or None when it is absent or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class RunData:
    """A study's results table, its description and lazy access to each run's artifacts."""

    run_dir: Path
    results_path: Path
    results: pd.DataFrame
    study: dict[str, Any]
    missing: list[str] = field(default_factory=list)
    _cache: dict[tuple, Any] = field(default_factory=dict, repr=False)

    @cached_property
    def datasets(self) -> list[str]:
        """Return the datasets in the order they first appear in the results."""
        return list(dict.fromkeys(self.results["dataset"]))

    def models(self, dataset: str) -> list[str]:
        """Return the models with results on ``dataset``: baselines, then plain backbones, then attention."""
        sub = self.results[self.results["dataset"] == dataset]
        roles = model_roles(sub)
        rank = roles["role"].map(ROLES.index)
        return rank.sort_values(kind="stable").index.tolist()

    def seeds(self, dataset: str, model: str) -> list[int]:
        """Return the seeds of ``model`` on ``dataset``, sorted."""
        sub = self.results[(self.results["dataset"] == dataset) & (self.results["model"] == model)]
        return sorted(int(s) for s in sub["seed"].unique())

    def splits(self, dataset: str) -> list[str]:
        """Return the evaluation splits of ``dataset`` (val, test, then any other split)."""
        present = set(self.results.loc[self.results["dataset"] == dataset, "split"])
        known = [s for s in ("val", "test") if s in present]
        return known + sorted(present - set(known))

    def extra_splits(self, dataset: str) -> list[str]:
        """Return the out-of-distribution splits of ``dataset`` (every split but train, val and test)."""
        return [s for s in self.splits(dataset) if s not in IN_DISTRIBUTION_SPLITS]

    def _rows(self, dataset: str, model: str, seed: int) -> pd.DataFrame:
        """Return the results rows of one run."""
        r = self.results
        return r[(r["dataset"] == dataset) & (r["model"] == model) & (r["seed"] == seed)]

    def _resolve(self, value: Any) -> Path | None:
        """Return a path from a table cell, resolved in RUN_DIR (see :func:`migrate_path`), None when empty."""
        return migrate_path(value, self.run_dir)

    def run_path(self, dataset: str, model: str, seed: int) -> Path | None:
        """Return the directory of one run (from ``run_dir``/``artifact_dir``), None when not recorded."""
        rows = self._rows(dataset, model, seed)
        for col in RUN_DIR_COLUMNS:
            if col in rows.columns:
                values = rows[col].dropna()
                if len(values):
                    return self._resolve(values.iloc[0])
        if "checkpoint" in rows.columns:
            values = rows["checkpoint"].dropna()
            if len(values):
                path = self._resolve(values.iloc[0])
                return path.parent if path is not None else None
        return None

    def predictions_path(self, dataset: str, model: str, seed: int, split: str) -> Path | None:
        """Return the path of one run's prediction table for ``split`` (it may not exist)."""
        rows = self._rows(dataset, model, seed)
        if "predictions" in rows.columns:
            values = rows.loc[rows["split"] == split, "predictions"].dropna()
            if len(values):
                return self._resolve(values.iloc[0])
        run = self.run_path(dataset, model, seed)
        return None if run is None else run / layout.predictions_name(split)

    def runs(self) -> pd.DataFrame:
        """Return one row per finished final run: dataset, model, backbone, attention, seed, dataset_spec (None
        when not recorded) and artifact_dir (the run's folder resolved in RUN_DIR, None when not recorded)."""
        r = self.results
        if "status" in r.columns:
            r = r[r["status"].fillna("ok") == "ok"]
        runs = r[list(RUN_KEYS)].drop_duplicates().sort_values(["dataset", "model", "seed"], kind="stable")
        runs["dataset_spec"] = [self.dataset_spec(d) for d in runs["dataset"]]
        runs["artifact_dir"] = [self.run_path(d, m, int(s)) for d, m, s in zip(runs["dataset"], runs["model"],
                                                                                 runs["seed"], strict=True)]
        return runs.reset_index(drop=True)

    def _note_missing(self, what: str) -> None:
        """Remember a missing or unreadable artifact once, for the report's notes."""
        if what not in self.missing:
            self.missing.append(what)

    def predictions(self, dataset: str, model: str, seed: int, split: str) -> pd.DataFrame | None:
        """Return one run's prediction table for ``split``, or None (and a note) when it is unavailable."""
        key = ("pred", dataset, model, seed, split)
        if key not in self._cache:
            path = self.predictions_path(dataset, model, seed, split)
            table = None
            if path is None:
                self._note_missing("the results table gives no run directory (run_dir, artifact_dir) or predictions "
                                   "path for some runs: their prediction files cannot be found")
            elif not path.is_file():
                self._note_missing(f"{path}: prediction file not found")
            else:
                try:
                    table = pd.read_csv(path)
                except (OSError, ValueError, pd.errors.ParserError) as exc:
                    self._note_missing(f"{path}: unreadable ({type(exc).__name__})")
                if table is not None and not {"index", "label", "prob_0"} <= set(table.columns):
                    self._note_missing(f"{path}: lacks columns index, label, prob_0..prob_K-1")
                    table = None
            self._cache[key] = table
        return self._cache[key]

    def pooled_predictions(self, dataset: str, model: str, split: str) -> tuple[pd.DataFrame | None, int]:
        """Return all seeds' prediction tables for ``split`` stacked (for pooled counts) and the seed count."""
        tables = [t for s in self.seeds(dataset, model)
                  if (t := self.predictions(dataset, model, s, split)) is not None]
        if not tables:
            return None, 0
        return pd.concat(tables, ignore_index=True), len(tables)

    def metrics_json(self, dataset: str, model: str, seed: int) -> dict[str, Any] | None:
        """Return one run's metrics.json, or None (and a note) when it is unavailable."""
        key = ("metrics", dataset, model, seed)
        if key not in self._cache:
            run = self.run_path(dataset, model, seed)
            data = None if run is None else _read_json(run / layout.METRICS_JSON)
            if run is None:
                self._note_missing("the results table gives no run directory (run_dir, artifact_dir) for some runs: "
                                   "their training histories cannot be found")
            elif data is None:
                self._note_missing(f"{run / layout.METRICS_JSON}: training history not found")
            self._cache[key] = data
        return self._cache[key]

    def history(self, dataset: str) -> pd.DataFrame:
        """Return the per-epoch training history of every run on ``dataset`` with model and seed columns."""
        frames = []
        for model in self.models(dataset):
            for seed in self.seeds(dataset, model):
                data = self.metrics_json(dataset, model, seed)
                rows = (data or {}).get("history") or []
                if rows:
                    frames.append(pd.DataFrame(rows).assign(model=model, seed=seed))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def class_names(self, dataset: str) -> list[str] | None:
        """Return the class names of ``dataset`` from the first run's model.json sidecar, if recorded."""
        for model in self.models(dataset):
            for seed in self.seeds(dataset, model):
                run = self.run_path(dataset, model, seed)
                sidecar = None if run is None else _read_json(run / layout.SIDECAR)
                names = ((sidecar or {}).get("data") or {}).get("class_names")
                if isinstance(names, list) and names:
                    return [str(n) for n in names]
        return None

    def dataset_spec(self, dataset: str) -> str | None:
        """Return the loader spec string of ``dataset`` from the results or study.json, if known."""
        if "dataset_spec" in self.results.columns:
            specs = self.results.loc[self.results["dataset"] == dataset, "dataset_spec"].dropna()
            if len(specs):
                return str(specs.iloc[0])
        for entry in self.study.get("datasets") or []:
            if isinstance(entry, dict) and entry.get("name") == dataset and entry.get("spec"):
                return str(entry["spec"])
        return None


def load_run(run_dir: Path) -> RunData:
    """Return the results, study description and artifact access of the study in ``run_dir``."""
    run_dir = Path(run_dir).expanduser()
    path = find_results_file(run_dir)
    return RunData(run_dir=run_dir, results_path=path, results=read_results(path),
                   study=read_study(run_dir / layout.STUDY_JSON))
