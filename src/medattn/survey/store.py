"""The survey's database: SQLAlchemy tables and an engine factory (SQLite with WAL by default, PostgreSQL by URL).

One survey per database. Tables: ``meta`` (key/value settings: schema version, seed, blinding key,
CSRF secret, hashed admin token, images folder, closed flag), ``arms`` (what a panel shows: a model's
maps made by one method), ``items`` (one image), ``panels`` (the rendered map of one arm on one item),
``raters`` (hashed invitation tokens, profile, revocation), ``answers`` (one row per rater and item:
the chosen best arm, comment) and ``ratings`` (one row per rater, item and arm: the 1-5 score).
Unique constraints make a double submit replace, never duplicate; an answer and its ratings are
written in one transaction, so a killed server leaves either the whole answer or none of it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from sqlalchemy import (
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from medattn.errors import SurveyError

T = TypeVar("T")
SCHEMA_VERSION = 2  # 2: keyed blinding (meta blinding_key), admin session last_seen, rater revoked_at
COMMENT_MAX = 2000
WRITER_OPTION = "medattn_writer"


def utcnow() -> datetime:
    """Return the current time in UTC (timezone-aware)."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the survey tables."""


class Meta(Base):
    """One survey setting."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Arm(Base):
    """What one panel shows: the maps of one model made by one explanation method."""

    __tablename__ = "arms"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    backbone: Mapped[str] = mapped_column(String(200))
    attention: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(50))

    @property
    def name(self) -> str:
        """Return 'model/method', the arm's de-blinded name."""
        return f"{self.model}/{self.method}"


class Item(Base):
    """One image rated by every rater; ``number`` is its fixed 0-based index in the survey."""

    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    image_id: Mapped[str] = mapped_column(String(200))
    label: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    image_file: Mapped[str] = mapped_column(String(100))


class Panel(Base):
    """The rendered map of one arm on one item (a PNG in the images folder, named at random)."""

    __tablename__ = "panels"
    __table_args__ = (UniqueConstraint("item_id", "arm_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    arm_id: Mapped[int] = mapped_column(ForeignKey("arms.id"))
    file: Mapped[str] = mapped_column(String(100))
    run_dir: Mapped[str] = mapped_column(String(500))
    map_row: Mapped[int] = mapped_column(Integer)


class Rater(Base):
    """One invitation: a hashed token, a note for the admin, and the rater's profile once given."""

    __tablename__ = "raters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    specialty: Mapped[str | None] = mapped_column(String(100), nullable=True)
    years: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Answer(Base):
    """A rater's answer to one item: the arm whose map best highlights relevant regions, and a comment."""

    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("rater_id", "item_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    position: Mapped[int] = mapped_column(Integer)
    best_arm_id: Mapped[int] = mapped_column(ForeignKey("arms.id"))
    best_label: Mapped[str] = mapped_column(String(2))
    comment: Mapped[str] = mapped_column(Text, default="")
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Rating(Base):
    """A rater's 1-5 clinical-relevance score of one arm's map on one item, with the label it was shown under."""

    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("rater_id", "item_id", "arm_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    arm_id: Mapped[int] = mapped_column(ForeignKey("arms.id"))
    label: Mapped[str] = mapped_column(String(2))
    score: Mapped[int] = mapped_column(Integer)


class AdminSession(Base):
    """A logged-in admin browser: the hash of its session cookie, when it logged in and when it was last used."""

    __tablename__ = "admin_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class InviteBatch(Base):
    """One submitted invitation form (its one-time nonce), so a resubmitted form creates no second batch."""

    __tablename__ = "invite_batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)


def database_url(target: str | Path) -> str:
    """Return the SQLAlchemy URL of ``target``: a URL is kept, a file path becomes ``sqlite:///PATH``."""
    text = str(target)
    if "://" in text:
        if not text.startswith(("sqlite", "postgresql")):
            raise SurveyError(f"{text.split('://')[0]}://: unsupported database; give a file path (SQLite) "
                              "or a postgresql:// URL")
        return text
    return f"sqlite:///{Path(text).resolve()}"


def sqlite_path(url: str) -> Path | None:
    """Return the file of a ``sqlite:///`` URL, None for other databases."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def _sqlite_pragmas(engine: Engine) -> None:
    """Use WAL and wait for locks; writers (``writer(engine)``) take the write lock at BEGIN, readers never lock."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:  # noqa: ANN001
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITER_OPTION) else "BEGIN")


SQLITE_HEADER = b"SQLite format 3\x00"


def check_survey_file(path: Path) -> None:
    """Refuse, without changing it, a SQLite file that is missing, not SQLite, corrupt or not a survey.

    Runs before :func:`make_engine`, whose connections would switch any SQLite file to WAL mode.
    """
    fix = "give the file written by `medattn survey create`"
    if not path.is_file():
        raise SurveyError(f"{path}: survey database not found; create one with `medattn survey create RUN_DIR`")
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise SurveyError(f"{path}: cannot read the survey database ({exc.strerror}); check its permissions") from None
    if header != SQLITE_HEADER:
        raise SurveyError(f"{path}: not a SQLite database; {fix}")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            conn.execute("PRAGMA quick_check(1)").fetchone()
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise SurveyError(f"{path}: not a readable survey database ({exc}); {fix}") from None
    if "seed" not in meta:
        raise SurveyError(schema_problem(meta, str(path)))


def make_engine(target: str | Path, *, must_exist: bool = True) -> Engine:
    """Return an engine on the survey database at ``target`` (file path or URL)."""
    url = database_url(target)
    path = sqlite_path(url)
    if path is not None:
        if must_exist:
            check_survey_file(path)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Create every survey table (refusing a database that already holds a survey)."""
    with Session(engine) as session:
        try:
            if session.scalar(select(Meta).where(Meta.key == "seed")) is not None:
                raise SurveyError(f"{engine.url.render_as_string(hide_password=True)}: already holds a survey; "
                                  "choose a new --out")
        except (OperationalError, DBAPIError):
            session.rollback()  # no tables yet
    Base.metadata.create_all(engine)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a sessionmaker that keeps loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def writer(engine: Engine) -> Engine:
    """Return ``engine`` marked for writing: on SQLite its transactions start with BEGIN IMMEDIATE.

    A write lock taken up front means two writers queue (busy_timeout) instead of both reading and then
    failing to upgrade; plain reads stay lock-free under WAL. PostgreSQL ignores the mark.
    """
    return engine.execution_options(**{WRITER_OPTION: True})


def read_meta(session: Session) -> dict[str, str]:
    """Return every survey setting as a dict."""
    return {m.key: m.value for m in session.scalars(select(Meta))}


# columns added after schema 1, as (table, column, SQL type); upgrade_schema adds them to an older database
ADDED_COLUMNS = (("admin_sessions", "last_seen", "TIMESTAMP"), ("raters", "revoked_at", "TIMESTAMP"))


def schema_problem(meta: dict[str, str], where: str) -> str | None:
    """Return why a survey database with settings ``meta`` cannot be served by this version (None when it can)."""
    if "seed" not in meta:
        return f"{where}: not a survey database (no settings); create one with `medattn survey create`"
    version = int(meta.get("schema", "1"))
    if version < SCHEMA_VERSION:
        return (f"{where}: survey made by an older medattn (schema {version}): its panel labels follow from the "
                f"public seed and rater number, so a rater can undo the blinding; run `medattn survey upgrade "
                f"{where}` (answers are kept, each rater's remaining items get new secret labels)")
    if version > SCHEMA_VERSION:
        return f"{where}: survey schema {version} is newer than this medattn ({SCHEMA_VERSION}); upgrade medattn"
    return None


def upgrade_schema(engine: Engine, new_key: Callable[[], str]) -> bool:
    """Bring a schema-1 survey to ``SCHEMA_VERSION`` (columns, a blinding key); return False when already there."""
    with Session(writer(engine)) as session, session.begin():
        meta = read_meta(session)
        if "seed" not in meta:
            raise SurveyError(schema_problem(meta, engine.url.render_as_string(hide_password=True)))
        if int(meta.get("schema", "1")) >= SCHEMA_VERSION:
            return False
        columns = {t: {c["name"] for c in inspect(session.connection()).get_columns(t)} for t, _, _ in ADDED_COLUMNS}
        for table, column, kind in ADDED_COLUMNS:
            if column not in columns[table]:
                session.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"))
        session.merge(Meta(key="blinding_key", value=new_key()))
        session.merge(Meta(key="schema", value=str(SCHEMA_VERSION)))
    return True


def retrying(work: Callable[[], T], attempts: int = 8) -> T:
    """Return ``work()``, retried on lock timeouts and unique-key races between concurrent writers."""
    for attempt in range(attempts):
        try:
            return work()
        except (OperationalError, IntegrityError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.02 * 2**attempt)
    raise AssertionError("unreachable")
