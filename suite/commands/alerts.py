"""``suite alerts``: the alert outbox of every plugin (``deliveries``, ``redeliver``).

The core owns the group; a plugin that raises alerts adds its own commands to it
(``suite.commands.command_group(cli, "alerts")``), e.g. the sentiment plugin's
``list``, ``show`` and ``ack``.
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

if TYPE_CHECKING:
    from services.outbox import AlertOutbox, DeliveryRecord
    from suite.context import SuiteContext

console = Console()
# services.outbox's statuses, spelt out: importing it (SQLAlchemy) would slow every `suite --help`.
STATUS_STYLE = {"sent": "green", "failed": "yellow", "given_up": "red"}
SINK_WIDTH = 18  # "webhook https://ho…"


def _time(value: datetime | None) -> str:
    return f"{value:%m-%d %H:%M}" if value else "-"


def _when(record: DeliveryRecord) -> str:
    """Sent: when; still open: when the next attempt is due; given up: nothing left to happen."""
    from services.outbox import OPEN, SENT

    if record.status == SENT:
        return _time(record.sent_at)
    return _time(record.next_attempt_at) if record.status in OPEN else "-"


def _alert(record: DeliveryRecord) -> str:
    return record.alert_ref or "-"  # the raising plugin's alert id (``--json`` adds alert_source)


def deliveries_table(records: list[DeliveryRecord], width: int) -> Table:
    """One line per delivery that fits ``width`` columns: the last error is cut to the room left."""
    rows = [[str(r.id), _alert(r), r.sink, r.status, str(r.attempts), _when(r), r.last_error or ""] for r in records]
    headers = ["id", "alert", "sink", "status", "tries", "when (UTC)", "last error"]
    fixed = [max([len(header), *(len(row[n]) for row in rows)]) for n, header in enumerate(headers[:-1])]
    fixed[2] = min(fixed[2], SINK_WIDTH)
    # rich shrinks every no-wrap column alike when a table is too wide; size the error column ourselves.
    gaps = 3 * (len(headers) - 1)  # padding either side of each column divider, and the divider
    error_width = max(len(headers[-1]), width - sum(fixed) - gaps - 1)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for n, header in enumerate(headers):
        size = fixed[n] if n < len(fixed) else error_width
        table.add_column(
            header, no_wrap=True, overflow="ellipsis", width=size, justify="right" if n in (0, 4) else "left"
        )
    for row in rows:
        style = STATUS_STYLE.get(row[3], "white")
        row[3] = f"[{style}]{row[3]}[/]"
        table.add_row(*(cell if n == 3 else escape(cell) for n, cell in enumerate(row)))
    return table


def show_deliveries(outbox: AlertOutbox, *, pending: bool, failed: bool, limit: int, as_json: bool) -> None:
    """``--pending``: still to be sent (pending, failed); ``--failed``: last attempt failed (failed, given_up)."""
    from services.outbox import FAILED, GIVEN_UP, OPEN

    statuses: set[str] | None = None
    if pending or failed:
        statuses = (set(OPEN) if pending else set()) | ({FAILED, GIVEN_UP} if failed else set())
    records = outbox.deliveries(statuses, limit=limit)
    if as_json:
        typer.echo(json.dumps([record.to_dict() for record in records], indent=2))
    elif not records:
        console.print("no alert deliveries" + (" match" if statuses else ""))
    else:
        console.print(deliveries_table(records, console.width))


def redeliver(outbox: AlertOutbox, delivery_id: int) -> None:
    record = outbox.redeliver(delivery_id)
    console.print(
        f"alert delivery {record.id} to {escape(record.sink)} queued again (attempts so far: {record.attempts})",
        highlight=False,
    )


HELP = "Alerts: deliveries per sink and redelivery (and the commands of plugins that raise alerts)."


def build(ctx: SuiteContext) -> typer.Typer:
    app = typer.Typer(help=HELP, no_args_is_help=True)
    add_delivery_commands(app, ctx)
    return app


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
