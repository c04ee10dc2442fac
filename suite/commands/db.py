"""``suite db``: where each package's schema stands, and upgrading it.

Every package that keeps tables (the scheduling service, each plugin) has its own
Alembic history; see :mod:`services.schema`. These commands open their own
connections, so they work on a database the rest of the suite refuses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from suite.errors import NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from services.schema import DatabaseRole, HistoryStatus, MigrationHistory
    from suite.context import SuiteContext

console = Console()
STATE_STYLES = {"current": "green", "absent": "dim", "unversioned": "yellow", "behind": "yellow", "unknown": "red"}


def build(ctx: SuiteContext) -> typer.Typer:
    app = typer.Typer(help="Show and upgrade the database schema of every package.", no_args_is_help=True)

    @app.command("current")
    def current_command(as_json: bool = typer.Option(False, "--json", help="JSON instead of a table")) -> None:
        """Show each package's schema revision beside the revision the code needs."""
        show_statuses(schema_statuses(ctx), as_json)

    @app.command("upgrade")
    def upgrade_command(
        packages: list[str] = typer.Argument(None, help="migration histories to upgrade; default all"),
    ) -> None:
        """Upgrade the schema of every package (or the named ones) to what the code needs."""
        for line in upgrade_histories(ctx, packages or []):
            console.print(line, highlight=False)

    return app


def select_histories(ctx: SuiteContext, names: Sequence[str]) -> list[MigrationHistory]:
    """The histories called ``names`` (all when empty); an unknown name is an error."""
    histories = ctx.migration_histories()
    unknown = set(names) - {history.name for history in histories}
    if unknown:
        known = ", ".join(history.name for history in histories)
        raise NotFoundError(f"unknown migration history '{sorted(unknown)[0]}' (known: {known})")
    return [history for history in histories if not names or history.name in names]


@contextmanager
def open_database(ctx: SuiteContext, role: DatabaseRole) -> Iterator[Engine]:
    from services.database import create_database_engine

    engine = create_database_engine(ctx.database_url(role))
    try:
        yield engine
    finally:
        engine.dispose()


def schema_statuses(ctx: SuiteContext) -> list[HistoryStatus]:
    """Where every history stands, without changing anything."""
    from services.schema import status

    found = []
    every = ctx.migration_histories()
    for role in ("main", "jobstore"):
        histories = [history for history in every if history.database == role]
        if histories:
            with open_database(ctx, role) as engine:
                found += [status(engine, history) for history in histories]
    return found


def upgrade_histories(ctx: SuiteContext, names: Sequence[str]) -> Iterator[str]:
    """Upgrade the chosen histories to their heads, yielding one line per history as it is done."""
    from services.schema import status, upgrade

    chosen = select_histories(ctx, names)
    for role in ("main", "jobstore"):
        histories = [history for history in chosen if history.database == role]
        if not histories:
            continue
        with open_database(ctx, role) as engine:
            for history in histories:
                before = status(engine, history)
                after = upgrade(engine, history)
                if before.state == "current":
                    yield f"{history.name}: at {after.current_label} already"
                else:
                    yield f"{history.name}: {before.current_label} -> {after.current_label}"


def show_statuses(statuses: Sequence[HistoryStatus], as_json: bool) -> None:
    if as_json:
        rows = [
            {
                "history": s.name,
                "database": s.history.database,
                "current": s.current_label,
                "head": s.head_label,
                "state": s.state,
            }
            for s in statuses
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("history", "database", "current", "head", "state", box=box.SIMPLE_HEAD)
    for s in statuses:
        style = STATE_STYLES[s.state]
        table.add_row(s.name, s.history.database, s.current_label, s.head_label, f"[{style}]{s.state}[/]")
    console.print(table)
    if any(s.state in ("behind", "unversioned") for s in statuses):
        console.print("run 'suite db upgrade' to bring them to the code's head", highlight=False)
