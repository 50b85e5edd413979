"""Verdict rules and the one plain sentence per comparison.

Rules, applied in this order to one comparison (difference = model - reference, "better" follows the
metric's direction, so a lower ECE is a gain). "Significant" means Holm-adjusted paired t p < alpha (for
all-equal differences the exact sign-flip p, see :mod:`medattn.stats.paired`); the size is judged with the
posterior probabilities of the ROPE (default +-1 pp) at ``equiv_prob`` (default 0.95, baycomp's usual
decision threshold):

1. ``significant gain`` / ``significant loss``: significant, and P(better) (resp. P(worse)) >=
   ``equiv_prob``: the difference is, with that posterior probability, larger than the ROPE.
2. ``significant but negligible gain`` / ``... loss``: significant, but P(equivalent) >= ``equiv_prob``:
   a consistent shift too small to matter.
3. ``significant gain of unclear size`` / ``... loss ...``: significant, but neither of the above: the
   direction is established, whether it exceeds the ROPE is not (e.g. a true difference at the ROPE edge).
4. ``practically equivalent``: not significant and P(equivalent) >= ``equiv_prob``.
5. ``no evidence``: everything else, including fewer than two paired seeds and all-equal differences
   (no posterior). The sentence calls it "not significant after Holm correction (inconclusive)" and gives
   the minimum detectable difference at the Holm level, so the reader sees how large a gain could have
   been missed.

Without rules 2-3 a +0.25 pp shift with P(equivalent) = 1.00 was a "significant gain", and a true
difference exactly at the ROPE edge was called a significant gain in 91 % of simulated studies.

The sentence labels the seed interval as unadjusted (it is the plain t interval, while the p-value is
Holm-adjusted, so the interval may exclude 0 next to a non-significant p), and prints p-values and
probabilities with enough decimals that rounding never crosses alpha or ``equiv_prob``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from medattn.rundir.metrics import higher_is_better
from medattn.stats.rounding import format_near_cutoffs, format_p

SIGNIFICANT_GAIN = "significant gain"
SIGNIFICANT_LOSS = "significant loss"
NEGLIGIBLE_GAIN = "significant but negligible gain"
NEGLIGIBLE_LOSS = "significant but negligible loss"
UNCLEAR_GAIN = "significant gain of unclear size"
UNCLEAR_LOSS = "significant loss of unclear size"
EQUIVALENT = "practically equivalent"
NO_EVIDENCE = "no evidence"
VERDICTS: tuple[str, ...] = (SIGNIFICANT_GAIN, UNCLEAR_GAIN, NEGLIGIBLE_GAIN, SIGNIFICANT_LOSS, UNCLEAR_LOSS,
                             NEGLIGIBLE_LOSS, EQUIVALENT, NO_EVIDENCE)
VERDICT_MARKS: dict[str, str] = {SIGNIFICANT_GAIN: "+", UNCLEAR_GAIN: "+?", NEGLIGIBLE_GAIN: "=+",
                                 SIGNIFICANT_LOSS: "-", UNCLEAR_LOSS: "-?", NEGLIGIBLE_LOSS: "=-",
                                 EQUIVALENT: "=", NO_EVIDENCE: "?"}
VERDICT_LEGEND = ("(+) significant gain, (+?) significant gain of unclear size, (=+) significant but negligible "
                  "gain, (-) significant loss, (-?) significant loss of unclear size, (=-) significant but "
                  "negligible loss, (=) practically equivalent, (?) no evidence either way")
_DEFAULT_ALPHA = 0.05
_DEFAULT_EQUIV_PROB = 0.95


def _at_least(p: float, threshold: float) -> bool:
    """Return True when ``p`` is a number >= ``threshold`` (NaN: no posterior, never)."""
    return bool(np.isfinite(p) and p >= threshold)


def decide(
    p_holm: float,
    improvement: float,
    p_worse: float,
    p_equiv: float,
    p_better: float,
    *,
    alpha: float = _DEFAULT_ALPHA,
    equiv_prob: float = _DEFAULT_EQUIV_PROB,
) -> str:
    """Return the verdict of one comparison (``improvement``: mean difference signed so > 0 is better)."""
    if np.isfinite(p_holm) and p_holm < alpha and np.isfinite(improvement) and improvement != 0:
        gain = improvement > 0
        if _at_least(p_better if gain else p_worse, equiv_prob):
            return SIGNIFICANT_GAIN if gain else SIGNIFICANT_LOSS
        if _at_least(p_equiv, equiv_prob):
            return NEGLIGIBLE_GAIN if gain else NEGLIGIBLE_LOSS
        return UNCLEAR_GAIN if gain else UNCLEAR_LOSS
    if _at_least(p_equiv, equiv_prob):
        return EQUIVALENT
    return NO_EVIDENCE


def is_plain_significant(verdict: str) -> bool:
    """Return True for the verdicts that claim a practically relevant gain or loss."""
    return verdict in (SIGNIFICANT_GAIN, SIGNIFICANT_LOSS)


def _pp(x: float, signed: bool = True) -> str:
    """Return ``x`` (a proportion) in percentage points with one decimal."""
    if not np.isfinite(x):
        return "n/a" if np.isnan(x) else ("+inf" if x > 0 else "-inf")
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _p(p: float, alpha: float) -> str:
    """Return a p-value for a sentence ('= 0.62', '< 0.001'), never rounded across ``alpha``."""
    if not np.isfinite(p):
        return "n/a"
    text = format_p(p, alpha, below="< 0.001")
    return text if text.startswith("<") else f"= {text}"


def _prob(p: float, equiv_prob: float) -> str:
    """Return a posterior probability with two decimals, never rounded across ``equiv_prob``."""
    return "n/a" if not np.isfinite(p) else format_near_cutoffs(p, [equiv_prob], 2)


def _get(row: Mapping[str, Any] | pd.Series, key: str, default: float = float("nan")) -> float:
    """Return ``row[key]`` as a float, ``default`` when the column is absent."""
    value = row.get(key, default) if hasattr(row, "get") else default
    return float(value) if value is not None else default


def _mdd_text(row: Mapping[str, Any] | pd.Series, n: int) -> str:
    """Return the minimum-detectable-difference clause: at which level, with which power, from what."""
    mdd = _get(row, "mdd")
    if not np.isfinite(mdd):
        return ""
    m = int(_get(row, "holm_family_size", 1))
    level = _get(row, "alpha", _DEFAULT_ALPHA) / m
    power = _get(row, "power", 0.8)
    where = f"alpha/{m} = {level:.3g} (Holm's first step)" if m > 1 else f"alpha = {level:g}"
    return (f"; the smallest difference detectable with {100 * power:g}% power at {where} is "
            f"{_pp(mdd, signed=False)} pp, given {n} seeds and their observed spread")


def describe_comparison(row: Mapping[str, Any] | pd.Series) -> str:
    """Return one plain sentence for a row of :func:`medattn.stats.compare.compare_models`'s table."""
    metric = str(row["metric"])
    direction = "" if higher_is_better(metric) else f"; lower {metric} is better"
    head = f"{row['model']} vs {row['reference']} ({row['dataset']}, {metric}{direction})"
    n = int(row["n"])
    if n < 2:
        return f"{head}: only {n} paired seed(s), cannot test: no evidence either way"
    alpha = _get(row, "alpha", _DEFAULT_ALPHA)
    equiv_prob = _get(row, "equiv_prob", _DEFAULT_EQUIV_PROB)
    improvement = float(row["mean_diff"]) if higher_is_better(metric) else -float(row["mean_diff"])
    side, p_side = ("better", _get(row, "p_better")) if improvement >= 0 else ("worse", _get(row, "p_worse"))
    rope = _get(row, "rope", 0.01)
    constant = _get(row, "sd_diff") == 0
    if constant:
        body = (f"{_pp(row['mean_diff'])} pp, all {n} differences are equal (the t test and the posterior are "
                f"undefined), exact sign-flip p {_p(_get(row, 'p_t'), alpha)}, "
                f"Holm p {_p(float(row['p_holm']), alpha)}")
    else:
        level = f"{100 * _get(row, 'confidence', 0.95):g}%"
        body = (f"{_pp(row['mean_diff'])} pp, unadjusted {level} CI [{_pp(row['ci_low'])}, {_pp(row['ci_high'])}], "
                f"Holm p {_p(float(row['p_holm']), alpha)}, P({side}) = {_prob(p_side, equiv_prob)}, "
                f"P(equivalent) = {_prob(_get(row, 'p_equiv'), equiv_prob)}")
    verdict = str(row["verdict"])
    if verdict in (NEGLIGIBLE_GAIN, NEGLIGIBLE_LOSS):
        verdict += f" (inside the ROPE of +-{_pp(rope, signed=False)} pp)"
    elif verdict in (UNCLEAR_GAIN, UNCLEAR_LOSS):
        verdict += f" (it may lie inside the ROPE of +-{_pp(rope, signed=False)} pp)"
    elif verdict == EQUIVALENT:
        verdict += f" (within +-{_pp(rope, signed=False)} pp)"
    elif verdict == NO_EVIDENCE:
        verdict = f"not significant after Holm correction (inconclusive{_mdd_text(row, n)})"
    return f"{head}: {body}: {verdict}"


def describe_comparisons(table: pd.DataFrame) -> list[str]:
    """Return :func:`describe_comparison` for every row of a comparison table, in row order."""
    return [describe_comparison(row) for _, row in table.iterrows()]
