"""The survey server under a held database lock, oversized or hostile bodies, odd digits, NULs and formula cells.

Each test names the defect of medattn <= 0.1 it pins: async handlers doing blocking database work froze every
request while another process held the SQLite write lock; the form was parsed before the token was checked and
without a size limit; '²' passed ``isdigit`` and crashed ``int`` into a 500 without security headers; NULs were
stored; comments went to the CSV export as live formulas.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import threading

import anyio
import pytest
from sqlalchemy.pool import QueuePool
from starlette.testclient import TestClient
from survey_helpers import MadeSurvey, admin_login, answer, csrf_of, give_profile, invite, labels_of
from typer.testing import CliRunner

import medattn.survey.rater_routes as rater_routes
import medattn.survey.store as store
from medattn.survey.app import MAX_BODY, WORKER_THREADS, create_app
from medattn.survey.cli import app as survey_cli
from medattn.survey.export import FORMULA_START
from medattn.survey.security import SECURITY_HEADERS

FORMULAS = ("=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "\t=1+1", "@SUM(A1)", "-2+3", "\r=1", " =1")


@pytest.fixture
def served(survey: MadeSurvey):
    """The app, an admin client and two raters who gave their profile."""
    app = create_app(survey.db, survey.created.images_dir)
    admin = TestClient(app)
    csrf = admin_login(admin, survey.created.admin_token)
    tokens = invite(admin, csrf, 2, note="=cmd|note")
    clients = [TestClient(app) for _ in tokens]
    for client, token in zip(clients, tokens, strict=True):
        give_profile(client, token)
    app.state.admin_csrf = csrf
    return app, admin, list(zip(clients, tokens, strict=True))


def _events_under_a_held_lock(app, db, first: str, second: str) -> list[str]:
    """Hold the write lock from another connection while ``first`` posts an answer; return what happened."""
    events: list[str] = []
    with TestClient(app) as client:  # one event loop serves every request below
        csrf = csrf_of(client.get(f"/r/{first}/item/1").text)
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
        answered = threading.Thread(target=lambda: events.append(
            f"answer {answer(client, first, 1, 'A', {'A': 1, 'B': 2, 'C': 3}, csrf=csrf).status_code}"))
        answered.start()
        threading.Event().wait(0.5)  # the answer is now waiting for the lock
        for path in ("/static/survey.css", f"/r/{second}/item/1"):
            done = threading.Event()
            threading.Thread(target=lambda p=path, d=done: (client.get(p).raise_for_status(), d.set())).start()
            done.wait(5)
            events.append(f"{path.split('/')[1]} {'served' if done.is_set() else 'waiting'}")
        events.append("lock released")
        holder.execute("COMMIT")
        answered.join(60)
    return events


def test_a_held_write_lock_blocks_neither_static_files_nor_other_raters_pages(served, survey: MadeSurvey):
    app, _, [(_, first), (_, second)] = served
    assert _events_under_a_held_lock(app, survey.db, first, second) == [
        "static served", "r served", "lock released", "answer 200"]


async def _worker_threads() -> int:
    return int(anyio.to_thread.current_default_thread_limiter().total_tokens)


def test_the_running_app_has_more_worker_threads_than_anyios_default(survey: MadeSurvey):
    """Each post waiting for the lock holds a worker thread: with anyio's 40, 50 waiting posts held every page
    and static file until the lock went (9.4 s in bench/survey.py --lock-seconds 10 --lock-posters 50)."""
    with TestClient(create_app(survey.db, survey.created.images_dir)) as client:
        assert client.portal.call(_worker_threads) == WORKER_THREADS > 40


def _one_connection_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every engine the survey opens a pool of one connection that gives up after 1 s."""
    real = store.create_engine
    monkeypatch.setattr(store, "create_engine", lambda url, **kw: real(url, **{
        **kw, "poolclass": QueuePool, "pool_size": 1, "max_overflow": 0, "pool_timeout": 1}))


def test_an_answer_waiting_for_the_lock_holds_no_read_connection(survey: MadeSurvey, monkeypatch):
    """Posts waiting for another process's lock kept their read connection: with 20 of them (bench/survey.py
    --lock-seconds 10 --lock-posters 20) the 15 read connections were taken and another rater's page waited
    for the lock too (9.4 s). With one read connection, the waiting post must leave it free."""
    _one_connection_pools(monkeypatch)
    app = create_app(survey.db, survey.created.images_dir)
    admin = TestClient(app)
    first, second = invite(admin, admin_login(admin, survey.created.admin_token), 2)
    for token in (first, second):
        give_profile(TestClient(app), token)
    assert _events_under_a_held_lock(app, survey.db, first, second) == [
        "static served", "r served", "lock released", "answer 200"]


def test_no_request_holds_two_connections_of_one_pool(survey: MadeSurvey, monkeypatch: pytest.MonkeyPatch):
    """Each form post read through the request's session while its write waited for a second connection of the
    same pool: 20 raters posting at once took all 15 and waited on each other until the pool timed out (500s in
    bench/survey.py). With one connection per pool every handler must still answer."""
    _one_connection_pools(monkeypatch)
    app = create_app(survey.db, survey.created.images_dir)
    admin = TestClient(app, raise_server_exceptions=False)
    csrf = admin_login(admin, survey.created.admin_token)
    first, second = invite(admin, csrf, 2)
    rater = TestClient(app, raise_server_exceptions=False)
    give_profile(rater, first)
    labels = labels_of(rater.get(f"/r/{first}/item/1").text)
    assert answer(rater, first, 1, labels[0], dict.fromkeys(labels, 3)).status_code == 200
    for path, data in (("/admin/revoke", {"rater": "2"}), ("/admin/close", {}), ("/admin/logout-everywhere", {})):
        assert admin.post(path, data={"csrf": csrf_of(admin.get("/admin").text), **data}).status_code == 200, path


async def _post(app, path: str, length: int) -> tuple[int, int]:
    """POST ``length`` declared bytes to ``path`` at the ASGI level; return (status, body chunks the app read)."""
    reads, status = [], []

    async def receive():
        reads.append(1)
        return {"type": "http.request", "body": b"x" * min(length, 65536), "more_body": len(reads) * 65536 < length}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"content-length", str(length).encode()), (b"host", b"testserver"),
                         (b"content-type", b"application/x-www-form-urlencoded")],
             "scheme": "http", "server": ("testserver", 80), "client": ("1.2.3.4", 5), "http_version": "1.1",
             "root_path": ""}
    await app(scope, receive, send)
    return status[0], len(reads)


def test_bodies_are_limited_and_tokens_checked_before_a_byte_is_read(served):
    app, _, [(_, first), _] = served
    forged = "B" * 43
    assert anyio.run(_post, app, f"/r/{forged}/item/1", 1000) == (404, 0)
    assert anyio.run(_post, app, f"/r/{forged}/item/1", 200_000_000) == (413, 0)
    assert anyio.run(_post, app, f"/r/{first}/item/1", MAX_BODY + 1) == (413, 0)
    assert anyio.run(_post, app, "/admin/invite", 1000) == (401, 0)  # no admin cookie
    status, reads = anyio.run(_post, app, f"/r/{first}/item/1", 1000)
    assert reads >= 1 and status == 403  # a live token: the form is read (and its missing CSRF refused)


def test_numbers_are_ascii_digits_nuls_are_stripped_and_errors_carry_security_headers(served, monkeypatch):
    app, admin, [(client, first), _] = served
    other = TestClient(app)
    (token,) = invite(admin, app.state.admin_csrf)
    page = other.get(f"/r/{token}")
    for years in ("\u00b2", "\u0663", "\uff11\uff12", "1e1", "07x"):
        response = other.post(f"/r/{token}/profile", data={"csrf": csrf_of(page.text), "specialty": "radiology",
                                                          "years": years})
        assert response.status_code == 422 and response.headers["content-security-policy"], years
    html = client.get(f"/r/{first}/item/1").text
    labels = labels_of(html)
    for score in ("\u00b3", "\u0664"):
        response = answer(client, first, 1, labels[0], dict.fromkeys(labels, score), csrf=csrf_of(html))
        assert response.status_code == 422, score
    assert answer(client, first, 1, labels[0], dict.fromkeys(labels, 3), comment="a\x00b\x00").status_code == 200
    assert "\x00" not in client.get(f"/r/{first}/item/1").text and ">ab</textarea>" in client.get(
        f"/r/{first}/item/1").text
    monkeypatch.setattr(rater_routes, "item_context", lambda *a, **k: 1 / 0)
    broken = TestClient(app, raise_server_exceptions=False).get(f"/r/{first}/item/1")
    assert broken.status_code == 500
    assert all(broken.headers.get(k) == v for k, v in SECURITY_HEADERS.items())
    assert all(TestClient(app).get("/no/such/page").headers.get(k) == v for k, v in SECURITY_HEADERS.items())


def _number(cell: str) -> bool:
    """Return True for a numeric cell (a negative number is data, not a formula)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def test_the_csv_export_neutralises_formula_cells(served, survey: MadeSurvey, tmp_path):
    app, admin, raters = served
    for (client, token), comment in zip(raters, FORMULAS[:2], strict=True):
        html = client.get(f"/r/{token}/item/1").text
        labels = labels_of(html)
        assert answer(client, token, 1, labels[0], dict.fromkeys(labels, 2), comment=comment).status_code == 200
    for (client, token), position, comment in zip([raters[0]] * 4 + [raters[1]], [2, 3, 4, 5, 2], FORMULAS[2:],
                                                  strict=True):
        labels = labels_of(client.get(f"/r/{token}/item/{position}").text)
        assert answer(client, token, position, labels[0], dict.fromkeys(labels, 4), comment=comment).status_code == 200
    export = admin.get("/admin/export.csv").text
    cells = _cells(export)
    assert not [c for c in cells if c.lstrip(" ").startswith(FORMULA_START)], export[:2000]
    # the text is kept, shown as text: a leading quote
    assert "'=HYPERLINK(\"http://x\",\"y\")" in cells and "'=cmd|note" in cells and "'-2+3" in cells
    # and in every CSV that `survey analyze` writes
    out = CliRunner().invoke(survey_cli, ["analyze", str(survey.db), "--out", str(tmp_path / "analysis")])
    assert out.exit_code == 0, out.output
    written = {p.name: _cells(p.read_text()) for p in (tmp_path / "analysis").glob("*.csv")}
    assert "answers.csv" in written and "'+cmd|' /C calc'!A0" in written["answers.csv"]
    assert not [(name, c) for name, cells in written.items() for c in cells
                if c.lstrip(" ").startswith(FORMULA_START) and not _number(c)]
