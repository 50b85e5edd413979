"""Render a report :class:`~medattn.report.document.Document` as one self-contained HTML page.

Self-contained: CSS is inline, every figure is a base64 PNG data URI, and the page references no
external URL, so report.html can be mailed or archived alone. A short inline script records on
``<body data-images-loaded="N/M">`` how many images decoded once the page has loaded (used by the test
suite and handy when a figure looks missing).
"""

from __future__ import annotations

import base64
import re
from html import escape

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

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")

STYLE = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --accent: #0b5cad; --bg-alt: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; font: 15px/1.5 -apple-system, "Segoe UI", Roboto,
       "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 1.9em; margin: 0.2em 0 0.4em; }
h2 { font-size: 1.45em; margin-top: 2em; padding-bottom: 0.2em; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.2em; margin-top: 1.6em; }
h4, h5, h6 { font-size: 1.05em; margin-top: 1.3em; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--bg-alt);
       padding: 0.1em 0.3em; border-radius: 4px; }
nav.toc { background: var(--bg-alt); border: 1px solid var(--line); border-radius: 6px; padding: 8px 20px;
          margin: 1em 0; }
nav.toc ul { margin: 0.3em 0; padding-left: 1.2em; }
ul.sentences li { margin: 0.35em 0; }
.table-wrap { overflow-x: auto; margin: 0.4em 0 1.4em; }
table { border-collapse: collapse; font-size: 0.86em; }
p.caption { color: var(--muted); font-size: 0.9em; margin: 1.2em 0 0.3em; }
th, td { border: 1px solid var(--line); padding: 4px 7px; white-space: nowrap; }
th { white-space: normal; vertical-align: bottom; }
th { background: var(--bg-alt); text-align: left; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fbfcfd; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figure.row .images { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
figure.row .images img { max-width: 360px; }
figcaption { color: var(--muted); font-size: 0.9em; margin-top: 0.3em; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; }).length;
  document.body.dataset.imagesLoaded = loaded + "/" + images.length;
});
"""


def inline(text: str) -> str:
    """Return ``text`` HTML-escaped, with ``**bold**`` and ```code``` turned into tags."""
    out = escape(str(text), quote=False)
    out = _CODE.sub(r"<code>\1</code>", out)
    return _BOLD.sub(r"<strong>\1</strong>", out)


def data_uri(png: bytes) -> str:
    """Return PNG bytes as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _img(figure: FigureBlock) -> str:
    """Return an <img> element embedding the figure."""
    return f'<img src="{data_uri(figure.png())}" alt="{escape(figure.caption)}">'


def render_table(table: Table) -> str:
    """Return a table (inside a horizontally scrolling wrapper) preceded by its caption."""
    align = table.alignment()
    cls = [' class="r"' if a == "r" else "" for a in align]
    head = "".join(f"<th{c}>{inline(h)}</th>" for h, c in zip(table.columns, cls, strict=True))
    body = "".join(
        "<tr>" + "".join(f"<td{c}>{inline(v)}</td>" for v, c in zip(row, cls, strict=True)) + "</tr>"
        for row in table.rows
    )
    caption = f'<p class="caption">{inline(table.caption)}</p>' if table.caption else ""
    return (f'{caption}<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def render_block(block: Block) -> str:
    """Return one block as HTML."""
    if isinstance(block, Paragraph):
        return f"<p>{inline(block.text)}</p>"
    if isinstance(block, BulletList):
        return '<ul class="sentences">' + "".join(f"<li>{inline(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Table):
        return render_table(block)
    if isinstance(block, FigureBlock):
        return f"<figure>{_img(block)}<figcaption>{inline(block.caption)}</figcaption></figure>"
    if isinstance(block, FigureRow):
        caption = f"<figcaption>{inline(block.caption)}</figcaption>" if block.caption else ""
        return ('<figure class="row"><div class="images">' + "".join(_img(f) for f in block.figures)
                + f"</div>{caption}</figure>")
    if isinstance(block, Raw):
        return block.html
    raise TypeError(f"cannot render {type(block).__name__} as HTML")


def render_section(section: Section, level: int = 2) -> str:
    """Return a section with its blocks and subsections as nested <section> elements."""
    tag = f"h{min(level, 6)}"
    anchor = f' id="{escape(section.anchor)}"' if section.anchor else ""
    parts = [f"<section{anchor}><{tag}>{inline(section.title)}</{tag}>"]
    parts += [render_block(b) for b in section.blocks]
    parts += [render_section(s, level + 1) for s in section.subsections]
    parts.append("</section>")
    return "\n".join(parts)


def _toc(sections: list[Section], depth: int = 0) -> str:
    """Return a nested list of links to the sections (two levels)."""
    items = []
    for s in sections:
        sub = _toc(s.subsections, depth + 1) if depth == 0 and s.subsections else ""
        items.append(f'<li><a href="#{escape(s.anchor or "")}">{inline(s.title)}</a>{sub}</li>')
    return "<ul>" + "".join(items) + "</ul>"


def render_html(document: Document) -> str:
    """Return the whole report as one self-contained HTML page."""
    document.assign_anchors()
    body = [f"<h1>{inline(document.title)}</h1>"]
    body += [render_block(b) for b in document.intro]
    if len(document.sections) > 1:
        body.append(f'<nav class="toc"><strong>Contents</strong>{_toc(document.sections)}</nav>')
    body += [render_section(s) for s in document.sections]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(document.title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        '<body data-images-loaded="pending">\n<main>\n' + "\n".join(body) + "\n</main>\n"
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )
