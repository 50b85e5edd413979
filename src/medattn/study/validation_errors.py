"""Pydantic validation errors as one line `FILE:LINE: FIELD: problem`, with the line from :mod:`yamlmarks`.

Pydantic reports every problem with a location path that mixes field names, list indices and union tags;
this picks the problem the user most likely meant (for a union, the branch whose error lies deepest in the
document), finds the line of that field in the YAML, and words it: unknown keys list the allowed ones,
missing fields say to add them, bad values repeat the value given.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from medattn.errors import SpecError
from medattn.study.yamlmarks import MarkedYaml, format_path


def validation_error(exc: ValidationError, marks: MarkedYaml, root: type[BaseModel]) -> SpecError:
    """Return one `FILE:LINE: FIELD: problem` SpecError for a pydantic error raised validating `root` from `marks`."""
    errors = exc.errors()
    # for a union, the branch whose error lies deepest in the document is the one the user meant
    first = max(errors, key=lambda e: len([p for p in e["loc"] if not _is_tag(p)]))
    loc = tuple(first["loc"])
    path = marks.resolve(loc)
    field = format_path(tuple(p for p in loc if not _is_tag(p)))
    message = _message(first, loc, root)
    more = f" (and {len(errors) - 1} more problem{'s' * (len(errors) > 2)})" if len(errors) > 1 else ""
    return SpecError(f"{marks.where(path)}: {field}: {message}{more}")


def _is_tag(part: Any) -> bool:
    """Whether a pydantic error-location part names a union member rather than a field or index."""
    return isinstance(part, str) and ("[" in part or part.startswith("function-")
                                      or part in {"int", "str", "float", "bool", "none"})


def _message(error: dict[str, Any], loc: tuple[Any, ...], root: type[BaseModel]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(root, [p for p in loc[:-1] if not _is_tag(p)])
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"unknown key '{loc[-1]}'{hint}"
    if kind == "missing":
        return f"required field '{loc[-1]}' is missing; add it"
    msg = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, (int, float, str, bool)) and kind not in ("model_attributes_type",):
        msg += f" (got {value!r})"
    return msg


def _allowed_keys(cls: Any, loc: list[Any]) -> list[str]:
    tp: Any = cls
    for part in loc:
        tp = _descend(tp, part)
        if tp is None:
            return []
    model = _model_in(tp)
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _descend(tp: Any, part: Any) -> Any:
    for option in _options(tp):
        origin = typing.get_origin(option)
        if isinstance(part, int) and origin is list:
            return typing.get_args(option)[0]
        if isinstance(part, str):
            if isinstance(option, type) and issubclass(option, BaseModel):
                for name, info in option.model_fields.items():
                    if part in (name, info.alias):
                        return info.annotation
            if origin is dict:
                return typing.get_args(option)[1]
    return None


def _options(tp: Any) -> list[Any]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return [a for a in typing.get_args(tp) if a is not type(None)]
    return [tp]


def _model_in(tp: Any) -> type[BaseModel] | None:
    for option in _options(tp):
        if isinstance(option, type) and issubclass(option, BaseModel):
            return option
    return None
