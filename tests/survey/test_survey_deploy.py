"""Deploying the survey: `serve` refuses a missing, foreign, corrupt or outdated database in one line, exit 2,
without touching the file; the database and images are created owner-only; invitation links use --base-url,
never the request's Host header; a non-loopback bind without TLS is warned about; `upgrade` migrates.

medattn <= 0.1 printed a 29-line traceback, exited 1 and switched a foreign SQLite file to WAL mode; created
the database world-readable; and built links from any Host header.
"""

from __future__ import annotations

import sqlite3
import stat
import sys
from pathlib import Path

import pytest
import uvicorn
from starlette.testclient import TestClient
from survey_helpers import MadeSurvey, admin_login

from medattn import cli
from medattn.survey.app import create_app
from medattn.survey.store import make_engine, read_meta, session_factory


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """Run `medattn ARGS` in-process; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["medattn", *args])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def _foreign(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.commit()
    conn.close()
    return path


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 20)
    return path


@pytest.mark.parametrize("kind", ["missing", "foreign", "corrupt", "text"])
def test_serve_refuses_a_database_that_is_not_a_survey_in_one_line_and_leaves_it_untouched(
        kind, tmp_path: Path, monkeypatch, capsys):
    path = tmp_path / "x.db"
    {"missing": lambda p: p, "foreign": _foreign, "corrupt": _corrupt,
     "text": lambda p: (p.write_text("hello\n"), p)[1]}[kind](path)
    before = path.read_bytes() if path.exists() else None
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("served"))
    code, out, err = run_cli(monkeypatch, capsys, "survey", "serve", str(path))
    assert code == 2 and err.count("\n") == 1 and str(path) in err and "Traceback" not in err, err
    assert (path.read_bytes() if path.exists() else None) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if kind == "missing" else ["x.db"])  # no -wal/-shm


def test_an_outdated_survey_is_refused_until_upgraded(survey: MadeSurvey, monkeypatch, capsys):
    conn = sqlite3.connect(survey.db)  # back to a survey made by medattn 0.1 (schema 1)
    conn.executescript("DELETE FROM meta WHERE key IN ('schema', 'blinding_key'); "
                       "ALTER TABLE admin_sessions DROP COLUMN last_seen; ALTER TABLE raters DROP COLUMN revoked_at;")
    conn.close()
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    code, _, err = run_cli(monkeypatch, capsys, "survey", "serve", str(survey.db))
    assert code == 2 and "medattn survey upgrade" in err and err.count("\n") == 1
    code, out, _ = run_cli(monkeypatch, capsys, "survey", "upgrade", str(survey.db))
    assert code == 0 and "upgraded" in out
    with session_factory(make_engine(survey.db))() as session:
        assert len(read_meta(session)["blinding_key"]) == 64
    code, _, err = run_cli(monkeypatch, capsys, "survey", "serve", str(survey.db), "--images",
                           str(survey.created.images_dir))
    assert code == 0, err


def test_database_and_images_are_owner_only(survey_template: MadeSurvey):
    assert stat.S_IMODE(survey_template.db.stat().st_mode) == 0o600
    assert stat.S_IMODE(survey_template.created.images_dir.stat().st_mode) == 0o700


def test_invitation_links_use_the_base_url_not_the_host_header(survey: MadeSurvey):
    app = create_app(survey.db, survey.created.images_dir, base_url="https://survey.example.org/")
    admin = TestClient(app, base_url="http://evil.example.com")
    csrf = admin_login(admin, survey.created.admin_token)
    page = admin.post("/admin/invite", data={"csrf": csrf, "count": "1", "nonce": "n" * 43},
                      headers={"host": "evil.example.com", "x-forwarded-host": "evil.example.com"}).text
    assert "https://survey.example.org/r/" in page and "evil.example.com" not in page


def test_a_non_loopback_bind_without_tls_is_warned_about(survey: MadeSurvey, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: calls.append(k))
    images = str(survey.created.images_dir)
    code, _, err = run_cli(monkeypatch, capsys, "survey", "serve", str(survey.db), "--images", images,
                           "--host", "0.0.0.0")
    assert code == 0 and "warning: serving plain HTTP on 0.0.0.0" in err and calls[0]["host"] == "0.0.0.0"
    for quiet in (["--host", "127.0.0.1"], ["--host", "0.0.0.0", "--base-url", "https://survey.example.org"]):
        code, _, err = run_cli(monkeypatch, capsys, "survey", "serve", str(survey.db), "--images", images, *quiet)
        assert code == 0 and "warning" not in err, quiet
    code, _, err = run_cli(monkeypatch, capsys, "survey", "serve", str(survey.db), "--base-url", "ftp://x")
    assert code == 2 and "--base-url" in err
