"""Engine logic with a fast fake training function: planning, claiming, once-only runs, retries, resume."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from study_helpers import FakeTrain, spec_dict, write_spec

from medattn.errors import SpecError, TrainingFailed
from medattn.study.engine import Engine, open_plan_storage
from medattn.study.plan import Plan, make_plan
from medattn.study.results import collect_results
from medattn.study.slots import DUPLICATE_ATTR, SLOT_ATTR, claim
from medattn.study.spec import load_spec
from medattn.study.status import eta_seconds, study_progress
from medattn.study.worker import run_worker


def _plan(tmp_path: Path, npz: Path, **overrides) -> Plan:
    spec = spec_dict(f"medmnist:{npz}", tmp_path / "out", **overrides)
    return make_plan(load_spec(write_spec(tmp_path / "study.yaml", spec)))


def _trials(plan: Plan, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = open_plan_storage(plan)
    return storage.get_all_trials(storage.get_study_id_from_name(name))


def _quiet(msg: str) -> None:
    pass


def test_study_runs_every_planned_run_once(tmp_path: Path, tiny_npz: Path, fake_train: FakeTrain) -> None:
    plan = _plan(tmp_path, tiny_npz, seeds=3)
    result = run_worker(plan, train_fn=fake_train, log=_quiet)
    assert result.exit_code == 0 and result.runs == 2 * (2 + 3)
    tune_calls = [c for c in fake_train.calls if c["out_dir"] is None]
    final_calls = [c for c in fake_train.calls if c["out_dir"] is not None]
    assert len(tune_calls) == 4 and len(final_calls) == 6
    assert all(c["splits"] == ["train", "val"] for c in tune_calls), "tuning must never see a test split"
    assert all(c["splits"] == ["test", "train", "val"] for c in final_calls)
    assert all(c["epochs"] == 2 for c in fake_train.calls)

    frame = collect_results(plan, open_plan_storage(plan))
    runs = frame.drop_duplicates(["dataset", "model", "seed"])
    assert sorted(zip(runs["model"], runs["seed"], strict=True)) == [(m, s) for m in ("resnet18", "resnet18+se")
                                                         for s in (0, 1, 2)]
    assert set(frame["split"]) == {"val", "test"} and set(frame["stage"]) == {"final"}
    for col in ("dataset", "model", "backbone", "attention", "placement", "is_baseline", "seed", "split", "metric",
                "value", "hp_lr", "params", "flops", "train_images_per_s", "infer_images_per_s",
                "peak_memory_mb", "checkpoint", "predictions"):
        assert col in frame.columns, col
    # the final runs use the best tuning trial's learning rate, per model
    for model in ("resnet18", "resnet18+se"):
        tune = [t for t in _trials(plan, f"t/pneu/{model}/tune") if t.state == TrialState.COMPLETE]
        best = max(tune, key=lambda t: t.value)
        assert set(frame.loc[frame["model"] == model, "hp_lr"]) == {best.params["lr"]}
    # artifacts: stored and reported relative to the output directory (a run directory can move), and they exist
    trial = next(t for t in _trials(plan, "t/pneu/resnet18/final") if t.state == TrialState.COMPLETE)
    assert not Path(trial.user_attrs["artifacts"]["checkpoint"]).is_absolute()
    test_rows = frame[frame["split"] == "test"]
    paths = [*test_rows["checkpoint"], *test_rows["predictions"], *test_rows["artifact_dir"]]
    assert not any(Path(p).is_absolute() for p in paths)
    assert all((plan.out_dir / p).exists() for p in paths)


def test_rerun_resumes_and_never_redoes_finished_runs(tmp_path: Path, tiny_npz: Path) -> None:
    plan = _plan(tmp_path, tiny_npz)
    first, second = FakeTrain(), FakeTrain()
    assert run_worker(plan, train_fn=first, max_runs=5, log=_quiet).runs == 5
    finished = {(t.number, t.datetime_complete) for name in (u.tune_study for u in plan.units)
                for t in _trials(plan, name) if t.state.is_finished()}
    result = run_worker(_plan(tmp_path, tiny_npz), train_fn=second, log=_quiet)
    assert result.runs == 2 * (2 + 2) - 5 and len(first.calls) + len(second.calls) == 8
    after = {(t.number, t.datetime_complete) for name in (u.tune_study for u in plan.units)
             for t in _trials(plan, name) if t.state.is_finished()}
    assert finished <= after, "finished trials must be left as they were"
    assert run_worker(plan, train_fn=second, log=_quiet).runs == 0  # a complete study: nothing to do


def test_stale_trial_of_a_dead_worker_is_retried_once(tmp_path: Path, tiny_npz: Path) -> None:
    plan = _plan(tmp_path, tiny_npz, tuning={"trials": 0}, seeds=2)
    engine = Engine(plan, train_fn=FakeTrain(), log=_quiet)
    engine.ensure_planned()
    storage = engine.storage
    study_id = storage.get_study_id_from_name(plan.units[0].final_study)
    dead = claim(storage, study_id, plan.seeds)  # claimed, then the worker "dies": no heartbeat, no result
    assert dead is not None and dead.state == TrialState.RUNNING

    fake = FakeTrain()
    assert run_worker(make_plan(plan.spec), train_fn=fake, log=_quiet).exit_code == 0
    trials = _trials(plan, plan.units[0].final_study)
    dead_now = next(t for t in trials if t.number == dead.number)
    assert dead_now.state == TrialState.FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    # it was failed only once its heartbeat had gone stale (the storage's clock, not the test's)
    assert (dead_now.datetime_complete - dead.datetime_start).total_seconds() >= plan.spec.workers.grace_period
    assert retry[0].user_attrs[SLOT_ATTR] == dead.user_attrs[SLOT_ATTR]
    frame = collect_results(plan, storage)
    assert sorted(frame.drop_duplicates(["model", "seed"]).groupby("model").size().tolist()) == [2, 2]
    assert len([c for c in fake.calls if c["model"] == "none"]) == 2


def test_duplicate_trials_of_a_slot_run_once(tmp_path: Path, tiny_npz: Path, fake_train: FakeTrain) -> None:
    plan = _plan(tmp_path, tiny_npz, tuning={"trials": 0}, seeds=2)
    engine = Engine(plan, train_fn=fake_train, log=_quiet)
    engine.ensure_planned()
    # two planners racing (or a retry racing a top-up) leave a second WAITING trial for the same seed
    study = engine.study(plan.units[0].final_study)
    study.enqueue_trial({}, user_attrs={SLOT_ATTR: 0, "stage": "final", "seed": 0})
    assert run_worker(plan, train_fn=fake_train, log=_quiet).exit_code == 0
    trials = _trials(plan, plan.units[0].final_study)
    seed0 = [t for t in trials if t.user_attrs[SLOT_ATTR] == 0]
    assert [t.state for t in seed0] == [TrialState.COMPLETE, TrialState.FAIL]
    assert seed0[1].system_attrs[DUPLICATE_ATTR]
    assert sorted(c["seed"] for c in fake_train.calls if c["model"] == "none") == [0, 1]


def test_crashing_run_is_retried_then_reported_failed(tmp_path: Path, tiny_npz: Path) -> None:
    plan = _plan(tmp_path, tiny_npz, tuning={"trials": 0}, seeds=1,
                 workers={"heartbeat_interval": 1, "grace_period": 3, "poll_interval": 0.1, "max_retries": 2})
    fake = FakeTrain()

    def crashing(data, model, train, seed, out_dir, on_epoch=None):
        if model.attention == "se":
            fake.calls.append({"crash": True})
            raise RuntimeError("CUDA error: an illegal memory access")
        return fake(data, model, train, seed, out_dir, on_epoch)

    result = run_worker(plan, train_fn=crashing, log=_quiet)
    assert result.exit_code == 1, "a run that failed for good makes the worker exit 1"
    assert sum(1 for c in fake.calls if c.get("crash")) == 3  # the attempt plus max_retries retries
    progress = {p.unit.model.name: p for p in study_progress(plan, open_plan_storage(plan))}
    assert progress["resnet18+se"].final.failed == 1 and progress["resnet18"].final.done == 1


def test_diverged_final_run_is_a_result_not_a_retry(tmp_path: Path, tiny_npz: Path) -> None:
    plan = _plan(tmp_path, tiny_npz, tuning={"trials": 0}, seeds=2)
    fake = FakeTrain()

    def diverging(data, model, train, seed, out_dir, on_epoch=None):
        if seed == 1:
            fake.calls.append({"diverged": seed})
            raise TrainingFailed("training loss is nan at epoch 1")
        return fake(data, model, train, seed, out_dir, on_epoch)

    assert run_worker(plan, train_fn=diverging, log=_quiet).exit_code == 0
    assert sum(1 for c in fake.calls if "diverged" in c) == 2  # once per model, never retried
    frame = collect_results(plan, open_plan_storage(plan))
    failed = frame[frame["status"] == "failed"]
    assert len(failed) == 2 and set(failed["seed"]) == {1} and failed["value"].isna().all()


def test_pruner_stops_bad_trials_early(tmp_path: Path, tiny_npz: Path, fake_train: FakeTrain) -> None:
    plan = _plan(tmp_path, tiny_npz, seeds=1, models={"list": [{"backbone": "resnet18"}]},
                 tuning={"trials": 8, "max_epochs": 6, "sampler": "random",
                         "pruner": {"type": "median", "startup_trials": 2, "warmup_epochs": 1},
                         "search_space": {"lr": {"low": 1e-5, "high": 1e-1, "log": True}}})
    run_worker(plan, train_fn=fake_train, log=_quiet)
    trials = _trials(plan, plan.units[0].tune_study)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned and all(2 <= t.user_attrs["epochs_run"] < 6 for t in pruned), "epoch 1 is warm-up"
    assert all(t.user_attrs["status"] == "pruned" for t in pruned)
    assert sum(t.user_attrs["epochs_run"] for t in trials) < 8 * 6


def test_changed_spec_is_refused_on_resume(tmp_path: Path, tiny_npz: Path, fake_train: FakeTrain) -> None:
    plan = _plan(tmp_path, tiny_npz)
    run_worker(plan, train_fn=fake_train, max_runs=1, log=_quiet)
    changed = _plan(tmp_path, tiny_npz, train={"epochs": 2, "batch_size": 32, "warmup_epochs": 0, "lr": 0.05})
    with pytest.raises(SpecError, match=r"train\.lr: 0\.001 -> 0\.05"):
        Engine(changed, train_fn=fake_train, log=_quiet).ensure_planned()
    more_seeds = _plan(tmp_path, tiny_npz, seeds=4)  # adding seeds is allowed: the new ones are planned
    Engine(more_seeds, train_fn=fake_train, log=_quiet).ensure_planned()
    assert len(_trials(more_seeds, more_seeds.units[0].final_study)) == 4


def test_concurrent_workers_share_the_work(tmp_path: Path, tiny_npz: Path) -> None:
    plan = _plan(tmp_path, tiny_npz, seeds=3)
    Engine(plan, train_fn=FakeTrain(), log=_quiet).ensure_planned()
    fakes = [FakeTrain(), FakeTrain()]
    both_inside = threading.Barrier(2, timeout=120)  # neither worker's first run ends before the other's starts

    def meet_first(fake: FakeTrain):
        def train(*args, **kwargs):
            if not fake.calls:
                both_inside.wait()
            return fake(*args, **kwargs)
        return train

    # each thread has its own storage object, as separate processes would
    threads = [threading.Thread(target=run_worker, args=(make_plan(plan.spec),),
                                kwargs={"train_fn": meet_first(f), "log": _quiet}) for f in fakes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not both_inside.broken, "both workers were inside a run at the same time"
    assert all(f.calls for f in fakes), "both workers got work"
    assert sum(len(f.calls) for f in fakes) == 2 * (2 + 3)
    frame = collect_results(plan, open_plan_storage(plan))
    assert frame.drop_duplicates(["model", "seed"]).shape[0] == 6


def test_status_counts_and_eta(tmp_path: Path, tiny_npz: Path, fake_train: FakeTrain) -> None:
    plan = _plan(tmp_path, tiny_npz, seeds=3)
    run_worker(plan, train_fn=fake_train, max_runs=3, log=_quiet)
    progress = study_progress(plan, open_plan_storage(plan))
    tune = [p.tune for p in progress]
    assert sum(s.done for s in tune) == 2 and sum(s.pending for s in tune) == 2
    assert progress[0].final.done == 1 and progress[0].final.pending == 2
    assert eta_seconds(plan, progress) is None  # nothing running: no ETA
    progress[0].final.running, progress[0].final.pending = 1, 1
    eta = eta_seconds(plan, progress)
    assert eta is not None and eta > 0


def test_journal_heartbeat_staleness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    import medattn.study.storage as storage_module
    from medattn.study.storage import HEARTBEAT_ATTR, HeartbeatJournalStorage

    storage = HeartbeatJournalStorage(tmp_path / "j.journal", heartbeat_interval=1, grace_period=5)
    study = optuna.create_study(storage=storage)
    # a retried trial inherits its predecessor's (old) heartbeat with its system attrs
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING,
                                              system_attrs={HEARTBEAT_ATTR: time.time() - 1000}))
    trial_id = study.trials[0]._trial_id
    assert storage.set_trial_state_values(trial_id, TrialState.RUNNING)
    now = time.time()
    assert storage._get_stale_trial_ids(study._study_id) == [], "a trial that just started is not stale"
    monkeypatch.setattr(storage_module, "time", SimpleNamespace(time=lambda: now + 4))
    storage.record_heartbeat(trial_id)
    monkeypatch.setattr(storage_module, "time", SimpleNamespace(time=lambda: now + 8))
    assert storage._get_stale_trial_ids(study._study_id) == [], "heartbeat 4 s ago, grace 5 s"
    monkeypatch.setattr(storage_module, "time", SimpleNamespace(time=lambda: now + 10))
    assert storage._get_stale_trial_ids(study._study_id) == [trial_id]
