"""Reading RUN_DIR: one-line DataErrors for user mistakes; CSV input, the engine's column names, tuning
and failed-run rows; missing artifacts listed in the report instead of failing it; the CLI command.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import typer
from helpers.rundir import PATH, planted_run, run_folder
from typer.testing import CliRunner

from medattn.errors import DataError
from medattn.report import build_report, report_command
from medattn.rundir.reader import load_run
from medattn.stats import compare_models, describe_comparison


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-dataset, three-seed synthetic run written as results.csv."""
    return planted_run(tmp_path_factory.mktemp("small"), datasets=(PATH,), seeds=3, fmt="csv")


def test_missing_run_dir_and_missing_results_are_one_line_errors(tmp_path: Path):
    with pytest.raises(DataError, match=r"nope: run directory not found"):
        build_report(tmp_path / "nope")
    with pytest.raises(DataError, match=r"no results\.parquet or results\.csv; run `medattn study run"):
        build_report(tmp_path)


def test_results_table_problems_name_the_file_and_the_fix(tmp_path: Path, small_run: Path):
    table = pd.read_csv(small_run / "results.csv")
    table.drop(columns=["seed", "is_baseline"]).to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(DataError, match=r"results\.csv: results table lacks column\(s\) \['is_baseline', 'seed'\]"):
        build_report(tmp_path)
    (tmp_path / "results.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"results\.parquet: cannot read the results table"):
        build_report(tmp_path)
    (tmp_path / "results.parquet").unlink()
    pd.concat([table, table.head(1)]).to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(DataError, match=r"results\.csv: results table has 2 rows sharing"):
        build_report(tmp_path)
    table.assign(stage="tune").to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(DataError, match=r"results\.csv: no final-stage rows \(stages present: \['tune'\]\)"):
        build_report(tmp_path)
    table.to_csv(tmp_path / "results.csv", index=False)
    (tmp_path / "study.json").write_text("{broken")
    with pytest.raises(DataError, match=r"study\.json: not valid JSON"):
        build_report(tmp_path)
    (tmp_path / "study.json").write_text(json.dumps({"rope": "wide"}))
    with pytest.raises(DataError, match=r"study\.json: rope='wide' is not a number"):
        build_report(tmp_path)


def test_engine_columns_tuning_rows_and_failed_runs(tmp_path: Path, small_run: Path):
    table = pd.read_csv(small_run / "results.csv")
    expected = compare_models(table, rope=0.01)
    engine = table.rename(columns={"run_dir": "artifact_dir"}).drop(columns=["predictions"])
    engine["artifact_dir"] = [str(small_run / p) for p in engine["artifact_dir"]]  # absolute, as the engine writes
    engine["study"] = "engine-study"  # no study.json here: the name comes from the table
    tune = engine.head(8).assign(stage="tune", seed=0, value=0.0)
    failed = engine.head(1).assign(seed=7, split=None, metric=None, value=None)
    pd.concat([engine, tune, failed]).to_csv(tmp_path / "results.csv", index=False)
    run = load_run(tmp_path)
    assert set(run.results["stage"]) == {"final"} and 7 not in set(run.results["seed"])
    assert run.predictions("path", "resnet18", 0, "test") is not None
    assert run.class_names("path") == ["normal", "tumor"]
    paths = build_report(tmp_path, out=tmp_path / "out")
    written = pd.read_csv(paths.comparisons)
    pd.testing.assert_frame_equal(written, expected, check_dtype=False, rtol=1e-12)
    text = paths.markdown.read_text()
    assert "## Notes" not in text  # every artifact was found through the absolute artifact_dir
    assert "## Across datasets" not in text  # one dataset only
    assert "Study `engine-study`" in text and "# medattn report: engine-study" in text


def test_absolute_paths_of_a_moved_run_are_found_in_its_new_place(tmp_path: Path, small_run: Path):
    table = pd.read_csv(small_run / "results.csv").drop(columns=["predictions"])
    table["run_dir"] = [f"/gone/old-place/{p}" for p in table["run_dir"]]  # absolute, written before the move
    moved = tmp_path / "moved"
    shutil.copytree(small_run / "artifacts", moved / "artifacts")
    table.to_csv(moved / "results.csv", index=False)
    expected = pd.read_csv(small_run / run_folder("path", "resnet18", 0) / "predictions_test.csv")
    pd.testing.assert_frame_equal(load_run(moved).predictions("path", "resnet18", 0, "test"), expected)


def test_missing_artifacts_are_listed_and_the_report_still_builds(tmp_path: Path):
    run_dir = planted_run(tmp_path, datasets=(PATH,), seeds=3)
    (run_dir / "study.json").unlink()
    for seed in range(3):
        (run_dir / run_folder("path", "resnet18+se", seed) / "predictions_test.csv").unlink()
    (run_dir / run_folder("path", "vit", 1) / "metrics.json").unlink()
    paths = build_report(run_dir, rope=0.02)
    text = paths.markdown.read_text()
    notes = text[text.index("## Notes"):]
    assert "resnet18+se/seed0-trial0/predictions_test.csv: prediction file not found" in notes
    assert "vit/seed1-trial0/metrics.json: training history not found" in notes
    row = next(line for line in text.splitlines() if line.startswith("| resnet18+se vs resnet18 "))
    assert row.split("|")[5].strip() == "n/a"  # no bootstrap without predictions
    recall = text[text.index("Table: Recall"):text.index("![Per-class")]
    assert "| resnet18+se " not in recall and "| resnet18+cbam " in recall
    assert "+-2.0 pp" in text  # the --rope override
    assert "The tuning budget and search space were not recorded" in text


def test_report_command_writes_the_report(small_run: Path, tmp_path: Path):
    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("report")(report_command)
    result = CliRunner().invoke(app, ["report", str(small_run), "--out", str(tmp_path / "rep"), "--rope", "0.01"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rep" / "report.html").is_file() and (tmp_path / "rep" / "report.md").is_file()
    assert "report.html" in result.output
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "absent")])
    assert isinstance(missing.exception, DataError) and "run directory not found" in str(missing.exception)


def test_minimal_table_without_artifacts_or_costs(tmp_path: Path):
    rows = []
    for seed in range(3):
        for model, attention, gain in (("plain", "none", 0.0), ("plain+eca", "eca", 0.002 * (seed - 1))):
            rows.append({"dataset": "xray", "model": model, "backbone": "resnet18", "attention": attention,
                         "is_baseline": False, "seed": seed, "split": "test", "metric": "balanced_accuracy",
                         "value": 0.8 + 0.01 * seed + gain})
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    paths = build_report(tmp_path)
    text = paths.markdown.read_text()
    expected = compare_models(pd.DataFrame(rows))
    assert len(expected) == 1 and f"- {describe_comparison(expected.iloc[0])}" in text
    assert "No cost measurements (params, FLOPs) in the results." in text
    assert "No training histories (metrics.json) were found for this dataset." in text
    notes = text[text.index("## Notes"):]
    assert notes.count("\n- ") == 2 and "gives no run directory" in notes  # one note per kind, not per run
    assert paths.figures == ()
    assert "(1 balanced accuracy comparison on test)" in text and "bootstrap" not in text[text.index("## Methods"):]
    assert "data-images-loaded" in paths.html.read_text()
