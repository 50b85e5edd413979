"""Package exports that load on first use (PEP 562), so that the CLI starts without importing torch or timm."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` that imports each name in ``homes`` (name -> module) when first asked for."""

    def __getattr__(name: str) -> Any:
        if name in homes:
            return getattr(import_module(homes[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
