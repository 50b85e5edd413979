"""Classification metrics computed from probabilities: balanced accuracy, macro AUC, macro F1, accuracy, ECE."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def confusion(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion matrix, rows = true class, columns = predicted class."""
    return np.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(num_classes, num_classes)


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean per-class recall over the classes present in the labels."""
    support = cm.sum(1)
    present = support > 0
    return float((np.diag(cm)[present] / support[present]).mean())


def macro_f1(cm: np.ndarray) -> float:
    """Unweighted mean F1 over the classes present in labels or predictions."""
    tp = np.diag(cm).astype(float)
    denom = cm.sum(0) + cm.sum(1)
    present = denom > 0
    return float((2 * tp[present] / denom[present]).mean())


def macro_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """One-vs-rest AUC averaged over classes (binary: AUC of class 1); NaN if a split has a single class."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    present = np.unique(labels)
    scores = [roc_auc_score(labels == k, probs[:, k]) for k in present]
    return float(np.mean(scores))


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins (Guo et al. 2017)."""
    confidence = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(float)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, correct, bins) - np.bincount(which, confidence, bins))
    return float(gap.sum() / max(len(labels), 1)) if count.sum() else float("nan")


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Every metric of :data:`medattn.rundir.METRICS` for integer labels (N,) and class probabilities (N, K)."""
    cm = confusion(labels, probs.argmax(1), probs.shape[1])
    return {
        "balanced_accuracy": balanced_accuracy(cm),
        "auc": macro_auc(labels, probs),
        "macro_f1": macro_f1(cm),
        "accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        "ece": expected_calibration_error(labels, probs),
    }
