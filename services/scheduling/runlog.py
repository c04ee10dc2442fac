"""The ``job_runs`` table: one row per run, scheduled or manual, in the job-store database.

The table is created and changed by the ``scheduling`` migration history
(``services/scheduling/migrations``); change :data:`job_runs_table` and add a revision together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine

from services.database import create_database_engine
from services.errors import NotFoundError

RunStatus = Literal["running", "ok", "failed"]
RunTrigger = Literal["schedule", "manual"]
MAX_ERROR_CHARS = 1000
INTERRUPTED = "interrupted"

metadata = MetaData()
job_runs_table = Table(
    "job_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(191), nullable=False),
    Column("plugin", String(100), nullable=False, default=""),
    Column("trigger", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Index("ix_job_runs_job_id", "job", "id"),
)


@dataclass
class JobRun:
    """One run of a job, as recorded in ``job_runs``."""

    id: int
    job: str
    plugin: str
    started_at: datetime
    finished_at: datetime | None
    status: RunStatus
    error: str | None
    trigger: RunTrigger

    @property
    def duration_seconds(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _as_utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every timestamp written here is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


class RunLog:
    """Records every job run so ``suite jobs list|history`` can report on it.

    Rows are written in short transactions: ``start`` before the job runs, ``finish``
    after, so a crash leaves a ``running`` row that the next scheduler marks as
    interrupted. The table must exist: the core migrates the job-store database first.
    """

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.engine = engine or create_database_engine(url)
        self.table = job_runs_table

    def start(self, job: str, plugin: str, trigger: RunTrigger) -> int:
        insert = self.table.insert().values(
            job=job, plugin=plugin, trigger=trigger, started_at=utc_now(), status="running"
        )
        with self.engine.begin() as conn:
            return int(conn.execute(insert).inserted_primary_key[0])

    def finish(self, run_id: int, status: RunStatus, error: str | None = None) -> bool:
        """Close a run; False if it was already closed (e.g. marked interrupted meanwhile)."""
        return bool(self._close(self.table.c.id == run_id, status, error))

    def mark_interrupted(
        self,
        run_ids: Iterable[int] | None = None,
        *,
        trigger: RunTrigger | None = None,
        error: str = INTERRUPTED,
    ) -> int:
        """Mark runs still ``running`` as failed: the given ids, or all of one trigger kind."""
        if run_ids is not None:
            return self._close(self.table.c.id.in_(list(run_ids)), "failed", error)
        return self._close(self.table.c.trigger == trigger, "failed", error)

    def _close(self, condition, status: RunStatus, error: str | None) -> int:
        statement = (
            update(self.table)
            .where(condition, self.table.c.status == "running")
            .values(status=status, error=error[:MAX_ERROR_CHARS] if error else None, finished_at=utc_now())
        )
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount

    def get(self, run_id: int) -> JobRun:
        with self.engine.connect() as conn:
            row = conn.execute(select(self.table).where(self.table.c.id == run_id)).first()
        if row is None:
            raise NotFoundError(f"no job run with id {run_id}")
        return self._to_run(row)

    def recent(self, job: str | None = None, limit: int = 20) -> list[JobRun]:
        """The latest runs, newest first, of one job or of all."""
        query = select(self.table).order_by(self.table.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(self.table.c.job == job)
        with self.engine.connect() as conn:
            return [self._to_run(row) for row in conn.execute(query)]

    def last_runs(self) -> dict[str, JobRun]:
        """The latest run of every job that has run, by job name."""
        latest = select(func.max(self.table.c.id)).group_by(self.table.c.job)
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.table).where(self.table.c.id.in_(latest.scalar_subquery())))
            return {row.job: self._to_run(row) for row in rows}

    @staticmethod
    def _to_run(row) -> JobRun:
        return JobRun(
            id=row.id,
            job=row.job,
            plugin=row.plugin,
            started_at=_as_utc(row.started_at),
            finished_at=_as_utc(row.finished_at),
            status=row.status,
            error=row.error,
            trigger=row.trigger,
        )

    def close(self) -> None:
        self.engine.dispose()
