"""A built report as the report tests see it: its run directory, paths and texts, and the results table.

The run directory itself, with its planted effects, comes from tests/helpers/rundir.py (`planted_run`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medattn.report import ReportPaths


@dataclass(frozen=True)
class BuiltReport:
    """A synthetic run directory, the report built from it, and the texts of report.md and report.html."""

    run_dir: Path
    paths: ReportPaths
    markdown: str
    html: str
    results: pd.DataFrame
