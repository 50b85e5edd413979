"""A rater tries to undo the blinding from everything the browser receives, the public code and the survey seed.

The attacker recognises one panel per item (here: the attention model's map, found by comparing the PNG bytes
with every map that model made, standing in for recognising its texture), then searches the unknowns of the
public formula for the one that reproduces those observations on all 16 items, and reads every other label
from it. Against the formula of medattn <= 0.1 (seed, rater number, item: copied below as ``legacy_*``) the
search finds the rater and recovers every label; against the served survey, whose permutations are keyed by
a secret only the database holds, no candidate reproduces the observations (also not when every string the
browser received is tried as the key). The copies are pinned to values the 0.1 code printed (commit 6fa7ddb);
run against that commit's own server (PYTHONPATH to its src), the same browse-and-search recovers every label
of every rater (measured for the issue 24 note).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from helpers.rundir import explained_run
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient
from survey_helpers import admin_login, give_profile, invite, labels_of

import medattn.survey.app as survey_app
from medattn.survey.app import create_app, load_survey
from medattn.survey.blinding import label_to_arm
from medattn.survey.create import create_survey
from medattn.survey.store import Arm, Panel, make_engine, read_meta

N_ITEMS = 16
SEARCHED_RATERS = range(1, 1001)


def legacy_item_order(seed: int, rater_number: int, n_items: int) -> np.ndarray:
    """The item order of medattn <= 0.1 (public: seed and rater number only)."""
    return np.random.default_rng([seed, rater_number, 0]).permutation(n_items)


def legacy_label_to_arm(seed: int, rater_number: int, item_number: int, arm_ids: list[int]) -> dict[str, int]:
    """The label assignment of medattn <= 0.1."""
    order = np.random.default_rng([seed, rater_number, 1, item_number]).permutation(len(arm_ids))
    return {label: arm_ids[int(i)] for label, i in zip("ABCDEFGH", order, strict=False)}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int, list[int], set[str]]:
    """A 12-item survey (seed 0); its arm ids, the attention arm and the hashes of that arm's PNGs."""
    tmp = tmp_path_factory.mktemp("attack")
    run_dir = explained_run(tmp / "run", n_images=N_ITEMS + 2, seeds=(0,))
    created = create_survey(run_dir, tmp / "survey.db", ["gradcam"], N_ITEMS, seed=0)
    with Session(make_engine(tmp / "survey.db")) as session:
        arms = {a.model: a.id for a in session.scalars(select(Arm).order_by(Arm.id))}
        files = session.scalars(select(Panel.file).where(Panel.arm_id == arms["resnet18+cbam"])).all()
    hashes = {hashlib.sha256((created.images_dir / f).read_bytes()).hexdigest() for f in files}
    return tmp / "survey.db", created.admin_token, arms["resnet18+cbam"], sorted(arms.values()), hashes


def browse(app, admin_token: str, recognised: set[str], n_raters: int = 2) -> list[dict]:
    """Let ``n_raters`` raters open every item; return per rater what their browser received and recognised."""
    admin = TestClient(app)
    tokens = invite(admin, admin_login(admin, admin_token), n_raters)
    seen = []
    for token in tokens:
        rater = TestClient(app)
        texts = [give_profile(rater, token)]
        observed = {}
        for position in range(1, N_ITEMS + 1):
            page = rater.get(f"/r/{token}/item/{position}")
            texts.append(page.text)
            for label in labels_of(page.text):
                png = rater.get(f"/r/{token}/image/{position}/{label}").content
                if hashlib.sha256(png).hexdigest() in recognised:
                    observed[position] = label
        assert len(observed) == N_ITEMS
        strings = set(re.findall(r"[A-Za-z0-9_-]{16,}", " ".join(texts))) | {token} | set(rater.cookies.values())
        seen.append({"token": token, "observed": observed, "strings": strings})
    return seen


def search(observed: dict[int, str], formulas, target_arm: int, arm_ids: list[int]) -> list:
    """Return the (formula, rater number) candidates that reproduce the recognised label on every item."""
    hits = []
    for name, order_of, labels_of_item in formulas:
        for number in SEARCHED_RATERS if name == "legacy" else range(1, 11):
            order = order_of(number)
            if all(next(k for k, v in labels_of_item(number, int(order[p - 1])).items() if v == target_arm) == label
                   for p, label in observed.items()):
                hits.append((name, number, order, labels_of_item))
    return hits


def formulas_for(seed: int, strings: set[str], arm_ids: list[int]) -> list:
    """The public formulas an attacker can evaluate: the legacy one with the seed, the keyed one with every string."""
    out = [("legacy", lambda r: legacy_item_order(seed, r, N_ITEMS),
            lambda r, i: legacy_label_to_arm(seed, r, i, arm_ids))]
    for s in sorted(strings):
        key = s if re.fullmatch(r"(?:[0-9a-f]{2})+", s) else s.encode().hex()
        out.append((s, lambda r, k=key: __import__("medattn.survey.blinding", fromlist=["x"]).item_order(k, r, N_ITEMS),
                    lambda r, i, k=key: label_to_arm(k, r, i, arm_ids)))
    return out


def truth(db: Path, images: Path, number: int) -> dict[int, dict[str, int]]:
    """Return the server's label maps of rater ``number`` by position."""
    served = load_survey(db, images)
    rater = type("R", (), {"number": number})()
    order = served.order(rater)
    return {p: served.label_map(rater, order[p - 1]) for p in range(1, N_ITEMS + 1)}


def test_the_legacy_copies_are_the_formula_of_medattn_0_1():
    # values printed by medattn.survey.blinding at commit 6fa7ddb (before the keyed blinding)
    assert legacy_item_order(0, 1, 16).tolist() == [11, 0, 10, 7, 4, 1, 15, 9, 3, 14, 6, 13, 8, 12, 2, 5]
    assert legacy_item_order(3, 42, 12).tolist() == [8, 10, 3, 2, 9, 5, 11, 0, 7, 6, 1, 4]
    assert legacy_label_to_arm(0, 7, 5, [1, 2, 3]) == {"A": 2, "B": 3, "C": 1}
    assert legacy_label_to_arm(3, 42, 11, [4, 9, 12, 20]) == {"A": 4, "B": 20, "C": 12, "D": 9}


def test_the_legacy_formula_is_undone_by_one_rater(made, monkeypatch: pytest.MonkeyPatch):
    db, admin_token, target, arm_ids, recognised = made
    seed = int(read_meta(Session(make_engine(db)))["seed"])
    copy = db.with_name("legacy.db")
    copy.write_bytes(db.read_bytes())
    monkeypatch.setattr(survey_app, "item_order", lambda key, r, n: legacy_item_order(seed, r, n))
    monkeypatch.setattr(survey_app, "label_to_arm", lambda key, r, i, arms: legacy_label_to_arm(seed, r, i, arms))
    images = db.with_suffix(".images")
    app = create_app(copy, images)
    for number, rater in enumerate(browse(app, admin_token, recognised), start=1):
        hits = search(rater["observed"], formulas_for(seed, set(), arm_ids), target, arm_ids)
        assert [h[1] for h in hits] == [number]  # exactly one candidate: the rater's own number
        _, found, order, labels_of_item = hits[0]
        recovered = {p: labels_of_item(found, int(order[p - 1])) for p in range(1, N_ITEMS + 1)}
        assert recovered == truth(copy, images, number)  # every label of every item


def test_the_served_survey_cannot_be_undone_from_what_the_browser_receives(made):
    db, admin_token, target, arm_ids, recognised = made
    seed = int(read_meta(Session(make_engine(db)))["seed"])
    app = create_app(db, db.with_suffix(".images"))
    for rater in browse(app, admin_token, recognised):
        assert not any(len(s) == 64 and s == read_meta(Session(make_engine(db)))["blinding_key"]
                       for s in rater["strings"])
        hits = search(rater["observed"], formulas_for(seed, rater["strings"], arm_ids), target, arm_ids)
        # 3^16 = 43 million patterns of the recognised label: a chance match among ~1,100 candidates is 3e-5
        assert hits == [], [(h[0][:8], h[1]) for h in hits]
