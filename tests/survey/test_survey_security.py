"""Hostile requests are refused with a 4xx and change nothing in the database."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from starlette.testclient import TestClient
from survey_helpers import MadeSurvey, admin_login, answer, csrf_of, give_profile, invite

from medattn.survey.app import create_app
from medattn.survey.security import csrf_ok, csrf_token
from medattn.survey.store import Answer, Rater, Rating, make_engine


@pytest.fixture
def setting(survey: MadeSurvey):
    """An app with two raters who gave their profile; rater 1 answered item 1."""
    app = create_app(survey.db)
    admin = TestClient(app)
    first, second = invite(admin, admin_login(admin, survey.created.admin_token), 2)
    one, two = TestClient(app), TestClient(app)
    give_profile(one, first)
    give_profile(two, second)
    assert answer(one, first, 1, "A", {"A": 4, "B": 2, "C": 1}, comment="mine").status_code == 200
    return app, survey, (one, first), (two, second)


def snapshot(survey: MadeSurvey) -> tuple:
    """Return every row of answers, ratings and raters (to prove nothing changed)."""
    with Session(make_engine(survey.db)) as session:
        return tuple(tuple(tuple(getattr(r, c.name) for c in m.__table__.columns) for r in session.scalars(select(m)))
                     for m in (Answer, Rating, Rater))


def test_nothing_is_reachable_without_a_valid_token(setting):
    app, survey, (one, first), _ = setting
    anonymous = TestClient(app)
    before = snapshot(survey)
    forged = "A" * 43
    for path in (f"/r/{forged}", f"/r/{forged}/item/1", f"/r/{forged}/image/1/A", f"/r/{forged}/image/1/image",
                 f"/r/{forged}/done", "/r/", "/r/x/item/1", f"/r/{first[:-1]}/item/1", "/admin/export.csv"):
        response = anonymous.get(path)
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert b"\x89PNG" not in response.content[:8] and "mine" not in response.text
    for path, data in ((f"/r/{forged}/item/1", {"best": "A"}), (f"/r/{forged}/profile", {"years": "3"}),
                       ("/admin/invite", {"count": "5"}), ("/admin/login", {"token": first})):
        assert 400 <= anonymous.post(path, data=data).status_code < 500, path
    # a rater token is not an admin token
    csrf = csrf_of(anonymous.get("/admin").text)
    assert anonymous.post("/admin/login", data={"csrf": csrf, "token": first}).status_code == 401
    assert snapshot(survey) == before


def test_a_rater_cannot_read_or_change_another_raters_answers(setting):
    _, survey, (one, first), (two, second) = setting
    before = snapshot(survey)
    own_csrf = csrf_of(two.get(f"/r/{second}/item/1").text)
    # rater 2's form token does not work on rater 1's answers
    refused = answer(two, first, 1, "B", {"A": 1, "B": 1, "C": 1}, csrf=own_csrf)
    assert refused.status_code == 403
    # rater 2's own pages never show rater 1's answer or comment
    for position in range(1, 6):
        page = two.get(f"/r/{second}/item/{position}").text
        assert "mine" not in page and " checked" not in page
    assert snapshot(survey) == before


def test_forged_csrf_and_foreign_origin_are_refused(setting):
    _, survey, (one, first), _ = setting
    before = snapshot(survey)
    for csrf in ("", "0" * 64, hashlib.sha256(b"rater:1").hexdigest()):
        assert answer(one, first, 2, "A", {"A": 1, "B": 2, "C": 3}, csrf=csrf or "x").status_code == 403
    real = csrf_of(one.get(f"/r/{first}/item/2").text)
    response = one.post(f"/r/{first}/item/2", headers={"Origin": "https://evil.example"},
                        data={"csrf": real, "best": "A", "score_A": "1", "score_B": "1", "score_C": "1"})
    assert response.status_code == 403
    assert snapshot(survey) == before


def near_misses(real: str) -> list[str]:
    """Tokens that share a prefix with ``real`` but are not it: truncations, one last character changed, extended."""
    flipped = real[:-1] + ("0" if real[-1] != "0" else "1")
    return [real[:1], real[:8], real[:32], real[:-1], flipped, real + "0"]


def test_csrf_tokens_sharing_a_prefix_or_a_scope_prefix_are_refused():
    real = csrf_token("s3cret", "rater:1")
    assert csrf_ok("s3cret", "rater:1", real)
    for given in near_misses(real):
        assert not csrf_ok("s3cret", "rater:1", given), given
    # the token is bound to the whole scope and the secret, not to a prefix of either
    for scope in ("rater", "rater:", "rater:10", "rater:2", "admin:1", "login"):
        assert csrf_token("s3cret", scope) != real and not csrf_ok("s3cret", scope, real), scope
    assert not csrf_ok("s3cret2", "rater:1", real) and not csrf_ok("s3cre", "rater:1", real)


def test_a_csrf_token_that_shares_a_prefix_with_the_real_one_is_refused_in_the_app(setting):
    app, survey, (one, first), _ = setting
    before = snapshot(survey)
    real = csrf_of(one.get(f"/r/{first}/item/2").text)
    for given in near_misses(real):
        assert answer(one, first, 2, "A", {"A": 1, "B": 2, "C": 3}, csrf=given).status_code == 403, given
    # the admin token of one session (or of the login form) does not work in another session
    admin_one, admin_two = TestClient(app), TestClient(app)
    csrf_one, csrf_two = admin_login(admin_one, survey.created.admin_token), admin_login(admin_two,
                                                                                         survey.created.admin_token)
    login_csrf = csrf_of(TestClient(app).get("/admin").text)
    nonce = re.search(r'name="nonce" value="([^"]+)"', admin_one.get("/admin").text).group(1)
    for given in (csrf_two, login_csrf, *near_misses(csrf_one)):
        refused = admin_one.post("/admin/invite", data={"csrf": given, "count": "1", "nonce": nonce})
        assert refused.status_code == 403, given
    assert snapshot(survey) == before


INVALID = ({"score_A": "0"}, {"score_B": "6"}, {"score_C": "x"}, {"score_A": "3.5"}, {"score_A": "-1"},
           {"score_B": ""}, {"best": "Z"}, {"best": "AB"}, {"best": ""}, {"score_D": "3"}, {"comment": "x" * 2001})


def test_invalid_answers_are_refused_and_change_nothing(setting):
    _, survey, (one, first), _ = setting
    before = snapshot(survey)
    csrf = csrf_of(one.get(f"/r/{first}/item/1").text)
    for change in INVALID:
        data = {"csrf": csrf, "best": "B", "score_A": "2", "score_B": "3", "score_C": "4", "comment": "changed",
                **change}
        response = one.post(f"/r/{first}/item/1", data=data)
        assert response.status_code == 422 and 'class="error"' in response.text, change
    missing = one.post(f"/r/{first}/item/1", data={"csrf": csrf, "best": "B", "score_A": "2", "score_B": "3"})
    assert missing.status_code == 422
    assert snapshot(survey) == before


def test_out_of_range_items_and_bad_profiles_are_refused(setting):
    app, survey, (one, first), (two, second) = setting
    before = snapshot(survey)
    csrf = csrf_of(one.get(f"/r/{first}/item/1").text)
    for position in ("0", "6", "99", "-1", "1.5", "1;DROP TABLE answers"):
        response = one.post(f"/r/{first}/item/{position}",
                            data={"csrf": csrf, "best": "A", "score_A": "1", "score_B": "1", "score_C": "1"})
        assert 400 <= response.status_code < 500, position
        assert 400 <= one.get(f"/r/{first}/item/{position}").status_code < 500
    csrf_two = csrf_of(two.get(f"/r/{second}/item/1").text)  # rater 2 has not answered: the profile may change
    for profile in ({"specialty": "astrology", "years": "3"}, {"specialty": "radiology", "years": "500"},
                    {"specialty": "radiology", "years": "-2"}, {"specialty": "radiology", "years": "x"},
                    {"specialty": "radiology", "years": "\u00b2"}, {"specialty": "radiology", "years": "\u0663"}):
        assert two.post(f"/r/{second}/profile", data={"csrf": csrf_two, **profile}).status_code == 422, profile
    assert snapshot(survey) == before


TRAVERSALS = ("..%2F..%2Fsurvey.db", "%2e%2e", "..", "A%00", "a", "AA", "legend.png",
              "..%2Fsurvey.images%2F..%2Fsurvey.db", "Z", "%2Fetc%2Fpasswd", "..%5C..%5Csurvey.db")


def test_image_urls_cannot_escape_the_images_folder(setting):
    _, survey, (one, first), _ = setting
    for panel in TRAVERSALS:
        response = one.get(f"/r/{first}/image/1/{panel}")
        assert response.status_code == 404, panel
        assert b"SQLite" not in response.content and b"root:" not in response.content
    for position in ("..%2F..", "0", "6"):
        assert one.get(f"/r/{first}/image/{position}/A").status_code in (404, 422)


def test_static_files_cannot_escape_their_folder(setting):
    _, _, (one, _), _ = setting
    for path in ("/static/..%2Fapp.py", "/static/%2e%2e/app.py", "/static/../app.py", "/static/..%2F..%2Fcli.py"):
        response = one.get(path)
        assert response.status_code == 404 and b"import" not in response.content


def test_sql_metacharacters_are_stored_as_text_and_change_nothing_else(setting):
    _, survey, (one, first), _ = setting
    hostile = "'); DROP TABLE answers; -- \" OR 1=1; DELETE FROM ratings WHERE '1'='1"
    response = answer(one, first, 2, "C", {"A": 1, "B": 2, "C": 3}, comment=hostile)
    assert response.status_code == 200
    engine = make_engine(survey.db)
    with Session(engine) as session:
        comments = sorted(session.scalars(select(Answer.comment)))
        assert comments == sorted(["mine", hostile])
        assert session.execute(text("SELECT count(*) FROM ratings")).scalar() == 6
    # and as a token or item id they are plain 4xx
    assert one.get("/r/'%20OR%201=1%20--/item/1").status_code == 404
    assert one.get(f"/r/{first}/item/1%20OR%201=1").status_code == 422
    page = one.get(f"/r/{first}/item/2").text
    assert "DROP TABLE answers" in page and "&#39;); DROP" in page  # shown escaped, not as markup
