"""The survey app through FastAPI's TestClient: the rater flow, resume, double submit, admin, blinding."""

from __future__ import annotations

import io
import logging
import re
import sys

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient
from survey_helpers import MadeSurvey, admin_login, answer, csrf_of, give_profile, invite, labels_of

from medattn.survey.app import create_app
from medattn.survey.blinding import item_order, label_to_arm
from medattn.survey.security import SECURITY_HEADERS, hash_token
from medattn.survey.store import Arm, make_engine, read_meta


@pytest.fixture
def app(survey: MadeSurvey):
    """The app serving the fresh survey."""
    return create_app(survey.db)


def export(admin: TestClient) -> pd.DataFrame:
    """Return the admin CSV export as a DataFrame."""
    response = admin.get("/admin/export.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    return pd.read_csv(io.StringIO(response.text), keep_default_na=False)


def test_rater_flow_resume_and_double_submit_store_exactly_the_answers_given(app, survey: MadeSurvey):
    admin = TestClient(app)
    csrf = admin_login(admin, survey.created.admin_token)
    token, other = invite(admin, csrf, 2, note="Dr Example")
    rater = TestClient(app)
    first = give_profile(rater, token, "dermatology", 12)
    assert "Image 1 of 5" in first and labels_of(first) == ["A", "B", "C"]
    given = {}
    for position, best in ((1, "B"), (2, "A")):
        response = answer(rater, token, position, best, {"A": 1, "B": 5, "C": position}, comment=f"note {position}")
        assert response.status_code == 200 and f"Image {position + 1} of 5" in response.text
        given[position] = best
    # a double submit of item 2 and a refresh leave one answer
    csrf_r = csrf_of(rater.get(f"/r/{token}/item/2").text)
    for _ in range(2):
        answer(rater, token, 2, "A", {"A": 1, "B": 5, "C": 2}, comment="note 2", csrf=csrf_r)
    # another device resumes at the first unanswered item, with the same order and the stored answers
    device = TestClient(app)
    resumed = device.get(f"/r/{token}")
    assert resumed.status_code == 200 and "Image 3 of 5" in resumed.text
    again = device.get(f"/r/{token}/item/1").text
    assert re.search(r'name="best" value="B" required checked', again) and "note 1" in again
    assert "Your saved answer" in again and "Your saved answer" not in resumed.text
    for position in (3, 4, 5):
        answer(device, token, position, "C", {"A": 2, "B": 3, "C": 4})
        given[position] = "C"
    assert device.get(f"/r/{token}").url.path.endswith("/done")
    # changing an answer replaces it
    answer(device, token, 5, "A", {"A": 5, "B": 3, "C": 4})
    given[5] = "A"

    table = export(admin)
    assert len(table) == 5 * 3 and table.groupby(["rater", "item"]).size().eq(3).all()
    assert set(table["rater"]) == {1} and set(table["specialty"]) == {"dermatology"} and set(table["years"]) == {12}
    assert (table.groupby("item")["best"].sum() == 1).all()
    with Session(make_engine(survey.db)) as session:
        arms = {a.name: a.id for a in session.scalars(select(Arm))}
        key = read_meta(session)["blinding_key"]
    order = item_order(key, 1, 5)
    for position, best in given.items():
        rows = table[table["position"] == position]
        assert set(rows["item"]) == {int(order[position - 1])}
        assert rows.loc[rows["best"] == 1, "label"].item() == best
        # the de-blinded arm behind each label is the one the blinding assigned
        mapping = label_to_arm(key, 1, int(order[position - 1]), sorted(arms.values()))
        for row in rows.itertuples():
            assert arms[row.arm] == mapping[row.label]
    assert table.loc[table["position"] == 5, "score"].tolist() == [5, 3, 4]
    progress = admin.get("/admin").text
    assert "Dr Example" in progress and "5 / 5" in progress and "0 / 5" in progress
    assert other != token


def test_pages_and_image_urls_never_name_a_model(app, survey: MadeSurvey):
    admin = TestClient(app)
    (token,) = invite(admin, admin_login(admin, survey.created.admin_token))
    rater = TestClient(app)
    pages = [give_profile(rater, token)] + [rater.get(f"/r/{token}/item/{p}").text for p in (2, 3)]
    for html in pages:
        for name in ("resnet18", "cbam", "gradcam", "+se", "seed", "artifacts"):
            assert name not in html
        urls = re.findall(r'src="([^"]+)"', html)
        assert {u.rsplit("/", 1)[-1] for u in urls if "/image/" in u} == {"image", "legend", "A", "B", "C"}
        image = rater.get(urls[-1])
        assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
        assert "etag" not in image.headers and "last-modified" not in image.headers


def test_every_response_carries_the_security_headers(app, survey: MadeSurvey):
    client = TestClient(app)
    for path in ("/", "/admin", "/r/nope", "/static/survey.css", "/admin/export.csv"):
        response = client.get(path)
        for header, value in SECURITY_HEADERS.items():
            assert response.headers.get(header) == value, (path, header)
    assert "frame-ancestors 'none'" in SECURITY_HEADERS["Content-Security-Policy"]


def test_tokens_are_never_logged(app, survey: MadeSurvey, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    admin = TestClient(app)
    (token,) = invite(admin, admin_login(admin, survey.created.admin_token))
    rater = TestClient(app)
    give_profile(rater, token)
    answer(rater, token, 1, "A", {"A": 1, "B": 2, "C": 3})
    # what the server logs (the test client's own httpx log lines are not the server's)
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "GET /r/***/item/2 200" in text and "POST /admin/login 303" in text
    assert survey.created.admin_token not in text and token not in text


def test_a_resubmitted_invitation_form_creates_no_second_batch(app, survey: MadeSurvey):
    admin = TestClient(app)
    csrf = admin_login(admin, survey.created.admin_token)
    nonce = re.search(r'name="nonce" value="([^"]+)"', admin.get("/admin").text).group(1)
    first = admin.post("/admin/invite", data={"csrf": csrf, "count": "2", "nonce": nonce})
    again = admin.post("/admin/invite", data={"csrf": csrf, "count": "2", "nonce": nonce})
    assert first.status_code == 200 and again.status_code == 409 and "already created" in again.text
    assert admin.get("/admin").text.count("profile not given yet") == 2


def test_admin_login_rejects_a_wrong_token_and_logout_ends_the_session(app, survey: MadeSurvey):
    client = TestClient(app)
    csrf = csrf_of(client.get("/admin").text)
    wrong = client.post("/admin/login", data={"csrf": csrf, "token": "x" * 43})
    assert wrong.status_code == 401 and "not the admin token" in wrong.text
    dashboard_csrf = admin_login(client, survey.created.admin_token)
    assert client.post("/admin/logout", data={"csrf": dashboard_csrf}).status_code == 200
    assert client.get("/admin/export.csv").status_code == 401


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """Run `medattn ARGS` in this process (the console script's main); return (exit code, stdout, stderr)."""
    from medattn.cli import main

    monkeypatch.setattr(sys, "argv", ["medattn", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_create_prints_the_admin_token_once_and_analyze_exports(survey: MadeSurvey, tmp_path, monkeypatch,
                                                                     capsys):
    code, out, err = run_cli(monkeypatch, capsys, "survey", "create", str(survey.run_dir), "--methods", "gradcam",
                             "--items", "3", "--out", str(tmp_path / "cli.db"))
    assert code == 0, err
    assert "3 images x 3 maps" in out and out.count("admin token") == 1
    token = re.search(r"admin token \(shown only now, stored hashed\): (\S+)", out).group(1)
    assert hash_token(token) == read_meta_of(tmp_path / "cli.db")["admin_hash"]
    code, _, err = run_cli(monkeypatch, capsys, "survey", "create", str(survey.run_dir), "--items", "99", "--out",
                           str(tmp_path / "bad.db"))
    assert code == 2 and err.startswith("error: --items") and "Traceback" not in err
    code, _, err = run_cli(monkeypatch, capsys, "survey", "analyze", str(tmp_path / "cli.db"), "--out",
                           str(tmp_path / "a"))
    assert code == 2 and "no answers yet" in err
    code, _, err = run_cli(monkeypatch, capsys, "survey", "serve", str(tmp_path / "missing.db"))
    assert code == 2 and "survey database not found" in err


def read_meta_of(db) -> dict[str, str]:
    """Return the settings stored in a survey database."""
    with Session(make_engine(db)) as session:
        return read_meta(session)
