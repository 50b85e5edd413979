"""End to end with the real training loop: `medattn study run/work` as processes, SIGKILL, PostgreSQL.

The speed-up of two workers over one is measured by bench/study_workers.py, not here: wall time on a shared
machine is noise. These tests prove concurrency from the storage (trials of both workers overlap in time).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd
import pytest
from optuna.trial import TrialState
from process_helpers import hooked_env, marker_pid, medattn, started, wait_for_marker
from study_helpers import spec_dict, write_spec

from medattn.study.engine import open_plan_storage
from medattn.study.plan import Plan, make_plan
from medattn.study.spec import load_spec
from medattn.study.worker import run_worker


def _plan_for(path: Path) -> Plan:
    return make_plan(load_spec(path))


def _trials(plan: Plan, name: str):
    storage = open_plan_storage(plan)
    try:
        return storage.get_all_trials(storage.get_study_id_from_name(name))
    except KeyError:
        return []


def _assert_each_run_once(results_csv: Path, models: list[str], seeds: list[int]) -> pd.DataFrame:
    frame = pd.read_csv(results_csv)
    runs = frame.groupby(["dataset", "model", "seed"]).trial.nunique()
    assert sorted(runs.index.tolist()) == sorted(("pneu", m, s) for m in models for s in seeds)
    assert (runs == 1).all(), "every planned (dataset, model, seed) run appears exactly once"
    return frame


def test_real_training_in_process(tmp_path: Path, tiny_npz: Path) -> None:
    import torch

    torch.set_num_threads(1)
    spec = spec_dict(f"medmnist:{tiny_npz}", tmp_path / "out", seeds=1,
                     tuning={"trials": 1, "max_epochs": 1, "search_space": {"lr": {"low": 1e-3, "high": 1e-2}}},
                     train={"epochs": 1, "batch_size": 32, "warmup_epochs": 0})
    plan = _plan_for(write_spec(tmp_path / "s.yaml", spec))
    assert run_worker(plan, log=lambda m: None).exit_code == 0
    from medattn.study.results import collect_results

    frame = collect_results(plan, open_plan_storage(plan), stage="all")
    final = frame[frame["stage"] == "final"]
    assert set(final["split"]) == {"val", "test"}
    assert set(final["metric"]) >= {"balanced_accuracy", "auc", "macro_f1", "accuracy", "ece"}
    assert final["value"].between(0, 1).all()
    for path in final["checkpoint"].tolist() + final.loc[final["split"] == "test", "predictions"].tolist():
        assert not Path(path).is_absolute() and (plan.out_dir / path).exists(), path
    tune = frame[frame["stage"] == "tune"]
    assert set(tune["split"]) == {"val"} and len(tune.drop_duplicates(["model", "trial"])) == 2


@pytest.mark.slow
def test_sigkill_mid_trial_then_rerun_completes_without_redoing(tmp_path: Path, tiny_npz: Path) -> None:
    seeds = [0, 1]
    spec = spec_dict(f"medmnist:{tiny_npz}", tmp_path / "out", seeds=len(seeds), cost=True,
                     models={"list": [{"backbone": "resnet18", "small_stem": False}]},
                     train={"epochs": 2, "batch_size": 32, "warmup_epochs": 0},
                     tuning={"trials": 1, "max_epochs": 1, "search_space": {"lr": {"low": 1e-3, "high": 1e-2}}})
    path = write_spec(tmp_path / "kill.yaml", spec)
    plan = _plan_for(path)
    final, tune = plan.units[0].final_study, plan.units[0].tune_study
    cmd = ["study", "run", str(path), "--workers", "1", "--threads", "1"]
    # the second seed run trains one real epoch, writes its marker and waits: then it is killed mid-training
    markers, log = tmp_path / "markers", tmp_path / "run1.log"
    with started(cmd, hooked_env({"dir": markers, "stage": "final", "epochs": 1, "nth": 2}), log) as proc:
        marker = wait_for_marker(markers, proc, log)
        victim = next(t for t in _trials(plan, final) if t.state == TrialState.RUNNING)
        before = {(name, t.number): t.datetime_complete for name in (final, tune) for t in _trials(plan, name)
                  if t.state.is_finished()}
        assert len([key for key in before if key[0] == final]) == 1, "the first seed run had finished"
        checkpoints = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "artifacts").rglob("model.safetensors")}
        assert len(checkpoints) == 1, "the finished seed run wrote its checkpoint"
        os.kill(marker_pid(marker), signal.SIGKILL)  # mid-training: after epoch 1 of 2
        assert proc.wait(timeout=600) == 1, "the run reports the killed worker"
    assert _trials(plan, final)[victim.number].state == TrialState.RUNNING  # nobody finished it

    second = medattn(*cmd)
    assert second.returncode == 0, second.stdout + second.stderr
    starts = [line for line in second.stdout.splitlines() if ": start" in line]
    assert len(starts) == 1, f"only the unfinished run is trained again:\n{second.stdout}"

    trials = _trials(plan, final)
    assert trials[victim.number].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert len(trials) == len(seeds) + 1
    after = {(name, t.number): t.datetime_complete for name in (final, tune) for t in _trials(plan, name)}
    assert all(after[key] == when for key, when in before.items()), "finished trials were not touched"
    assert all(p.stat().st_mtime_ns == m for p, m in checkpoints.items()), "no finished run was retrained"
    frame = _assert_each_run_once(tmp_path / "out" / "results.csv", ["resnet18"], seeds)
    cost = frame[["params", "flops", "train_images_per_s", "infer_images_per_s", "peak_memory_mb"]]
    assert cost.notna().all().all() and (cost > 0).all().all(), "cost columns come from medattn.models.cost"


def _two_worker_spec(tmp_path: Path, npz: Path, name: str, storage: str | None = None) -> Path:
    spec = spec_dict(f"medmnist:{npz}", tmp_path / name, seeds=2,
                     models={"list": [{"backbone": "resnet18", "small_stem": False}]},
                     train={"epochs": 1, "batch_size": 32, "warmup_epochs": 0},
                     tuning={"trials": 2, "max_epochs": 1, "sampler": "random", "pruner": "none",
                             "search_space": {"lr": {"low": 1e-3, "high": 1e-2, "log": True}}})
    spec["name"] = name
    if storage is not None:
        spec["storage"] = storage
    return write_spec(tmp_path / f"{name}.yaml", spec)


def _run_two_workers(tmp_path: Path, path: Path) -> None:
    """`study run --workers 2`, the first run of each worker held at a barrier until both are inside one."""
    done = medattn("study", "run", str(path), "--workers", "2", "--threads", "1",
                   env=hooked_env(barrier={"dir": tmp_path / "barrier", "n": 2}))
    assert done.returncode == 0, done.stdout + done.stderr


def _check_two_worker_run(path: Path) -> None:
    """Every run once, both workers took part, and their trials overlapped in time (from the storage)."""
    plan = _plan_for(path)
    _assert_each_run_once(plan.out_dir / "results.csv", ["resnet18"], [0, 1])
    spans: dict[str, list[tuple]] = {}
    for unit in plan.units:
        tune = _trials(plan, unit.tune_study)
        assert len(tune) == 2 and all(t.state == TrialState.COMPLETE for t in tune)
        for t in tune + _trials(plan, unit.final_study):
            if t.state == TrialState.COMPLETE:
                worker = t.user_attrs["worker"].rsplit(":", 1)[-1]
                spans.setdefault(worker, []).append((t.datetime_start, t.datetime_complete))
    assert set(spans) == {"w0", "w1"}, "both workers took part"
    overlapping = [(a, b) for a in spans["w0"] for b in spans["w1"] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping, f"no trial of w0 ran while one of w1 did: {spans}"


@pytest.mark.slow
def test_two_workers_on_a_journal_file(tmp_path: Path, tiny_npz: Path) -> None:
    path = _two_worker_spec(tmp_path, tiny_npz, "journal2")
    _run_two_workers(tmp_path, path)
    _check_two_worker_run(path)


@pytest.mark.slow
def test_two_workers_on_postgresql(tmp_path: Path, tiny_npz: Path, postgres_url: str) -> None:
    path = _two_worker_spec(tmp_path, tiny_npz, "pg2", storage=postgres_url)
    _run_two_workers(tmp_path, path)
    _check_two_worker_run(path)
    # `study work` joins the same finished study from "another machine": nothing left to do
    again = medattn("study", "work", str(path), "--storage", postgres_url, "--threads", "1", timeout=300)
    assert again.returncode == 0 and ": start" not in again.stdout, again.stdout + again.stderr
