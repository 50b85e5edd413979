"""Verdict rules and the one plain sentence per comparison.

Rules, applied in this order to one comparison (difference = model - reference, "better" follows the
metric's direction, so a lower ECE is a gain):

1. ``significant gain``: Holm-adjusted paired t p-value < alpha and the mean difference is better.
2. ``significant loss``: Holm-adjusted p < alpha and the mean difference is worse.
3. ``practically equivalent``: not significant and the posterior probability that the mean difference
   lies inside the ROPE (default +-1 pp) is at least ``equiv_prob`` (default 0.95, baycomp's usual
   decision threshold).
4. ``no evidence``: everything else, including fewer than two paired seeds. Inconclusive: the sentence
   gives the minimum detectable difference so the reader sees how large a gain could have been missed.

A significant difference that is smaller than the ROPE is still reported as significant; the sentence
shows P(equivalent) beside it so that a tiny but consistent shift is not mistaken for a useful one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from medattn.stats.tidy import higher_is_better

SIGNIFICANT_GAIN = "significant gain"
SIGNIFICANT_LOSS = "significant loss"
EQUIVALENT = "practically equivalent"
NO_EVIDENCE = "no evidence"
VERDICTS: tuple[str, ...] = (SIGNIFICANT_GAIN, SIGNIFICANT_LOSS, EQUIVALENT, NO_EVIDENCE)


def decide(
    p_holm: float, improvement: float, p_equiv: float, *, alpha: float = 0.05, equiv_prob: float = 0.95
) -> str:
    """Return the verdict of one comparison (``improvement``: mean difference signed so > 0 is better)."""
    if np.isfinite(p_holm) and p_holm < alpha and improvement != 0:
        return SIGNIFICANT_GAIN if improvement > 0 else SIGNIFICANT_LOSS
    if np.isfinite(p_equiv) and p_equiv >= equiv_prob:
        return EQUIVALENT
    return NO_EVIDENCE


def _pp(x: float, signed: bool = True) -> str:
    """Return ``x`` (a proportion) in percentage points with one decimal."""
    if not np.isfinite(x):
        return "n/a" if np.isnan(x) else ("+inf" if x > 0 else "-inf")
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _p(p: float) -> str:
    """Return a p-value formatted for a sentence."""
    if not np.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"= {p:.3f}" if p < 0.01 else f"= {p:.2f}"


def describe_comparison(row: Mapping[str, Any] | pd.Series) -> str:
    """Return one plain sentence for a row of :func:`medattn.stats.compare.compare_models`'s table."""
    metric = str(row["metric"])
    direction = "" if higher_is_better(metric) else f"; lower {metric} is better"
    head = f"{row['model']} vs {row['reference']} ({row['dataset']}, {metric}{direction})"
    n = int(row["n"])
    if n < 2:
        return f"{head}: only {n} paired seed(s), cannot test: no evidence either way"
    p_equiv = float(row["p_equiv"])
    body = (
        f"{_pp(row['mean_diff'])} pp [{_pp(row['ci_low'])}, {_pp(row['ci_high'])}], "
        f"Holm p {_p(float(row['p_holm']))}, P(equivalent) = "
        f"{'n/a' if np.isnan(p_equiv) else f'{p_equiv:.2f}'}"
    )
    verdict = row["verdict"]
    if verdict == NO_EVIDENCE:
        improvement = row["mean_diff"] if higher_is_better(metric) else -row["mean_diff"]
        what = "a gain" if improvement >= 0 else "a loss"
        verdict = (
            f"no evidence of {what} (inconclusive; with {n} seeds the smallest reliably detectable "
            f"difference is {_pp(float(row['mdd']), signed=False)} pp)"
        )
    return f"{head}: {body}: {verdict}"


def describe_comparisons(table: pd.DataFrame) -> list[str]:
    """Return :func:`describe_comparison` for every row of a comparison table, in row order."""
    return [describe_comparison(row) for _, row in table.iterrows()]
