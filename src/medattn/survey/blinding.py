"""Blinding: which arm each rater sees under which label, and in which order the items come.

Both are keyed permutations: the random generator of a (rater, item) pair is seeded with
HMAC-SHA256(key, "panels:RATER:ITEM") (and "order:RATER" for the item order), where ``key`` is a
per-survey random 256-bit secret written into the database by ``medattn survey create`` and never sent
to a browser, printed or exported. They stay reproducible (same key, same labels after a restart) while
nobody without the database can compute them: knowing the public code, the survey seed and every page
a rater received (and so the arm behind one recognisable panel on each item) does not reveal the
others. The survey seed only makes the item sample reproducible.

Departure from the first version of this module (until medattn 0.1): the generator was seeded with
(seed, rater number, item), all public or guessable, so one rater who recognised one panel per item
could search rater numbers and recover every label (tests/survey/test_blinding_attack.py shows both).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

import numpy as np

LABELS = string.ascii_uppercase
MAX_ARMS = len(LABELS)
KEY_BYTES = 32


def new_key() -> str:
    """Return a new blinding key (256 random bits as 64 hex characters)."""
    return secrets.token_hex(KEY_BYTES)


def _generator(key: str, *parts: object) -> np.random.Generator:
    """Return a numpy generator seeded with HMAC-SHA256(key, 'part:part:...') (all 256 bits)."""
    digest = hmac.new(bytes.fromhex(key), ":".join(map(str, parts)).encode(), hashlib.sha256).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def item_order(key: str, rater_number: int, n_items: int) -> np.ndarray:
    """Return the item numbers in the order rater ``rater_number`` answers them (a permutation of 0..n-1)."""
    return _generator(key, "order", rater_number).permutation(n_items)


def panel_order(key: str, rater_number: int, item_number: int, n_arms: int) -> np.ndarray:
    """Return, for labels A, B, ..., the index of the arm shown under each label (a permutation of 0..K-1)."""
    return _generator(key, "panels", rater_number, item_number).permutation(n_arms)


def labels(n_arms: int) -> tuple[str, ...]:
    """Return the panel labels A, B, ... for ``n_arms`` arms."""
    return tuple(LABELS[:n_arms])


def label_to_arm(key: str, rater_number: int, item_number: int, arm_ids: list[int]) -> dict[str, int]:
    """Return {label: arm id} for one rater and item; ``arm_ids`` in the survey's fixed (sorted) order."""
    order = panel_order(key, rater_number, item_number, len(arm_ids))
    return {label: arm_ids[int(i)] for label, i in zip(labels(len(arm_ids)), order, strict=True)}
