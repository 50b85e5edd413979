"""Training progress when the output is not a terminal: one line per epoch (issue 28, item 1)."""

from __future__ import annotations

import re

from medattn.train.progress import EpochProgress, duration

LINE = re.compile(r"^epoch (\d+)/2: loss \d+\.\d{4}, val balanced_accuracy \d\.\d{4}, \d+ img/s, (.+)$")


def test_train_redirected_to_a_pipe_prints_one_line_per_epoch(tmp_path, monkeypatch):
    """`medattn train ... > log` was silent for the whole run; now each epoch leaves a line in the log (the
    runner's output, like a file, is not a terminal)."""
    from typer.testing import CliRunner

    from medattn.cli import app

    for name in ("FORCE_COLOR", "FORCE_TERMINAL", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    out = CliRunner().invoke(app, ["train", "--data", "synthetic:derm-synth?n=48&size=32", "--epochs", "2",
                                   "--batch-size", "16", "--out", str(tmp_path)])
    assert out.exit_code == 0, out.output
    lines = [m for m in map(LINE.match, out.output.splitlines()) if m]
    assert [int(m.group(1)) for m in lines] == [1, 2]
    assert lines[0].group(2).endswith(" left") and lines[1].group(2) == "done"
    assert not re.search(r"^epoch \d+/2 ", out.output, re.M)  # no progress bar drawn into the file


def test_lines_go_to_log_only_without_a_terminal():
    from io import StringIO

    from rich.console import Console

    lines: list[str] = []
    with EpochProgress(2, metric="auc", log=lines.append, console=Console(file=StringIO())) as progress:
        progress.update(1, 0.5, 0.75, 100.0)
        progress.update(2, 0.25, 0.875, 200.0)
    assert [t.split(", ")[:3] for t in lines] == [["epoch 1/2: loss 0.5000", "val auc 0.7500", "100 img/s"],
                                                 ["epoch 2/2: loss 0.2500", "val auc 0.8750", "200 img/s"]]
    quiet: list[str] = []
    with EpochProgress(2, enabled=False, log=quiet.append, console=Console(file=StringIO())) as progress:
        progress.update(1, 0.5, 0.75, 100.0)
    terminal: list[str] = []
    with EpochProgress(2, log=terminal.append, console=Console(file=StringIO(), force_terminal=True)) as progress:
        progress.update(1, 0.5, 0.75, 100.0)
    assert quiet == [] and terminal == []


def test_duration_reads_like_a_clock():
    assert [duration(s) for s in (0, 44.6, 65, 3599, 7620)] == ["0s", "45s", "1m 05s", "59m 59s", "2h 07m"]
