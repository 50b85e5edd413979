"""The study report: Markdown and self-contained HTML built from a run directory's tidy results.

``build_report(run_dir)`` is the entry point; sections are made by registered builders
(:mod:`medattn.report.registry`, defaults in :mod:`medattn.report.layout`, plugins: every module of the
package :mod:`medattn.report.sections`) and rendered by
:mod:`medattn.report.markdown` and :mod:`medattn.report.html`. Imports are lazy so that the CLI can
mount ``report_command`` without loading pandas and matplotlib.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ReportPaths", "build_report", "report_command"]


def __getattr__(name: str) -> Any:
    """Import the public names on first use."""
    if name in ("ReportPaths", "build_report"):
        from medattn.report import build

        return getattr(build, name)
    if name == "report_command":
        from medattn.report.cli import report_command

        return report_command
    raise AttributeError(f"module 'medattn.report' has no attribute {name!r}")
