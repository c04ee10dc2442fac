"""Conversations and the exchange log, in the suite's database (SQLite by default, PostgreSQL by URL).

``chatbot_sessions`` keeps, per conversation id, the last intent, the slots collected so
far and what the bot is waiting for (a slot value, or the answer to a clarifying
question); sessions expire. ``chatbot_exchanges`` logs every exchange with its
prediction, answer source, citations and the user's rating or correction. A turn (session
update + exchange) is written in one transaction. Tables are created and changed by the
plugin's migrations (``plugins/chatbot/migrations``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from suite.errors import DataError, NotFoundError

CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
SOURCES = ("template", "retrieval", "clarify", "handoff", "refusal")
RATINGS = ("up", "down")

metadata = MetaData()
sessions = Table(
    "chatbot_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("last_intent", String(200)),
    Column("slots", JSON, nullable=False, default=dict),
    Column("pending", JSON),  # {"slot": name} or {"clarify": [a, b], "message": text}
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False, index=True),
)
exchanges = Table(
    "chatbot_exchanges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(64), nullable=False, index=True),  # no FK: the log outlives sessions
    Column("message", Text, nullable=False),
    Column("intent", String(200)),
    Column("confidence", Float),
    Column("top2", JSON),  # [[label, probability], [label, probability]]
    Column("answer", Text, nullable=False),
    Column("source", String(16), nullable=False),
    Column("citations", JSON),
    Column("handoff_reason", Text),
    Column("model_version", String(200)),
    Column("rating", String(8)),
    Column("corrected_intent", String(200)),
    Column("created_at", DateTime, nullable=False, index=True),
    Column("rated_at", DateTime),
)


def utcnow() -> datetime:
    """Naive UTC: SQLite has no time zones, so every timestamp is stored as UTC without one."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_conversation_id() -> str:
    return uuid.uuid4().hex


def check_conversation_id(value: str) -> str:
    if not isinstance(value, str) or not CONVERSATION_ID.match(value):
        raise DataError("conversation_id must be 1-64 characters: letters, digits, '_', '-', '.', ':'")
    return value


@dataclass
class SessionState:
    id: str
    last_intent: str | None = None
    slots: dict[str, str] = field(default_factory=dict)
    pending: dict[str, Any] | None = None
    is_new: bool = True
    expired: bool = False


@dataclass
class Exchange:
    session_id: str
    message: str
    answer: str
    source: str
    intent: str | None = None
    confidence: float | None = None
    top2: list[list[Any]] | None = None
    citations: list[dict[str, Any]] | None = None
    handoff_reason: str | None = None
    model_version: str | None = None


class ConversationStore:
    """Sessions and exchanges over one SQLAlchemy engine whose schema the migrations made (``ctx.database``)."""

    def __init__(self, engine: Engine, ttl_minutes: float = 30.0) -> None:
        self.engine = engine
        self.ttl = timedelta(minutes=ttl_minutes)

    # -- sessions ------------------------------------------------------------------------
    def load_session(self, conversation_id: str | None, now: datetime | None = None) -> SessionState:
        """The conversation's state; a fresh one for a new id, an unknown id or an expired session."""
        if conversation_id is None:
            return SessionState(new_conversation_id())
        check_conversation_id(conversation_id)
        now = now or utcnow()
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions).where(sessions.c.id == conversation_id)).mappings().first()
        if row is None:
            return SessionState(conversation_id)
        if row["expires_at"] <= now:
            return SessionState(conversation_id, is_new=False, expired=True)
        return SessionState(conversation_id, row["last_intent"], dict(row["slots"] or {}), row["pending"], is_new=False)

    def record_turn(self, state: SessionState, exchange: Exchange, now: datetime | None = None) -> int:
        """Save the session and log the exchange in one transaction; return the exchange id."""
        now = now or utcnow()
        values = {
            "last_intent": state.last_intent,
            "slots": state.slots,
            "pending": state.pending,
            "updated_at": now,
            "expires_at": now + self.ttl,
        }
        for attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    changed = conn.execute(update(sessions).where(sessions.c.id == state.id).values(**values)).rowcount
                    if not changed:
                        conn.execute(insert(sessions).values(id=state.id, created_at=now, **values))
                    result = conn.execute(insert(exchanges).values(created_at=now, **exchange.__dict__))
                    return int(result.inserted_primary_key[0])
            except IntegrityError:
                if attempt:  # two first messages of one new conversation raced: the second updates
                    raise
        raise AssertionError("unreachable")

    def purge_expired(self, now: datetime | None = None) -> int:
        with self.engine.begin() as conn:
            return conn.execute(delete(sessions).where(sessions.c.expires_at <= (now or utcnow()))).rowcount

    # -- exchanges and feedback ----------------------------------------------------------
    def exchange(self, exchange_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(exchanges).where(exchanges.c.id == exchange_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"no chatbot exchange with id {exchange_id}")
        return dict(row)

    def conversation(self, conversation_id: str, limit: int = 100) -> list[dict[str, Any]]:
        query = select(exchanges).where(exchanges.c.session_id == conversation_id).order_by(exchanges.c.id).limit(limit)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def record_feedback(self, exchange_id: int, rating: str | None, corrected_intent: str | None = None) -> dict:
        if rating is not None and rating not in RATINGS:
            raise DataError(f"rating must be 'up' or 'down', not {rating!r}")
        if rating is None and corrected_intent is None:
            raise DataError("feedback needs a rating or a corrected intent")
        values: dict[str, Any] = {"rated_at": utcnow()}
        if rating is not None:
            values["rating"] = rating
        if corrected_intent is not None:
            values["corrected_intent"] = corrected_intent
        with self.engine.begin() as conn:
            changed = conn.execute(update(exchanges).where(exchanges.c.id == exchange_id).values(**values)).rowcount
        if not changed:
            raise NotFoundError(f"no chatbot exchange with id {exchange_id}")
        return self.exchange(exchange_id)

    def messages(self, limit: int = 100_000) -> list[str]:
        """The newest ``limit`` logged customer messages (pre-training material)."""
        query = select(exchanges.c.message).order_by(exchanges.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def training_rows(self, include_confirmed: bool = False) -> list[tuple[str, str]]:
        """(message, intent) from corrections, and optionally from answers rated up."""
        query = select(exchanges.c.message, exchanges.c.intent, exchanges.c.corrected_intent, exchanges.c.rating)
        query = query.order_by(exchanges.c.id)
        rows = []
        with self.engine.connect() as conn:
            for message, intent, corrected, rating in conn.execute(query):
                if corrected:
                    rows.append((message, corrected))
                elif include_confirmed and rating == "up" and intent:
                    rows.append((message, intent))
        return list(dict.fromkeys(rows))  # the same message and label once

    def stats(self) -> dict[str, Any]:
        from sqlalchemy import func

        with self.engine.connect() as conn:
            by_source = dict(conn.execute(select(exchanges.c.source, func.count()).group_by(exchanges.c.source)).all())
            ratings = dict(
                conn.execute(
                    select(exchanges.c.rating, func.count())
                    .where(exchanges.c.rating.is_not(None))
                    .group_by(exchanges.c.rating)
                ).all()
            )
            corrections = conn.execute(
                select(func.count()).select_from(exchanges).where(exchanges.c.corrected_intent.is_not(None))
            ).scalar_one()
        return {
            "exchanges": sum(by_source.values()),
            "by_source": by_source,
            "ratings": ratings,
            "corrections": corrections,
        }
