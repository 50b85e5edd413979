"""Fixtures for survey tests: a tiny explained run directory and a survey created from it."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from survey_helpers import MadeSurvey, make_survey


@pytest.fixture(scope="session")
def survey_template(tmp_path_factory: pytest.TempPathFactory) -> MadeSurvey:
    """A 5-item, 3-panel survey (gradcam of resnet18, resnet18+se, resnet18+cbam), created once."""
    return make_survey(tmp_path_factory.mktemp("survey"))


@pytest.fixture
def survey(survey_template: MadeSurvey, tmp_path: Path) -> MadeSurvey:
    """A fresh copy of the template survey (database and images), so each test starts with no raters."""
    db = tmp_path / survey_template.db.name
    shutil.copyfile(survey_template.db, db)
    images = shutil.copytree(survey_template.created.images_dir, tmp_path / survey_template.created.images_dir.name)
    return MadeSurvey(survey_template.run_dir, db, replace(survey_template.created, images_dir=Path(images)))
