"""Multiple-comparison correction (Holm) that leaves missing p-values missing.

statsmodels' ``multipletests(method='holm')`` ends with an explicit ``gc.collect()``, which costs about
0.1 s per call in a process holding pandas/scipy/matplotlib (a full collection of the whole heap).
The heap that exists before the call is frozen (``gc.freeze``) for its duration, so that collection
only visits the handful of objects the call itself creates; results are unchanged.
"""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from statsmodels.stats.multitest import multipletests


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Return Holm-adjusted p-values (statsmodels ``multipletests(method='holm')``); NaN entries stay NaN."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        gc.freeze()
        try:
            out[ok] = multipletests(p[ok], method="holm")[1]
        finally:
            gc.unfreeze()
    return out


def holm_grouped(pvalues: ArrayLike, groups: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return Holm-adjusted p-values within each group (vectorised step-down) and each p's family size.

    Same numbers as :func:`holm` applied to every group separately: sort each family's m p-values,
    multiply the j-th smallest (j = 0..m-1) by m - j, take the running maximum and clip at 1. NaN
    p-values stay NaN and do not count towards m.
    """
    p = np.asarray(pvalues, dtype=float)
    codes = pd.factorize(np.asarray(groups))[0]
    ok = ~np.isnan(p)
    m = np.bincount(codes[ok], minlength=codes.max() + 1 if len(codes) else 0)
    order = np.lexsort((p, codes))
    order = order[ok[order]]
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    position = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    scaled = (m[sorted_codes] - position) * p[order]
    running = pd.Series(scaled).groupby(sorted_codes).cummax().to_numpy()
    out = np.full(p.shape, np.nan)
    out[order] = np.minimum(running, 1.0)
    return out, m[codes]
