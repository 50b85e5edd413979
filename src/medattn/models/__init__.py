"""Backbones with attention inserted at named places, ViT/Swin baselines, and their cost (exports load on first
use)."""

from medattn.lazy import lazy_exports

_HOMES = {"BACKBONES": "medattn.models.backbones", "get_backbone": "medattn.models.backbones",
          "build_model": "medattn.models.build"}
__all__ = list(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
