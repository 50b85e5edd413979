"""Study progress: done / running / failed / pending runs per (dataset, model), with an ETA, as a rich table."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState
from rich.table import Table

from medattn.study.plan import Plan, Unit
from medattn.study.slots import FINISHED, slot_states
from medattn.study.tuning import tuning_keys


@dataclass
class StageProgress:
    """Counts of one stage's planned runs, finished durations, and the best validation value so far."""

    total: int
    done: int = 0
    running: int = 0
    failed: int = 0
    pending: int = 0
    durations: list[float] = field(default_factory=list)
    best: float | None = None
    values: list[float] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        """Nothing left to run."""
        return self.done + self.failed == self.total


@dataclass
class UnitProgress:
    """Progress of one (dataset, model)."""

    unit: Unit
    tune: StageProgress
    final: StageProgress


def stage_progress(storage: BaseStorage, study_name: str, keys: list[int], max_retries: int) -> StageProgress:
    """Progress of one study (all pending if it was not planned yet)."""
    progress = StageProgress(total=len(keys))
    try:
        study_id = storage.get_study_id_from_name(study_name)
        trials = storage.get_all_trials(study_id, deepcopy=False)
    except KeyError:
        trials = []
    for state in slot_states(trials, keys).values():
        status = state.status(max_retries)
        setattr(progress, status, getattr(progress, status) + 1)
        if state.done is not None:
            duration = _duration(state.done)
            if duration is not None:
                progress.durations.append(duration)
            if state.done.state == TrialState.COMPLETE and state.done.value is not None:
                progress.values.append(state.done.value)
    progress.best = max(progress.values) if progress.values else None
    return progress


def study_progress(plan: Plan, storage: BaseStorage) -> list[UnitProgress]:
    """Progress of every unit of the plan."""
    retries = plan.spec.workers.max_retries
    return [UnitProgress(u, stage_progress(storage, u.tune_study, tuning_keys(plan), retries),
                         stage_progress(storage, u.final_study, plan.seeds, retries)) for u in plan.units]


def eta_seconds(plan: Plan, progress: list[UnitProgress]) -> float | None:
    """Seconds until the study is complete at the current parallelism; None without data or workers."""
    tune_d = [d for p in progress for d in p.tune.durations]
    final_d = [d for p in progress for d in p.final.durations]
    mean_tune = statistics.fmean(tune_d) if tune_d else None
    if final_d:
        mean_final = statistics.fmean(final_d)
    elif mean_tune is not None:  # a final run trains train.epochs; a tuning trial at most tuning_epochs
        mean_final = mean_tune * plan.spec.train.epochs / plan.spec.tuning_epochs
    else:
        mean_final = None
    remaining = 0.0
    for p in progress:
        for stage, mean in ((p.tune, mean_tune), (p.final, mean_final)):
            left = stage.pending + 0.5 * stage.running
            if left:
                if mean is None:
                    return None
                remaining += left * mean
    if remaining == 0:
        return 0.0
    running = sum(p.tune.running + p.final.running for p in progress)
    return remaining / running if running else None


def format_seconds(seconds: float | None) -> str:
    """`1h 02m`, `3m 20s`, `45s`, or `?`."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds}s"


def status_table(plan: Plan, progress: list[UnitProgress]) -> Table:
    """A rich table: one row per (dataset, model), tuning and final counts, best values; ETA in the caption."""
    spec = plan.spec
    table = Table(title=f"study {spec.name}  ({plan.storage_url})", title_justify="left")
    for col in ("dataset", "model"):
        table.add_column(col, no_wrap=True)
    for stage in ("tune", "final"):
        table.add_column(f"{stage}\nd/r/f/w", justify="right", no_wrap=True)
    table.add_column(f"best tune\nval {_abbrev(spec.selection_key)}", justify="right")
    table.add_column(f"final val\n{_abbrev(spec.selection_key)}", justify="right")
    for p in progress:
        cells = [p.unit.dataset.name, p.unit.model.name]
        for s in (p.tune, p.final):
            style = "green" if s.done == s.total else "red" if s.failed else "cyan" if s.running else ""
            text = f"{s.done}/{s.running}/{s.failed}/{s.pending}"
            cells.append(f"[{style}]{text}[/{style}]" if style else text)
        cells.append("" if p.tune.best is None else f"{p.tune.best:.3f}")
        values = p.final.values
        cells.append("" if not values else f"{statistics.fmean(values):.3f}"
                     + (f"±{statistics.stdev(values):.3f}" if len(values) > 1 else ""))
        table.add_row(*cells)
    totals = {k: sum(getattr(p.tune, k) + getattr(p.final, k) for p in progress)
              for k in ("done", "running", "failed", "pending", "total")}
    eta = eta_seconds(plan, progress)
    if totals["done"] + totals["failed"] == totals["total"]:
        eta_text = "complete"
    elif totals["running"] == 0:
        eta_text = "no worker is running; start `medattn study run` or `medattn study work`"
    else:
        eta_text = f"ETA {format_seconds(eta)} at {totals['running']} parallel run(s)"
    table.caption = ("d/r/f/w: done/running/failed/waiting runs. "
                     f"{totals['done']}/{totals['total']} runs done, {totals['running']} running, "
                     f"{totals['failed']} failed, {totals['pending']} waiting; {eta_text}  "
                     f"[{time.strftime('%H:%M:%S')}]")
    table.caption_justify = "left"
    return table


def is_complete(progress: list[UnitProgress]) -> bool:
    """Every planned run is done or has failed for good."""
    return all(p.tune.settled and p.final.settled for p in progress)


def _duration(trial: FrozenTrial) -> float | None:
    if trial.state not in FINISHED or trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def _abbrev(metric: str) -> str:
    return {"balanced_accuracy": "bal.acc", "macro_f1": "macro F1"}.get(metric, metric)
