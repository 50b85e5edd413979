"""Explanations: CAM methods, the models' own attention maps, their quality metrics and the map store
(exports load on first use)."""

from medattn.lazy import lazy_exports

_HOMES = {"CAM_METHODS": "medattn.explain.cam", "METHODS": "medattn.explain.cam",
          "ExplainResult": "medattn.explain.runner", "explain_study": "medattn.explain.runner",
          "ExplainSpec": "medattn.explain.spec"}
__all__ = list(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
