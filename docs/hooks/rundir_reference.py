"""MkDocs hook: render the run-directory reference from the contract module, :mod:`medattn.rundir`.

The page `docs/rundir.md` holds three markers, `<!-- rundir:layout -->`, `<!-- rundir:columns -->` and
`<!-- rundir:metrics -->`; each is replaced by a table of `LAYOUT`, `RESULT_COLUMNS` or `METRICS`, so the
documentation cannot drift from the code (MkDocs hooks: https://www.mkdocs.org/user-guide/configuration/#hooks).
"""

from __future__ import annotations

from mkdocs.exceptions import PluginError

MARKERS = ("layout", "columns", "metrics")


def _contract():
    """Return medattn.rundir, or stop the build with one line saying how to make it importable."""
    try:
        import medattn.rundir as rundir
    except ImportError as exc:
        raise PluginError(f"docs/hooks/rundir_reference.py: cannot import medattn.rundir ({exc}); "
                          "build the docs from the project's venv (make docs)") from exc
    return rundir


def _cell(value) -> str:
    """Return a value as a Markdown table cell (pipes escaped, booleans as yes/no)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, ...], rows) -> str:
    """Return a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def tables() -> dict[str, str]:
    """Return the Markdown table for each marker."""
    rundir = _contract()
    return {
        "layout": _table(("path", "kind", "written by", "holds"),
                         ((f"`{p.path}`", p.kind, p.written_by, p.description) for p in rundir.LAYOUT)),
        "columns": _table(("column", "type", "holds"),
                          ((f"`{c.name}`", c.dtype, c.description) for c in rundir.RESULT_COLUMNS)),
        "metrics": _table(("metric", "higher is better", "selectable", "what"),
                          ((f"`{m.name}`", m.higher_is_better, m.selectable, m.description) for m in rundir.METRICS)),
    }


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the rundir markers of a page by the tables; a page with a marker missing a table fails the build."""
    if "<!-- rundir:" not in markdown:
        return markdown
    rendered = tables()
    for key in MARKERS:
        markdown = markdown.replace(f"<!-- rundir:{key} -->", rendered[key])
    if "<!-- rundir:" in markdown:
        raise PluginError(f"{page.file.src_path}: unknown rundir marker; use one of "
                          + ", ".join(f"<!-- rundir:{k} -->" for k in MARKERS))
    return markdown
