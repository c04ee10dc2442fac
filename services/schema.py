"""Schema migrations: one Alembic history per package, run programmatically (no alembic.ini).

Every table the suite keeps in SQL is created and changed by Alembic revisions that
live in the package owning the table. A package declares its history once::

    # mypackage/migrations/__init__.py  (the folder holds the revision files)
    from pathlib import Path
    from services.schema import MigrationHistory

    HISTORY = MigrationHistory("mypackage", Path(__file__).parent)

Each history has its own version table (``alembic_version_<name>``), so histories of
different packages never interfere and a third-party plugin ships its own. A service
adds its history to :func:`service_histories`; a plugin returns its history from the
``suite_migrations`` hook. A revision is a plain Alembic script in that folder, named
``<revision>_<slug>.py``; revisions are numbered ``0001``, ``0002``... within a history::

    \"\"\"Index alerts by key and time.\"\"\"
    import sqlalchemy as sa
    from alembic import op

    revision = "0002"
    down_revision = "0001"

    def upgrade() -> None:
        op.create_index("ix_mypackage_things_kind", "mypackage_things", ["kind"])

    def downgrade() -> None:
        op.drop_index("ix_mypackage_things_kind", table_name="mypackage_things")

Write the table definitions of your store and the revisions in the same change; the
test ``tests/core/test_core_schema.py`` fails when a history's head does not create
exactly the tables the code declares (pass them as ``metadata="mypackage.store:metadata"``). A baseline revision
(``down_revision = None``) should create each table only if it is missing
(:func:`table_missing`): then a database made by ``create_all`` before the package had
migrations is adopted, not recreated.

Upgrades run in one transaction per history under a lock (``BEGIN IMMEDIATE`` on
SQLite, an advisory lock on PostgreSQL), so two processes starting together migrate
once, and a revision that fails leaves the database as it was (both databases have
transactional DDL).
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine

from services.errors import ConfigError, SchemaError, one_line

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

HistoryState = Literal["absent", "unversioned", "behind", "current", "unknown"]
DatabaseRole = Literal["main", "jobstore"]
NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"suite-schema-migrations").digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class MigrationHistory:
    """One package's migrations: a folder of Alembic revisions and its own version table.

    :param name: lowercase letters, digits and ``_``; usually the package's name. The
        version table is ``alembic_version_<name>``.
    :param directory: the folder holding the revision files.
    :param database: which database the tables live in: ``main`` (``ctx.database``,
        ``database_url``) or ``jobstore`` (the scheduler's ``scheduler.jobstore_url``).
    :param legacy_tables: tables that a release before migrations created with
        ``create_all``; when one exists without a version table, the database is an
        existing one to upgrade rather than a fresh one to create.
    :param metadata: the tables the code declares, for the check that the head
        revision creates exactly them (tests only; optional): a ``MetaData``, or
        ``"module:attribute"`` naming one, imported only by that check (so a command
        that reads the history's folder never imports the store behind it).
    """

    name: str
    directory: Path
    database: DatabaseRole = "main"
    legacy_tables: tuple[str, ...] = ()
    metadata: MetaData | str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ConfigError(f"migration history name {self.name!r}: use 1-41 lowercase letters, digits or '_'")
        if not Path(self.directory).is_dir():
            raise ConfigError(f"migration history {self.name}: no folder {self.directory}")

    def declared_metadata(self) -> MetaData | None:
        """``metadata``, imported first where it is given as ``"module:attribute"``."""
        if not isinstance(self.metadata, str):
            return self.metadata
        from importlib import import_module

        module, _, attribute = self.metadata.partition(":")
        return getattr(import_module(module), attribute)

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.name}"

    @property
    def script(self) -> ScriptDirectory:
        return _script_directory(str(Path(self.directory).resolve()))

    @property
    def heads(self) -> tuple[str, ...]:
        directory = str(Path(self.directory).resolve())
        return _declared_heads(directory) or tuple(sorted(self.script.get_heads()))


# ``revision = "0002"`` / ``down_revision: str | None = "0001"`` as a revision file writes them.
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+?)\s*$", re.MULTILINE)


@lru_cache(maxsize=64)
def _declared_heads(directory: str) -> tuple[str, ...] | None:
    """The head revision read from the revision files' text, without importing Alembic or them
    (a cold command checks the schema in milliseconds); None where a file is not that plain, or
    the history has not exactly one head: Alembic then reads the folder itself."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in Path(directory).glob("*.py"):
        if path.name == "__init__.py":
            continue
        found = dict(_ASSIGNMENT.findall(path.read_text(encoding="utf-8")))
        try:
            revision = ast.literal_eval(found["revision"])
            down = ast.literal_eval(found.get("down_revision", "None"))
        except (KeyError, ValueError, SyntaxError):
            return None
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        parents.update(d for d in (down if isinstance(down, tuple | list) else (down,)) if d)
    heads = tuple(sorted(revisions - parents))
    return heads if len(heads) == 1 else None


@lru_cache(maxsize=64)
def _script_directory(directory: str) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(directory, version_locations=[directory])
    heads = script.get_heads()
    if len(heads) != 1:
        raise ConfigError(f"migrations in {directory}: expected one head revision, found {len(heads)}")
    return script


@dataclass(frozen=True)
class HistoryStatus:
    """Where one history stands in one database."""

    history: MigrationHistory
    current: tuple[str, ...]
    heads: tuple[str, ...]
    state: HistoryState

    @property
    def name(self) -> str:
        return self.history.name

    @property
    def current_label(self) -> str:
        if self.state == "absent":
            return "none"
        if self.state == "unversioned":
            return "unversioned"
        return ",".join(self.current)

    @property
    def head_label(self) -> str:
        return ",".join(self.heads)


def table_missing(name: str) -> bool:
    """In a revision: whether table ``name`` does not exist yet (for baselines that adopt old databases)."""
    from alembic import op

    return not inspect(op.get_bind()).has_table(name)


def status(engine: Engine, history: MigrationHistory) -> HistoryStatus:
    """Read where ``history`` stands in the database behind ``engine``."""
    with engine.connect() as conn:
        return _status(conn, history)


def _status(conn: Connection, history: MigrationHistory) -> HistoryStatus:
    current = _current_revisions(conn, history.version_table)
    heads = history.heads
    if not current:
        present = [name for name in history.legacy_tables if inspect(conn).has_table(name)]
        state: HistoryState = "unversioned" if present else "absent"
    elif current == heads:
        state = "current"
    elif all(_known(history, rev) for rev in current):
        state = "behind"
    else:
        state = "unknown"
    return HistoryStatus(history, current, heads, state)


def _current_revisions(conn: Connection, version_table: str) -> tuple[str, ...]:
    """What Alembic's ``get_current_heads`` reads, with one query and no Alembic import."""
    if not inspect(conn).has_table(version_table):
        return ()
    rows = conn.execute(text(f"SELECT version_num FROM {version_table}"))  # the name is checked by NAME
    return tuple(sorted(row[0] for row in rows))


def _known(history: MigrationHistory, revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return history.script.get_revision(revision) is not None
    except CommandError:
        return False


def upgrade(engine: Engine, history: MigrationHistory, target: str = "heads") -> HistoryStatus:
    """Bring ``history`` to ``target`` (default: its head) in one locked transaction."""
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    script = history.script
    with engine.connect() as conn:
        _begin_locked(conn)
        before = _status(conn, history)
        if before.state == "unknown":
            raise SchemaError(_unknown_message([before]))
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table": history.version_table,
                "script": script,
                "fn": lambda revision, _context: script._upgrade_revs(target, revision),
            },
        )
        try:
            with Operations.context(context):
                context.run_migrations()
        except Exception as exc:
            conn.rollback()
            where = f"from {before.current_label}" if before.state != "absent" else "on an empty database"
            raise SchemaError(f"upgrading {history.name} {where} failed, nothing changed: {one_line(exc)}") from exc
        after = _status(conn, history)
        conn.commit()
    return after


def _begin_locked(conn: Connection) -> None:
    """Open the transaction the migration runs in, holding the database's migration lock."""
    if conn.dialect.name == "sqlite":
        # pysqlite runs DDL outside transactions unless one is open: BEGIN IMMEDIATE makes the
        # migration atomic and takes the write lock, so a second process waits, then finds it done.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def prepare(engine: Engine, histories: Iterable[MigrationHistory], *, upgrade_existing: bool) -> list[HistoryStatus]:
    """Create absent histories (and upgrade existing ones if allowed); return those still not current."""
    left = []
    for history in histories:
        found = status(engine, history)
        if found.state == "current":
            continue
        if found.state == "absent" or (upgrade_existing and found.state in ("unversioned", "behind")):
            found = upgrade(engine, history)
        if found.state != "current":
            left.append(found)
    return left


def outdated_message(statuses: Sequence[HistoryStatus], command: str) -> str:
    """One line naming every history that is not current and what to do."""
    unknown = [s for s in statuses if s.state == "unknown"]
    if unknown:
        return _unknown_message(unknown)
    parts = "; ".join(f"{_where(s)}, code needs {s.head_label}" for s in statuses)
    return f"database schema is out of date ({parts}): run '{command}'"


def _where(found: HistoryStatus) -> str:
    if found.state == "unversioned":
        return f"{found.name} made before migrations"
    return f"{found.name} at {found.current_label}"


def _unknown_message(statuses: Sequence[HistoryStatus]) -> str:
    parts = "; ".join(f"{s.name} at {s.current_label}, code knows up to {s.head_label}" for s in statuses)
    return f"database schema is newer than this code ({parts}): run the release that migrated it"


def service_histories() -> list[MigrationHistory]:
    """The shared services' own histories; the core adds each enabled plugin's (``suite_migrations``).

    Declared here by folder, not imported from the services' packages: reading a history must not
    import the scheduler or the alert sinks (a one-shot command only checks the version tables).
    """
    services = Path(__file__).parent
    return [
        MigrationHistory(
            "scheduling",
            services / "scheduling" / "migrations",
            database="jobstore",
            legacy_tables=("job_runs",),
            metadata="services.scheduling.runlog:metadata",
        ),
        MigrationHistory(
            "alert_outbox", services / "outbox" / "migrations", metadata="services.outbox:outbox_metadata"
        ),
    ]


def service_history(name: str) -> MigrationHistory:
    """One of :func:`service_histories` by name."""
    return next(history for history in service_histories() if history.name == name)
