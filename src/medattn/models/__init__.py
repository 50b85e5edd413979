"""Backbones with attention inserted at named places, ViT/Swin baselines, and their cost.

The names below load on first use (PEP 562), so that the CLI starts without importing timm.
"""

from importlib import import_module

_HOMES = {"BACKBONES": "medattn.models.backbones", "get_backbone": "medattn.models.backbones",
          "build_model": "medattn.models.build"}
__all__ = list(_HOMES)


def __getattr__(name: str):
    """Return an exported name, importing its module on first use."""
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'medattn.models' has no attribute {name!r}")
