"""Survey test helpers: a survey created over a fabricated explanation store, and the browser steps of raters.

The store (random but valid maps, tiny images) comes from tests/helpers/rundir.py (`explained_run`), which writes
the FIXED format the survey reads, independently of `medattn explain`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from helpers.rundir import explained_run
from starlette.testclient import TestClient

from medattn.survey.create import CreatedSurvey, create_survey


@dataclass(frozen=True)
class MadeSurvey:
    """A created survey: run dir, database path and what create_survey returned."""

    run_dir: Path
    db: Path
    created: CreatedSurvey


def make_survey(tmp: Path, n_items: int = 5, methods: tuple[str, ...] = ("gradcam",)) -> MadeSurvey:
    """Create a survey over the three tiny models' maps in ``tmp``."""
    run_dir = explained_run(tmp / "run")
    db = tmp / "survey.db"
    return MadeSurvey(run_dir, db, create_survey(run_dir, db, list(methods), n_items, seed=3))


def csrf_of(html: str) -> str:
    """Return the CSRF token of the first form in ``html``."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def labels_of(html: str) -> list[str]:
    """Return the panel labels an item page shows."""
    return re.findall(r'name="best" value="([A-Z])"', html)


def admin_login(client: TestClient, admin_token: str) -> str:
    """Log ``client`` in as admin; return the dashboard's CSRF token."""
    csrf = csrf_of(client.get("/admin").text)
    page = client.post("/admin/login", data={"csrf": csrf, "token": admin_token})
    assert page.status_code == 200 and "Invite raters" in page.text, page.text[:500]
    return csrf_of(page.text)


def invite(client: TestClient, csrf: str, count: int = 1, note: str = "") -> list[str]:
    """Create ``count`` invitations through the admin page; return the rater tokens."""
    nonce = re.search(r'name="nonce" value="([^"]+)"', client.get("/admin").text).group(1)
    page = client.post("/admin/invite", data={"csrf": csrf, "count": str(count), "note": note, "nonce": nonce})
    assert page.status_code == 200, page.text[:500]
    return re.findall(r'value="http://[^"]+/r/([A-Za-z0-9_-]+)"', page.text)


def give_profile(client: TestClient, token: str, specialty: str = "radiology", years: int = 7) -> str:
    """Fill in a rater's profile; return the first item page's HTML."""
    csrf = csrf_of(client.get(f"/r/{token}").text)
    page = client.post(f"/r/{token}/profile", data={"csrf": csrf, "specialty": specialty, "years": str(years)})
    assert page.status_code == 200, page.text[:500]
    return page.text


def answer(client: TestClient, token: str, position: int, best: str, scores: dict[str, int], comment: str = "",
           csrf: str | None = None):
    """Post one answer; return the response (redirects followed)."""
    csrf = csrf or csrf_of(client.get(f"/r/{token}/item/{position}").text)
    data = {"csrf": csrf, "best": best, "comment": comment, **{f"score_{k}": str(v) for k, v in scores.items()}}
    return client.post(f"/r/{token}/item/{position}", data=data)
