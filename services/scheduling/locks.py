"""The lock that makes one scheduler active per job store; the others wait as standby.

PostgreSQL job stores use a session-level advisory lock held on a dedicated
connection, so it dies with the process or the connection. SQLite job stores use an
OS file lock beside the database file, which the kernel releases when the process
dies. Neither can be left behind by a crash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from filelock import FileLock, Timeout
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url

from services.database import create_database_engine
from services.errors import ConfigError

log = logging.getLogger(__name__)


class SchedulerLock(Protocol):
    description: str

    def acquire(self) -> bool:
        """Try once, without waiting; True if this process now holds the lock."""

    def verify(self) -> bool:
        """Whether the lock taken by :meth:`acquire` is still held."""

    def release(self) -> None:
        """Give the lock up (no-op if not held); never raises."""

    def holder(self) -> str | None:
        """Who holds the lock, in words; None if nobody does."""


def owner_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class FileSchedulerLock:
    """An OS file lock; the holder's pid and host are written beside it for ``status``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.owner_path = self.path.with_name(self.path.name + ".owner")
        self.description = f"file lock {self.path}"
        self._lock = FileLock(str(self.path))

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        owner = {"owner": owner_label(), "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        partial = self.owner_path.with_name(self.owner_path.name + ".tmp")
        partial.write_text(json.dumps(owner))
        partial.replace(self.owner_path)
        return True

    def verify(self) -> bool:
        return self._lock.is_locked and self.path.exists()

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        try:
            self.owner_path.unlink(missing_ok=True)
            self._lock.release()
        except OSError as exc:
            log.warning("could not release %s: %s", self.description, exc)

    def holder(self) -> str | None:
        probe = FileLock(str(self.path))
        try:
            probe.acquire(timeout=0)
        except Timeout:
            try:
                owner = json.loads(self.owner_path.read_text())
                return f"{owner['owner']} since {owner['since']}"
            except (OSError, ValueError, KeyError):
                return "another process"
        probe.release()
        return None


class AdvisoryLock:
    """``pg_try_advisory_lock`` on a connection kept open while the lock is held.

    The key is derived from the database, schema and table of the job store as the
    server sees them, so two URLs naming one store (``localhost`` and ``127.0.0.1``)
    still share a lock.
    """

    def __init__(self, url: str, tablename: str) -> None:
        self.engine = create_database_engine(url)
        self.tablename = tablename
        self.description = f"advisory lock on {make_url(url).render_as_string(hide_password=True)}"
        self._conn: Connection | None = None
        self._key: int | None = None

    def _lock_key(self, conn: Connection) -> int:
        database, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
        name = f"suite-scheduler:{database}:{schema}:{self.tablename}"
        return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)

    def acquire(self) -> bool:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            key = self._lock_key(conn)
            conn.execute(
                text("SELECT set_config('application_name', :name, false)"),
                {"name": f"suite-scheduler {owner_label()}"[:63]},
            )
            taken = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
        except BaseException:
            conn.close()
            raise
        if not taken:
            conn.close()
            return False
        self._conn, self._key = conn, key
        return True

    def verify(self) -> bool:
        if self._conn is None:
            return False
        try:
            return bool(self._conn.execute(text(_HELD_BY_ME), _split(self._key)).scalar())
        except Exception as exc:  # the connection is gone, and the lock with it
            log.warning("lost the connection holding the scheduler lock: %s", exc)
            return False

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        except Exception as exc:  # a dead connection has released it already
            log.debug("advisory unlock failed: %s", exc)
        finally:
            conn.close()

    def holder(self) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(text(_HOLDER), _split(self._lock_key(conn))).first()
        if row is None:
            return None
        where = f" from {row.client}" if row.client else ""
        since = f"{row.since:%Y-%m-%d %H:%M:%S%z}"
        return f"{row.application_name or 'a backend'} (server pid {row.pid}{where}) since {since}"

    def close(self) -> None:
        self.release()
        self.engine.dispose()


# pg_locks shows a bigint advisory key as two 32-bit halves, classid and objid, with objsubid 1.
_HELD_BY_ME = """
SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
               AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1)
"""
_HOLDER = """
SELECT a.pid, a.application_name, host(a.client_addr) AS client, a.backend_start AS since
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :hi AND l.objid::bigint = :lo
  AND l.objsubid = 1
"""


def _split(key: int | None) -> dict[str, int]:
    unsigned = (key or 0) & 0xFFFFFFFFFFFFFFFF
    return {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF}


def sqlite_lock_path(jobstore_url: str) -> Path:
    """``<db>.scheduler.lock`` beside a SQLite job store's file."""
    database = make_url(jobstore_url).database
    if not database or database == ":memory:":
        raise ConfigError("an in-memory SQLite job store cannot be locked; use a file")
    return Path(database + ".scheduler.lock")


def open_scheduler_lock(jobstore_url: str, tablename: str, lock_path: Path | None = None) -> SchedulerLock:
    """The right lock for the job store's backend."""
    url = make_url(jobstore_url)
    if url.get_backend_name() == "postgresql":
        return AdvisoryLock(jobstore_url, tablename)
    if lock_path is not None:
        return FileSchedulerLock(lock_path)
    if url.get_backend_name() == "sqlite":
        return FileSchedulerLock(sqlite_lock_path(jobstore_url))
    backend = url.get_backend_name()
    raise ConfigError(f"scheduler lock: a job store on {backend} needs a lock path; use SQLite or PostgreSQL")
