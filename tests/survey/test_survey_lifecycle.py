"""A survey's life: admin sessions that expire and can all be ended, revoked links, closing, a fixed profile.

medattn <= 0.1: admin sessions never expired, links could not be withdrawn, the survey could not be closed,
and a rater could change the profile after answering (moving their answers into another experience band).
"""

from __future__ import annotations

from datetime import timedelta

from starlette.testclient import TestClient
from survey_helpers import MadeSurvey, admin_login, answer, csrf_of, give_profile, invite, labels_of

from medattn.survey.app import ADMIN_ABSOLUTE, ADMIN_IDLE, create_app
from medattn.survey.store import utcnow


def _answer_first(client: TestClient, token: str, position: int = 1):
    labels = labels_of(client.get(f"/r/{token}/item/{position}").text)
    return answer(client, token, position, labels[0], dict.fromkeys(labels, 3))


def test_admin_sessions_expire_when_idle_and_after_an_absolute_limit(survey: MadeSurvey):
    app = create_app(survey.db, survey.created.images_dir)
    served, now = app.state.survey, [utcnow()]
    served.clock = lambda: now[0]
    admin = TestClient(app)
    admin_login(admin, survey.created.admin_token)
    for _ in range(3):  # active every 20 minutes: stays logged in
        now[0] += ADMIN_IDLE - timedelta(minutes=10)
        assert "Invite raters" in admin.get("/admin").text
    now[0] += ADMIN_IDLE + timedelta(minutes=1)  # idle too long
    assert "Invite raters" not in admin.get("/admin").text and admin.get("/admin/export.csv").status_code == 401
    admin_login(admin, survey.created.admin_token)
    start = now[0]
    while now[0] - start < ADMIN_ABSOLUTE - timedelta(minutes=20):  # never idle, but ...
        now[0] += timedelta(minutes=20)
        assert admin.get("/admin/export.csv").status_code == 200
    now[0] = start + ADMIN_ABSOLUTE + timedelta(minutes=1)  # ... not longer than the absolute limit
    assert admin.get("/admin/export.csv").status_code == 401


def test_log_out_everywhere_ends_every_admin_session(survey: MadeSurvey):
    app = create_app(survey.db, survey.created.images_dir)
    laptop, phone = TestClient(app), TestClient(app)
    csrf = admin_login(laptop, survey.created.admin_token)
    admin_login(phone, survey.created.admin_token)
    assert phone.get("/admin/export.csv").status_code == 200
    assert laptop.post("/admin/logout-everywhere", data={"csrf": csrf}).status_code == 200
    assert phone.get("/admin/export.csv").status_code == 401 and laptop.get("/admin/export.csv").status_code == 401


def test_a_revoked_link_stops_working_and_its_answers_stay(survey: MadeSurvey):
    app = create_app(survey.db, survey.created.images_dir)
    admin = TestClient(app)
    csrf = admin_login(admin, survey.created.admin_token)
    keep, revoke = invite(admin, csrf, 2)
    raters = {t: TestClient(app) for t in (keep, revoke)}
    for token, client in raters.items():
        give_profile(client, token)
        assert _answer_first(client, token).status_code == 200
    stale = csrf_of(raters[revoke].get(f"/r/{revoke}/item/2").text)
    csrf = csrf_of(admin.get("/admin").text)
    assert admin.post("/admin/revoke", data={"csrf": csrf, "rater": "2"}).status_code == 200
    assert raters[revoke].get(f"/r/{revoke}").status_code == 404
    assert raters[revoke].get(f"/r/{revoke}/image/1/image").status_code == 404
    assert answer(raters[revoke], revoke, 2, "A", dict.fromkeys("ABC", 3), csrf=stale).status_code == 404
    assert _answer_first(raters[keep], keep, 2).status_code == 200
    export = admin.get("/admin/export.csv").text
    assert "withdrawn" in admin.get("/admin").text and export.count("\n2,") == 3  # rater 2's one answer, 3 panels


def test_a_closed_survey_takes_no_answers_and_still_exports(survey: MadeSurvey):
    app = create_app(survey.db, survey.created.images_dir)
    admin = TestClient(app)
    csrf = admin_login(admin, survey.created.admin_token)
    answered, late = invite(admin, csrf, 2)
    one, two = TestClient(app), TestClient(app)
    give_profile(one, answered)
    assert _answer_first(one, answered).status_code == 200
    before = admin.get("/admin/export.csv").text
    assert admin.post("/admin/close", data={"csrf": csrf_of(admin.get("/admin").text)}).status_code == 200
    assert _answer_first(one, answered, 1).status_code == 409  # no change
    assert _answer_first(one, answered, 2).status_code == 409  # no new answer
    page = two.get(f"/r/{late}")
    assert two.post(f"/r/{late}/profile", data={"csrf": csrf_of(page.text), "specialty": "radiology",
                                                 "years": "3"}).status_code == 409
    assert one.get(f"/r/{answered}/item/1").status_code == 200  # answers stay readable
    assert admin.get("/admin/export.csv").text == before


def test_the_profile_is_fixed_once_the_first_answer_is_stored(survey: MadeSurvey):
    app = create_app(survey.db, survey.created.images_dir)
    admin = TestClient(app)
    (token,) = invite(admin, admin_login(admin, survey.created.admin_token))
    rater = TestClient(app)
    give_profile(rater, token, "radiology", 3)
    csrf = csrf_of(rater.get(f"/r/{token}/item/1").text)
    # before any answer the profile may still be corrected
    assert rater.post(f"/r/{token}/profile", data={"csrf": csrf, "specialty": "radiology", "years": "4"}).is_success
    assert _answer_first(rater, token).status_code == 200
    moved = rater.post(f"/r/{token}/profile", data={"csrf": csrf, "specialty": "pathology", "years": "30"})
    assert moved.status_code == 409
    export = admin.get("/admin/export.csv").text.splitlines()
    assert all(",radiology,4," in line for line in export[1:]) and len(export) == 4
