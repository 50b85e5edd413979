"""Rounding that never crosses a decision threshold.

A p-value of 0.0496 printed with two decimals reads "0.05" next to "significant"; a P(equivalent) of
0.9496 reads "0.95" next to "not equivalent". Numbers that decide a verdict are therefore printed with
the fewest decimals (at least the usual ones) at which the printed value lies on the same side of every
cut-off as the exact value (``x < cut`` unchanged), up to six decimals.
"""

from __future__ import annotations

from collections.abc import Iterable

_MAX_DECIMALS = 6


def safe_decimals(value: float, cutoffs: Iterable[float], decimals: int) -> int:
    """Return the fewest decimals >= ``decimals`` at which ``value`` rounds to the same side of every cut-off."""
    cuts = [float(c) for c in cutoffs if c is not None]
    for d in range(decimals, _MAX_DECIMALS + 1):
        shown = float(f"{value:.{d}f}")
        if all((shown < c) == (value < c) for c in cuts):
            return d
    return _MAX_DECIMALS


def format_near_cutoffs(value: float, cutoffs: Iterable[float], decimals: int) -> str:
    """Return ``value`` with :func:`safe_decimals` decimals, e.g. 0.0496 with cut-off 0.05 -> '0.0496'."""
    cuts = list(cutoffs)
    return f"{value:.{safe_decimals(value, cuts, decimals)}f}"


def format_p(p: float, alpha: float | None = None, *, below: str = "<0.001") -> str:
    """Return a p-value: ``below`` under 0.001 (when alpha >= 0.001), 3 decimals under 0.01, else 2; never
    rounded across ``alpha``."""
    cuts = [] if alpha is None else [alpha]
    if p < 0.001 and all(c >= 0.001 for c in cuts):
        return below
    return format_near_cutoffs(p, cuts, 3 if p < 0.01 else 2)
