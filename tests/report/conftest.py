"""Fixtures for report tests: the synthetic run directory and its report, built once per session."""

from __future__ import annotations

import pytest
from helpers.rundir import planted_run, read_results
from report_helpers import BuiltReport

from medattn.report import build_report


@pytest.fixture(scope="session")
def built_report(tmp_path_factory: pytest.TempPathFactory) -> BuiltReport:
    """The report of the two-dataset, five-seed synthetic study with planted effects."""
    run_dir = planted_run(tmp_path_factory.mktemp("run"))
    paths = build_report(run_dir)
    return BuiltReport(run_dir, paths, paths.markdown.read_text(encoding="utf-8"),
                       paths.html.read_text(encoding="utf-8"), read_results(run_dir))
