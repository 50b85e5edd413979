"""The report's seam: ordered lists of section builders that later modules extend.

Two lists: *report sections* (``builder(ctx) -> list[Section]``, top level: overview, one section per
dataset, across datasets, methods) and *dataset sections* (``builder(ctx, dataset) -> Section | None``,
the subsections inside each dataset's section: comparisons, models, cost, per-class, curves, OOD).
A later module (e.g. explanations, feature usage) adds its part without touching any existing file: it
is one new module in the package :mod:`medattn.report.sections`, which the report build imports (every
module in it) after the built-in builders of :mod:`medattn.report.layout` are registered::

    # src/medattn/report/sections/explanations.py
    from medattn.report.registry import DATASET_SECTIONS

    DATASET_SECTIONS.register("explanations", explanation_section, before="training-curves")

A builder that has nothing to show returns None (or an empty list).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from medattn.report.context import ReportContext
from medattn.report.document import Section

B = TypeVar("B", bound=Callable)
ReportBuilder = Callable[[ReportContext], list[Section]]
DatasetBuilder = Callable[[ReportContext, str], Section | None]


@dataclass(frozen=True)
class Entry(Generic[B]):
    """A named builder."""

    name: str
    builder: B


class BuilderRegistry(Generic[B]):
    """An ordered, named list of builders; names are unique."""

    def __init__(self, kind: str) -> None:
        """Create an empty registry; ``kind`` names it in error messages."""
        self.kind = kind
        self._entries: list[Entry[B]] = []

    def names(self) -> list[str]:
        """Return the builder names in order."""
        return [e.name for e in self._entries]

    def builders(self) -> list[Entry[B]]:
        """Return the (name, builder) entries in order."""
        return list(self._entries)

    def register(self, name: str, builder: B, *, before: str | None = None, after: str | None = None,
                 replace: bool = False) -> None:
        """Add ``builder`` under ``name`` at the end, or before/after a named builder (``replace`` swaps in place)."""
        if before is not None and after is not None:
            raise ValueError("give before= or after=, not both")
        existing = self.names()
        if name in existing:
            if not replace:
                raise ValueError(f"{self.kind} builder {name!r} is already registered (pass replace=True)")
            self._entries[existing.index(name)] = Entry(name, builder)
            return
        anchor = before or after
        if anchor is None:
            self._entries.append(Entry(name, builder))
            return
        if anchor not in existing:
            raise ValueError(f"no {self.kind} builder named {anchor!r}; registered: {existing}")
        index = existing.index(anchor) + (1 if after else 0)
        self._entries.insert(index, Entry(name, builder))

    def unregister(self, name: str) -> None:
        """Remove the builder called ``name``."""
        if name not in self.names():
            raise ValueError(f"no {self.kind} builder named {name!r}; registered: {self.names()}")
        self._entries = [e for e in self._entries if e.name != name]


REPORT_SECTIONS: BuilderRegistry[ReportBuilder] = BuilderRegistry("report section")
DATASET_SECTIONS: BuilderRegistry[DatasetBuilder] = BuilderRegistry("dataset section")
