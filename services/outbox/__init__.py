"""The alert outbox: each (alert, sink) delivery is a row written with the alert, sent by a worker.

A monitoring run must never wait on a slow webhook, and a crash between storing an alert
and sending it must not lose it. So the code that raises an alert calls
:meth:`AlertOutbox.enqueue` on its own open transaction: the alert and one delivery row
per sink are committed together or not at all. A delivery worker (the scheduler's
``suite.deliver_alerts`` job, and one pass after ``suite monitor run-once``) then, row by row:

1. claims a due row with one atomic ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
   LOCKED)`` (PostgreSQL; under SQLite's single writer the same UPDATE is atomic), setting
   its worker id and a lease, so two workers never send the same row;
2. makes one attempt through the sink, never sleeping, with the row's idempotency key
   (the ``Idempotency-Key`` header of a webhook, the Message-ID of an e-mail);
3. records the attempt and marks the row ``sent``; or ``failed`` with the next attempt
   after an exponential back-off with full jitter; or ``given_up`` with the reason, when
   the receiver refused it outright or it has been failing for ``delivery_max_age``.

A worker that dies mid-send leaves its claim to expire (``lease``) and the row is sent
again: delivery is at least once, and receivers drop repeats by the key.

CONTRACT:
    outbox_metadata; delivery_table ("alert_deliveries"); attempt_table ("alert_delivery_attempts")
    PENDING, FAILED, SENT, GIVEN_UP    # statuses; OPEN = (PENDING, FAILED) are still to be sent
    @dataclass DeliveryRecord  (a row; .to_dict(), .summary())
    @dataclass AttemptRecord   (one attempt; .to_dict())
    @dataclass PassResult(sent=0, failed=0, given_up=0); .to_dict(); str()
    def backoff_delay(attempt: int, base: timedelta, cap: timedelta, rng=random) -> timedelta
    def record_outcome(sink: str, outcome: str) -> None   # the one place attempt outcomes are counted
    class AlertOutbox:
        def __init__(self, engine, dispatcher, config: AlertsConfig, *, lease=timedelta(minutes=5),
                     worker_id=None, rng=None)
        def enqueue(self, conn, alert, *, ref=None, sinks=None) -> list[int]   # inside the caller's transaction
        def deliver_due(self, *, now=None, limit=None) -> PassResult           # one pass, no sleeping
        def deliveries(self, statuses=None, *, source=None, limit=100) -> list[DeliveryRecord]
        def for_alerts(self, source, refs) -> dict[str, list[DeliveryRecord]]
        def delivery(self, delivery_id) -> DeliveryRecord                      # NotFoundError
        def attempts(self, delivery_id) -> list[AttemptRecord]
        def redeliver(self, delivery_id) -> DeliveryRecord   # back to pending, due now, age clock reset
"""

from __future__ import annotations

import logging
import os
import random
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, RowMapping

from services import metrics
from services.alerts import Alert, DeliveryError
from services.database import UTCDateTime, utcnow
from services.errors import DataError, NotFoundError, one_line
from services.settings import AlertsConfig

if TYPE_CHECKING:
    from services.alerts import AlertDispatcher

log = logging.getLogger(__name__)

PENDING, FAILED, SENT, GIVEN_UP = "pending", "failed", "sent", "given_up"
STATUSES = (PENDING, FAILED, SENT, GIVEN_UP)
OPEN = (PENDING, FAILED)
DEFAULT_LEASE = timedelta(minutes=5)  # far above a sink's timeout: a live worker never loses its claim


outbox_metadata = MetaData()

delivery_table = Table(
    "alert_deliveries",
    outbox_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_source", String(100), nullable=False),  # the plugin that raised the alert
    Column("alert_ref", String(100)),  # that plugin's id of the alert
    Column("alert_key", String(500), nullable=False),
    Column("sink", String(300), nullable=False),
    Column("payload", JSON, nullable=False),  # Alert.to_dict(), as it was raised
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("queued_at", UTCDateTime, nullable=False),  # the give-up age counts from here (reset by redeliver)
    Column("next_attempt_at", UTCDateTime),
    Column("claimed_by", String(200)),
    Column("claimed_until", UTCDateTime),
    Column("last_error", Text),
    Column("sent_at", UTCDateTime),
    Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
    Index("ix_alert_deliveries_alert", "alert_source", "alert_ref"),
)

attempt_table = Table(
    "alert_delivery_attempts",
    outbox_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Integer, ForeignKey("alert_deliveries.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("worker", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("outcome", String(16), nullable=False),  # sent | failed | given_up
    Column("error", Text),
)


# -- metrics ------------------------------------------------------------------------------------------
def record_outcome(sink: str, outcome: str) -> None:
    """Count one attempt's outcome (sent, failed, given_up): the one place metrics hook into delivery."""
    metrics.record_delivery(sink, outcome)


# -- records ----------------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass
class DeliveryRecord:
    """One (alert, sink) delivery and where it stands."""

    id: int
    alert_source: str
    alert_ref: str | None
    alert_key: str
    sink: str
    payload: dict[str, Any]
    idempotency_key: str
    status: str
    attempts: int
    created_at: datetime
    queued_at: datetime
    next_attempt_at: datetime | None
    claimed_by: str | None
    claimed_until: datetime | None
    last_error: str | None
    sent_at: datetime | None

    @property
    def title(self) -> str:
        return str(self.payload.get("title", ""))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("created_at", "queued_at", "next_attempt_at", "claimed_until", "sent_at"):
            data[key] = _iso(data[key])
        return data

    def summary(self) -> dict[str, Any]:
        """What an alert list shows per sink (``ok``/``error`` as in the dispatcher's records)."""
        return {
            "id": self.id,
            "sink": self.sink,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": _iso(self.next_attempt_at) if self.status in OPEN else None,
            "sent_at": _iso(self.sent_at),
            "ok": self.status == SENT,
            "error": self.last_error,
        }


@dataclass
class AttemptRecord:
    id: int
    delivery_id: int
    number: int
    worker: str
    started_at: datetime
    finished_at: datetime
    outcome: str
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"], data["finished_at"] = _iso(self.started_at), _iso(self.finished_at)
        return data


@dataclass
class PassResult:
    """What one delivery pass did."""

    sent: int = 0
    failed: int = 0
    given_up: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.sent} sent, {self.failed} to retry, {self.given_up} given up"


def backoff_delay(attempt: int, base: timedelta, cap: timedelta, rng: random.Random | None = None) -> timedelta:
    """Exponential back-off with full jitter: uniform in [0, min(cap, base * 2**(attempt - 1))].

    Full jitter spreads the retries of many failed deliveries (one receiver down, many
    alerts) instead of sending them all again at the same moment.
    """
    ceiling = min(cap.total_seconds(), base.total_seconds() * 2 ** max(attempt - 1, 0))
    return timedelta(seconds=(rng or random).uniform(0, ceiling))


# -- the outbox -------------------------------------------------------------------------------------
def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class AlertOutbox:
    """Alert deliveries in SQL (the plugins' database) and the worker that sends them.

    The tables are made by the ``alert_outbox`` migrations (``services/outbox/migrations``),
    which the core runs before it hands out ``ctx.database``.
    """

    def __init__(
        self,
        engine: Engine,
        dispatcher: AlertDispatcher,
        config: AlertsConfig,
        *,
        lease: timedelta = DEFAULT_LEASE,
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.config = config
        self.lease = lease
        self.worker_id = worker_id or default_worker_id()
        self.rng = rng or random.Random()

    # -- writing ------------------------------------------------------------------------------
    def enqueue(
        self, conn: Connection, alert: Alert, *, ref: str | int | None = None, sinks: Sequence[str] | None = None
    ) -> list[int]:
        """Queue ``alert`` for every sink (or the named ones) on ``conn``, inside the caller's transaction.

        Call it in the transaction that stores the alert: both are committed or neither is.
        Returns the new delivery ids.
        """
        names = list(self.dispatcher.sink_names if sinks is None else sinks)
        if not names:
            return []
        now = utcnow()
        payload = {**alert.to_dict(), "idempotency_key": None}
        rows = [
            {
                "alert_source": alert.source,
                "alert_ref": None if ref is None else str(ref),
                "alert_key": alert.key,
                "sink": name,
                "payload": payload,
                "idempotency_key": str(uuid.uuid4()),
                "status": PENDING,
                "attempts": 0,
                "created_at": now,
                "queued_at": now,
                "next_attempt_at": now,
            }
            for name in names
        ]
        keys = [row["idempotency_key"] for row in rows]
        conn.execute(insert(delivery_table), rows)
        found = dict(
            conn.execute(
                select(delivery_table.c.idempotency_key, delivery_table.c.id).where(
                    delivery_table.c.idempotency_key.in_(keys)
                )
            ).all()
        )
        return [found[key] for key in keys]

    # -- the worker ---------------------------------------------------------------------------
    def deliver_due(self, *, now: datetime | None = None, limit: int | None = None) -> PassResult:
        """Send every due delivery once (at most ``limit``, default ``delivery_batch``); never sleeps.

        A delivery that fails is not tried again in the same pass, however short its back-off.
        ``now`` pins the clock (tests); by default each step reads the real time.
        """
        result, tried = PassResult(), []
        for _ in range(limit or self.config.delivery_batch):
            row = self._claim(now or utcnow(), exclude=tried)
            if row is None:
                break
            tried.append(row["id"])
            outcome = self._attempt(row, now)
            setattr(result, outcome, getattr(result, outcome) + 1)
        if result.sent or result.failed or result.given_up:
            log.info("alert deliveries: %s", result)
        return result

    def _claim(self, now: datetime, exclude: Sequence[int] = ()) -> RowMapping | None:
        """Atomically take the next due row for this worker, or None when nothing is due."""
        table = delivery_table
        due = (
            select(table.c.id)
            .where(
                table.c.status.in_(OPEN),
                table.c.next_attempt_at <= now,
                or_(table.c.claimed_until.is_(None), table.c.claimed_until < now),
                table.c.id.not_in(exclude),
            )
            .order_by(table.c.next_attempt_at, table.c.id)
            .limit(1)
        )
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)  # a row another worker is claiming is skipped
            claimed = conn.execute(
                update(table)
                .where(table.c.id.in_(due), or_(table.c.claimed_until.is_(None), table.c.claimed_until < now))
                .values(claimed_by=self.worker_id, claimed_until=now + self.lease)
                .returning(*table.c)
            )
            return claimed.mappings().first()

    def _attempt(self, row: RowMapping, pinned_now: datetime | None) -> str:
        started = pinned_now or utcnow()
        alert = Alert.from_dict({**row["payload"], "idempotency_key": row["idempotency_key"]})
        error: Exception | None = None
        try:
            self.dispatcher.send_once(row["sink"], alert)
        except Exception as exc:  # any sink failure is recorded, never raised into the job
            error = exc
        finished = pinned_now or utcnow()
        return self._record(row, started, finished, error)

    def _next_state(self, row: RowMapping, finished: datetime, error: Exception | None) -> dict[str, Any]:
        """The row's new status and schedule after an attempt: sent, retry later, or given up with the reason."""
        number = row["attempts"] + 1
        if error is None:
            return {"status": SENT, "sent_at": finished, "next_attempt_at": None, "last_error": None}
        message = _describe(error)
        if isinstance(error, DeliveryError) and error.permanent:
            return {"status": GIVEN_UP, "next_attempt_at": None, "last_error": f"given up at once: {message}"}
        age = finished - row["queued_at"]
        if age >= self.config.delivery_max_age:
            reason = f"gave up after {number} attempt(s) over {_describe_age(age)}: {message}"
            return {"status": GIVEN_UP, "next_attempt_at": None, "last_error": reason}
        wait = backoff_delay(number, self.config.delivery_backoff, self.config.delivery_max_backoff, self.rng)
        wait = max(wait, timedelta(seconds=getattr(error, "retry_after", 0.0) or 0.0))  # a 429's Retry-After
        return {"status": FAILED, "next_attempt_at": finished + wait, "last_error": message}

    def _record(self, row: RowMapping, started: datetime, finished: datetime, error: Exception | None) -> str:
        """Save the attempt and the row's next state in one transaction; returns the outcome."""
        number = row["attempts"] + 1
        values = {
            **self._next_state(row, finished, error),
            "attempts": number,
            "claimed_by": None,
            "claimed_until": None,
        }
        outcome, message = values["status"], _describe(error) if error else None
        with self.engine.begin() as conn:
            updated = conn.execute(
                update(delivery_table)
                .where(delivery_table.c.id == row["id"], delivery_table.c.claimed_by == self.worker_id)
                .values(**values)
            ).rowcount
            conn.execute(
                insert(attempt_table).values(
                    delivery_id=row["id"],
                    number=number,
                    worker=self.worker_id,
                    started_at=started,
                    finished_at=finished,
                    outcome=outcome,
                    error=message,
                )
            )
        if not updated:  # the lease ran out (or an operator re-queued it) while we were sending
            log.warning("alert delivery %s: the claim expired during the attempt; the row was left as it is", row["id"])
        level = logging.INFO if outcome == SENT else logging.WARNING
        log.log(
            level, "alert delivery %s to %s: %s%s", row["id"], row["sink"], outcome, f" ({message})" if error else ""
        )
        record_outcome(row["sink"], outcome)
        return outcome

    # -- reading ------------------------------------------------------------------------------
    def deliveries(
        self, statuses: Iterable[str] | None = None, *, source: str | None = None, limit: int = 100
    ) -> list[DeliveryRecord]:
        """Deliveries, newest first; optionally only some statuses or one plugin's alerts."""
        query = select(delivery_table).order_by(delivery_table.c.id.desc()).limit(limit)
        if statuses is not None:
            query = query.where(delivery_table.c.status.in_(list(statuses)))
        if source is not None:
            query = query.where(delivery_table.c.alert_source == source)
        with self.engine.connect() as conn:
            return [DeliveryRecord(**row) for row in conn.execute(query).mappings()]

    def for_alerts(self, source: str, refs: Iterable[str | int]) -> dict[str, list[DeliveryRecord]]:
        """The deliveries of the given alerts of ``source``, by alert ref, in sink order."""
        refs = sorted({str(ref) for ref in refs})
        found: dict[str, list[DeliveryRecord]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(refs), 500):
                rows = conn.execute(
                    select(delivery_table)
                    .where(
                        delivery_table.c.alert_source == source,
                        delivery_table.c.alert_ref.in_(refs[start : start + 500]),
                    )
                    .order_by(delivery_table.c.id)
                ).mappings()
                for row in rows:
                    found.setdefault(row["alert_ref"], []).append(DeliveryRecord(**row))
        return found

    def delivery(self, delivery_id: int) -> DeliveryRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(delivery_table).where(delivery_table.c.id == delivery_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"no alert delivery with id {delivery_id}")
        return DeliveryRecord(**row)

    def attempts(self, delivery_id: int) -> list[AttemptRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(attempt_table).where(attempt_table.c.delivery_id == delivery_id).order_by(attempt_table.c.id)
            ).mappings()
            return [AttemptRecord(**row) for row in rows]

    def redeliver(self, delivery_id: int) -> DeliveryRecord:
        """Queue a delivery again, due now, with its age reset; its idempotency key stays the same.

        Refused (DataError) for a delivery already sent or being sent right now.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            current = self._locked(conn, delivery_id)
            if current["status"] == SENT:
                raise DataError(
                    f"alert delivery {delivery_id} was sent at {current['sent_at']:%Y-%m-%d %H:%M:%S} UTC; "
                    "nothing to redeliver"
                )
            if current["claimed_until"] is not None and current["claimed_until"] >= now:
                raise DataError(f"alert delivery {delivery_id} is being sent right now; try again in a minute")
            conn.execute(
                update(delivery_table)
                .where(delivery_table.c.id == delivery_id)
                .values(status=PENDING, queued_at=now, next_attempt_at=now, claimed_by=None, claimed_until=None)
            )
        return self.delivery(delivery_id)

    @staticmethod
    def _locked(conn: Connection, delivery_id: int) -> RowMapping:
        query = select(delivery_table).where(delivery_table.c.id == delivery_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFoundError(f"no alert delivery with id {delivery_id}")
        return row


def _describe(error: Exception) -> str:
    """A sink's own DeliveryError already says where and what; anything else gets its type."""
    return " ".join(str(error).split()) if isinstance(error, DeliveryError) else one_line(error)


def _describe_age(age: timedelta) -> str:
    seconds = age.total_seconds()
    if seconds < 120:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
