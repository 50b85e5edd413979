"""The survey on PostgreSQL (a throwaway server, the study tests' fixture): create, answer, double submit, export."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.rundir import explained_run
from starlette.testclient import TestClient
from survey_helpers import admin_login, answer, give_profile, invite

from medattn.survey.app import create_app
from medattn.survey.create import create_survey
from medattn.survey.export import answers_frame
from medattn.survey.store import SurveyError, make_engine, session_factory

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "study"))
from study_helpers import postgres_server  # noqa: E402  (the study tests' throwaway PostgreSQL server)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server's SQLAlchemy URL."""
    with postgres_server() as url:
        yield url


def test_a_survey_on_postgresql_stores_each_answer_once(postgres_url: str, tmp_path: Path):
    run_dir = explained_run(tmp_path / "run")
    with pytest.raises(SurveyError, match="--images"):
        create_survey(run_dir, postgres_url, ["gradcam"], 3)
    made = create_survey(run_dir, postgres_url, ["gradcam"], 3, images_dir=tmp_path / "images")
    app = create_app(postgres_url, tmp_path / "images")
    admin = TestClient(app)
    (token,) = invite(admin, admin_login(admin, made.admin_token))
    rater = TestClient(app)
    give_profile(rater, token, "pathology", 4)
    for _ in range(2):  # a double submit
        assert answer(rater, token, 1, "B", {"A": 1, "B": 5, "C": 3}, comment="it's fine").status_code == 200
    assert answer(rater, token, 2, "A", {"A": 4, "B": 2, "C": 3}).status_code == 200
    with session_factory(make_engine(postgres_url))() as session:
        table = answers_frame(session)
    assert len(table) == 2 * 3 and not table.duplicated(["rater", "item", "label"]).any()
    assert table.loc[table["best"] == 1, "label"].tolist() == ["B", "A"]
    assert "it's fine" in set(table["comment"])
    with pytest.raises(SurveyError, match="already holds a survey"):
        create_survey(run_dir, postgres_url, ["gradcam"], 3, images_dir=tmp_path / "images2")
