"""``medattn report RUN_DIR``: read the run directory, build the sections, write report.md and report.html.

Output folder (default ``RUN_DIR/report``)::

    report.md          Markdown; figures referenced as figures/<name>.png
    report.html        one self-contained page (inline CSS, figures as base64 data URIs)
    figures/*.png      the figures of report.md
    comparisons.csv    compare_models' full table for every evaluated split (all metrics, all columns)
    summary.csv        summarize's per (dataset, model, metric) table with the costs
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from medattn.report.context import ReportContext, ReportSettings
from medattn.report.document import BulletList, Document, FigureBlock, Paragraph, Section
from medattn.report.html import render_html
from medattn.report.layout import REPORT_SECTIONS, load_section_plugins
from medattn.report.markdown import render_markdown
from medattn.report.sections.overview import study_name
from medattn.rundir import layout
from medattn.rundir.reader import RunData, load_run

MAX_NOTES = 40


@dataclass(frozen=True)
class ReportPaths:
    """The files a report build wrote."""

    out_dir: Path
    markdown: Path
    html: Path
    figures: tuple[Path, ...]
    comparisons: Path
    summary: Path


def _notes_section(run: RunData) -> Section | None:
    """Return the 'Notes' section listing missing artifacts (None when nothing was missing)."""
    if not run.missing:
        return None
    items = run.missing[:MAX_NOTES]
    if len(run.missing) > MAX_NOTES:
        items = [*items, f"... and {len(run.missing) - MAX_NOTES} more"]
    return Section("Notes", [
        Paragraph("Some run artifacts were missing or unreadable; the figures and intervals that need them are "
                  "left out:"),
        BulletList(tuple(items)),
    ])


def build_document(ctx: ReportContext) -> Document:
    """Return the report document: every registered section builder (plugins included) run in order, then the notes."""
    load_section_plugins()
    sections: list[Section] = []
    for entry in REPORT_SECTIONS.builders():
        sections.extend(entry.builder(ctx) or [])
    notes = _notes_section(ctx.run)
    if notes is not None:
        sections.append(notes)
    intro = [Paragraph(f"Built by `medattn report` from `{ctx.run.results_path.name}` in `{ctx.run.run_dir}` "
                       f"({len(ctx.results)} result rows).")]
    document = Document(title=f"medattn report: {study_name(ctx)}", intro=intro, sections=sections)
    document.assign_anchors()
    return document


def _unique_names(figures: list[FigureBlock]) -> None:
    """Rename figures that share a name (name-2, name-3, ...), so no file is overwritten."""
    seen: set[str] = set()
    for figure in figures:
        name, i = figure.name, 2
        while name in seen:
            name, i = f"{figure.name}-{i}", i + 1
        figure.name = name
        seen.add(name)


def write_document(document: Document, out_dir: Path) -> tuple[Path, Path, tuple[Path, ...]]:
    """Write report.md, figures/*.png and report.html into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = document.figures()
    _unique_names(figures)
    paths = []
    for figure in figures:
        path = out_dir / figure.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(figure.png())
        paths.append(path)
    markdown = out_dir / layout.REPORT_MD
    markdown.write_text(render_markdown(document), encoding="utf-8")
    html = out_dir / layout.REPORT_HTML
    html.write_text(render_html(document), encoding="utf-8")
    return markdown, html, tuple(paths)


def _write_tables(ctx: ReportContext, out_dir: Path) -> tuple[Path, Path]:
    """Write the comparison tables of every evaluated split and the summary table as CSV."""
    splits = [ctx.settings.split] + sorted({s for d in ctx.run.datasets for s in ctx.run.extra_splits(d)})
    tables = [ctx.comparisons(s) for s in splits]
    tables = [t for t in tables if not t.empty]
    comparisons = pd.concat(tables, ignore_index=True) if tables else ctx.comparisons()
    comparisons_path = out_dir / layout.COMPARISONS
    comparisons.to_csv(comparisons_path, index=False)
    summary_path = out_dir / layout.SUMMARY
    ctx.summary.to_csv(summary_path, index=False)
    return comparisons_path, summary_path


def build_report(run_dir: Path, out: Path | None = None, rope: float | None = None, *,
                 study: Mapping[str, Any] | None = None) -> ReportPaths:
    """Build the report of the study in ``run_dir`` into ``out`` (default ``run_dir/report``); return the paths.

    ``rope`` (ROPE half-width as a proportion, 0.01 = +-1 pp) overrides study.json's; ``study`` replaces
    study.json (for the study engine, which has the resolved description in memory).
    """
    run = load_run(Path(run_dir))
    if study is not None:
        run.study = dict(study)
    ctx = ReportContext(run=run, settings=ReportSettings.from_study(run.study, rope))
    out_dir = Path(out) if out is not None else run.run_dir / layout.REPORT
    document = build_document(ctx)
    markdown, html, figures = write_document(document, out_dir)
    comparisons, summary = _write_tables(ctx, out_dir)
    return ReportPaths(out_dir=out_dir, markdown=markdown, html=html, figures=figures, comparisons=comparisons,
                       summary=summary)
