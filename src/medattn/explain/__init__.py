"""Explanations: the CAM family, the models' own attention maps and rollout, their quality scores, the map store."""

from medattn.explain.cam import CAM_METHODS, METHODS
from medattn.explain.runner import ExplainResult, explain_study
from medattn.explain.spec import ExplainSpec

__all__ = ["CAM_METHODS", "METHODS", "ExplainResult", "ExplainSpec", "explain_study"]
