"""Survey creation: blinding is a reproducible permutation, items and panels come from the stored maps."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.rundir import explained_run
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session
from survey_helpers import MadeSurvey

from medattn.survey.blinding import item_order, label_to_arm, panel_order
from medattn.survey.create import create_survey, plan_survey
from medattn.survey.render import image_rgb, overlay, png_bytes
from medattn.survey.source import read_run_maps, read_sample
from medattn.survey.store import Arm, Item, Meta, Panel, SurveyError, make_engine

KEY = "07" * 32


def test_blinding_is_a_reproducible_permutation_that_differs_between_raters():
    orders = [tuple(item_order(KEY, rater, 10)) for rater in range(1, 21)]
    assert all(sorted(o) == list(range(10)) for o in orders)
    assert orders == [tuple(item_order(KEY, rater, 10)) for rater in range(1, 21)]
    assert len(set(orders)) == 20
    panels = np.array([panel_order(KEY, 1, item, 3) for item in range(600)])
    assert all(sorted(p) == [0, 1, 2] for p in panels)
    # each arm lands under label A about a third of the time
    counts = np.bincount(panels[:, 0], minlength=3)
    assert counts.min() > 160, counts
    assert label_to_arm(KEY, 2, 4, [11, 12, 13]) == label_to_arm(KEY, 2, 4, [11, 12, 13])


def test_plan_draws_items_with_every_arm_and_is_reproducible(tmp_path: Path):
    run_dir = explained_run(tmp_path)
    plan = plan_survey(run_dir, ["gradcam", "attention"], 6, seed=1)
    assert list(plan.arms["model"] + "/" + plan.arms["method"]) == [
        "resnet18/gradcam", "resnet18+cbam/attention", "resnet18+cbam/gradcam", "resnet18+se/attention",
        "resnet18+se/gradcam"]
    assert len(plan.items) == 6 and plan.items["image_id"].is_unique
    assert len(plan.panels) == 6 * 5
    assert (plan.panels.groupby("image_id")["seed"].nunique() == 1).all()  # one seed's runs per item
    again = plan_survey(run_dir, ["gradcam", "attention"], 6, seed=1)
    pd.testing.assert_frame_equal(plan.items, again.items)
    other = plan_survey(run_dir, ["gradcam", "attention"], 6, seed=2)
    assert not plan.items.equals(other.items)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"methods": ["nosuch"]}, "--methods: no maps"),
    ({"n_items": 99}, "--items: only 12 image(s)"),
    ({"models": ["vit"]}, "--models: unknown model(s) ['vit']"),
    ({"models": ["resnet18"]}, ">= 2 panels"),
    ({"target": "both"}, "--target"),
    ({"dataset": "isic"}, "--dataset: unknown dataset 'isic'"),
])
def test_plan_errors_name_the_option_and_the_fix(tmp_path: Path, kwargs: dict, message: str):
    run_dir = explained_run(tmp_path)
    args = {"methods": ["gradcam"], "n_items": 4, **kwargs}
    with pytest.raises(SurveyError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        plan_survey(run_dir, args.pop("methods"), args.pop("n_items"), **args)


def test_missing_explanations_say_what_to_run(tmp_path: Path):
    with pytest.raises(SurveyError, match="run `medattn explain"):
        plan_survey(tmp_path, ["gradcam"], 3)


def test_created_panels_are_the_stored_maps_rendered_with_one_colour_map(survey: MadeSurvey):
    engine = make_engine(survey.db)
    images = survey.created.images_dir
    sample = read_sample(survey.run_dir)
    with Session(engine) as session:
        items = list(session.scalars(select(Item)))
        panels = list(session.scalars(select(Panel)))
        arms = {a.id: a for a in session.scalars(select(Arm))}
        meta = {m.key: m.value for m in session.scalars(select(Meta))}
    assert len(items) == 5 and len(panels) == 15 and len(arms) == 3
    assert len(list(images.iterdir())) == 5 + 15 + 1  # images, panels, colour legend
    position = {i: k for k, i in enumerate(sample.ids)}
    for panel in panels[:4]:
        item = next(i for i in items if i.id == panel.item_id)
        heat = read_run_maps(survey.run_dir, f"{panel.run_dir}/explanations/maps.npz").maps[panel.map_row]
        expected = overlay(image_rgb(sample.images[position[item.image_id]]), heat)
        stored = np.asarray(Image.open(io.BytesIO((images / panel.file).read_bytes())).convert("RGB"))
        assert stored.shape == (320, 320, 3)
        np.testing.assert_array_equal(stored, expected)
        assert arms[panel.arm_id].model in panel.run_dir.replace("_", "+")
    # file names carry no model name; tokens are stored only as hashes
    assert all(len(p.file) == 36 for p in panels)
    assert survey.created.admin_token not in survey.db.read_bytes().decode("latin-1")
    assert meta["admin_hash"] != survey.created.admin_token and len(meta["admin_hash"]) == 64
    assert png_bytes(expected)[:8] == b"\x89PNG\r\n\x1a\n"


def test_create_refuses_to_overwrite_a_survey(survey: MadeSurvey, tmp_path: Path):
    with pytest.raises(SurveyError, match="already holds a survey"):
        create_survey(survey.run_dir, survey.db, ["gradcam"], 3, images_dir=tmp_path / "other")
    with pytest.raises(SurveyError, match="not empty"):
        create_survey(survey.run_dir, tmp_path / "new.db", ["gradcam"], 3, images_dir=survey.created.images_dir)
