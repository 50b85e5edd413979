"""The rater's pages: profile, items in the rater's own order, images by position and label, the end page.

Plain ``def`` handlers (run in FastAPI's thread pool: a write waiting for the database lock blocks one
worker thread, not the server). The profile is fixed once the first answer is stored (changing it
would move earlier answers into another experience band); a closed survey shows pages but takes no answers.
"""

from __future__ import annotations

import inspect
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from medattn.survey.app import Refused, Survey
from medattn.survey.blinding import LABELS
from medattn.survey.deps import current_rater, db_session, get_survey, posting_rater
from medattn.survey.fields import clean_text, whole_number
from medattn.survey.security import csrf_token
from medattn.survey.store import COMMENT_MAX, Answer, Item, Rater, Rating, retrying, utcnow

router = APIRouter(prefix="/r/{token}")
SPECIALTIES = ("radiology", "pathology", "dermatology", "ophthalmology", "oncology", "internal medicine",
               "general practice", "other clinical", "non-clinical researcher")
YEARS_MAX = 70
PANEL_PATTERN = re.compile(r"^(image|legend|[A-Z])$")
SurveyDep = Annotated[Survey, Depends(get_survey)]
SessionDep = Annotated[Session, Depends(db_session)]


def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
    """Return template ``name`` rendered with ``context``."""
    return request.app.state.templates.TemplateResponse(request, name, context, status_code=status)


def answered_numbers(session: Session, rater: Rater) -> set[int]:
    """Return the item numbers ``rater`` has answered."""
    rows = session.execute(select(Item.number).join(Answer, Answer.item_id == Item.id)
                           .where(Answer.rater_id == rater.id))
    return {r[0] for r in rows}


def next_position(order: list[int], done: set[int], after: int = 0) -> int | None:
    """Return the first unanswered position after ``after`` (wrapping), None when all are answered."""
    pending = [p for p, n in enumerate(order, 1) if n not in done]
    later = [p for p in pending if p > after]
    return (later or pending or [None])[0]


def profile_page(request: Request, survey: Survey, rater: Rater, token: str, status: int = 200,
                 error: str | None = None) -> HTMLResponse:
    """Return the profile form."""
    return page(request, "profile.html", status, token=token, specialties=SPECIALTIES, years_max=YEARS_MAX,
                csrf=csrf_token(survey.secret, f"rater:{rater.id}"), n_items=survey.n_items, error=error)


@router.get("", response_class=HTMLResponse)
def rater_start(request: Request, token: str, survey: SurveyDep, session: SessionDep,
                rater: Annotated[Rater, Depends(current_rater)]) -> Response:
    """Show the profile form, or go to the first unanswered item (or the end page)."""
    if rater.specialty is None:
        return profile_page(request, survey, rater, token)
    position = next_position(survey.order(rater), answered_numbers(session, rater))
    return RedirectResponse(f"/r/{token}/done" if position is None else f"/r/{token}/item/{position}", 303)


def _refuse_if_closed(survey: Survey, session: Session) -> None:
    if survey.closed(session):
        raise Refused(409, "The survey is closed; thank you. Your answers are kept and can no longer be changed.")


@router.post("/profile", response_class=HTMLResponse)
def rater_profile(request: Request, token: str, survey: SurveyDep, session: SessionDep,
                  rater: Annotated[Rater, Depends(posting_rater)], specialty: Annotated[str, Form()] = "",
                  years: Annotated[str, Form()] = "") -> Response:
    """Store the rater's specialty and years of experience (refused once an answer is stored)."""
    _refuse_if_closed(survey, session)
    if answered_numbers(session, rater):
        raise Refused(409, "Your profile is fixed once you have answered; ask the organiser to correct it.")
    number = whole_number(years, 0, YEARS_MAX)
    if specialty not in SPECIALTIES or number is None:
        return profile_page(request, survey, rater, token, 422,
                            f"Choose a specialty from the list and give whole years between 0 and {YEARS_MAX}.")
    rater_id = rater.id

    def save() -> None:
        with survey.writes() as s, s.begin():
            if s.scalar(select(Answer.id).where(Answer.rater_id == rater_id).limit(1)) is not None:
                return  # an answer arrived meanwhile: the profile stays as it was
            r = s.get(Rater, rater_id)
            r.specialty, r.years, r.last_seen = specialty, number, utcnow()

    session.rollback()  # give the read connection back while the write may wait for the lock
    retrying(save)
    return RedirectResponse(f"/r/{token}", status_code=303)


def item_context(session: Session, survey: Survey, rater: Rater, token: str, position: int) -> dict:
    """Return the template context of item page ``position`` (stored answer shown under today's labels)."""
    order = survey.order(rater)
    item = survey.items[order[position - 1]]
    label_map = survey.label_map(rater, item.number)
    label_of = {arm: label for label, arm in label_map.items()}
    answer = session.scalar(select(Answer).where(Answer.rater_id == rater.id, Answer.item_id == item.id))
    scores = {}
    if answer is not None:
        scores = {label_of[r.arm_id]: r.score for r in session.scalars(
            select(Rating).where(Rating.rater_id == rater.id, Rating.item_id == item.id))}
    done = answered_numbers(session, rater)
    return dict(token=token, position=position, n_items=survey.n_items, labels=list(label_map),
                class_name=survey.class_name(item.label), best=label_of[answer.best_arm_id] if answer else None,
                scores=scores, comment=answer.comment if answer else "", n_done=len(done),
                csrf=csrf_token(survey.secret, f"rater:{rater.id}"), comment_max=COMMENT_MAX, error=None,
                answered=[n in done for n in order])


def _check_position(survey: Survey, position: int) -> None:
    if not 1 <= position <= survey.n_items:
        raise Refused(404, f"There is no item {position}; the survey has {survey.n_items}.")


@router.get("/item/{position}", response_class=HTMLResponse)
def rater_item(request: Request, token: str, position: int, survey: SurveyDep, session: SessionDep,
               rater: Annotated[Rater, Depends(current_rater)]) -> Response:
    """Show item ``position`` of the rater's order with their stored answer, if any."""
    _check_position(survey, position)
    if rater.specialty is None:
        return RedirectResponse(f"/r/{token}", status_code=303)
    return page(request, "item.html", **item_context(session, survey, rater, token, position))


def _score_fields(**fields: str | None) -> dict[str, str]:
    """Return the posted ``score_X`` fields as {label: value} (a dependency whose signature lists every label)."""
    return {name.removeprefix("score_"): value for name, value in fields.items() if value is not None}


_score_fields.__signature__ = inspect.Signature([
    inspect.Parameter(f"score_{label}", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[str | None, Form()]) for label in LABELS])


def parse_answer(best: str, scores: dict[str, str], comment: str, labels: list[str]) -> tuple[dict | None, str | None]:
    """Return the checked answer (best label, {label: 1-5}, comment) or the message to show."""
    if best not in labels:
        return None, f"Choose the map that best highlights the relevant regions ({', '.join(labels)})."
    extra = sorted(f"score_{k}" for k in scores if k not in labels)
    if extra:
        return None, f"Unknown field(s): {', '.join(extra)}."
    parsed = {label: whole_number(scores.get(label), 1, 5) for label in labels}
    missing = [label for label, value in parsed.items() if value is None]
    if missing:
        return None, f"Rate every map from 1 to 5 (map {missing[0]} is missing or out of range)."
    comment = clean_text(comment)
    if len(comment) > COMMENT_MAX:
        return None, f"The comment is {len(comment)} characters long; keep it under {COMMENT_MAX}."
    return {"best": best, "scores": parsed, "comment": comment}, None


@router.post("/item/{position}", response_class=HTMLResponse)
def rater_answer(request: Request, token: str, position: int, survey: SurveyDep, session: SessionDep,
                 rater: Annotated[Rater, Depends(posting_rater)],
                 scores: Annotated[dict[str, str], Depends(_score_fields)],
                 best: Annotated[str, Form()] = "", comment: Annotated[str, Form()] = "") -> Response:
    """Store the answer to item ``position`` (replacing an earlier one) and go to the next unanswered item."""
    _check_position(survey, position)
    _refuse_if_closed(survey, session)
    if rater.specialty is None:
        raise Refused(409, "Fill in your profile first.")
    item = survey.items[survey.order(rater)[position - 1]]
    label_map = survey.label_map(rater, item.number)
    answer, error = parse_answer(best, scores, comment, list(label_map))
    if error:
        context = item_context(session, survey, rater, token, position)
        context.update(error=error, best=best if best in label_map else None, comment=clean_text(comment)[:COMMENT_MAX])
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

    # end the read transaction first: its connection goes back to the pool while the write may wait for the
    # lock (else waiting posts starve other raters' pages of connections), and the reads below see the write
    session.rollback()
    retrying(save)
    nxt = next_position(survey.order(rater), answered_numbers(session, rater), after=position)
    return RedirectResponse(f"/r/{token}/done" if nxt is None else f"/r/{token}/item/{nxt}", status_code=303)


@router.get("/done", response_class=HTMLResponse)
def rater_done(request: Request, token: str, survey: SurveyDep, session: SessionDep,
               rater: Annotated[Rater, Depends(current_rater)]) -> Response:
    """Show how many items the rater has answered."""
    done = answered_numbers(session, rater)
    return page(request, "done.html", token=token, n_done=len(done), n_items=survey.n_items,
                answered=[n in done for n in survey.order(rater)])


@router.get("/image/{position}/{panel}")
def rater_image(position: int, panel: str, survey: SurveyDep,
                rater: Annotated[Rater, Depends(current_rater)]) -> Response:
    """Return the image, the legend or the map under label ``panel`` of item ``position`` (PNG bytes only)."""
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
