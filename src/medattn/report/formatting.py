"""Number formatting for report tables and sentences: percentages, percentage points, p-values, costs.

Conventions: accuracy-like metrics (balanced accuracy, AUC, macro F1, accuracy) are shown in percent,
differences of them in percentage points (pp); ECE is shown in percent too (it is a proportion of
samples' confidence gap). Missing values print as ``n/a``. p-values and posterior probabilities that
decide a verdict are given their cut-off (alpha, the equivalence probability) and then never rounded
across it (:mod:`medattn.stats.rounding`).
"""

from __future__ import annotations

import math

from medattn.stats import verdict as stats_verdict
from medattn.stats.rounding import format_near_cutoffs, format_p

NA = "n/a"


def _finite(x: object) -> float | None:
    """Return ``x`` as a float, or None when it is missing or not a number."""
    try:
        value = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def pct(x: object, digits: int = 1) -> str:
    """Return a proportion as a percentage without the sign, e.g. 0.8123 -> '81.2'."""
    v = _finite(x)
    return NA if v is None else f"{100 * v:.{digits}f}"


def pp(x: object, digits: int = 1) -> str:
    """Return a difference of proportions in signed percentage points, e.g. 0.031 -> '+3.1'."""
    v = _finite(x)
    if v is None:
        return NA
    if math.isinf(v):
        return "+inf" if v > 0 else "-inf"
    return f"{100 * v:+.{digits}f}"


def interval_pp(low: object, high: object, digits: int = 1) -> str:
    """Return an interval of differences in percentage points, e.g. '[-1.1, +1.9]'."""
    if _finite(low) is None or _finite(high) is None:
        return NA
    return f"[{pp(low, digits)}, {pp(high, digits)}]"


def mean_sd(mean: object, sd: object, digits: int = 1, percent: bool = True) -> str:
    """Return 'mean ± sd' in percent, or as they are when not `percent` (sd omitted when missing, e.g. for a
    single seed)."""
    m = _finite(mean)
    if m is None:
        return NA
    show = pct if percent else (lambda v, d: f"{v:.{d}f}")
    s = _finite(sd)
    return show(m, digits) if s is None else f"{show(m, digits)} ± {show(s, digits)}"


def pvalue(p: object, alpha: float | None = None) -> str:
    """Return a p-value for a table: '<0.001', three decimals below 0.01, two above; never rounded across
    ``alpha``."""
    v = _finite(p)
    return NA if v is None else format_p(v, alpha)


def prob(p: object, cut: float | None = None) -> str:
    """Return a probability with two decimals (more where needed not to round across ``cut``)."""
    v = _finite(p)
    return NA if v is None else format_near_cutoffs(v, [] if cut is None else [cut], 2)


def number(x: object, digits: int = 2) -> str:
    """Return a plain number with ``digits`` decimals (signed infinities spelled out)."""
    v = _finite(x)
    if v is None:
        return NA
    if math.isinf(v):
        return "+inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


def si(x: object, unit: str = "") -> str:
    """Return a count with an SI prefix and three significant digits, e.g. 11689512 -> '11.7 M'."""
    v = _finite(x)
    if v is None:
        return NA
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.3g} {prefix}{unit}".rstrip()
    return f"{v:.3g} {unit}".rstrip()


def hp_value(x: object) -> str:
    """Return a hyperparameter value: floats with four significant digits, others as given."""
    if isinstance(x, bool) or x is None:
        return NA if x is None else str(x)
    v = _finite(x)
    if v is None:
        return NA if isinstance(x, float) else str(x)
    if float(v).is_integer() and abs(v) < 1e6 and not isinstance(x, float):
        return str(int(v))
    return f"{v:.4g}"


METRIC_LABELS: dict[str, str] = {
    "balanced_accuracy": "balanced accuracy",
    "auc": "AUC",
    "macro_f1": "macro F1",
    "accuracy": "accuracy",
    "ece": "ECE",
}


def metric_label(metric: str, capital: bool = False) -> str:
    """Return the readable name of a metric (first letter upper-cased when ``capital``)."""
    label = METRIC_LABELS.get(metric, metric)
    return label[:1].upper() + label[1:] if capital else label


# the verdicts' one-character marks and their legend are defined beside the verdict rules
VERDICT_MARKS = stats_verdict.VERDICT_MARKS
VERDICT_LEGEND = stats_verdict.VERDICT_LEGEND
