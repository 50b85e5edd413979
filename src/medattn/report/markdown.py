"""Render a report :class:`~medattn.report.document.Document` as Markdown that reads well as plain text.

Tables are pipe tables with padded columns, figures are image links to ``figures/<name>.png`` next to
report.md, headings are ATX (``#``). Inline ``**bold**`` and ```code``` pass through unchanged.
"""

from __future__ import annotations

from medattn.report.document import (
    Block,
    BulletList,
    Document,
    FigureBlock,
    FigureRow,
    Paragraph,
    Raw,
    Section,
    Table,
)


def _cell(text: str) -> str:
    """Return a table cell safe inside a pipe table (pipes escaped, line breaks flattened)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def render_table(table: Table) -> str:
    """Return a padded pipe table, preceded by its caption as a 'Table:' line."""
    header = [_cell(c) for c in table.columns]
    rows = [[_cell(c) for c in row] for row in table.rows]
    widths = [max(3, len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    align = table.alignment()

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(cells, widths, align, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join(("-" * (w - 1) + ":") if a == "r" else "-" * w
                             for w, a in zip(widths, align, strict=True)) + " |"
    out = [line(header), rule, *(line(r) for r in rows)]
    if table.caption:
        out.insert(0, f"Table: {table.caption}\n")
    return "\n".join(out)


def _image(figure: FigureBlock) -> str:
    """Return a Markdown image link to the figure's PNG file."""
    alt = " ".join(figure.caption.replace("[", "(").replace("]", ")").split())
    return f"![{alt}]({figure.filename})"


def render_block(block: Block) -> str:
    """Return one block as Markdown."""
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, BulletList):
        return "\n".join(f"- {' '.join(item.split())}" for item in block.items)
    if isinstance(block, Table):
        return render_table(block)
    if isinstance(block, FigureBlock):
        return f"{_image(block)}\n\nFigure: {block.caption}"
    if isinstance(block, FigureRow):
        images = "\n".join(_image(f) for f in block.figures)
        return images + (f"\n\nFigure: {block.caption}" if block.caption else "")
    if isinstance(block, Raw):
        return block.markdown
    raise TypeError(f"cannot render {type(block).__name__} as Markdown")


def render_section(section: Section, level: int = 2) -> str:
    """Return a section, its blocks and its subsections (one heading level deeper) as Markdown."""
    parts = [f"{'#' * min(level, 6)} {section.title}"]
    parts += [render_block(b) for b in section.blocks]
    parts += [render_section(s, level + 1) for s in section.subsections]
    return "\n\n".join(parts)


def render_markdown(document: Document) -> str:
    """Return the whole report as Markdown text (ending with a newline)."""
    parts = [f"# {document.title}"]
    parts += [render_block(b) for b in document.intro]
    if len(document.sections) > 1:
        parts.append("Contents:\n\n" + "\n".join(f"- {s.title}" for s in document.sections))
    parts += [render_section(s) for s in document.sections]
    return "\n\n".join(parts).rstrip() + "\n"

