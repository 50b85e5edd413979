"""YAML documents with line numbers: every key and list item mapped to the line it was written on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from medattn.errors import SpecError

PathKey = tuple[str | int, ...]


class MarkedYaml:
    """A parsed YAML document plus the (1-based) line of every mapping key and sequence item."""

    def __init__(self, data: Any, lines: dict[PathKey, int], source: str) -> None:
        self.data = data
        self.lines = lines
        self.source = source

    def line(self, path: PathKey) -> int | None:
        """Line of the deepest prefix of `path` that exists in the document (None for an empty document)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def resolve(self, loc: tuple[Any, ...]) -> PathKey:
        """The longest document path matching a pydantic error location (union tags skipped)."""
        path: PathKey = ()
        for part in loc:
            if path + (part,) in self.lines:
                path = path + (part,)
        return path

    def where(self, path: PathKey) -> str:
        """`file:line` prefix for a message about `path`."""
        line = self.line(path)
        return f"{self.source}:{line}" if line is not None else self.source


def format_path(path: tuple[Any, ...]) -> str:
    """Dotted field name with list indices in brackets, e.g. `models.grid.attentions[2]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def load_marked(path: str | Path) -> MarkedYaml:
    """Read a YAML file into data plus line numbers; SpecError naming the line for syntax errors/duplicates."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"{path}: study spec not found; check the path")
    text = path.read_text(encoding="utf-8")
    return parse_marked(text, str(path))


def parse_marked(text: str, source: str = "<spec>") -> MarkedYaml:
    """Parse YAML text into data plus line numbers (see `load_marked`)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{source}{line}: invalid YAML ({exc.problem}); fix the syntax there") from None
    lines: dict[PathKey, int] = {}
    if node is not None:
        lines[()] = node.start_mark.line + 1
        _walk(node, (), lines, source)
    return MarkedYaml(data, lines, source)


def _walk(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], source: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise SpecError(f"{source}:{line}: {format_path(path + (key,))}: key '{key}' given twice "
                                f"(first on line {seen[key]}); keep one")
            seen[key] = line
            lines[path + (key,)] = line
            _walk(value_node, path + (key,), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _walk(item, path + (i,), lines, source)
