"""Blinding: which arm each rater sees under which label, and in which order the items come.

Both are pure functions of (survey seed, rater number, item number), so they are reproducible, stable
across devices and restarts, and never stored in or sent to the browser: the server maps a label back
to its arm when an answer arrives.
"""

from __future__ import annotations

import string

import numpy as np

LABELS = string.ascii_uppercase
MAX_ARMS = len(LABELS)


def item_order(seed: int, rater_number: int, n_items: int) -> np.ndarray:
    """Return the item numbers in the order rater ``rater_number`` answers them (a permutation of 0..n-1)."""
    return np.random.default_rng([seed, rater_number, 0]).permutation(n_items)


def panel_order(seed: int, rater_number: int, item_number: int, n_arms: int) -> np.ndarray:
    """Return, for labels A, B, ..., the index of the arm shown under each label (a permutation of 0..K-1)."""
    return np.random.default_rng([seed, rater_number, 1, item_number]).permutation(n_arms)


def labels(n_arms: int) -> tuple[str, ...]:
    """Return the panel labels A, B, ... for ``n_arms`` arms."""
    return tuple(LABELS[:n_arms])


def label_to_arm(seed: int, rater_number: int, item_number: int, arm_ids: list[int]) -> dict[str, int]:
    """Return {label: arm id} for one rater and item; ``arm_ids`` in the survey's fixed (sorted) order."""
    order = panel_order(seed, rater_number, item_number, len(arm_ids))
    return {label: arm_ids[int(i)] for label, i in zip(labels(len(arm_ids)), order, strict=True)}
