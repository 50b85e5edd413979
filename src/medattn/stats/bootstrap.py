"""Paired bootstrap over test samples for the difference in balanced accuracy of two models.

Seeds measure training noise; this measures test-set sampling noise: how much the difference would
move on another test set of the same size. Both models are scored on the same resampled indices.
The resampling is stratified by class (each class's samples are drawn with replacement from that class,
keeping the class counts): balanced accuracy averages per-class recalls, and a pooled resample that
drops a rare class would average over fewer classes and change what is measured. The draws depend only
on the seed and the labels (in their aligned order), so two comparisons on the same test set share them.
All B resamples of a chunk are scored at once: ``np.bincount`` over ``resample * K + label`` gives,
per resample and class, the sample count and the sum of (correct_model - correct_reference); their
ratio is the per-class recall difference, averaged over the classes present in that resample (as
scikit-learn's ``balanced_accuracy_score`` averages over the classes present in ``y_true``).
The interval is the percentile interval of the B resampled differences.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medattn.errors import DataError
from medattn.stats.predictions import align_predictions
from medattn.stats.resampling import COMPARISON_BOOTSTRAP

_CHUNK_ELEMENTS = 4_000_000  # index entries per chunk (32 MB of int64), bounds memory for large test sets


@dataclass(frozen=True)
class BootstrapResult:
    """Observed difference (model - reference), its percentile interval and the resampled differences."""

    observed: float
    ci_low: float
    ci_high: float
    se: float
    n_boot: int
    n_samples: int
    confidence: float
    samples: np.ndarray


def bootstrap_indices(
    n: int, n_boot: int, *, seed: int = 0, chunk_size: int | None = None
) -> Iterator[np.ndarray]:
    """Yield chunks (rows = resamples) of indices drawn with replacement from range(n), reproducibly."""
    if n < 1 or n_boot < 1:
        raise DataError(
            f"bootstrap needs n >= 1 samples and n_boot >= 1 resamples, got n={n}, n_boot={n_boot}"
        )
    rng = np.random.default_rng(seed)
    chunk = chunk_size or max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_boot - start), n))


def stratified_bootstrap_indices(
    labels: np.ndarray, n_boot: int, *, seed: int = 0, chunk_size: int | None = None
) -> Iterator[np.ndarray]:
    """Yield chunks (rows = resamples) of indices drawn with replacement within each class of ``labels``."""
    labels = np.asarray(labels)
    n = len(labels)
    if n < 1 or n_boot < 1:
        raise DataError(
            f"bootstrap needs n >= 1 samples and n_boot >= 1 resamples, got n={n}, n_boot={n_boot}"
        )
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    chunk = chunk_size or max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        yield np.concatenate([idx[rng.integers(0, len(idx), size=(rows, len(idx)))] for idx in members], axis=1)


def resampled_recall_mean(
    labels: np.ndarray, weights: np.ndarray, idx: np.ndarray, n_classes: int
) -> np.ndarray:
    """Return per resample (row of ``idx``) the mean over present classes of sum(weights) / count."""
    rows = idx.shape[0]
    flat = (np.arange(rows)[:, None] * n_classes + labels[idx]).ravel()
    size = rows * n_classes
    counts = np.bincount(flat, minlength=size).reshape(rows, n_classes)
    sums = np.bincount(flat, weights=weights[idx].ravel(), minlength=size).reshape(rows, n_classes)
    present = counts > 0
    per_class = np.divide(sums, counts, out=np.zeros_like(sums), where=present)
    return per_class.sum(axis=1) / present.sum(axis=1)


def paired_bootstrap(
    preds_model: pd.DataFrame,
    preds_reference: pd.DataFrame,
    *,
    n_boot: int = COMPARISON_BOOTSTRAP,
    confidence: float = 0.95,
    seed: int = 0,
    chunk_size: int | None = None,
) -> BootstrapResult:
    """Return the class-stratified paired-bootstrap percentile CI of the balanced-accuracy difference."""
    if not 0 < confidence < 1:
        raise DataError(f"confidence must lie in (0, 1), got {confidence}")
    labels, pred_a, pred_b, k = align_predictions(preds_model, preds_reference)
    weights = (pred_a == labels).astype(float) - (pred_b == labels).astype(float)
    n = len(labels)
    observed = float(resampled_recall_mean(labels, weights, np.arange(n)[None, :], k)[0])
    samples = np.concatenate(
        [
            resampled_recall_mean(labels, weights, idx, k)
            for idx in stratified_bootstrap_indices(labels, n_boot, seed=seed, chunk_size=chunk_size)
        ]
    )
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(samples, [tail, 1 - tail])
    return BootstrapResult(
        observed=observed,
        ci_low=float(lo),
        ci_high=float(hi),
        se=float(samples.std(ddof=1)) if n_boot > 1 else 0.0,
        n_boot=n_boot,
        n_samples=n,
        confidence=confidence,
        samples=samples,
    )
