"""Blinding as a rater meets it: the arm behind a label and the order of items vary over items and raters.

Stated as distributions over (rater, item), not as the current formula, so the tests hold for any keyed
permutation: a mapping that ignores the item (label A always the first arm) or the rater (every rater sees
the same panels) fails them.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from survey_helpers import MadeSurvey

from medattn.survey.app import load_survey
from medattn.survey.blinding import label_to_arm

ARMS = [11, 12, 13]
KEY = "5a" * 32


def test_the_arm_under_each_label_varies_across_items():
    maps = [label_to_arm(KEY, 1, item, ARMS) for item in range(90)]
    assert all(sorted(m.values()) == ARMS and list(m) == ["A", "B", "C"] for m in maps)
    for label in "ABC":
        counts = Counter(m[label] for m in maps)
        # each arm is shown under each label about a third of the time (30 of 90; binomial sd 4.5)
        assert set(counts) == set(ARMS) and min(counts.values()) >= 15, (label, counts)


def test_one_item_is_shown_in_different_panel_orders_to_different_raters():
    for item in range(5):
        maps = [tuple(label_to_arm(KEY, rater, item, ARMS).values()) for rater in range(1, 61)]
        counts = Counter(maps)
        # 6 possible orders, 10 raters each on average: all occur, none dominates
        assert len(counts) == 6 and max(counts.values()) <= 20, (item, counts)
        under_a = Counter(m[0] for m in maps)
        assert min(under_a.values()) >= 10, (item, under_a)


def test_the_served_survey_blinds_each_rater_and_item_differently(survey: MadeSurvey):
    served = load_survey(survey.db, survey.created.images_dir)
    raters = [SimpleNamespace(number=n) for n in range(1, 21)]
    items = sorted(served.items)
    assert len(items) == 5 and len(served.arm_ids) == 3
    maps = {(r.number, i): served.label_map(r, i) for r in raters for i in items}
    assert all(sorted(m.values()) == sorted(served.arm_ids) for m in maps.values())
    # per rater, the arm under A changes across the 5 items (all equal by chance: 1 in 81 per rater)
    varies = [len({maps[r.number, i]["A"] for i in items}) > 1 for r in raters]
    assert sum(varies) >= 17, varies
    # per item, the raters do not all see the same order of panels
    for i in items:
        assert len({tuple(maps[r.number, i].values()) for r in raters}) >= 4, i
    # and the raters meet the items in different orders (120 possible orders of 5 items)
    orders = [tuple(served.order(r)) for r in raters]
    assert all(sorted(o) == items for o in orders)
    assert len(set(orders)) >= 15, orders
