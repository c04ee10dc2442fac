"""``suite alerts deliveries`` and ``suite alerts redeliver``: the alert outbox from the command line.

The ``alerts`` group belongs to the plugin that raises alerts; it adds these commands
with :func:`add_delivery_commands`, so they read the outbox of every plugin alike.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.outbox import FAILED, GIVEN_UP, OPEN, SENT, DeliveryRecord

if TYPE_CHECKING:
    from services.outbox import AlertOutbox
    from suite.context import SuiteContext

console = Console()
STATUS_STYLE = {SENT: "green", FAILED: "yellow", GIVEN_UP: "red"}


def _time(value: datetime | None) -> str:
    return f"{value:%m-%d %H:%M:%S}" if value else "-"


def _when(record: DeliveryRecord) -> str:
    """Sent: when; still open: when the next attempt is due; given up: nothing left to happen."""
    if record.status == SENT:
        return _time(record.sent_at)
    return _time(record.next_attempt_at) if record.status in OPEN else "-"


def deliveries_table(records: list[DeliveryRecord]) -> Table:
    """One line per delivery, readable at 80 columns: the error is cut to the room left."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("alert", no_wrap=True)
    table.add_column("sink", overflow="ellipsis", no_wrap=True, max_width=24)
    table.add_column("status", no_wrap=True)
    table.add_column("tries", justify="right", no_wrap=True)
    table.add_column("sent/next (UTC)", no_wrap=True)
    table.add_column("last error", overflow="ellipsis", no_wrap=True, ratio=1)
    for record in records:
        style = STATUS_STYLE.get(record.status, "white")
        table.add_row(
            str(record.id),
            f"{record.alert_source} {record.alert_ref or '-'}",
            escape(record.sink),
            f"[{style}]{record.status}[/]",
            str(record.attempts),
            _when(record),
            escape(record.last_error or ""),
        )
    return table


def show_deliveries(outbox: AlertOutbox, *, pending: bool, failed: bool, limit: int, as_json: bool) -> None:
    """``--pending``: still to be sent (pending, failed); ``--failed``: last attempt failed (failed, given_up)."""
    statuses: set[str] | None = None
    if pending or failed:
        statuses = (set(OPEN) if pending else set()) | ({FAILED, GIVEN_UP} if failed else set())
    records = outbox.deliveries(statuses, limit=limit)
    if as_json:
        typer.echo(json.dumps([record.to_dict() for record in records], indent=2))
    elif not records:
        console.print("no alert deliveries" + (" match" if statuses else ""))
    else:
        console.print(deliveries_table(records))


def redeliver(outbox: AlertOutbox, delivery_id: int) -> None:
    record = outbox.redeliver(delivery_id)
    console.print(
        f"alert delivery {record.id} to {escape(record.sink)} queued again (attempts so far: {record.attempts})",
        highlight=False,
    )


def add_delivery_commands(app: typer.Typer, ctx: SuiteContext) -> None:
    """Add ``deliveries`` and ``redeliver`` to an ``alerts`` command group."""

    @app.command("deliveries")
    def deliveries_command(
        pending: bool = typer.Option(False, "--pending", help="only those still to be sent (pending, failed)"),
        failed: bool = typer.Option(False, "--failed", help="only those whose last attempt failed"),
        limit: int = typer.Option(50, min=1),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Alert deliveries, newest first: one per alert and sink, with attempts and the last error."""
        show_deliveries(ctx.alert_outbox, pending=pending, failed=failed, limit=limit, as_json=as_json)

    @app.command("redeliver")
    def redeliver_command(
        delivery_id: int = typer.Argument(..., help="a delivery id from `alerts deliveries`"),
    ) -> None:
        """Queue a failed or given-up delivery again; the next delivery pass sends it (same idempotency key)."""
        redeliver(ctx.alert_outbox, delivery_id)
