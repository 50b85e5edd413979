"""Test-set sampling noise of a seed-averaged difference: the paired bootstrap, shared across seeds.

The seed confidence interval of a comparison says how much the mean difference moves with training
randomness; it says nothing about the finite test set. Here every bootstrap replicate draws one set of
test-sample indices (with replacement within each class) and applies it to every seed: for each seed the
balanced-accuracy difference (model - reference) on the resampled test set is computed by
:func:`medattn.stats.bootstrap.paired_bootstrap`, and the replicate's value is the mean over seeds. The
percentile interval of those replicate means is the interval of the same seed-averaged difference that
the t interval describes, but caused by test-set sampling alone.

The shared resampling works because ``paired_bootstrap`` draws its indices from a fixed RNG seed over
the aligned samples, class by class: same seed and same labels (the same test set, in the same order)
give the same draws. Seeds whose prediction
tables cover a different set of test samples than the majority are left out (and counted), since the
same indices would then point at different images.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medattn.stats.bootstrap import paired_bootstrap
from medattn.stats.resampling import COMPARISON_BOOTSTRAP


@dataclass(frozen=True)
class SeedBootstrap:
    """Bootstrap interval of the seed-averaged balanced-accuracy difference over the test samples."""

    observed: float
    ci_low: float
    ci_high: float
    se: float
    n_seeds: int
    n_seeds_skipped: int
    n_samples: int
    n_boot: int
    confidence: float


def _common_index(model: pd.DataFrame, reference: pd.DataFrame) -> frozenset:
    """Return the sample indices both prediction tables contain."""
    return frozenset(model["index"].tolist()) & frozenset(reference["index"].tolist())


def seed_averaged_bootstrap(
    pairs: Sequence[tuple[pd.DataFrame, pd.DataFrame]],
    *,
    n_boot: int = COMPARISON_BOOTSTRAP,
    confidence: float = 0.95,
    seed: int = 0,
) -> SeedBootstrap | None:
    """Return the shared-resample bootstrap of the mean over seeds of (model - reference), None if no pairs."""
    if not pairs:
        return None
    keys = [_common_index(m, r) for m, r in pairs]
    majority, _ = Counter(keys).most_common(1)[0]
    kept = [p for p, k in zip(pairs, keys, strict=True) if k == majority]
    results = [paired_bootstrap(m, r, n_boot=n_boot, confidence=confidence, seed=seed) for m, r in kept]
    samples = np.mean([r.samples for r in results], axis=0)
    tail = (1 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return SeedBootstrap(
        observed=float(np.mean([r.observed for r in results])),
        ci_low=float(low),
        ci_high=float(high),
        se=float(samples.std(ddof=1)) if n_boot > 1 else 0.0,
        n_seeds=len(kept),
        n_seeds_skipped=len(pairs) - len(kept),
        n_samples=results[0].n_samples,
        n_boot=n_boot,
        confidence=confidence,
    )
