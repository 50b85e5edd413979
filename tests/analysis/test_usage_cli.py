"""`medattn features RUN_DIR` end to end on a tiny derm-synth study, and its bad-input errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers.rundir import trained_run
from statsmodels.stats.multitest import multipletests

MEDATTN = Path(sys.executable).parent / "medattn"


def _medattn(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(MEDATTN), *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory.mktemp("study"), save_epochs=(1,))


@pytest.fixture(scope="module")
def featured(run_dir, tmp_path_factory) -> subprocess.CompletedProcess:
    """`medattn features` run once on `run_dir` (epochs 1 and final, the old alias of best, an extra table)."""
    extra = tmp_path_factory.mktemp("extra") / "extra.csv"
    ids = [str(i) for i in range(300)]
    pd.DataFrame({"id": ids, "odd": [int(i) % 2 for i in ids], "same": 1}).to_csv(extra, index=False)
    return _medattn("features", run_dir, "--epochs", "1,final", "--features", extra)


def test_features_writes_the_usage_table_for_best_and_saved_epochs(run_dir, featured):
    done = featured
    assert done.returncode == 0, done.stderr
    assert "feature 'same' skipped (constant over all images)" in done.stdout
    table = pd.read_csv(run_dir / "features" / "usage.csv")
    assert set(table["epoch"].astype(str)) == {"1", "best"}
    best = table[table["epoch"] == "best"]
    kept = [json.loads((run_dir / "artifacts" / "synth" / m / f"seed{s}-trial0" / "model.json").read_text())["epoch"]
            for m, s in zip(best["model"], best["seed"], strict=True)]
    assert best["epoch_label"].tolist() == [f"best (epoch {e})" for e in kept]  # the weights' own epoch
    assert "best (epoch" in done.stdout and "final" not in done.stdout
    assert {"patch", "asymmetry", "hair", "odd", "border_compactness"} <= set(table["feature"])
    assert "same" not in set(table["feature"])
    assert table["source"].notna().all() and (table["correction"] == "holm").all()
    assert (table["p_adjusted"] >= table["pvalue"] - 1e-12).all()
    for _, rows in table.groupby(["dataset", "model", "seed", "epoch"]):  # Holm across one run x epoch's features
        family = rows[rows["excluded"].isna()]  # untestable features leave the family (listed, p_adjusted empty)
        assert rows.loc[rows["excluded"].notna(), "p_adjusted"].isna().all()
        assert (rows["family_size"] == len(family)).all()
        holm = multipletests(family["pvalue"], method="holm")[1]
        assert family["p_adjusted"].to_numpy() == pytest.approx(holm, rel=1e-5)  # usage.csv keeps 6 digits
    assert (table["n"] == 45).all() and (table["split"] == "test").all()  # the 15 % test split of 300 images


def _call_main(monkeypatch, *args: str) -> int:
    """Run the CLI entry point in this process (no interpreter start-up); return its exit code."""
    from medattn.cli import main

    monkeypatch.setattr(sys, "argv", ["medattn", *map(str, args)])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _medattn_in_process(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run the CLI entry point in this process; return (exit code, stderr)."""
    code = _call_main(monkeypatch, *args)
    return code, capsys.readouterr().err


def test_bad_inputs_are_one_line_errors_with_exit_2(run_dir, tmp_path, monkeypatch, capsys):
    no_id = tmp_path / "no_id.csv"
    pd.DataFrame({"name": ["a"], "f": [1]}).to_csv(no_id, index=False)
    unmatched = tmp_path / "unmatched.csv"
    pd.DataFrame({"id": ["x1", "x2"], "f": [1, 2]}).to_csv(unmatched, index=False)
    cases = [(("--features", no_id), "no_id.csv: no id column"),
             (("--features", unmatched), "unmatched.csv column 'id': none of its 2 ids"),
             (("--epochs", "7"), "no checkpoint for epoch(s) 7 (saved: 1); set `train: save_epochs: [7]`"),
             (("--epochs", "x"), "--epochs: 'x'")]
    for args, message in cases:
        code, err = _medattn_in_process(monkeypatch, capsys, "features", run_dir, *args)
        assert code == 2 and message in err, (args, err)
        assert len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def probed(run_dir) -> int:
    """`medattn probe` run once on `run_dir` (patch and ink): writes features/probes.csv; returns the exit code."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _call_main(monkeypatch, "probe", run_dir, "--artefact", "patch,ink", "--bootstrap", "50")


def test_probe_writes_flip_rates_with_the_ood_gap_and_rejects_unknown_artefacts(run_dir, probed, monkeypatch,
                                                                                 capsys):
    assert probed == 0  # its error, if any, is in the captured output of the setup
    table = pd.read_csv(run_dir / "features" / "probes.csv")
    assert set(zip(table["probe"], table["artefact"], strict=True)) == {("insert", "patch"), ("insert", "ink"),
                                                                        ("remove", "patch"), ("sham", "patch")}
    assert table["flip_rate"].between(0, 1).all() and table["ood_gap"].notna().all()
    assert (table["flip_rate_low"] <= table["flip_rate"]).all()
    assert (table["flip_rate"] <= table["flip_rate_high"]).all()
    code, err = _medattn_in_process(monkeypatch, capsys, "probe", run_dir, "--artefact", "sticker")
    assert code == 2 and "valid names: patch, ruler, ink" in err


def test_report_shows_feature_usage_and_shortcut_probes(run_dir, featured, probed, tmp_path):
    """The report picks up the tables that `medattn features` and `medattn probe` wrote."""
    from medattn.report.build import build_report

    paths = build_report(run_dir, out=tmp_path / "report")
    text = paths.markdown.read_text()
    assert "### Feature usage" in text and "### Shortcut probes" in text
    assert "feature-usage-synth.png" in text and "feature-usage-curves-synth.png" in text
    assert "ABCD features per class" in text and re.search(r"\|\s*insert\s*\|\s*patch\s*\|", text)
    assert "does not show that the model looks at the feature" in text  # what 'used' means, and what it does not
    assert re.search(r"\d+ of 300 masks touch the image edge", text)
    assert "Does usage change over training?" in text and re.search(r"\|\s*epoch 1\s*\|", text)
    assert "corrected CMI (bits)" in text and "direction (1-df test)" in text and "at best (epoch" in text
    assert "final" not in text.split("### Feature usage")[1].split("### Shortcut probes")[0]
    assert re.search(r"\|\s*sham\s*\|\s*patch\s*\|", text)  # the sham inpainting arm beside removal
