"""The engine: creates the Optuna studies of a plan, claims planned runs from the storage and runs them.

Per (dataset, model) there are two studies: `<study>/<dataset>/<model>/tune` holds the tuning trials
(sampled by TPE or random search, pruned per epoch on the validation metric, trained on train+val only)
and `.../final` holds one trial per seed, which retrains the best tuning configuration on the full data
and evaluates every split (test, test_ood, ...). A final trial is only claimed once its tuning study is
settled. Artifacts are written under `<output>/artifacts/...` and stored as paths relative to `<output>`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from medattn.data.dataset_spec import load_dataset
from medattn.data.imageset import ImageSet
from medattn.errors import SpecError, TrainingFailed
from medattn.rundir import layout
from medattn.study.jsonattrs import differences, jsonable
from medattn.study.model_cost import measure_model_cost
from medattn.study.params import apply_params
from medattn.study.plan import Plan, Unit, spec_load_context
from medattn.study.slots import INTERRUPTED_ATTR, SEED_ATTR, SLOT_ATTR, claim, mark_failed, slot_states, top_up
from medattn.study.storage import Heartbeat, open_storage
from medattn.study.tuning import make_pruner, make_sampler, suggest, tuning_keys
from medattn.train.config import ModelConfig, TrainConfig

CONFIG_ATTR = "medattn:config"
COST_ATTR = "cost"
TUNE, FINAL = "tune", "final"
TUNING_SPLITS = ("train", "val")

TrainFn = Callable[..., Any]
Log = Callable[[str], None]
Attempt = tuple[TrialState, float | None, dict[str, Any]]  # how one trial ended: state, value, attrs

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
logger = logging.getLogger(__name__)


@contextmanager
def optuna_quiet() -> Iterator[None]:
    """Silence Optuna's INFO lines ('A new study created', 'Using an existing study') while the engine opens a
    study; the caller's Optuna verbosity is restored afterwards (nothing is changed at import)."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def open_plan_storage(plan: Plan) -> BaseStorage:
    """The plan's storage with the spec's heartbeat, grace period and retry settings."""
    w = plan.spec.workers
    return open_storage(plan.storage_url, w.heartbeat_interval, w.grace_period, w.max_retries)


class Engine:
    """Plans a study into a storage and runs its trials one at a time in this process.

    Args:
        plan: the expanded study (units, seeds, storage URL, artifact root).
        storage: an open Optuna storage (default: the plan's, with its heartbeat and retry settings).
        train_fn: ``train_run``-compatible function (default :func:`medattn.train.loop.train_run`; tests pass
            a fake).
        log: where progress lines go (default: the `medattn.study.engine` logger at INFO; the CLI prints them).
        worker: this worker's name in trial attributes (default ``host:pid``).
    """

    def __init__(self, plan: Plan, storage: BaseStorage | None = None, train_fn: TrainFn | None = None,
                 log: Log | None = None, worker: str | None = None) -> None:
        self.plan = plan
        self.storage = storage if storage is not None else open_plan_storage(plan)
        if train_fn is None and plan.spec.task == "segmentation":
            from medattn.segment.train import train_segmentation as train_fn
        elif train_fn is None:
            from medattn.train.loop import train_run as train_fn
        self.train_fn = train_fn
        self.log = log or logger.info
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self.max_retries = plan.spec.workers.max_retries
        self._studies: dict[str, optuna.Study] = {}
        self._settled: set[str] = set()
        self._data: dict[str, ImageSet] = {}
        self._tune_data: dict[str, ImageSet] = {}

    def _tune_train(self, unit: Unit) -> TrainConfig:
        """The unit's TrainConfig for tuning trials (its model's overrides kept): tuning epochs, no checkpoints."""
        return self.plan.train_config(unit.model).model_copy(
            update={"epochs": self.plan.spec.tuning_epochs, "progress": False, "save_epochs": []})

    def _final_train(self, unit: Unit) -> TrainConfig:
        """The unit's TrainConfig for its seeded runs (its model's overrides kept)."""
        return self.plan.train_config(unit.model).model_copy(update={"progress": False})

    # ------------------------------------------------------------------------------------ planning
    def study(self, name: str) -> optuna.Study:
        """The Optuna study of that name, created (maximising) if absent."""
        if name not in self._studies:
            with optuna_quiet():
                self._studies[name] = optuna.create_study(storage=self.storage, study_name=name,
                                                          direction="maximize", load_if_exists=True)
        return self._studies[name]

    def ensure_planned(self) -> None:
        """Create every study and enqueue every missing slot; SpecError if the storage holds another plan."""
        for unit in self.plan.units:
            for name, keys, stage in ((unit.tune_study, tuning_keys(self.plan), TUNE),
                                      (unit.final_study, self.plan.seeds, FINAL)):
                study = self.study(name)
                self._check_config(unit, study)
                states = slot_states(study.get_trials(deepcopy=False), keys)
                top_up(study, states, stage, self.max_retries)

    def _check_config(self, unit: Unit, study: optuna.Study) -> None:
        current = self.plan.fingerprints[unit.tune_study]
        stored = study.user_attrs.get(CONFIG_ATTR)
        if stored is None:
            study.set_user_attr(CONFIG_ATTR, current)
            study.set_user_attr("dataset", unit.dataset.name)
            study.set_user_attr("model", unit.model.name)
            return
        if stored != current:
            diff = ", ".join(differences(json.loads(stored), json.loads(current))) or "?"
            raise SpecError(f"{self.plan.spec.source}: the storage {self.plan.storage_url} already holds "
                            f"'{study.study_name}' planned with different settings ({diff}); restore them, or "
                            f"use another `output`/`storage` for the changed study")

    # ------------------------------------------------------------------------------------- claiming
    def step(self) -> str:
        """Run one claimable trial: returns `ran`, `wait` (others are busy) or `done` (study complete)."""
        unsettled = False
        for unit in self.plan.units:  # final runs first: results appear early, tuning keeps others busy
            if unit.final_study in self._settled:
                continue
            unsettled = True
            if not self.is_settled(unit.tune_study, tuning_keys(self.plan), TUNE):
                continue
            trial = self._visit(unit.final_study, self.plan.seeds, FINAL)
            if trial is not None:
                self._run_final(unit, trial)
                return "ran"
        for unit in self.plan.units:
            if unit.tune_study in self._settled:
                continue
            trial = self._visit(unit.tune_study, tuning_keys(self.plan), TUNE)
            if trial is not None:
                self._run_tune(unit, trial)
                return "ran"
        return "wait" if unsettled else "done"

    def is_settled(self, name: str, keys: list[int], stage: str) -> bool:
        """Whether every slot of a study is done or failed for good (nothing more will run in it)."""
        if name in self._settled:
            return True
        states = slot_states(self.study(name).get_trials(deepcopy=False), keys)
        if all(s.settled(self.max_retries) for s in states.values()):
            self._visit(name, keys, stage)  # records it, and tidies leftover duplicates
            return True
        return False

    def _visit(self, name: str, keys: list[int], stage: str) -> FrozenTrial | None:
        """Fail stale trials, top up lost slots, and claim a waiting trial of one study."""
        study = self.study(name)
        trials = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.RUNNING for t in trials):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                fail_stale_trials(study)  # heartbeat-stale trials: FAIL, and a retry is enqueued
            trials = study.get_trials(deepcopy=False)
        states = slot_states(trials, keys)
        if all(s.settled(self.max_retries) for s in states.values()):
            if any(t.state == TrialState.WAITING for t in trials):
                # leftovers of a top-up race: claiming marks them failed as duplicates of finished runs
                leftover = claim(self.storage, study._study_id, keys)
                assert leftover is None, "a settled study cannot have a live waiting trial"
            self._settled.add(name)
            return None
        if top_up(study, states, stage, self.max_retries):
            self.log(f"{name}: re-enqueued runs whose attempts were lost")
        trial = claim(self.storage, study._study_id, keys)
        if trial is not None:
            for key, value in (("worker", self.worker), ("claimed_at", time.time())):
                self.storage.set_trial_user_attr(trial._trial_id, key, value)
        return trial

    # -------------------------------------------------------------------------------------- running
    def dataset(self, unit: Unit) -> ImageSet:
        """The unit's dataset, loaded once per worker."""
        name = unit.dataset.name
        if name not in self._data:
            from medattn.train.loop import resolve_device

            data = load_dataset(unit.dataset.spec, spec_load_context(self.plan.spec))
            # moved once, so that every run of this worker finds it on its device already
            self._data[name] = data.to(resolve_device(self.plan.spec.train.device))
        return self._data[name]

    def tuning_dataset(self, unit: Unit) -> ImageSet:
        """The unit's train and val splits only: tuning never sees a test split."""
        name = unit.dataset.name
        if name not in self._tune_data:
            data = self.dataset(unit)
            self._tune_data[name] = data.subset(np.flatnonzero(np.isin(data.split, TUNING_SPLITS)))
        return self._tune_data[name]

    def _run_tune(self, unit: Unit, frozen: FrozenTrial) -> None:
        spec, metric = self.plan.spec, self.plan.spec.selection_key
        with optuna_quiet():
            study = optuna.load_study(study_name=unit.tune_study, storage=self.storage,
                                      sampler=make_sampler(self.plan, frozen.number), pruner=make_pruner(self.plan))
        trial = optuna.Trial(study, frozen._trial_id)
        epochs = 0

        def on_epoch(epoch: int, val: dict[str, float]) -> None:
            nonlocal epochs
            epochs = epoch
            trial.report(float(val[metric]), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        def run() -> Attempt:
            nonlocal epochs
            params = suggest(trial, spec.tuning.search_space)
            model_cfg, train_cfg = apply_params(unit.model.config, self._tune_train(unit), params)
            self.log(f"{label}: start {_short(params)}")
            result = self.train_fn(self.tuning_dataset(unit), model_cfg, train_cfg, spec.tuning.seed, None, on_epoch)
            value = float(result.metrics["val"][metric])
            epochs = result.epochs_run
            return (TrialState.COMPLETE if math.isfinite(value) else TrialState.PRUNED, value,
                    {"status": "ok", "val": result.metrics["val"], "best_epoch": result.best_epoch})

        label = f"{unit.key} tune #{frozen.user_attrs[SLOT_ATTR]}"
        start = time.time()
        state, value, attrs = self._attempt(frozen, label, run)
        attrs.update(epochs_run=epochs, seconds=time.time() - start)
        if self._finish(unit, TUNE, frozen, state, value, attrs, label):
            self.log(f"{label}: {attrs['status']} after {epochs} epoch(s)"
                     + (f", val {metric} {value:.4f}" if value is not None else ""))

    def _run_final(self, unit: Unit, frozen: FrozenTrial) -> None:
        metric = self.plan.spec.selection_key
        seed = int(frozen.user_attrs[SEED_ATTR])
        label = f"{unit.key} seed {seed}"
        params, tuned_from = self.best_params(unit)
        rel = Path(layout.run_folder(unit.dataset.name, unit.model.name, seed, frozen.number))
        out_dir = self.plan.artifact_root / rel

        def run() -> Attempt:
            model_cfg, train_cfg = apply_params(unit.model.config, self._final_train(unit), params)
            data = self.dataset(unit)
            self._ensure_cost(unit, model_cfg, data)
            origin = "untuned" if tuned_from is None else f"tuned trial {tuned_from}"
            self.log(f"{label}: start ({origin}) {_short(params)}".rstrip())
            result = self.train_fn(data, model_cfg, train_cfg, seed, out_dir, None)
            value = float(result.metrics["val"][metric])
            return (TrialState.COMPLETE if math.isfinite(value) else TrialState.PRUNED, value,
                    dict(status="ok", metrics=result.metrics, best_epoch=result.best_epoch,
                         epochs_run=result.epochs_run, timing=result.timing,
                         hardware=getattr(result, "hardware", {}),
                         artifacts={k: _relative(v, self.plan.artifact_root) for k, v in result.artifacts.items()}))

        start = time.time()
        state, value, outcome = self._attempt(frozen, label, run)
        attrs: dict[str, Any] = {"params": params, "tuned_from": tuned_from, "seed": seed,
                                 "artifact_dir": rel.as_posix(), **outcome, "seconds": time.time() - start}
        if self._finish(unit, FINAL, frozen, state, value if state == TrialState.COMPLETE else None, attrs, label):
            self.log(f"{label}: {attrs['status']}" + (f", val {metric} {value:.4f}" if value is not None else ""))

    def _attempt(self, frozen: FrozenTrial, label: str, run: Callable[[], Attempt]) -> Attempt:
        """Run one trial's work under a heartbeat; return (state, value, attrs), however it ended.

        Pruned: PRUNED, status 'pruned'. Diverged (TrainingFailed): PRUNED, status 'failed' (a result, counted
        once, not a crash to retry). Any other error: FAIL, status 'error' (retried). Ctrl-C: the trial is
        marked failed without a retry and the interrupt goes on.
        """
        with Heartbeat(self.storage, frozen._trial_id, self.plan.spec.workers.heartbeat_interval):
            try:
                return run()
            except optuna.TrialPruned:
                return TrialState.PRUNED, None, {"status": "pruned"}
            except TrainingFailed as exc:
                return TrialState.PRUNED, None, {"status": "failed", "error": str(exc)}
            except KeyboardInterrupt:
                mark_failed(self.storage, frozen._trial_id, INTERRUPTED_ATTR)
                raise
            except Exception as exc:
                self.log(f"{label}: FAILED {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
                return TrialState.FAIL, None, {"status": "error", "error": f"{type(exc).__name__}: {exc}"}

    def _finish(self, unit: Unit, stage: str, frozen: FrozenTrial, state: TrialState, value: float | None,
                attrs: dict[str, Any], label: str) -> bool:
        """Store the outcome; False if the trial had been taken over meanwhile (result dropped)."""
        try:
            for key, val in attrs.items():
                self.storage.set_trial_user_attr(frozen._trial_id, key, jsonable(val))
            self.storage.set_trial_state_values(frozen._trial_id, state=state,
                                                values=None if value is None else [value])
        except UpdateFinishedTrialError:
            self.log(f"{label}: result dropped: the trial was failed as stale meanwhile (heartbeat missed) "
                     f"and is run again elsewhere")
            return False
        if state == TrialState.FAIL:  # a crashed attempt: enqueue its retry now rather than at the next pass
            name, keys = ((unit.final_study, self.plan.seeds) if stage == FINAL
                          else (unit.tune_study, tuning_keys(self.plan)))
            study = self.study(name)
            top_up(study, slot_states(study.get_trials(deepcopy=False), keys), stage, self.max_retries)
        return True

    def best_params(self, unit: Unit) -> tuple[dict[str, Any], int | None]:
        """Search-space values of the best finished tuning trial (ties: lowest number); defaults if none."""
        keys = set(tuning_keys(self.plan))
        best: FrozenTrial | None = None
        for t in self.study(unit.tune_study).get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.user_attrs.get(SLOT_ATTR) not in keys or t.value is None or not math.isfinite(t.value):
                continue
            if best is None or t.value > best.value:  # type: ignore[operator]
                best = t
        return ({}, None) if best is None else (dict(best.params), best.number)

    def _ensure_cost(self, unit: Unit, model_cfg: ModelConfig, data: ImageSet) -> None:
        """Measure the model's cost once per (dataset, model) and keep it in the final study's attrs."""
        study = self.study(unit.final_study)
        if not self.plan.spec.cost or COST_ATTR in self.storage.get_study_user_attrs(study._study_id):
            return
        if self.plan.spec.task == "segmentation":
            from medattn.segment.cost import segmentation_cost

            cost = segmentation_cost(model_cfg, data)
        else:
            cost = measure_model_cost(model_cfg, data)
        if cost is not None:
            study.set_user_attr(COST_ATTR, cost)


def _relative(path: str, root: Path) -> str:
    p = Path(path)
    try:
        return p.absolute().relative_to(root.absolute()).as_posix()
    except ValueError:
        return p.as_posix()


def _short(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
