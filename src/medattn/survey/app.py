"""The survey web app (FastAPI, server-rendered Jinja2 HTML, a few lines of optional JavaScript for keys).

Raters: ``/r/{token}`` (profile, then items in the rater's fixed order, each saved when submitted),
images by position and label only (``/r/{token}/image/{position}/{panel}``), so nothing in a page or
URL names a model. Admin: ``/admin`` (log in with the admin token, a session cookie; invitations,
progress, CSV export). Every response carries the headers of :data:`SECURITY_HEADERS`; every form a
CSRF token bound to its rater or admin session; the server logs no token (uvicorn's access log is
off, :func:`redacted_path` logs paths with tokens replaced).
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from medattn.survey.blinding import item_order, label_to_arm
from medattn.survey.export import answers_frame
from medattn.survey.security import SECURITY_HEADERS, csrf_ok, csrf_token, hash_token, new_token, well_formed
from medattn.survey.store import (
    COMMENT_MAX,
    AdminSession,
    Answer,
    Arm,
    InviteBatch,
    Item,
    Panel,
    Rater,
    Rating,
    SurveyError,
    make_engine,
    read_meta,
    retrying,
    session_factory,
    sqlite_path,
    utcnow,
    writer,
)

HERE = Path(__file__).parent
ADMIN_COOKIE = "medattn_admin"
SPECIALTIES = ("radiology", "pathology", "dermatology", "ophthalmology", "oncology", "internal medicine",
               "general practice", "other clinical", "non-clinical researcher")
YEARS_MAX = 70
NOTE_MAX = 200
INVITES_MAX = 50
PANEL_PATTERN = re.compile(r"^(image|legend|[A-Z])$")
log = logging.getLogger("medattn.survey")


@dataclass
class Survey:
    """The served survey: its database sessions and the settings read once at start."""

    sessions: sessionmaker[Session]
    writes: sessionmaker[Session]
    seed: int
    secret: str
    admin_hash: str
    images_dir: Path
    arm_ids: list[int]
    arm_names: dict[int, str]
    items: dict[int, Item]
    panels: dict[tuple[int, int], str]
    legend_file: str
    class_names: list[str] = field(default_factory=list)

    @property
    def n_items(self) -> int:
        """Return the number of items."""
        return len(self.items)

    def order(self, rater: Rater) -> list[int]:
        """Return the item numbers in ``rater``'s order."""
        return [int(i) for i in item_order(self.seed, rater.number, self.n_items)]

    def label_map(self, rater: Rater, item_number: int) -> dict[str, int]:
        """Return {label: arm id} for ``rater`` on item ``item_number``."""
        return label_to_arm(self.seed, rater.number, item_number, self.arm_ids)

    def class_name(self, label: int) -> str:
        """Return the class name of ``label`` ('class N' when the run gave no names)."""
        return self.class_names[label] if 0 <= label < len(self.class_names) else f"class {label}"


def load_survey(db: str | Path, images_dir: Path | None = None) -> Survey:
    """Return the survey stored in ``db`` (file or URL), checking its images folder."""
    engine = make_engine(db)
    sessions = session_factory(engine)
    with sessions() as session:
        meta = read_meta(session)
        if "seed" not in meta:
            raise SurveyError(f"{db}: not a survey database (no settings); create one with `medattn survey create`")
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
    return Survey(sessions=sessions, writes=session_factory(writer(engine)), seed=int(meta["seed"]),
                  secret=meta["secret"], admin_hash=meta["admin_hash"],
                  images_dir=images_dir, arm_ids=[a.id for a in arms], arm_names={a.id: a.name for a in arms},
                  items=items, panels=panels, legend_file=meta["legend_file"],
                  class_names=json.loads(meta.get("class_names", "[]")))


def redacted_path(path: str) -> str:
    """Return a request path with any token replaced by '***' (safe to log)."""
    return re.sub(r"/r/[^/]+", "/r/***", path)


def create_app(db: str | Path, images_dir: Path | None = None) -> FastAPI:
    """Return the survey app serving the survey stored in ``db``."""
    survey = load_survey(db, images_dir)
    app = FastAPI(title="medattn survey", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.state.survey = survey

    @app.middleware("http")
    async def headers(request: Request, call_next):  # noqa: ANN202
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        log.info("%s %s %s", request.method, redacted_path(request.url.path), response.status_code)
        return response

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=status)

    def refuse(request: Request, status: int, message: str) -> HTMLResponse:
        return page(request, "message.html", status, title="Not available", message=message)

    def same_origin(request: Request) -> bool:
        origin = request.headers.get("origin")
        return origin is None or origin.split("://", 1)[-1] == request.headers.get("host", "")

    def find_rater(session: Session, token: str) -> Rater | None:
        if not well_formed(token):
            return None
        return session.scalar(select(Rater).where(Rater.token_hash == hash_token(token)))

    def answered_numbers(session: Session, rater: Rater) -> set[int]:
        rows = session.execute(select(Item.number).join(Answer, Answer.item_id == Item.id)
                               .where(Answer.rater_id == rater.id))
        return {r[0] for r in rows}

    def next_position(order: list[int], done: set[int], after: int = 0) -> int | None:
        pending = [p for p, n in enumerate(order, 1) if n not in done]
        later = [p for p in pending if p > after]
        return (later or pending or [None])[0]

    # ---------------------------------------------------------------- raters
    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        return page(request, "message.html", title="medattn survey",
                    message="Open the personal link you received to take part.")

    @app.get("/r/{token}", response_class=HTMLResponse)
    def rater_start(request: Request, token: str) -> Response:
        with survey.sessions() as session:
            rater = find_rater(session, token)
            if rater is None:
                return refuse(request, 404, "This link is not valid. Ask the survey organiser for your link.")
            if rater.specialty is None:
                return page(request, "profile.html", token=token, specialties=SPECIALTIES, years_max=YEARS_MAX,
                            csrf=csrf_token(survey.secret, f"rater:{rater.id}"), n_items=survey.n_items, error=None)
            position = next_position(survey.order(rater), answered_numbers(session, rater))
        target = f"/r/{token}/done" if position is None else f"/r/{token}/item/{position}"
        return RedirectResponse(target, status_code=303)

    def posting_rater(request: Request, session: Session, token: str, form) -> tuple[Rater | None, Response | None]:
        """The rater behind a form post, or the refusal: 404 for an unknown token, 403 for a bad origin or CSRF."""
        rater = find_rater(session, token)
        if rater is None:
            return None, refuse(request, 404, "This link is not valid.")
        if not same_origin(request) or not csrf_ok(survey.secret, f"rater:{rater.id}", form.get("csrf")):
            return None, refuse(request, 403, "The form expired or came from elsewhere. Reload the page and try again.")
        return rater, None

    @app.post("/r/{token}/profile", response_class=HTMLResponse)
    async def rater_profile(request: Request, token: str) -> Response:
        form = await request.form()
        with survey.sessions() as session:
            rater, refusal = posting_rater(request, session, token, form)
            if refusal is not None:
                return refusal
            specialty, years = str(form.get("specialty", "")), str(form.get("years", "")).strip()
            if specialty not in SPECIALTIES or not years.isdigit() or not 0 <= int(years) <= YEARS_MAX:
                return page(request, "profile.html", 422, token=token, specialties=SPECIALTIES, years_max=YEARS_MAX,
                            csrf=form.get("csrf"), n_items=survey.n_items,
                            error=f"Choose a specialty from the list and give whole years between 0 and {YEARS_MAX}.")
            rater_id = rater.id

        def save() -> None:
            with survey.writes() as s, s.begin():
                r = s.get(Rater, rater_id)
                r.specialty, r.years, r.last_seen = specialty, int(years), utcnow()

        retrying(save)
        return RedirectResponse(f"/r/{token}", status_code=303)

    def item_context(session: Session, rater: Rater, token: str, position: int) -> dict:
        order = survey.order(rater)
        item = survey.items[order[position - 1]]
        label_map = survey.label_map(rater, item.number)
        answer = session.scalar(select(Answer).where(Answer.rater_id == rater.id, Answer.item_id == item.id))
        scores = {}
        if answer is not None:
            scores = {r.label: r.score for r in session.scalars(
                select(Rating).where(Rating.rater_id == rater.id, Rating.item_id == item.id))}
        done = answered_numbers(session, rater)
        return dict(token=token, position=position, n_items=survey.n_items, labels=list(label_map),
                    class_name=survey.class_name(item.label), best=answer.best_label if answer else None,
                    scores=scores, comment=answer.comment if answer else "", n_done=len(done),
                    csrf=csrf_token(survey.secret, f"rater:{rater.id}"), comment_max=COMMENT_MAX, error=None,
                    answered=[n in done for n in order])

    @app.get("/r/{token}/item/{position}", response_class=HTMLResponse)
    def rater_item(request: Request, token: str, position: int) -> Response:
        with survey.sessions() as session:
            rater = find_rater(session, token)
            if rater is None:
                return refuse(request, 404, "This link is not valid.")
            if not 1 <= position <= survey.n_items:
                return refuse(request, 404, f"There is no item {position}; the survey has {survey.n_items}.")
            if rater.specialty is None:
                return RedirectResponse(f"/r/{token}", status_code=303)
            return page(request, "item.html", **item_context(session, rater, token, position))

    def parse_answer(form, valid_labels: list[str]) -> tuple[dict | None, str | None]:
        best = form.get("best")
        if best not in valid_labels:
            return None, f"Choose the map that best highlights the relevant regions ({', '.join(valid_labels)})."
        scores = {}
        for label in valid_labels:
            value = str(form.get(f"score_{label}", ""))
            if not value.isdigit() or not 1 <= int(value) <= 5:
                return None, f"Rate every map from 1 to 5 (map {label} is missing or out of range)."
            scores[label] = int(value)
        extra = [k for k in form.keys() if k.startswith("score_") and k.removeprefix("score_") not in valid_labels]
        if extra:
            return None, f"Unknown field(s): {', '.join(sorted(extra))}."
        comment = str(form.get("comment", ""))
        if len(comment) > COMMENT_MAX:
            return None, f"The comment is {len(comment)} characters long; keep it under {COMMENT_MAX}."
        return {"best": best, "scores": scores, "comment": comment.strip()}, None

    @app.post("/r/{token}/item/{position}", response_class=HTMLResponse)
    async def rater_answer(request: Request, token: str, position: int) -> Response:
        form = await request.form()
        with survey.sessions() as session:
            rater, refusal = posting_rater(request, session, token, form)
            if refusal is not None:
                return refusal
            if not 1 <= position <= survey.n_items:
                return refuse(request, 404, f"There is no item {position}; the survey has {survey.n_items}.")
            if rater.specialty is None:
                return refuse(request, 409, "Fill in your profile first.")
            item = survey.items[survey.order(rater)[position - 1]]
            label_map = survey.label_map(rater, item.number)
            answer, error = parse_answer(form, list(label_map))
            if error:
                context = item_context(session, rater, token, position)
                context.update(error=error, best=form.get("best") if form.get("best") in label_map else None,
                               comment=str(form.get("comment", ""))[:COMMENT_MAX])
                return page(request, "item.html", 422, **context)
            rater_id, item_id = rater.id, item.id

        def save() -> None:
            with survey.writes() as s, s.begin():
                s.scalar(select(Rater).where(Rater.id == rater_id).with_for_update())  # one writer per rater
                s.execute(delete(Rating).where(Rating.rater_id == rater_id, Rating.item_id == item_id))
                s.execute(delete(Answer).where(Answer.rater_id == rater_id, Answer.item_id == item_id))
                s.add(Answer(rater_id=rater_id, item_id=item_id, position=position, comment=answer["comment"],
                             best_arm_id=label_map[answer["best"]], best_label=answer["best"]))
                s.add_all(Rating(rater_id=rater_id, item_id=item_id, arm_id=label_map[label], label=label,
                                 score=score) for label, score in answer["scores"].items())
                s.get(Rater, rater_id).last_seen = utcnow()

        retrying(save)
        with survey.sessions() as session:
            rater = session.get(Rater, rater_id)
            nxt = next_position(survey.order(rater), answered_numbers(session, rater), after=position)
        return RedirectResponse(f"/r/{token}/done" if nxt is None else f"/r/{token}/item/{nxt}", status_code=303)

    @app.get("/r/{token}/done", response_class=HTMLResponse)
    def rater_done(request: Request, token: str) -> Response:
        with survey.sessions() as session:
            rater = find_rater(session, token)
            if rater is None:
                return refuse(request, 404, "This link is not valid.")
            done = answered_numbers(session, rater)
            order = survey.order(rater)
        return page(request, "done.html", token=token, n_done=len(done), n_items=survey.n_items,
                    answered=[n in done for n in order])

    @app.get("/r/{token}/image/{position}/{panel}")
    def rater_image(request: Request, token: str, position: int, panel: str) -> Response:
        with survey.sessions() as session:
            rater = find_rater(session, token)
            if rater is None:
                return Response(status_code=404)
        if not PANEL_PATTERN.fullmatch(panel) or not 1 <= position <= survey.n_items:
            return Response(status_code=404)
        item = survey.items[survey.order(rater)[position - 1]]
        if panel == "image":
            name = item.image_file
        elif panel == "legend":
            name = survey.legend_file
        else:
            arm = survey.label_map(rater, item.number).get(panel)
            if arm is None:
                return Response(status_code=404)
            name = survey.panels[(item.id, arm)]
        path = (survey.images_dir / name).resolve()
        if not path.is_relative_to(survey.images_dir) or not path.is_file():
            return Response(status_code=404)
        # the bytes only: no Last-Modified/ETag, whose file times could hint at the order panels were rendered in
        return Response(path.read_bytes(), media_type="image/png")

    # ---------------------------------------------------------------- admin
    def admin_session(session: Session, request: Request) -> AdminSession | None:
        cookie = request.cookies.get(ADMIN_COOKIE, "")
        if not well_formed(cookie):
            return None
        return session.scalar(select(AdminSession).where(AdminSession.token_hash == hash_token(cookie)))

    def progress(session: Session) -> list[dict]:
        counts = dict(session.execute(select(Answer.rater_id, func.count()).group_by(Answer.rater_id)).all())
        return [dict(number=r.number, note=r.note, specialty=r.specialty or "", years=r.years,
                     done=counts.get(r.id, 0), last_seen=_when(r.last_seen))
                for r in session.scalars(select(Rater).order_by(Rater.number))]

    def dashboard(request: Request, session: Session, admin: AdminSession, status: int = 200,
                  links: list[str] | None = None, error: str | None = None) -> HTMLResponse:
        return page(request, "admin.html", status, raters=progress(session), n_items=survey.n_items,
                    arms=list(survey.arm_names.values()), csrf=csrf_token(survey.secret, f"admin:{admin.id}"),
                    links=links or [], error=error, note_max=NOTE_MAX, invites_max=INVITES_MAX, nonce=new_token())

    @app.get("/admin", response_class=HTMLResponse)
    def admin_home(request: Request) -> Response:
        with survey.sessions() as session:
            admin = admin_session(session, request)
            if admin is None:
                return page(request, "admin_login.html", csrf=csrf_token(survey.secret, "login"), error=None)
            return dashboard(request, session, admin)

    @app.post("/admin/login", response_class=HTMLResponse)
    async def admin_login(request: Request) -> Response:
        form = await request.form()
        if not same_origin(request) or not csrf_ok(survey.secret, "login", form.get("csrf")):
            return refuse(request, 403, "The form expired or came from elsewhere. Reload the page and try again.")
        token = str(form.get("token", "")).strip()
        if not well_formed(token) or not hmac.compare_digest(hash_token(token), survey.admin_hash):
            return page(request, "admin_login.html", 401, csrf=csrf_token(survey.secret, "login"),
                        error="That is not the admin token printed by `medattn survey create`.")
        cookie = new_token()

        def save() -> None:
            with survey.writes() as s, s.begin():
                s.add(AdminSession(token_hash=hash_token(cookie)))

        retrying(save)
        response = RedirectResponse("/admin", status_code=303)
        response.set_cookie(ADMIN_COOKIE, cookie, httponly=True, samesite="strict", path="/admin",
                            secure=request.url.scheme == "https")
        return response

    @app.post("/admin/invite", response_class=HTMLResponse)
    async def admin_invite(request: Request) -> Response:
        form = await request.form()
        with survey.sessions() as session:
            admin = admin_session(session, request)
            if admin is None:
                return refuse(request, 401, "Log in at /admin first.")
            if not same_origin(request) or not csrf_ok(survey.secret, f"admin:{admin.id}", form.get("csrf")):
                return refuse(request, 403, "The form expired or came from elsewhere. Reload the page and try again.")
            note, count = str(form.get("note", "")).strip(), str(form.get("count", "1")).strip()
            nonce = str(form.get("nonce", ""))
            valid = count.isdigit() and 1 <= int(count) <= INVITES_MAX and len(note) <= NOTE_MAX
            if not valid or not well_formed(nonce):
                return dashboard(request, session, admin, 422,
                                 error=f"Give 1 to {INVITES_MAX} invitations and a note under {NOTE_MAX} characters.")
        tokens = [new_token() for _ in range(int(count))]

        def save() -> bool:
            with survey.writes() as s, s.begin():
                if s.scalar(select(InviteBatch).where(InviteBatch.nonce == nonce)) is not None:
                    return False
                s.add(InviteBatch(nonce=nonce))
                first = (s.scalar(select(func.max(Rater.number))) or 0) + 1
                s.add_all(Rater(number=first + k, token_hash=hash_token(t), note=note) for k, t in enumerate(tokens))
                return True

        created = retrying(save)
        base = str(request.base_url).rstrip("/")
        with survey.sessions() as session:
            if not created:
                return dashboard(request, session, admin, 409, error="These invitations were already created (the "
                                 "form was sent twice); their links were shown once. Create new ones below if needed.")
            return dashboard(request, session, admin, links=[f"{base}/r/{t}" for t in tokens])

    @app.get("/admin/export.csv")
    def admin_export(request: Request) -> Response:
        with survey.sessions() as session:
            if admin_session(session, request) is None:
                return refuse(request, 401, "Log in at /admin first.")
            frame = answers_frame(session)
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        return Response(buffer.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="answers.csv"'})

    @app.post("/admin/logout")
    async def admin_logout(request: Request) -> Response:
        form = await request.form()
        with survey.sessions() as session:
            admin = admin_session(session, request)
            if admin is None or not csrf_ok(survey.secret, f"admin:{admin.id}", form.get("csrf")):
                return refuse(request, 403, "Not logged in.")
            admin_id = admin.id

        def save() -> None:
            with survey.writes() as s, s.begin():
                s.execute(delete(AdminSession).where(AdminSession.id == admin_id))

        retrying(save)
        response = RedirectResponse("/admin", status_code=303)
        response.delete_cookie(ADMIN_COOKIE, path="/admin")
        return response

    return app


def _when(moment: datetime | None) -> str:
    """Return a timestamp as 'YYYY-MM-DD HH:MM UTC' ('' for never)."""
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""
