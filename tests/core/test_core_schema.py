"""Schema migrations on real SQLite and PostgreSQL: old databases upgrade with every row, outdated ones stop servers."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from schema_support import ROWS, T1, previous_release
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import Engine, make_url
from typer.testing import CliRunner

from services.database import create_database_engine
from services.scheduling import RunLog
from services.schema import MigrationHistory, status, upgrade
from suite.cli import build_app, main
from suite.commands.db import schema_statuses
from suite.context import SuiteContext
from suite.errors import SchemaError

runner = CliRunner()
BUILT_INS = {"chatbot", "recommender", "sentiment"}
OUTDATED = "error: database schema is out of date (sentiment at 0001, code needs 0002): run 'suite db upgrade'\n"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a PostgreSQL database of this test's own, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'suite.db'}"
        return
    server = make_url(request.getfixturevalue("postgres_url"))
    name = f"suite_mig_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_context(data_dir: Path, url: str | None = None) -> SuiteContext:
    """The built-in plugins only, with the plugin stores and the job store in one database (as in Compose)."""
    others = {ep.name: {"enabled": False} for ep in entry_points(group="suite.plugins") if ep.name not in BUILT_INS}
    overrides: dict[str, Any] = {"database_url": url, "scheduler": {"jobstore_url": url}} if url else {}
    return SuiteContext.create(None, data_dir=data_dir, plugins=others, **overrides)


def write_previous_release(url: str) -> None:
    """What the last release before migrations left: its tables (``create_all``) and rows, no version table."""
    engine = create_database_engine(url)
    previous_release.create_all(engine)
    with engine.begin() as conn:
        for table in previous_release.sorted_tables:
            for row in ROWS[table.name]:
                conn.execute(table.insert().values(row))
    engine.dispose()


def read_previous_release(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    found = {}
    with engine.connect() as conn:
        for table in previous_release.sorted_tables:
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).mappings()
            found[table.name] = [{key: _utc(value) for key, value in row.items()} for row in rows]
    return found


def _utc(value: Any) -> Any:
    # SQLite hands timestamps back naive, PostgreSQL in the session's zone: compare instants.
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return value


def behind_by_one(ctx: SuiteContext) -> None:
    """Every history at its head except sentiment, left at 0001 (before the alert index revision)."""
    for history in ctx.migration_histories():
        engine = create_database_engine(ctx.database_url(history.database))
        upgrade(engine, history, "0001" if history.name == "sentiment" else "heads")
        engine.dispose()


def test_previous_release_upgrades_with_every_row_intact(database_url: str, tmp_path: Path) -> None:
    write_previous_release(database_url)
    ctx = make_context(tmp_path / "data", database_url)
    assert {s.name: s.state for s in schema_statuses(ctx)} == {
        "scheduling": "unversioned",
        "alert_outbox": "absent",  # new in this release: no table to adopt
        "chatbot": "unversioned",
        "recommender": "unversioned",
        "sentiment": "unversioned",
    }

    result = runner.invoke(build_app(ctx), ["db", "upgrade"])

    assert result.exit_code == 0, result.output
    assert "sentiment: unversioned -> 0002" in result.output
    assert {s.name: (s.state, s.current) for s in schema_statuses(ctx)} == {
        "scheduling": ("current", ("0001",)),
        "alert_outbox": ("current", ("0001",)),
        "chatbot": ("current", ("0001",)),
        "recommender": ("current", ("0001",)),
        "sentiment": ("current", ("0002",)),
    }
    engine = create_database_engine(database_url)
    expected = {name: [{key: _utc(value) for key, value in row.items()} for row in rows] for name, rows in ROWS.items()}
    assert read_previous_release(engine) == expected
    indexes = {index["name"] for index in inspect(engine).get_indexes("sentiment_alerts")}
    assert "ix_sentiment_alerts_key_created_at" in indexes and "ix_sentiment_alerts_key" not in indexes
    engine.dispose()
    # The code of this release reads the old rows through its own stores.
    from plugins.sentiment.store import SentimentStore

    store = SentimentStore(ctx.database)
    assert [(a.id, a.key, a.deliveries) for a in store.alerts()] == [(1, "drop:ACME", [{"sink": "log", "ok": True}])]
    assert store.last_alert_times(["drop:ACME"]) == {"drop:ACME": T1.replace(tzinfo=timezone.utc)}
    assert [run.job for run in RunLog(database_url).recent()] == ["chatbot.purge", "sentiment.monitor"]
    ctx.shutdown()


def test_the_head_of_every_history_creates_exactly_the_declared_tables(database_url: str, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "data", database_url)
    ctx.require_current_schema()  # what `suite serve` does first: an empty database is simply created
    engine = create_database_engine(database_url)
    for history in ctx.migration_histories():
        assert status(engine, history).state == "current"
        assert differences(engine, history) == [], history.name
    engine.dispose()
    ctx.shutdown()


def differences(engine: Engine, history: MigrationHistory) -> list[Any]:
    declared = history.declared_metadata()
    assert declared is not None, f"{history.name}: declare metadata= to be checked"
    own = set(declared.tables)

    def include_name(name: str | None, kind: str, _parent: Any) -> bool:
        return kind != "table" or name in own

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name})
        return compare_metadata(context, declared)


def test_serve_and_scheduler_refuse_an_outdated_schema_with_one_line(
    isolated_suite_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    behind_by_one(make_context(isolated_suite_env))
    monkeypatch.setattr("uvicorn.run", fail_if_started)
    monkeypatch.setattr("services.scheduling.SchedulerService.run_forever", fail_if_started)

    for command in (["serve"], ["scheduler", "run"]):
        with pytest.raises(SystemExit) as stopped:
            main(command)
        captured = capsys.readouterr()
        assert (stopped.value.code, captured.err) == (3, OUTDATED), command

    with pytest.raises(SystemExit) as listed:
        main(["db", "current", "--json"])
    assert listed.value.code == 0
    rows = json.loads(capsys.readouterr().out)
    states = {row["history"]: (row["current"], row["head"], row["state"]) for row in rows}
    assert states["sentiment"] == ("0001", "0002", "behind") and states["chatbot"] == ("0001", "0001", "current")


def fail_if_started(*_args: Any, **_kwargs: Any) -> None:
    raise AssertionError("started on an outdated schema")


def test_one_shot_commands_upgrade_sqlite_but_never_postgresql(database_url: str, tmp_path: Path) -> None:
    behind_by_one(make_context(tmp_path / "data", database_url))
    ctx = make_context(tmp_path / "data", database_url)
    sentiment = next(h for h in ctx.migration_histories() if h.name == "sentiment")
    if database_url.startswith("sqlite"):
        assert status(ctx.database, sentiment).current == ("0002",)
    else:
        with pytest.raises(SchemaError) as refused:
            ctx.database  # noqa: B018 - first use prepares the schema
        assert f"error: {refused.value}\n" == OUTDATED
        assert status(create_database_engine(database_url), sentiment).current == ("0001",)
    ctx.shutdown()


def test_a_schema_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "data")
    with ctx.database.begin() as conn:
        conn.execute(text("UPDATE alembic_version_sentiment SET version_num = '0099'"))
    ctx.shutdown()
    newer = r"newer than this code \(sentiment at 0099, code knows up to 0002\)"
    with pytest.raises(SchemaError, match=newer):
        make_context(tmp_path / "data").database  # noqa: B018 - first use prepares the schema
    with pytest.raises(SchemaError, match=newer):
        runner.invoke(build_app(make_context(tmp_path / "data")), ["db", "upgrade"], catch_exceptions=False)


def test_processes_upgrading_at_once_migrate_once(database_url: str, tmp_path: Path) -> None:
    histories = make_context(tmp_path / "data").migration_histories()
    engines = [create_database_engine(database_url) for _ in range(3)]
    outcomes: list[Any] = []

    def migrate(engine: Engine) -> None:
        try:
            outcomes.append([upgrade(engine, history).state for history in histories])
        except Exception as exc:  # noqa: BLE001 - reported below
            outcomes.append(exc)

    threads = [threading.Thread(target=migrate, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes == [["current"] * len(histories)] * 3
    with engines[0].connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version_sentiment")).scalars().all() == ["0002"]
    for engine in engines:
        engine.dispose()


def test_db_current_and_upgrade_one_history(tmp_path: Path) -> None:
    app = build_app(make_context(tmp_path / "data"))

    listed = runner.invoke(app, ["db", "current", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["history"]: row for row in json.loads(listed.output)}
    assert rows["scheduling"]["database"] == "jobstore" and rows["sentiment"]["database"] == "main"
    assert {row["state"] for row in rows.values()} == {"absent"}

    upgraded = runner.invoke(app, ["db", "upgrade", "sentiment"])
    assert (upgraded.exit_code, upgraded.output) == (0, "sentiment: none -> 0002\n")
    again = runner.invoke(app, ["db", "upgrade", "sentiment"])
    assert again.output == "sentiment: at 0002 already\n"
    table = runner.invoke(app, ["db", "current"]).output
    assert "sentiment" in table and "current" in table and "absent" in table

    unknown = runner.invoke(app, ["db", "upgrade", "nosuch"])
    assert unknown.exit_code != 0 and "unknown migration history 'nosuch'" in str(unknown.exception)


THINGS_REVISIONS = {
    "0001": (
        "None",
        'op.create_table("things", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text))',
    ),
    "0002": (
        '"0001"',
        'op.add_column("things", sa.Column("slug", sa.Text))\n    op.execute("UPDATE things SET slug = upper(name)")',
    ),
    "0003": (
        '"0002"',
        'op.create_table("leftovers", sa.Column("id", sa.Integer))\n    raise RuntimeError("disk on fire")',
    ),
}


def things_history(folder: Path, revisions: list[str]) -> MigrationHistory:
    """A package's history written by the test: the given revisions of :data:`THINGS_REVISIONS`."""
    folder.mkdir()
    for revision in revisions:
        down, body = THINGS_REVISIONS[revision]
        script = f"import sqlalchemy as sa\nfrom alembic import op\n\nrevision = {revision!r}\ndown_revision = {down}\n"
        (folder / f"{revision}_step.py").write_text(f"{script}\n\ndef upgrade():\n    {body}\n")
    return MigrationHistory("things", folder)


def test_a_data_migration_keeps_every_row_and_a_failing_one_changes_nothing(database_url: str, tmp_path: Path) -> None:
    engine = create_database_engine(database_url)
    assert upgrade(engine, things_history(tmp_path / "v1", ["0001"])).current == ("0001",)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO things (id, name) VALUES (1, 'alpha'), (2, 'beta')"))

    broken = things_history(tmp_path / "v3", ["0001", "0002", "0003"])
    with pytest.raises(SchemaError, match=r"upgrading things from 0001 failed, nothing changed: .*disk on fire"):
        upgrade(engine, broken)
    assert status(engine, broken).current == ("0001",)
    assert not inspect(engine).has_table("leftovers")
    assert [column["name"] for column in inspect(engine).get_columns("things")] == ["id", "name"]

    assert upgrade(engine, things_history(tmp_path / "v2", ["0001", "0002"])).current == ("0002",)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, name, slug FROM things ORDER BY id")).all()
    assert [tuple(row) for row in rows] == [(1, "alpha", "ALPHA"), (2, "beta", "BETA")]
    engine.dispose()


def test_a_server_refuses_a_database_made_before_migrations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    write_previous_release(url)
    with pytest.raises(SchemaError) as refused:
        make_context(tmp_path / "data", url).require_current_schema()
    assert str(refused.value) == (
        "database schema is out of date (sentiment made before migrations, code needs 0002; "
        "recommender made before migrations, code needs 0001; chatbot made before migrations, code needs 0001; "
        "scheduling made before migrations, code needs 0001): run 'suite db upgrade'"
    )
    listed = runner.invoke(build_app(make_context(tmp_path / "data", url)), ["db", "current"])
    assert "run 'suite db upgrade'" in listed.output
    states = {s.name: s.state for s in schema_statuses(make_context(tmp_path / "data", url))}
    assert states.pop("alert_outbox") == "current"  # new in this release: absent tables are created at once
    assert set(states.values()) == {"unversioned"}
