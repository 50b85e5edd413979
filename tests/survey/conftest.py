"""Fixtures for survey tests: a tiny explained run directory and a survey created from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from survey_helpers import make_explained_run

from medattn.survey.create import CreatedSurvey, create_survey


@dataclass(frozen=True)
class MadeSurvey:
    """A created survey: run dir, database path and what create_survey returned."""

    run_dir: Path
    db: Path
    created: CreatedSurvey


def make_survey(tmp: Path, n_items: int = 5, methods: tuple[str, ...] = ("gradcam",)) -> MadeSurvey:
    """Create a survey over the three tiny models' maps in ``tmp``."""
    run_dir = make_explained_run(tmp / "run")
    db = tmp / "survey.db"
    return MadeSurvey(run_dir, db, create_survey(run_dir, db, list(methods), n_items, seed=3))


@pytest.fixture
def survey(tmp_path: Path) -> MadeSurvey:
    """A fresh 5-item, 3-panel survey (gradcam of resnet18, resnet18+se, resnet18+cbam)."""
    return make_survey(tmp_path)
