"""Documents, mentions, runs and alerts in SQL (SQLite by default, PostgreSQL by URL).

Tables are created and changed by the plugin's migrations (``plugins/sentiment/migrations``):
change a table here and add a revision there together.

Ingestion is split so that a crash loses nothing and scores nothing twice: documents
are inserted unscored (``pending``) in one transaction, then scored in batches, each
batch committed with its mentions; only ``pending`` rows are ever scored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection, Engine

from plugins.sentiment.aggregation import ScoredDocument
from services.database import UTCDateTime, utcnow
from suite.errors import NotFoundError

PENDING, SCORED = "pending", "scored"
_CHUNK = 500  # bound parameters per IN clause, well under SQLite's limit


metadata = MetaData()

document_table = Table(
    "sentiment_documents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("external_id", String(500)),
    Column("url", String(2000)),
    Column("content_hash", String(64), nullable=False, unique=True),
    Column("title", Text, nullable=False, default=""),
    Column("text", Text, nullable=False),
    Column("published_at", UTCDateTime, nullable=False, index=True),
    Column("fetched_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False, default=PENDING, index=True),
    Column("label", String(32)),
    Column("score", Float),
    Column("probabilities", JSON),
    Column("topic", String(64)),
    Column("topic_score", Float),
    Column("scored_at", UTCDateTime),
    Column("indexed_at", UTCDateTime),
    Column("run_id", Integer),
    UniqueConstraint("source", "external_id", name="uq_sentiment_documents_source_external_id"),
    UniqueConstraint("url", name="uq_sentiment_documents_url"),
)

mention_table = Table(
    "sentiment_mentions",
    metadata,
    Column("document_id", Integer, ForeignKey("sentiment_documents.id", ondelete="CASCADE"), primary_key=True),
    Column("entity", String(200), primary_key=True),
    Column("matched", String(200)),
    Index("ix_sentiment_mentions_entity", "entity"),
)

run_table = Table(
    "sentiment_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trigger", String(32), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("status", String(16), nullable=False),
    Column("counts", JSON, nullable=False, default=dict),
    Column("messages", JSON, nullable=False, default=list),
)

alert_table = Table(
    "sentiment_alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("entity", String(200)),
    Column("topic", String(64)),
    Column("key", String(500), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("evidence", JSON, nullable=False, default=list),
    Column("data", JSON, nullable=False, default=dict),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("acknowledged_at", UTCDateTime),
    Column("acknowledged_by", String(200)),
    Column("run_id", Integer),
    Column("backfill", Boolean, nullable=False, default=False),
    Column("deliveries", JSON, nullable=False, default=list),
    Index("ix_sentiment_alerts_key_created_at", "key", "created_at"),  # the cool-down check's lookup
)


@dataclass(frozen=True)
class NewDocument:
    """A fetched, normalised document not yet stored."""

    source: str
    external_id: str | None
    url: str | None
    content_hash: str
    title: str
    text: str
    published_at: datetime
    fetched_at: datetime


@dataclass(frozen=True)
class PendingDocument:
    id: int
    title: str
    text: str


@dataclass(frozen=True)
class ScoreUpdate:
    """The scores and linked entities of one pending document."""

    id: int
    label: str
    score: float
    probabilities: dict[str, float]
    topic: str | None = None
    topic_score: float | None = None
    entities: dict[str, str] = field(default_factory=dict)  # entity name -> matched text


@dataclass(frozen=True)
class InsertResult:
    inserted: int
    duplicates: int


@dataclass
class RunRecord:
    id: int
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    counts: dict[str, int]
    messages: list[dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return data


@dataclass
class AlertRecord:
    id: int
    rule: str
    kind: str
    entity: str | None
    topic: str | None
    key: str
    severity: str
    title: str
    message: str
    evidence: list[dict[str, Any]]
    data: dict[str, Any]
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    run_id: int | None
    backfill: bool
    deliveries: list[dict[str, Any]]

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["acknowledged_at"] = self.acknowledged_at.isoformat() if self.acknowledged_at else None
        data["acknowledged"] = self.acknowledged
        return data


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SentimentStore:
    """All SQL of the plugin, on an engine whose schema the migrations made (``ctx.database``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- documents -----------------------------------------------------------------------
    def insert_documents(self, docs: Sequence[NewDocument], run_id: int | None = None) -> InsertResult:
        """Insert the documents not seen before (by content hash, URL or source + external id), unscored.

        All in one transaction: either every new document is stored or none is.
        """
        unique = _dedupe_batch(docs)
        with self.engine.begin() as conn:
            existing = self._existing(conn, unique) if unique else set()
            fresh = [doc for doc in unique if doc not in existing]
            if fresh:
                conn.execute(
                    _insert_ignoring_conflicts(conn),
                    [{**asdict(doc), "status": PENDING, "run_id": run_id} for doc in fresh],
                )
        return InsertResult(inserted=len(fresh), duplicates=len(docs) - len(fresh))

    def _existing(self, conn: Connection, docs: Sequence[NewDocument]) -> set[NewDocument]:
        hashes, urls, keys = set(), set(), set()
        for chunk in _chunks(docs):
            hashes |= set(
                conn.scalars(
                    select(document_table.c.content_hash).where(
                        document_table.c.content_hash.in_([d.content_hash for d in chunk])
                    )
                )
            )
            chunk_urls = [d.url for d in chunk if d.url]
            if chunk_urls:
                urls |= set(conn.scalars(select(document_table.c.url).where(document_table.c.url.in_(chunk_urls))))
            chunk_keys = [(d.source, d.external_id) for d in chunk if d.external_id]
            if chunk_keys:
                keys |= {
                    tuple(row)
                    for row in conn.execute(
                        select(document_table.c.source, document_table.c.external_id).where(
                            tuple_(document_table.c.source, document_table.c.external_id).in_(chunk_keys)
                        )
                    )
                }
        return {
            d
            for d in docs
            if d.content_hash in hashes or (d.url and d.url in urls) or (d.source, d.external_id) in keys
        }

    def pending(self, limit: int) -> list[PendingDocument]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(document_table.c.id, document_table.c.title, document_table.c.text)
                .where(document_table.c.status == PENDING)
                .order_by(document_table.c.id)
                .limit(limit)
            )
            return [PendingDocument(*row) for row in rows]

    def count_pending(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).where(document_table.c.status == PENDING))

    def save_scores(self, updates: Sequence[ScoreUpdate]) -> int:
        """Store one batch of scores and mentions in one transaction; returns how many were saved.

        Only documents still ``pending`` are written, so a batch that raced another run
        (or is replayed after a crash) never overwrites a score.
        """
        if not updates:
            return 0
        now = utcnow()
        with self.engine.begin() as conn:
            query = select(document_table.c.id).where(
                document_table.c.id.in_([u.id for u in updates]), document_table.c.status == PENDING
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            still_pending = set(conn.scalars(query))
            chosen = [u for u in updates if u.id in still_pending]
            if not chosen:
                return 0
            conn.execute(
                update(document_table)
                .where(document_table.c.id == bindparam("doc_id"))
                .values(
                    status=SCORED,
                    label=bindparam("label"),
                    score=bindparam("score"),
                    probabilities=bindparam("probabilities"),
                    topic=bindparam("topic"),
                    topic_score=bindparam("topic_score"),
                    scored_at=now,
                ),
                [
                    {
                        "doc_id": u.id,
                        "label": u.label,
                        "score": u.score,
                        "probabilities": u.probabilities,
                        "topic": u.topic,
                        "topic_score": u.topic_score,
                    }
                    for u in chosen
                ],
            )
            rows = [
                {"document_id": u.id, "entity": name, "matched": matched[:200]}
                for u in chosen
                for name, matched in u.entities.items()
            ]
            if rows:
                conn.execute(insert(mention_table), rows)
        return len(chosen)

    def unindexed(self, limit: int) -> list[dict[str, Any]]:
        """Scored documents not yet in the search index, with their entities."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(document_table)
                    .where(document_table.c.status == SCORED, document_table.c.indexed_at.is_(None))
                    .order_by(document_table.c.id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
            entities = self._entities(conn, [row["id"] for row in rows])
        return [{**row, "entities": entities.get(row["id"], [])} for row in rows]

    def mark_indexed(self, ids: Sequence[int]) -> None:
        with self.engine.begin() as conn:
            for chunk in _chunks(list(ids)):
                conn.execute(update(document_table).where(document_table.c.id.in_(chunk)).values(indexed_at=utcnow()))

    def document(self, doc_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(document_table).where(document_table.c.id == doc_id)).mappings().first()
            if row is None:
                raise NotFoundError(f"no sentiment document with id {doc_id}")
            entities = self._entities(conn, [doc_id]).get(doc_id, [])
        return _document_dict(row, entities)

    def document_texts(self, limit: int = 100_000) -> list[str]:
        """The newest ``limit`` stored documents as text (title, then body): pre-training material."""
        query = select(document_table.c.title, document_table.c.text).order_by(document_table.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [f"{title}. {text}" if title else text for title, text in conn.execute(query)]

    def first_published_at(self) -> datetime | None:
        """When the earliest scored document was published: where the monitored history begins."""
        with self.engine.connect() as conn:
            return conn.scalar(select(func.min(document_table.c.published_at)).where(document_table.c.status == SCORED))

    def scored_documents(self, start: datetime, end: datetime, entity: str | None = None) -> list[ScoredDocument]:
        """Scored documents published in ``(start, end]`` (optionally mentioning ``entity``)."""
        query = select(
            document_table.c.id,
            document_table.c.published_at,
            document_table.c.label,
            document_table.c.score,
            document_table.c.topic,
            document_table.c.title,
            document_table.c.url,
        ).where(
            document_table.c.status == SCORED,
            document_table.c.published_at > start,
            document_table.c.published_at <= end,
        )
        if entity is not None:
            query = query.where(
                document_table.c.id.in_(select(mention_table.c.document_id).where(mention_table.c.entity == entity))
            )
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(document_table.c.published_at, document_table.c.id)).all()
            linked = conn.execute(
                select(mention_table.c.document_id, mention_table.c.entity).where(
                    mention_table.c.document_id.in_(query.with_only_columns(document_table.c.id))
                )
            ).all()
        entities: dict[int, list[str]] = {}
        for doc_id, name in linked:
            entities.setdefault(doc_id, []).append(name)
        return [
            ScoredDocument(
                row.id,
                row.published_at,
                row.label,
                row.score,
                row.topic,
                tuple(sorted(entities.get(row.id, ()))),
                row.title,
                row.url,
            )
            for row in rows
        ]

    def topics(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(
                conn.scalars(select(document_table.c.topic).where(document_table.c.topic.is_not(None)).distinct())
            )

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(document_table.c.status, func.count()).group_by(document_table.c.status)).all()
        return {status: count for status, count in rows}

    @staticmethod
    def _entities(conn: Connection, ids: Sequence[int]) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        for chunk in _chunks(list(ids)):
            for doc_id, name in conn.execute(
                select(mention_table.c.document_id, mention_table.c.entity).where(
                    mention_table.c.document_id.in_(chunk)
                )
            ):
                found.setdefault(doc_id, []).append(name)
        return {k: sorted(v) for k, v in found.items()}

    # -- runs ----------------------------------------------------------------------------
    def start_run(self, trigger: str) -> int:
        with self.engine.begin() as conn:
            return conn.execute(
                insert(run_table).values(trigger=trigger, started_at=utcnow(), status="running", counts={}, messages=[])
            ).inserted_primary_key[0]

    def finish_run(self, run_id: int, status: str, counts: dict[str, int], messages: list[dict[str, str]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(run_table)
                .where(run_table.c.id == run_id)
                .values(status=status, finished_at=utcnow(), counts=counts, messages=messages)
            )

    def interrupt_stale_runs(self) -> int:
        """Mark runs left 'running' by a process that died; call only while holding the run lock."""
        note = [
            {
                "level": "error",
                "source": None,
                "message": "interrupted: the process ended before the run finished",
            }
        ]
        with self.engine.begin() as conn:
            return conn.execute(
                update(run_table).where(run_table.c.status == "running").values(status="interrupted", messages=note)
            ).rowcount

    def run(self, run_id: int) -> RunRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(run_table).where(run_table.c.id == run_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"no monitoring run with id {run_id}")
        return RunRecord(**row)

    def runs(self, limit: int = 20) -> list[RunRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(run_table).order_by(run_table.c.id.desc()).limit(limit)).mappings().all()
        return [RunRecord(**row) for row in rows]

    # -- alerts --------------------------------------------------------------------------
    def last_alert_times(self, keys: Iterable[str]) -> dict[str, datetime]:
        keys = list(set(keys))
        found: dict[str, datetime] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(keys):
                for key, last in conn.execute(
                    select(alert_table.c.key, func.max(alert_table.c.created_at))
                    .where(alert_table.c.key.in_(chunk))
                    .group_by(alert_table.c.key)
                ):
                    found[key] = last
        return found

    def add_alert(
        self, *, enqueue: Callable[[Connection, AlertRecord], Any] | None = None, **values: Any
    ) -> AlertRecord:
        """Store an alert; ``enqueue(conn, record)`` runs in the same transaction (the outbox's deliveries).

        So an alert and its deliveries are committed together: a crash right after this
        call loses nothing, and a failure inside ``enqueue`` stores neither.
        """
        with self.engine.begin() as conn:
            alert_id = conn.execute(insert(alert_table).values(**values)).inserted_primary_key[0]
            record = AlertRecord(
                **conn.execute(select(alert_table).where(alert_table.c.id == alert_id)).mappings().one()
            )
            if enqueue is not None:
                enqueue(conn, record)
        return record

    def set_deliveries(self, alert_id: int, deliveries: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(alert_table).where(alert_table.c.id == alert_id).values(deliveries=deliveries))

    def alert(self, alert_id: int) -> AlertRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(alert_table).where(alert_table.c.id == alert_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"no alert with id {alert_id}")
        return AlertRecord(**row)

    def alerts(
        self, include_acknowledged: bool = False, limit: int = 100, entity: str | None = None
    ) -> list[AlertRecord]:
        query = select(alert_table).order_by(alert_table.c.created_at.desc(), alert_table.c.id.desc()).limit(limit)
        if not include_acknowledged:
            query = query.where(alert_table.c.acknowledged_at.is_(None))
        if entity is not None:
            query = query.where(alert_table.c.entity == entity)
        with self.engine.connect() as conn:
            return [AlertRecord(**row) for row in conn.execute(query).mappings()]

    def acknowledge(self, alert_id: int, by: str | None = None) -> AlertRecord:
        """Acknowledge an alert; acknowledging twice keeps the first acknowledgement."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(alert_table)
                .where(alert_table.c.id == alert_id, alert_table.c.acknowledged_at.is_(None))
                .values(acknowledged_at=utcnow(), acknowledged_by=by)
            )
            if (
                not result.rowcount
                and conn.scalar(select(alert_table.c.id).where(alert_table.c.id == alert_id)) is None
            ):
                raise NotFoundError(f"no alert with id {alert_id}")
        return self.alert(alert_id)


def _dedupe_batch(docs: Sequence[NewDocument]) -> list[NewDocument]:
    """Drop documents repeated inside one fetch (same hash, URL or source + external id)."""
    seen: set[tuple[str, Any]] = set()
    unique = []
    for doc in docs:
        marks = {("hash", doc.content_hash)}
        if doc.url:
            marks.add(("url", doc.url))
        if doc.external_id:
            marks.add(("id", (doc.source, doc.external_id)))
        if marks & seen:
            continue
        seen |= marks
        unique.append(doc)
    return unique


def _insert_ignoring_conflicts(conn: Connection):
    """INSERT ... ON CONFLICT DO NOTHING: a concurrent run that stored the same document first wins."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(document_table).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(document_table).on_conflict_do_nothing()
    return insert(document_table)


def _document_dict(row: Any, entities: list[str]) -> dict[str, Any]:
    data = dict(row)
    for key in ("published_at", "fetched_at", "scored_at", "indexed_at"):
        data[key] = data[key].isoformat() if data[key] else None
    data["entities"] = entities
    return data
