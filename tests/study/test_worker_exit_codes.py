"""Workers as the installed `medattn` command: exit 0 (nothing left), 1 (runs failed for good), 130 (signal).

A stopped or killed run is run again. The signal is sent when the run has written its marker (worker_hooks/
sitecustomize.py), never after a fixed delay, so it always lands mid-run however loaded the machine is.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from optuna.trial import TrialState
from process_helpers import hooked_env, marker_pid, medattn, started, wait_for_marker
from study_helpers import FakeTrain, spec_dict, write_spec

from medattn.study.engine import open_plan_storage
from medattn.study.plan import Plan, make_plan
from medattn.study.slots import INTERRUPTED_ATTR, SLOT_ATTR
from medattn.study.spec import load_spec
from medattn.study.worker import run_worker


def _quiet(msg: str) -> None:
    pass


def _plan(tmp_path: Path, npz: Path, **overrides) -> tuple[Path, Plan]:
    path = write_spec(tmp_path / "study.yaml", spec_dict(f"medmnist:{npz}", tmp_path / "out", **overrides))
    return path, make_plan(load_spec(path))


def _trials(plan: Plan, name: str):
    storage = open_plan_storage(plan)
    return storage.get_all_trials(storage.get_study_id_from_name(name))


def _work(path: Path):
    return medattn("study", "work", str(path), "--skip-checks", "--threads", "1")


def test_worker_exits_0_when_nothing_is_left(tmp_path: Path, tiny_npz: Path) -> None:
    path, plan = _plan(tmp_path, tiny_npz, tuning={"trials": 0}, seeds=2)
    assert run_worker(plan, train_fn=FakeTrain(), log=_quiet).exit_code == 0
    done = _work(path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": start" not in done.stdout


def test_worker_exits_1_when_runs_failed_for_good(tmp_path: Path, tiny_npz: Path) -> None:
    path, plan = _plan(tmp_path, tiny_npz, tuning={"trials": 0}, seeds=1,
                       workers={"heartbeat_interval": 1, "grace_period": 3, "poll_interval": 0.1, "max_retries": 1})

    def crashing(data, model, train, seed, out_dir, on_epoch=None):
        raise RuntimeError("CUDA error: an illegal memory access")

    assert run_worker(plan, train_fn=crashing, log=_quiet).exit_code == 1
    done = _work(path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed after 1 retries" in done.stdout


def test_worker_exits_130_on_sigterm_and_the_run_is_run_again(tmp_path: Path, tiny_npz: Path) -> None:
    path, plan = _plan(tmp_path, tiny_npz, tuning={"trials": 0}, seeds=2)
    log = tmp_path / "work.log"
    with started(["study", "work", str(path), "--skip-checks", "--threads", "1"],
                 hooked_env({"dir": tmp_path / "m"}), log) as proc:
        wait_for_marker(tmp_path / "m", proc, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=600) == 130, log.read_text()
    stopped = [t for t in _trials(plan, plan.units[0].final_study) if t.system_attrs.get(INTERRUPTED_ATTR)]
    assert len(stopped) == 1 and stopped[0].state == TrialState.FAIL, "the interrupted run is marked failed"

    fake = FakeTrain()
    assert run_worker(make_plan(plan.spec), train_fn=fake, log=_quiet).exit_code == 0
    retried = [t for t in _trials(plan, plan.units[0].final_study) if t.state == TrialState.COMPLETE
               and t.user_attrs[SLOT_ATTR] == stopped[0].user_attrs[SLOT_ATTR]]
    assert len(retried) == 1 and len(fake.calls) == 2 * 2, "the stopped run and every other run, once each"


def test_study_run_exits_130_on_ctrl_c_and_stops_its_workers(tmp_path: Path, tiny_npz: Path) -> None:
    path, plan = _plan(tmp_path, tiny_npz, tuning={"trials": 0}, seeds=1)
    log = tmp_path / "run.log"
    with started(["study", "run", str(path), "--workers", "1", "--threads", "1"],
                 hooked_env({"dir": tmp_path / "m"}), log) as proc:
        marker = wait_for_marker(tmp_path / "m", proc, log)
        proc.send_signal(signal.SIGINT)  # Ctrl-C reaches `study run`, which stops its workers
        assert proc.wait(timeout=600) == 130, log.read_text()
        with pytest.raises(ProcessLookupError):
            os.kill(marker_pid(marker), 0)  # the worker was stopped (and reaped) before `study run` returned
    assert "stopped; an interrupted run is marked failed" in log.read_text()


def _killed_tuning_trial_resumes(tmp_path: Path, npz: Path, storage: str | None) -> None:
    extra = {"storage": storage} if storage else {}
    path, plan = _plan(tmp_path, npz, seeds=1, models={"list": [{"backbone": "resnet18"}]},
                       tuning={"trials": 2, "max_epochs": 2, "sampler": "random", "pruner": "none",
                               "search_space": {"lr": {"low": 1e-3, "high": 1e-2, "log": True}}}, **extra)
    log = tmp_path / "work.log"
    # one real epoch of a tuning trial, then SIGKILL: no clean-up, no result, only a heartbeat that goes stale
    with started(["study", "work", str(path), "--skip-checks", "--threads", "1"],
                 hooked_env({"dir": tmp_path / "m", "stage": "tune", "epochs": 1}), log) as proc:
        wait_for_marker(tmp_path / "m", proc, log)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    tune = plan.units[0].tune_study
    victim = next(t for t in _trials(plan, tune) if t.state == TrialState.RUNNING)
    assert list(victim.intermediate_values) == [1], "killed after its first epoch was reported"

    fake = FakeTrain()
    assert run_worker(make_plan(plan.spec), train_fn=fake, log=_quiet).exit_code == 0
    trials = _trials(plan, tune)
    assert next(t for t in trials if t.number == victim.number).state == TrialState.FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].user_attrs[SLOT_ATTR] == victim.user_attrs[SLOT_ATTR] and retry[0].params == victim.params
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 2, "both tuning slots finished once"


def test_killed_tuning_trial_resumes_on_a_journal(tmp_path: Path, tiny_npz: Path) -> None:
    _killed_tuning_trial_resumes(tmp_path, tiny_npz, None)


@pytest.mark.slow
def test_killed_tuning_trial_resumes_on_postgresql(tmp_path: Path, tiny_npz: Path, postgres_url: str) -> None:
    _killed_tuning_trial_resumes(tmp_path, tiny_npz, postgres_url)
