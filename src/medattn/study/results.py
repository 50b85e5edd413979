"""Result tables: one tidy row per run x split x metric, built from the storage (and artifact paths)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from medattn.rundir import layout
from medattn.rundir.columns import COST_COLUMNS, ID_COLUMNS, RUN_COLUMNS, hp_column
from medattn.study.engine import COST_ATTR
from medattn.study.plan import Plan, Unit
from medattn.study.slots import slot_states
from medattn.study.tuning import tuning_keys

Stage = Literal["final", "tune", "all"]


def collect_results(plan: Plan, storage: BaseStorage, stage: Stage = "final",
                    artifact_root: str | Path | None = None) -> pd.DataFrame:
    """The tidy results table of every finished run.

    Artifact paths stay relative to the run directory (so that it can be moved or copied), unless
    ``artifact_root`` names where the artifacts are on this machine: then they are absolute under it.
    """
    root = Path(artifact_root).expanduser().absolute() if artifact_root else None
    hp_names = list(plan.spec.tuning.search_space)
    rows: list[dict[str, Any]] = []
    for unit in plan.units:
        if stage in ("tune", "all"):
            rows += _tune_rows(plan, storage, unit, hp_names)
        if stage in ("final", "all"):
            rows += _final_rows(plan, storage, unit, hp_names, root)
    columns = [*ID_COLUMNS, *(hp_column(n) for n in hp_names), *COST_COLUMNS, *RUN_COLUMNS]
    frame = pd.DataFrame(rows, columns=columns)
    frame["is_baseline"] = frame["is_baseline"].astype(bool)
    for col in ("seed", "trial", "best_epoch", "epochs_run"):
        frame[col] = frame[col].astype("Int64")
    return frame


def _trials(storage: BaseStorage, study_name: str) -> tuple[list[FrozenTrial], dict[str, Any]]:
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return [], {}
    return storage.get_all_trials(study_id, deepcopy=False), storage.get_study_user_attrs(study_id)


def _base(plan: Plan, unit: Unit, stage: str) -> dict[str, Any]:
    m = unit.model
    return {"study": plan.spec.name, "dataset": unit.dataset.name, "dataset_spec": unit.dataset.spec,
            "model": m.name, "backbone": m.config.backbone, "attention": m.config.attention,
            "placement": m.placement_name,
            "placement_config": None if m.config.placement is None else json.dumps(m.config.placement,
                                                                                     sort_keys=True),
            "is_baseline": m.is_baseline, "reference": m.reference, "stage": stage}


def _final_rows(plan: Plan, storage: BaseStorage, unit: Unit, hp_names: list[str], root: Path | None) -> list[dict]:
    trials, study_attrs = _trials(storage, unit.final_study)
    cost = study_attrs.get(COST_ATTR) or {}
    rows = []
    for seed, state in slot_states(trials, plan.seeds).items():
        trial = state.done
        if trial is None:
            continue
        a = trial.user_attrs
        artifacts = a.get("artifacts") or {}
        timing = a.get("timing") or {}
        params = a.get("params") or {}
        run = {**_base(plan, unit, "final"), "seed": seed, "trial": trial.number, "status": a.get("status", "ok"),
               **{hp_column(n): params.get(n) for n in hp_names},
               **{c: cost.get(c) for c in COST_COLUMNS},
               "best_epoch": a.get("best_epoch"), "epochs_run": a.get("epochs_run"),
               "run_train_seconds": timing.get("train_seconds"),
               "run_train_images_per_s": timing.get("train_images_per_s"),
               "run_precision": (a.get("hardware") or {}).get("precision"),
               "run_stem": (a.get("hardware") or {}).get("stem"),
               "tuned_from": a.get("tuned_from"),
               "checkpoint": _stored(artifacts.get("checkpoint"), root),
               "artifact_dir": _stored(a.get("artifact_dir"), root), "worker": a.get("worker")}
        metrics = a.get("metrics") or {}
        if not metrics:  # a diverged run: one row saying so, so that every planned run appears once
            rows.append({**run, "split": None, "metric": None, "value": None, "predictions": None})
        for split, values in metrics.items():
            for metric, value in values.items():
                rows.append({**run, "split": split, "metric": metric, "value": value,
                             "predictions": _stored(artifacts.get(layout.predictions_key(split)), root)})
    return rows


def _tune_rows(plan: Plan, storage: BaseStorage, unit: Unit, hp_names: list[str]) -> list[dict]:
    trials, _ = _trials(storage, unit.tune_study)
    rows = []
    metric = plan.spec.selection_key
    for state in slot_states(trials, tuning_keys(plan)).values():
        trial = state.done
        if trial is None:
            continue
        a = trial.user_attrs
        run = {**_base(plan, unit, "tune"), "seed": plan.spec.tuning.seed, "trial": trial.number,
               "status": a.get("status", "ok" if trial.state == TrialState.COMPLETE else "pruned"),
               **{hp_column(n): trial.params.get(n) for n in hp_names},
               "best_epoch": a.get("best_epoch"), "epochs_run": a.get("epochs_run"), "worker": a.get("worker")}
        val = a.get("val") or {}
        if val:
            rows += [{**run, "split": "val", "metric": k, "value": v} for k, v in val.items()]
        else:  # pruned: the last reported value of the selection metric
            last = trial.intermediate_values[max(trial.intermediate_values)] if trial.intermediate_values else None
            rows.append({**run, "split": "val", "metric": metric, "value": last})
    return rows


def _stored(rel: str | None, root: Path | None) -> str | None:
    """A path as the results table stores it: relative to the run directory, or absolute under ``root``."""
    if not rel:
        return None
    p = Path(rel)
    return str(p if p.is_absolute() or root is None else root / p)
