"""FastAPI dependencies of the survey: the survey, a database session, the current rater, the admin and CSRF.

Each raises :class:`medattn.survey.app.Refused` (rendered as the message page) instead of returning None,
so handlers receive only a valid rater or admin. CSRF tokens are checked together with the Origin header.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Form, Request
from sqlalchemy.orm import Session

from medattn.survey.app import ADMIN_COOKIE, Refused, Survey
from medattn.survey.security import csrf_ok
from medattn.survey.store import AdminSession, Rater

EXPIRED = "The form expired or came from elsewhere. Reload the page and try again."


def get_survey(request: Request) -> Survey:
    """Return the served survey."""
    return request.app.state.survey


def db_session(survey: Annotated[Survey, Depends(get_survey)]) -> Iterator[Session]:
    """Yield a read session (closed after the response)."""
    with survey.sessions() as session:
        yield session


def same_origin(request: Request) -> bool:
    """Return True when the request has no Origin header or one naming this host."""
    origin = request.headers.get("origin")
    return origin is None or origin.split("://", 1)[-1] == request.headers.get("host", "")


def current_rater(token: str, survey: Annotated[Survey, Depends(get_survey)],
                  session: Annotated[Session, Depends(db_session)]) -> Rater:
    """Return the rater of the path's token (404 when unknown or revoked)."""
    rater = survey.find_rater(session, token)
    if rater is None:
        raise Refused(404, "This link is not valid. Ask the survey organiser for your link.")
    return rater


def posting_rater(request: Request, rater: Annotated[Rater, Depends(current_rater)],
                  survey: Annotated[Survey, Depends(get_survey)], csrf: Annotated[str, Form()] = "") -> Rater:
    """Return the rater of a form post whose origin and CSRF token are right (403 otherwise)."""
    if not same_origin(request) or not csrf_ok(survey.secret, f"rater:{rater.id}", csrf):
        raise Refused(403, EXPIRED)
    return rater


def current_admin(request: Request, survey: Annotated[Survey, Depends(get_survey)],
                  session: Annotated[Session, Depends(db_session)]) -> AdminSession:
    """Return the live admin session of the request's cookie (401 when absent or expired)."""
    admin = survey.admin_session(session, request.cookies.get(ADMIN_COOKIE, ""))
    if admin is None:
        raise Refused(401, "Log in at /admin first (sessions end after 30 idle minutes or 12 hours).")
    return admin


def posting_admin(request: Request, admin: Annotated[AdminSession, Depends(current_admin)],
                  survey: Annotated[Survey, Depends(get_survey)], csrf: Annotated[str, Form()] = "") -> AdminSession:
    """Return the admin session of a form post whose origin and CSRF token are right (403 otherwise)."""
    if not same_origin(request) or not csrf_ok(survey.secret, f"admin:{admin.id}", csrf):
        raise Refused(403, EXPIRED)
    return admin
