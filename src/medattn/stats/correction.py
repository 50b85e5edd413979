"""Multiple-comparison correction (Holm) that leaves missing p-values missing.

statsmodels' ``multipletests(method='holm')`` ends with an explicit ``gc.collect()``, which costs about
0.1 s per call in a process holding pandas/scipy/matplotlib (a full collection of the whole heap).
The heap that exists before the call is frozen (``gc.freeze``) for its duration, so that collection
only visits the handful of objects the call itself creates; results are unchanged.
"""

from __future__ import annotations

import gc

import numpy as np
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
