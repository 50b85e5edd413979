"""End to end with the real training loop: `medattn study run/work` as processes, SIGKILL, PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from optuna.trial import TrialState
from study_helpers import spec_dict, write_spec

from medattn.study.engine import open_plan_storage
from medattn.study.plan import Plan, make_plan
from medattn.study.spec import load_spec
from medattn.study.worker import run_worker

PY = sys.executable
# enough training per run (~8 s on one core) that process start-up does not hide the parallel speed-up
SPEED_TRAIN_IMAGES = 320
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _cli(*args: str) -> list[str]:
    return [PY, "-m", "medattn.study.cli", *args]


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
        assert Path(path).exists(), path
    tune = frame[frame["stage"] == "tune"]
    assert set(tune["split"]) == {"val"} and len(tune.drop_duplicates(["model", "trial"])) == 2


@pytest.mark.slow
def test_sigkill_mid_trial_then_rerun_completes_without_redoing(tmp_path: Path, tiny_npz: Path) -> None:
    seeds = [0, 1, 2]
    spec = spec_dict(f"medmnist:{tiny_npz}", tmp_path / "out", seeds=len(seeds), cost=True,
                     models={"list": [{"backbone": "resnet18", "small_stem": False}]},
                     train={"epochs": 3, "batch_size": 32, "warmup_epochs": 0},
                     tuning={"trials": 1, "max_epochs": 1, "search_space": {"lr": {"low": 1e-3, "high": 1e-2}}})
    path = write_spec(tmp_path / "kill.yaml", spec)
    plan = _plan_for(path)
    final = plan.units[0].final_study
    cmd = _cli("run", str(path), "--workers", "1", "--threads", "1")
    log1 = (tmp_path / "run1.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log1, stderr=subprocess.STDOUT, env=ENV)

    victim = None
    deadline = time.time() + 240
    while victim is None and time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)
        trials = _trials(plan, final)
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        running = [t for t in trials if t.state == TrialState.RUNNING and "worker" in t.user_attrs]
        if done and running and time.time() - running[0].datetime_start.timestamp() > 1.5:
            victim = running[0]
    assert victim is not None, f"no final trial to kill in time; log:\n{(tmp_path / 'run1.log').read_text()}"
    tune = plan.units[0].tune_study
    before = {(name, t.number): t.datetime_complete for name in (final, tune) for t in _trials(plan, name)
              if t.state.is_finished()}
    checkpoints = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "artifacts").rglob("*.safetensors")}
    assert checkpoints, "the finished seed run wrote its checkpoint"
    os.kill(int(victim.user_attrs["worker"].split(":")[1]), signal.SIGKILL)  # mid-training
    assert proc.wait(timeout=120) == 1, "the run reports the killed worker"
    log1.close()
    assert _trials(plan, final)[victim.number].state == TrialState.RUNNING  # nobody finished it

    second = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=400)
    assert second.returncode == 0, second.stdout + second.stderr
    started = [line for line in second.stdout.splitlines() if ": start" in line]
    finished_seeds = len([key for key in before if key[0] == final])
    assert len(started) == len(seeds) - finished_seeds, f"only unfinished runs are trained again:\n{second.stdout}"

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


def _spin(seconds: float) -> int:
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += 1
    return n


def parallel_capacity(seconds: float = 1.0) -> float:
    """Work done by two busy processes relative to one in the same time (2.0 on two idle cores)."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as pool:
        one = pool.submit(_spin, seconds).result()
        two = sum(f.result() for f in [pool.submit(_spin, seconds) for _ in range(2)])
    return two / one


def _speed_spec(tmp_path: Path, npz: Path, name: str, storage: str | None = None) -> Path:
    spec = spec_dict(f"medmnist:{npz}", tmp_path / name, seeds=3,
                     train={"epochs": 2, "batch_size": 32, "warmup_epochs": 0},
                     tuning={"trials": 2, "max_epochs": 2, "sampler": "random", "pruner": "none",
                             "search_space": {"lr": {"low": 1e-3, "high": 1e-2, "log": True}}})
    spec["name"] = name
    if storage is not None:
        spec["storage"] = storage
    return write_spec(tmp_path / f"{name}.yaml", spec)


def _timed_run(path: Path, workers: int) -> float:
    start = time.time()
    done = subprocess.run(_cli("run", str(path), "--workers", str(workers), "--threads", "1"),
                          capture_output=True, text=True, env=ENV, timeout=580)
    assert done.returncode == 0, done.stdout + done.stderr
    return time.time() - start


def _check_two_worker_run(path: Path, seconds: float, single: float) -> None:
    plan = _plan_for(path)
    frame = _assert_each_run_once(plan.out_dir / "results.csv", ["resnet18", "resnet18+se"], [0, 1, 2])
    workers = {w.rsplit(":", 1)[-1] for w in frame["worker"]}
    for unit in plan.units:
        tune = _trials(plan, unit.tune_study)
        assert len(tune) == 2 and all(t.state == TrialState.COMPLETE for t in tune)
        workers |= {t.user_attrs["worker"].rsplit(":", 1)[-1] for t in tune}
    assert workers == {"w0", "w1"}, "both workers took part"
    assert seconds < 0.8 * single, (f"two workers took {seconds:.0f}s, one worker {single:.0f}s; this machine runs "
                                    f"two CPU-bound processes {parallel_capacity():.2f}x as fast as one (2.0 = two "
                                    f"free cores): a speed-up needs two cores not busy with other work")


@pytest.fixture(scope="module")
def one_worker_seconds(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> float:
    """Wall time of the reference study with one worker (journal storage)."""
    from study_helpers import make_tiny_npz

    tmp = tmp_path_factory.mktemp("single")
    npz = make_tiny_npz(tmp / "pneu.npz", shared_data, n_train=SPEED_TRAIN_IMAGES)
    return _timed_run(_speed_spec(tmp, npz, "single"), 1)


@pytest.mark.slow
def test_two_workers_on_a_journal_file(tmp_path: Path, one_worker_seconds: float, shared_data: Path) -> None:
    from study_helpers import make_tiny_npz

    npz = make_tiny_npz(tmp_path / "pneu.npz", shared_data, n_train=SPEED_TRAIN_IMAGES)
    path = _speed_spec(tmp_path, npz, "journal2")
    seconds = _timed_run(path, 2)
    print(f"journal: 1 worker {one_worker_seconds:.1f}s, 2 workers {seconds:.1f}s")
    _check_two_worker_run(path, seconds, one_worker_seconds)


@pytest.mark.slow
def test_two_workers_on_postgresql(tmp_path: Path, one_worker_seconds: float, postgres_url: str,
                                   shared_data: Path) -> None:
    from study_helpers import make_tiny_npz

    npz = make_tiny_npz(tmp_path / "pneu.npz", shared_data, n_train=SPEED_TRAIN_IMAGES)
    path = _speed_spec(tmp_path, npz, "pg2", storage=postgres_url)
    seconds = _timed_run(path, 2)
    print(f"postgresql: 1 worker (journal) {one_worker_seconds:.1f}s, 2 workers {seconds:.1f}s")
    _check_two_worker_run(path, seconds, one_worker_seconds)
    # `study work` joins the same finished study from "another machine": nothing left to do
    again = subprocess.run(_cli("work", str(path), "--storage", postgres_url, "--threads", "1"),
                           capture_output=True, text=True, env=ENV, timeout=300)
    assert again.returncode == 0 and ": start" not in again.stdout, again.stdout + again.stderr
