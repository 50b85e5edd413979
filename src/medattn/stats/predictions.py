"""Per-sample prediction tables (columns ``index``, ``label``, ``prob_0..prob_{K-1}``) as arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix

from medattn.errors import DataError


def prob_columns(preds: pd.DataFrame) -> list[str]:
    """Return the ``prob_k`` column names of a prediction table, ordered by class k."""
    cols = [c for c in preds.columns if isinstance(c, str) and c.startswith("prob_") and c[5:].isdigit()]
    cols.sort(key=lambda c: int(c[5:]))
    if not cols or [int(c[5:]) for c in cols] != list(range(len(cols))):
        raise DataError(
            f"prediction table needs columns prob_0..prob_{{K-1}} with no gaps, got {list(preds.columns)}"
        )
    return cols


def prediction_arrays(preds: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (sample index, integer labels, probabilities n x K) of a prediction table, validated."""
    missing = [c for c in ("index", "label") if c not in preds.columns]
    if missing:
        raise DataError(
            f"prediction table lacks column(s) {missing}; it needs index, label, prob_0..prob_K-1"
        )
    probs = preds[prob_columns(preds)].to_numpy(float)
    labels = preds["label"].to_numpy()
    k = probs.shape[1]
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise DataError(f"prediction table has labels outside 0..{k - 1} (the prob_ columns give K = {k})")
    return preds["index"].to_numpy(), labels.astype(np.int64), probs


def confusion_matrix(preds: pd.DataFrame, *, normalize: str | None = None) -> np.ndarray:
    """Return the K x K confusion matrix (rows true, columns predicted); ``normalize`` as in scikit-learn."""
    _, labels, probs = prediction_arrays(preds)
    return _sk_confusion_matrix(
        labels, probs.argmax(axis=1), labels=np.arange(probs.shape[1]), normalize=normalize
    )


def per_class_recall(preds: pd.DataFrame) -> np.ndarray:
    """Return the recall of every class (NaN for a class with no samples)."""
    cm = confusion_matrix(preds)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def align_predictions(
    preds_model: pd.DataFrame, preds_reference: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Return (labels, predicted by model, predicted by reference, K) on the samples both tables share."""
    ia, la, pa = prediction_arrays(preds_model)
    ib, lb, pb = prediction_arrays(preds_reference)
    if pa.shape[1] != pb.shape[1]:
        raise DataError(
            f"prediction tables disagree on the number of classes: {pa.shape[1]} vs {pb.shape[1]}"
        )
    if len(np.unique(ia)) != len(ia) or len(np.unique(ib)) != len(ib):
        raise DataError("prediction table has repeated values in column 'index'; one row per test sample")
    common, ja, jb = np.intersect1d(ia, ib, assume_unique=True, return_indices=True)
    if len(common) == 0:
        raise DataError(
            "the two prediction tables share no sample 'index'; they must cover the same test set"
        )
    if not np.array_equal(la[ja], lb[jb]):
        raise DataError("the two prediction tables give different labels for the same 'index'; same split?")
    return la[ja], pa[ja].argmax(axis=1), pb[jb].argmax(axis=1), pa.shape[1]
