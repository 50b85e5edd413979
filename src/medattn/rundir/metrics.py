"""The metric registry: every score a run reports, its direction and whether a study may select on it.

Training computes these (:mod:`medattn.train.metrics`), the study spec offers the selectable ones as
``selection_metric``, stats orient differences by ``higher_is_better`` and the report lists them in this order.
ECE is Guo et al. 2017 (top-label, 15 equal-width bins); the others are scikit-learn's definitions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One metric: its name in results.csv, direction, whether it can select models, what it measures, and its
    unit in reports ('%': a proportion shown in percent; 'px': a distance in pixels shown as it is)."""

    name: str
    higher_is_better: bool
    selectable: bool
    description: str
    unit: str = "%"


CLASSIFICATION_METRICS: tuple[Metric, ...] = (
    Metric("balanced_accuracy", True, True, "mean per-class recall over the classes present"),
    Metric("auc", True, True, "one-vs-rest ROC AUC averaged over classes (binary: AUC of class 1)"),
    Metric("macro_f1", True, True, "unweighted mean F1 over the classes present"),
    Metric("accuracy", True, True, "share of correctly classified images"),
    Metric("ece", False, False, "expected calibration error, top label, 15 equal-width bins"),
)
# A `task: segmentation` study's runs report these instead (means over images; medattn.segment.metrics), and
# always select on validation Dice, so none is a `selection_metric`.
SEGMENTATION_METRICS: tuple[Metric, ...] = (
    Metric("dice", True, False, "per-image Dice of the lesion mask, averaged over images"),
    Metric("iou", True, False, "per-image intersection over union of the lesion mask, averaged over images"),
    Metric("hd95", False, False, "per-image 95th-percentile symmetric Hausdorff distance in pixels", "px"),
    Metric("asd", False, False, "per-image average symmetric surface distance in pixels", "px"),
    Metric("ece_fg", False, False, "calibration error of the pixels' lesion probability, 15 equal-width bins"),
)
METRICS: tuple[Metric, ...] = CLASSIFICATION_METRICS + SEGMENTATION_METRICS
CLASSIFICATION_METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in CLASSIFICATION_METRICS)
METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
SELECTABLE_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.selectable)
LOWER_IS_BETTER: frozenset[str] = frozenset({m.name for m in METRICS if not m.higher_is_better}
                                            | {"loss", "nll", "brier"})


def metric_unit(metric: str) -> str:
    """The unit a report shows ``metric`` in: '%' (proportions) unless the registry says otherwise."""
    return next((m.unit for m in METRICS if m.name == metric), "%")


def higher_is_better(metric: str) -> bool:
    """Return True when larger values of ``metric`` are better (False for ECE, losses, Brier)."""
    return metric not in LOWER_IS_BETTER
