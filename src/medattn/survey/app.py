"""The survey web app (FastAPI, server-rendered Jinja2 HTML, a few lines of optional JavaScript for keys).

Raters: ``/r/{token}`` (profile, then items in the rater's fixed order, each saved when submitted),
images by position and label only (``/r/{token}/image/{position}/{panel}``), so nothing in a page or
URL names a model. Admin: ``/admin`` (log in with the admin token, an expiring session cookie;
invitations, revocation, closing, progress, CSV export).

Shape (FastAPI's recommended one): routers for raters (:mod:`.rater_routes`) and admin
(:mod:`.admin_routes`); dependencies for the database session, the current rater, the admin session
and CSRF (:mod:`.deps`); ``Form(...)`` parameters; plain ``def`` handlers, which FastAPI runs in its
thread pool, so a handler waiting for the SQLite write lock never blocks the event loop (static files
and other raters' pages keep answering). A handler waiting for the lock holds one worker thread and no
read connection (it ends its read transaction before writing), so pages starve only when every worker
thread waits: the pool has :data:`WORKER_THREADS` threads instead of anyio's default 40 (50 raters posting
during a 10 s lock held every page for 9.4 s with 40; bench/survey.py --lock-posters).

The outermost layer (:mod:`.guard`) sets security headers on every response, limits bodies and checks a
POST's token before its body is read; the server logs no token (uvicorn's access log is off, paths are
logged with tokens replaced).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from medattn.survey.blinding import item_order, label_to_arm
from medattn.survey.guard import Guard, redacted_path
from medattn.survey.security import SECURITY_HEADERS, hash_token, well_formed
from medattn.survey.store import (
    AdminSession,
    Arm,
    Item,
    Panel,
    Rater,
    SurveyError,
    make_engine,
    read_meta,
    schema_problem,
    session_factory,
    sqlite_path,
    utcnow,
    writer,
)

__all__ = ["Refused", "Survey", "create_app", "load_survey", "redacted_path"]
HERE = Path(__file__).parent
ADMIN_COOKIE = "medattn_admin"
MAX_BODY = 64 * 1024  # a full answer (26 scores, a 2,000-character comment percent-encoded) is under 20 KiB
WORKER_THREADS = 200  # sync handlers and file reads; each waiting write holds one (they mostly sleep)
ADMIN_IDLE = timedelta(minutes=30)
ADMIN_ABSOLUTE = timedelta(hours=12)
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
log = logging.getLogger("medattn.survey")


class Refused(Exception):
    """A request the survey declines: rendered as the message page with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def aware(moment: datetime | None) -> datetime | None:
    """Return ``moment`` with UTC attached when the database returned it naive (SQLite)."""
    from datetime import timezone

    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


@dataclass
class Survey:
    """The served survey: its database sessions and the settings read once at start."""

    sessions: sessionmaker[Session]
    writes: sessionmaker[Session]
    blinding_key: str
    secret: str
    admin_hash: str
    images_dir: Path
    arm_ids: list[int]
    arm_names: dict[int, str]
    items: dict[int, Item]
    panels: dict[tuple[int, int], str]
    legend_file: str
    base_url: str = DEFAULT_BASE_URL
    class_names: list[str] = field(default_factory=list)
    clock: Callable[[], datetime] = utcnow

    @property
    def n_items(self) -> int:
        """Return the number of items."""
        return len(self.items)

    def order(self, rater: Rater) -> list[int]:
        """Return the item numbers in ``rater``'s order."""
        return [int(i) for i in item_order(self.blinding_key, rater.number, self.n_items)]

    def label_map(self, rater: Rater, item_number: int) -> dict[str, int]:
        """Return {label: arm id} for ``rater`` on item ``item_number``."""
        return label_to_arm(self.blinding_key, rater.number, item_number, self.arm_ids)

    def class_name(self, label: int) -> str:
        """Return the class name of ``label`` ('class N' when the run gave no names)."""
        return self.class_names[label] if 0 <= label < len(self.class_names) else f"class {label}"

    def find_rater(self, session: Session, token: str) -> Rater | None:
        """Return the rater of an invitation token, None when unknown or revoked."""
        if not well_formed(token):
            return None
        rater = session.scalar(select(Rater).where(Rater.token_hash == hash_token(token)))
        return None if rater is None or rater.revoked_at is not None else rater

    def admin_session(self, session: Session, cookie: str) -> AdminSession | None:
        """Return the live admin session of a cookie: None when unknown, idle too long or too old."""
        if not well_formed(cookie):
            return None
        admin = session.scalar(select(AdminSession).where(AdminSession.token_hash == hash_token(cookie)))
        if admin is None:
            return None
        now = self.clock()
        if now - aware(admin.created_at) > ADMIN_ABSOLUTE or now - aware(admin.last_seen or admin.created_at) > \
                ADMIN_IDLE:
            return None
        return admin

    def rater_ok(self, token: str) -> bool:
        """Return True when ``token`` is a live invitation (own database session; for the guard)."""
        with self.sessions() as session:
            return self.find_rater(session, token) is not None

    def admin_ok(self, cookie: str) -> bool:
        """Return True when ``cookie`` is a live admin session (own database session; for the guard)."""
        with self.sessions() as session:
            return self.admin_session(session, cookie) is not None

    def closed(self, session: Session) -> bool:
        """Return True when the admin has closed the survey (answers are then read-only)."""
        return read_meta(session).get("closed") == "1"


def load_survey(db: str | Path, images_dir: Path | None = None, base_url: str = DEFAULT_BASE_URL) -> Survey:
    """Return the survey stored in ``db`` (file or URL), checking its schema and images folder."""
    engine = make_engine(db)
    sessions = session_factory(engine)
    with sessions() as session:
        meta = read_meta(session)
        problem = schema_problem(meta, str(db))
        if problem is not None:
            raise SurveyError(problem)
        arms = list(session.scalars(select(Arm).order_by(Arm.id)))
        items = {i.number: i for i in session.scalars(select(Item))}
        panels = {(p.item_id, p.arm_id): p.file for p in session.scalars(select(Panel))}
    if images_dir is None:
        images_dir = Path(meta["images_dir"])
        base = sqlite_path(engine.url.render_as_string(hide_password=False))
        if not images_dir.is_absolute() and base is not None:
            images_dir = base.parent / images_dir
    images_dir = images_dir.resolve()
    if not images_dir.is_dir():
        raise SurveyError(f"{images_dir}: the survey's images folder is missing; pass --images DIR")
    # writes get an engine (a connection pool) of their own: a handler writes while its request's read session
    # still holds a read connection, and with one shared pool concurrent posts could each hold one and wait
    # for a second until the pool timed out (tests/survey/test_survey_server.py)
    writes = session_factory(writer(make_engine(db, must_exist=False)))
    return Survey(sessions=sessions, writes=writes, blinding_key=meta["blinding_key"],
                  secret=meta["secret"], admin_hash=meta["admin_hash"], images_dir=images_dir,
                  arm_ids=[a.id for a in arms], arm_names={a.id: a.name for a in arms}, items=items, panels=panels,
                  legend_file=meta["legend_file"], base_url=base_url.rstrip("/"),
                  class_names=json.loads(meta.get("class_names", "[]")))


@asynccontextmanager
async def _threads(_app: FastAPI) -> AsyncIterator[None]:
    """Give the server's event loop :data:`WORKER_THREADS` worker threads for the app's lifetime."""
    to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
    yield


def create_app(db: str | Path, images_dir: Path | None = None, base_url: str = DEFAULT_BASE_URL) -> FastAPI:
    """Return the survey app serving the survey stored in ``db``; invitation links start with ``base_url``."""
    from medattn.survey import admin_routes, rater_routes

    survey = load_survey(db, images_dir, base_url)
    app = FastAPI(title="medattn survey", docs_url=None, redoc_url=None, openapi_url=None, lifespan=_threads)
    app.state.survey = survey
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(rater_routes.router)
    app.include_router(admin_routes.router)
    app.add_middleware(Guard, max_body=MAX_BODY, rater_ok=survey.rater_ok, admin_ok=survey.admin_ok,
                       admin_cookie=ADMIN_COOKIE)

    @app.exception_handler(Refused)
    def refused(request: Request, exc: Refused) -> HTMLResponse:
        return message_page(request, exc.status, exc.message)

    @app.exception_handler(Exception)
    def failed(request: Request, exc: Exception) -> HTMLResponse:  # answered outside the guard: set headers here
        log.error("%s %s failed: %s", request.method, redacted_path(request.url.path), type(exc).__name__,
                  exc_info=exc)
        return HTMLResponse("<!doctype html><title>Error</title><p>Something went wrong on the server. "
                            "Your earlier answers are saved; try again later.</p>", 500, headers=SECURITY_HEADERS)

    return app


def message_page(request: Request, status: int, message: str, title: str = "Not available") -> HTMLResponse:
    """Return the message page with ``status``."""
    return request.app.state.templates.TemplateResponse(request, "message.html", {"title": title, "message": message},
                                                        status_code=status)
