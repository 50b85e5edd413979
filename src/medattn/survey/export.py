"""The raw answers as a tidy, de-blinded table: one row per rater x item x rated panel.

This table is what ``medattn survey analyze`` writes as ``answers.csv`` and what the admin page exports;
the analysis and the report section read only this table. Written as CSV (:func:`csv_text`), every text
cell that a spreadsheet would run as a formula is neutralised by the OWASP CSV-injection rule: a cell
starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return (after any leading spaces) gets a
leading single quote, so it shows as text. Numbers stay numbers.
"""

from __future__ import annotations

import io

import pandas as pd
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from medattn.survey.store import Answer, Arm, Item, Rater, Rating

EXPORT_COLUMNS = ("rater", "rater_note", "specialty", "years", "item", "image_id", "image_label", "position",
                  "label", "dataset", "model", "backbone", "attention", "method", "arm", "score", "best",
                  "comment", "answered_at")


def answers_frame(session: Session) -> pd.DataFrame:
    """Return every stored rating with its answer, rater, item and arm (columns ``EXPORT_COLUMNS``)."""
    query = (
        select(Rater.number, Rater.note, Rater.specialty, Rater.years, Item.number, Item.image_id, Item.label,
               Answer.position, Rating.label, Arm.dataset, Arm.model, Arm.backbone, Arm.attention, Arm.method,
               Rating.score, (Answer.best_arm_id == Rating.arm_id), Answer.comment, Answer.answered_at)
        .join(Answer, and_(Answer.rater_id == Rating.rater_id, Answer.item_id == Rating.item_id))
        .join(Rater, Rater.id == Rating.rater_id)
        .join(Item, Item.id == Rating.item_id)
        .join(Arm, Arm.id == Rating.arm_id)
        .order_by(Rater.number, Answer.position, Rating.label)
    )
    columns = [c for c in EXPORT_COLUMNS if c != "arm"]
    frame = pd.DataFrame(session.execute(query).all(), columns=columns)
    frame.insert(EXPORT_COLUMNS.index("arm"), "arm", frame["model"] + "/" + frame["method"])
    frame["best"] = frame["best"].astype(int)
    return frame


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: object) -> object:
    """Return a text cell prefixed with ``'`` when a spreadsheet would read it as a formula; others unchanged."""
    if isinstance(cell, str) and cell.lstrip(" ").startswith(FORMULA_START):
        return "'" + cell
    return cell


def safe_for_spreadsheets(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with every text cell neutralised (:func:`neutralise`)."""
    types = pd.api.types
    text = [c for c in frame.columns if types.is_object_dtype(frame[c]) or types.is_string_dtype(frame[c])]
    return frame.assign(**{c: frame[c].map(neutralise) for c in text})


def csv_text(frame: pd.DataFrame) -> str:
    """Return ``frame`` as CSV text that is safe to open in a spreadsheet."""
    buffer = io.StringIO()
    safe_for_spreadsheets(frame).to_csv(buffer, index=False)
    return buffer.getvalue()


def write_csv(frame: pd.DataFrame, path) -> None:  # noqa: ANN001
    """Write ``frame`` to ``path`` as spreadsheet-safe CSV."""
    safe_for_spreadsheets(frame).to_csv(path, index=False)
