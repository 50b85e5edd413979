"""The `medattn report RUN_DIR` command (a Typer function the main app mounts)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console


def report_command(
    run_dir: Path = typer.Argument(..., help="Study output folder holding results.parquet or results.csv.",
                                   show_default=False),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for report.md, report.html and figures/ "
                                                       "(default: RUN_DIR/report)."),
    rope: float = typer.Option(None, "--rope", min=0.0, max=0.999,
                               help="Half-width of the region of practical equivalence as a proportion "
                                    "(0.01 = +-1 pp); default: study.json's rope, else 0.01."),
) -> None:
    """Write the study report: verdicts, tables, figures and a methods paragraph, as Markdown and HTML."""
    from medattn.report.build import build_report

    paths = build_report(run_dir, out=out, rope=rope)
    console = Console(soft_wrap=True)  # paths are never broken across lines: users copy them
    console.print(f"report: {paths.html}", highlight=False)
    console.print(f"        {paths.markdown} ({len(paths.figures)} figures in {paths.markdown.parent / 'figures'})",
                  highlight=False)
    console.print(f"tables: {paths.comparisons}, {paths.summary}", highlight=False)
