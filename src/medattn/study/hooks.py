"""Extension point run after a study completes: analysis and report steps plug in here."""

from __future__ import annotations

from pathlib import Path

from medattn.study.spec import StudySpec


def after_study(spec: StudySpec, out_dir: Path) -> list[Path]:
    """Run the post-study steps (statistics, report) on `out_dir/results.csv`; returns the files they wrote.

    `medattn study run` calls this once every planned run is finished and `out_dir/results.csv` (the tidy
    table of `medattn.study.results`) is written. The report helper fills it in; until then there is no
    post-study step and nothing is written.
    """
    return []
