"""The admin pages: log in, invite raters, revoke a link, close the survey, progress, CSV export, log out.

An admin session is a random cookie stored hashed; it ends after :data:`medattn.survey.app.ADMIN_IDLE`
without a request or :data:`medattn.survey.app.ADMIN_ABSOLUTE` after login, and "log out everywhere"
ends every session. Invitation links start with the configured base URL, never with the request's
Host header. Closing the survey makes answers read-only; the export keeps working.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from medattn.survey.app import ADMIN_COOKIE, Refused, Survey
from medattn.survey.deps import EXPIRED, current_admin, db_session, get_survey, posting_admin, same_origin
from medattn.survey.export import answers_frame, csv_text
from medattn.survey.fields import clean_text, whole_number
from medattn.survey.security import csrf_ok, csrf_token, hash_token, new_token, well_formed
from medattn.survey.store import AdminSession, Answer, InviteBatch, Meta, Rater, retrying

router = APIRouter(prefix="/admin")
NOTE_MAX = 200
INVITES_MAX = 50
TOUCH_EVERY = timedelta(minutes=1)  # last_seen is written at most this often per session
SurveyDep = Annotated[Survey, Depends(get_survey)]
SessionDep = Annotated[Session, Depends(db_session)]


def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
    """Return template ``name`` rendered with ``context``."""
    return request.app.state.templates.TemplateResponse(request, name, context, status_code=status)


def _when(moment: datetime | None) -> str:
    """Return a timestamp as 'YYYY-MM-DD HH:MM UTC' ('' for never)."""
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def progress(session: Session) -> list[dict]:
    """Return one row per invitation: number, note, profile, answers given, last activity, revoked."""
    counts = dict(session.execute(select(Answer.rater_id, func.count()).group_by(Answer.rater_id)).all())
    return [dict(number=r.number, note=r.note, specialty=r.specialty or "", years=r.years,
                 done=counts.get(r.id, 0), last_seen=_when(r.last_seen), revoked=r.revoked_at is not None)
            for r in session.scalars(select(Rater).order_by(Rater.number))]


def touch(survey: Survey, admin: AdminSession) -> None:
    """Record activity of an admin session (for the idle expiry), at most once a minute."""
    from medattn.survey.app import aware

    now = survey.clock()
    if admin.last_seen is None or now - aware(admin.last_seen) > TOUCH_EVERY:
        def save() -> None:
            with survey.writes() as s, s.begin():
                s.get(AdminSession, admin.id).last_seen = now

        retrying(save)


def dashboard(request: Request, survey: Survey, session: Session, admin: AdminSession, status: int = 200,
              links: list[str] | None = None, error: str | None = None) -> HTMLResponse:
    """Return the admin dashboard."""
    touch(survey, admin)
    return page(request, "admin.html", status, raters=progress(session), n_items=survey.n_items,
                arms=list(survey.arm_names.values()), csrf=csrf_token(survey.secret, f"admin:{admin.id}"),
                links=links or [], error=error, note_max=NOTE_MAX, invites_max=INVITES_MAX, nonce=new_token(),
                closed=survey.closed(session))


@router.get("", response_class=HTMLResponse)
def admin_home(request: Request, survey: SurveyDep, session: SessionDep) -> Response:
    """Show the dashboard, or the login form without a live session."""
    admin = survey.admin_session(session, request.cookies.get(ADMIN_COOKIE, ""))
    if admin is None:
        return page(request, "admin_login.html", csrf=csrf_token(survey.secret, "login"), error=None)
    return dashboard(request, survey, session, admin)


@router.post("/login", response_class=HTMLResponse)
def admin_login(request: Request, survey: SurveyDep, csrf: Annotated[str, Form()] = "",
                token: Annotated[str, Form()] = "") -> Response:
    """Start an admin session for the admin token printed by `medattn survey create`."""
    if not same_origin(request) or not csrf_ok(survey.secret, "login", csrf):
        raise Refused(403, EXPIRED)
    token = token.strip()
    if not well_formed(token) or not hmac.compare_digest(hash_token(token), survey.admin_hash):
        return page(request, "admin_login.html", 401, csrf=csrf_token(survey.secret, "login"),
                    error="That is not the admin token printed by `medattn survey create`.")
    cookie, now = new_token(), survey.clock()

    def save() -> None:
        with survey.writes() as s, s.begin():
            s.add(AdminSession(token_hash=hash_token(cookie), created_at=now, last_seen=now))

    retrying(save)
    response = RedirectResponse("/admin", status_code=303)
    response.set_cookie(ADMIN_COOKIE, cookie, httponly=True, samesite="strict", path="/admin",
                        secure=request.url.scheme == "https")
    return response


@router.post("/invite", response_class=HTMLResponse)
def admin_invite(request: Request, survey: SurveyDep, session: SessionDep,
                 admin: Annotated[AdminSession, Depends(posting_admin)], note: Annotated[str, Form()] = "",
                 count: Annotated[str, Form()] = "1", nonce: Annotated[str, Form()] = "") -> Response:
    """Create ``count`` invitation links (shown once); a resubmitted form (same nonce) creates none."""
    note, number = clean_text(note), whole_number(count, 1, INVITES_MAX)
    if number is None or len(note) > NOTE_MAX or not well_formed(nonce):
        return dashboard(request, survey, session, admin, 422,
                         error=f"Give 1 to {INVITES_MAX} invitations and a note under {NOTE_MAX} characters.")
    tokens = [new_token() for _ in range(number)]

    def save() -> bool:
        with survey.writes() as s, s.begin():
            if s.scalar(select(InviteBatch).where(InviteBatch.nonce == nonce)) is not None:
                return False
            s.add(InviteBatch(nonce=nonce))
            first = (s.scalar(select(func.max(Rater.number))) or 0) + 1
            s.add_all(Rater(number=first + k, token_hash=hash_token(t), note=note) for k, t in enumerate(tokens))
            return True

    session.rollback()  # end the read transaction: its connection is free while the write waits, reads see it
    created = retrying(save)
    if not created:
        return dashboard(request, survey, session, admin, 409, error="These invitations were already created (the "
                         "form was sent twice); their links were shown once. Create new ones below if needed.")
    return dashboard(request, survey, session, admin, links=[f"{survey.base_url}/r/{t}" for t in tokens])


@router.post("/revoke", response_class=HTMLResponse)
def admin_revoke(request: Request, survey: SurveyDep, session: SessionDep,
                 admin: Annotated[AdminSession, Depends(posting_admin)],
                 rater: Annotated[str, Form()] = "") -> Response:
    """Withdraw rater ``rater``'s link: it stops working at once; their answers stay in the export."""
    number = whole_number(rater, 1, 999)
    target = session.scalar(select(Rater).where(Rater.number == number)) if number is not None else None
    if target is None:
        return dashboard(request, survey, session, admin, 422, error=f"There is no rater {rater!r}.")
    target_id, now = target.id, survey.clock()

    def save() -> None:
        with survey.writes() as s, s.begin():
            r = s.get(Rater, target_id)
            r.revoked_at = r.revoked_at or now

    session.rollback()  # give the read connection back while the write may wait for the lock
    retrying(save)
    return RedirectResponse("/admin", status_code=303)


@router.post("/close", response_class=HTMLResponse)
def admin_close(survey: SurveyDep, admin: Annotated[AdminSession, Depends(posting_admin)]) -> Response:
    """Close the survey: no answer or profile is accepted afterwards; pages and the export stay."""

    def save() -> None:
        with survey.writes() as s, s.begin():
            s.merge(Meta(key="closed", value="1"))

    retrying(save)
    return RedirectResponse("/admin", status_code=303)


@router.get("/export.csv")
def admin_export(survey: SurveyDep, session: SessionDep,
                 admin: Annotated[AdminSession, Depends(current_admin)]) -> Response:
    """Download every answer, de-blinded, as CSV (cells neutralised against formula injection)."""
    touch(survey, admin)
    return Response(csv_text(answers_frame(session)), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="answers.csv"'})


def _ended(response: Response) -> Response:
    response.delete_cookie(ADMIN_COOKIE, path="/admin")
    return response


@router.post("/logout")
def admin_logout(survey: SurveyDep, admin: Annotated[AdminSession, Depends(posting_admin)]) -> Response:
    """End this admin session."""
    def save() -> None:
        with survey.writes() as s, s.begin():
            s.execute(delete(AdminSession).where(AdminSession.id == admin.id))

    retrying(save)
    return _ended(RedirectResponse("/admin", status_code=303))


@router.post("/logout-everywhere")
def admin_logout_everywhere(survey: SurveyDep, admin: Annotated[AdminSession, Depends(posting_admin)]) -> Response:
    """End every admin session (every browser logged in with the admin token)."""
    def save() -> None:
        with survey.writes() as s, s.begin():
            s.execute(delete(AdminSession))

    retrying(save)
    return _ended(RedirectResponse("/admin", status_code=303))

