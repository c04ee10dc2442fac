"""Routed tickets in the suite's database (``ctx.database``: SQLite by default, PostgreSQL by URL).

The table is created and changed by the plugin's own migration history (``migrations/``,
returned by the ``suite_migrations`` hook): the core runs it before handing out ``ctx.database``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Boolean, Column, DateTime, Float, MetaData, String, Table, Text, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from suite_ticket_router.data import MAX_ID_CHARS

metadata = MetaData()
routed_table = Table(
    "tickets_routed",  # plugin tables are prefixed with the plugin's name
    metadata,
    Column("ticket_id", String(MAX_ID_CHARS), primary_key=True),
    Column("text", Text, nullable=False),
    Column("queue", String(100), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("needs_review", Boolean, nullable=False),
    Column("model", String(200), nullable=False),
    Column("routed_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class RoutedTicket:
    ticket_id: str
    text: str
    queue: str
    confidence: float
    needs_review: bool
    model: str
    routed_at: datetime

    def to_dict(self) -> dict:
        return {**vars(self), "routed_at": self.routed_at.isoformat()}


def now() -> datetime:
    return datetime.now(timezone.utc)


OnStored = Callable[[Connection, list["RoutedTicket"]], object]


class RoutedStore:
    """Each ticket is routed once: the ticket id is the primary key."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def routed_ids(self, ids: Iterable[str]) -> set[str]:
        with self.engine.connect() as connection:
            return _existing(connection, ids)

    def add(self, tickets: Sequence[RoutedTicket], on_stored: OnStored | None = None) -> int:
        """Insert the tickets not stored yet, all in one transaction; return how many were new.

        ``on_stored(connection, new_tickets)`` runs in that transaction (to queue an alert
        about them: stored and queued together, or neither).
        """
        if not tickets:
            return 0
        try:
            return self._insert_new(tickets, on_stored)
        except IntegrityError:  # another run stored some of them between our select and insert
            return self._insert_new(tickets, on_stored)

    def _insert_new(self, tickets: Sequence[RoutedTicket], on_stored: OnStored | None) -> int:
        with self.engine.begin() as connection:
            existing = _existing(connection, [t.ticket_id for t in tickets])
            new = [t for t in tickets if t.ticket_id not in existing]
            if new:
                connection.execute(routed_table.insert(), [vars(t) for t in new])
                if on_stored is not None:
                    on_stored(connection, new)
        return len(new)

    def recent(self, limit: int = 20, queue: str | None = None) -> list[RoutedTicket]:
        query = select(routed_table).order_by(routed_table.c.routed_at.desc(), routed_table.c.ticket_id).limit(limit)
        if queue:
            query = query.where(routed_table.c.queue == queue)
        with self.engine.connect() as connection:
            return [_as_ticket(row._mapping) for row in connection.execute(query)]

    def count(self) -> int:
        with self.engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(routed_table)) or 0


def _existing(connection: Connection, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` are stored, asked in bounded IN lists."""
    wanted = list(dict.fromkeys(ids))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        query = select(routed_table.c.ticket_id).where(routed_table.c.ticket_id.in_(wanted[start : start + 500]))
        found.update(connection.scalars(query))
    return found


def _as_ticket(row) -> RoutedTicket:
    routed_at = row["routed_at"]
    if routed_at.tzinfo is None:  # SQLite keeps no time zone; every value was written in UTC
        routed_at = routed_at.replace(tzinfo=timezone.utc)
    return RoutedTicket(**{**dict(row), "routed_at": routed_at})
