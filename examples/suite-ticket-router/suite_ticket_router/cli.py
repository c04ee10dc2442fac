"""``suite tickets ...``: route a ticket, process the inbox, list routed tickets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from suite_ticket_router.options import PLUGIN

if TYPE_CHECKING:
    from suite.context import SuiteContext

console = Console()


def build(ctx: SuiteContext) -> typer.Typer:
    group = typer.Typer(help="Route support tickets to the right queue.", no_args_is_help=True)

    @group.command("route")
    def route(
        text: str = typer.Argument(..., help="the ticket's text"),
        similar: int = typer.Option(None, "--similar", "-k", min=0, max=20, help="similar past tickets to show"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        """Route one ticket: its queue, the confidence, and the most similar past tickets."""
        ctx.startup()
        from suite_ticket_router.routing import route_ticket  # the model and index: only when a command runs

        answer = route_ticket(ctx, text, similar)
        if as_json:
            typer.echo(json.dumps(answer.to_dict(), indent=2))
            return
        routing = answer.routing
        flag = "  [yellow](needs review)[/]" if routing.needs_review else ""
        console.print(f"queue: [bold]{routing.queue}[/]  confidence: {routing.confidence:.2f}{flag}")
        for entity in answer.entities:
            console.print(f"{entity['label'].lower().replace('_', ' ')}: {escape(entity['text'])}")
        if answer.similar:
            table = Table("similar ticket", "queue", "similarity", "text", title=None)
            for ticket in answer.similar:
                table.add_row(ticket.id, ticket.queue or "-", f"{ticket.score:.2f}", escape(ticket.text))
            console.print(table)

    @group.command("process-inbox")
    def process(
        inbox: Path = typer.Option(None, help="JSONL inbox (default: the plugin's 'inbox' option)"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
    ) -> None:
        """Route the inbox tickets not routed yet and store them (what the scheduled job runs)."""
        ctx.startup()
        from suite_ticket_router.routing import process_inbox

        report = process_inbox(ctx, inbox)
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
            return
        console.print(report.summary())
        for problem in report.skipped:
            console.print(f"[yellow]skipped[/] {escape(problem)}")

    @group.command("routed")
    def routed(
        limit: int = typer.Option(20, min=1, max=1000),
        queue: str = typer.Option(None, help="only this queue"),
    ) -> None:
        """The most recently routed tickets."""
        ctx.startup()
        table = Table("ticket", "queue", "confidence", "review", "text")
        from suite_ticket_router.store import RoutedStore

        for ticket in RoutedStore(ctx.database).recent(limit, queue):
            review = "yes" if ticket.needs_review else ""
            table.add_row(ticket.ticket_id, ticket.queue, f"{ticket.confidence:.2f}", review, escape(ticket.text))
        console.print(table)

    return group


def register(cli: typer.Typer, ctx: SuiteContext) -> None:
    cli.add_typer(build(ctx), name=PLUGIN)
