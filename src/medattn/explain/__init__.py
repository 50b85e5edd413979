"""Explanations: CAM methods, the models' own attention maps, their quality metrics and the map store.

The names below load on first use (PEP 562), so that the CLI starts without importing timm.
"""

from importlib import import_module

_HOMES = {"CAM_METHODS": "medattn.explain.cam", "METHODS": "medattn.explain.cam",
          "ExplainResult": "medattn.explain.runner", "explain_study": "medattn.explain.runner",
          "ExplainSpec": "medattn.explain.spec"}
__all__ = list(_HOMES)


def __getattr__(name: str):
    """Return an exported name, importing its module on first use."""
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'medattn.explain' has no attribute {name!r}")
