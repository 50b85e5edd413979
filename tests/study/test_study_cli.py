"""The `medattn study` Typer app: plan-only runs, status table, results export (after fake-trained runs)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from optuna.trial import TrialState
from study_helpers import FakeTrain, spec_dict, write_spec
from typer.testing import CliRunner

from medattn.study.cli import app
from medattn.study.engine import open_plan_storage
from medattn.study.plan import make_plan
from medattn.study.spec import load_spec
from medattn.study.worker import run_worker

runner = CliRunner()


def _spec(tmp_path: Path, npz: Path) -> Path:
    return write_spec(tmp_path / "study.yaml", spec_dict(f"medmnist:{npz}", tmp_path / "out", seeds=3))


def test_run_with_zero_workers_only_plans(tmp_path: Path, tiny_npz: Path) -> None:
    path = _spec(tmp_path, tiny_npz)
    result = runner.invoke(app, ["run", str(path), "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert "medattn study work" in result.output and "2 model(s)" in result.output
    plan = make_plan(load_spec(path))
    storage = open_plan_storage(plan)
    for unit in plan.units:
        for name, count in ((unit.tune_study, 2), (unit.final_study, 3)):
            trials = storage.get_all_trials(storage.get_study_id_from_name(name))
            assert len(trials) == count and all(t.state == TrialState.WAITING for t in trials)
    again = runner.invoke(app, ["run", str(path), "--workers", "0"])  # planning twice adds nothing
    assert again.exit_code == 0
    assert len(storage.get_all_trials(storage.get_study_id_from_name(plan.units[0].final_study))) == 3


def test_status_and_results_commands(tmp_path: Path, tiny_npz: Path) -> None:
    path = _spec(tmp_path, tiny_npz)
    plan = make_plan(load_spec(path))
    run_worker(plan, train_fn=FakeTrain(), max_runs=6, log=lambda m: None)

    status = runner.invoke(app, ["status", str(path)], terminal_width=160)
    assert status.exit_code == 0, status.output
    assert "resnet18+se" in status.output and "6/10 runs done" in status.output
    assert "no worker is running" in status.output
    rows = [line for line in status.output.splitlines() if "│ pneu" in line]
    assert "2/0/0/0" in rows[0] and "3/0/0/0" in rows[0]  # plain resnet18: tuning and 3 seeds done
    assert "1/0/0/1" in rows[1] and "0/0/0/3" in rows[1]  # resnet18+se: half tuned, no seed yet

    out_csv = tmp_path / "r.csv"
    done = runner.invoke(app, ["results", str(path), "--output", str(out_csv)])
    assert done.exit_code == 0, done.output
    frame = pd.read_csv(out_csv)
    assert sorted(frame["seed"].unique()) == [0, 1, 2] and set(frame["model"]) == {"resnet18"}
    assert "3 run(s)" in done.output

    done = runner.invoke(app, ["results", str(path), "--format", "parquet", "--stage", "all",
                               "--artifacts", str(tmp_path / "elsewhere")])
    assert done.exit_code == 0, done.output
    frame = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert set(frame["stage"]) == {"tune", "final"}
    final = frame[frame["stage"] == "final"]
    assert final["checkpoint"].str.startswith(str(tmp_path / "elsewhere" / "artifacts")).all()


def test_status_without_a_study_says_how_to_start(tmp_path: Path, tiny_npz: Path) -> None:
    result = runner.invoke(app, ["status", str(_spec(tmp_path, tiny_npz))])
    assert result.exit_code == 2 and "no study storage" in result.output and "study run" in result.output
