"""The report's content model: sections made of blocks (text, lists, tables, figures), format-free.

Section builders produce these blocks; :mod:`medattn.report.markdown` and :mod:`medattn.report.html`
render the same blocks, so the Markdown and the HTML report always say the same thing.

Inline markup inside text and table cells is limited to ``**bold**`` and ```code```: both read well
as plain text and both renderers understand them.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from matplotlib.figure import Figure

_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(text: str) -> str:
    """Return ``text`` as a lowercase file- and anchor-safe name (letters, digits, dashes)."""
    return _SLUG.sub("-", text.lower()).strip("-") or "section"


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of text (inline ``**bold**`` and ```code``` allowed)."""

    text: str


@dataclass(frozen=True)
class BulletList:
    """An unordered list, one text item per bullet."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of already formatted cells; ``align`` per column is 'l' or 'r'."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: tuple[str, ...] = ()
    caption: str | None = None

    def __post_init__(self) -> None:
        """Check that every row has one cell per column and alignment letters are valid."""
        width = len(self.columns)
        bad = [i for i, row in enumerate(self.rows) if len(row) != width]
        if bad:
            raise ValueError(f"table row {bad[0]} has {len(self.rows[bad[0]])} cells, expected {width}")
        if self.align and (len(self.align) != width or set(self.align) - {"l", "r"}):
            raise ValueError(f"align must give 'l' or 'r' for each of the {width} columns, got {self.align}")

    def alignment(self) -> tuple[str, ...]:
        """Return the alignment of every column (left when not given)."""
        return self.align or ("l",) * len(self.columns)


@dataclass
class FigureBlock:
    """A figure: a matplotlib Figure (rendered once to PNG) saved as ``figures/<name>.png``."""

    name: str
    figure: Figure | None
    caption: str
    dpi: int = 110
    _png: bytes | None = field(default=None, init=False, repr=False)

    def png(self) -> bytes:
        """Return the figure as PNG bytes (rendered on first use, then cached and the Figure released)."""
        if self._png is None:
            if self.figure is None:
                raise ValueError(f"figure {self.name!r} has neither a Figure nor PNG bytes")
            buffer = io.BytesIO()
            self.figure.savefig(buffer, format="png", dpi=self.dpi)
            self._png = buffer.getvalue()
            self.figure = None
        return self._png

    @property
    def filename(self) -> str:
        """Return the PNG file name, relative to the report's folder (``figures/<name>.png``)."""
        return f"figures/{self.name}.png"


@dataclass(frozen=True)
class FigureRow:
    """Several small figures shown side by side (one per model, e.g. confusion matrices)."""

    figures: tuple[FigureBlock, ...]
    caption: str | None = None


@dataclass(frozen=True)
class Raw:
    """Pre-rendered content for the rare block the other types cannot express: one string per format."""

    markdown: str
    html: str


Block = Paragraph | BulletList | Table | FigureBlock | FigureRow | Raw


@dataclass
class Section:
    """A titled part of the report: blocks, then subsections (rendered one heading level deeper)."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)
    anchor: str | None = None

    def add(self, *blocks: Block) -> Section:
        """Append blocks and return the section (for chaining)."""
        self.blocks.extend(blocks)
        return self

    def figures(self) -> list[FigureBlock]:
        """Return every figure of this section and its subsections, in reading order."""
        out: list[FigureBlock] = []
        for block in self.blocks:
            if isinstance(block, FigureBlock):
                out.append(block)
            elif isinstance(block, FigureRow):
                out.extend(block.figures)
        for sub in self.subsections:
            out.extend(sub.figures())
        return out


@dataclass
class Document:
    """The whole report: a title, an opening paragraph list and the top-level sections."""

    title: str
    intro: list[Block]
    sections: list[Section]

    def figures(self) -> list[FigureBlock]:
        """Return every figure of the report, in reading order."""
        out = [b for b in self.intro if isinstance(b, FigureBlock)]
        for section in self.sections:
            out.extend(section.figures())
        return out

    def assign_anchors(self) -> None:
        """Give every section a unique anchor derived from its title (and its parents' titles)."""
        seen: set[str] = set()

        def visit(section: Section, prefix: str) -> None:
            base = section.anchor or slugify(f"{prefix} {section.title}" if prefix else section.title)
            anchor, i = base, 2
            while anchor in seen:
                anchor, i = f"{base}-{i}", i + 1
            seen.add(anchor)
            section.anchor = anchor
            for sub in section.subsections:
                visit(sub, anchor)

        for section in self.sections:
            visit(section, "")
