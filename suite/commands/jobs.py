"""``suite jobs``: the jobs plugins schedule, their next and past runs, and running one now."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from suite.errors import SuiteError

if TYPE_CHECKING:
    from services.scheduling import JobRun
    from suite.context import SuiteContext

console = Console()
STATUS_STYLE = {"ok": "green", "failed": "red", "running": "yellow"}
WIDE_TERMINAL = 140  # columns needed before job descriptions are shown


def format_time(value: datetime | None, zone: tzinfo) -> str:
    """A timestamp in the scheduler's zone, which the column header names."""
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def styled_status(status: str | None) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]" if status else "-"


def to_json(data: Any) -> str:
    """JSON with datetimes as ISO 8601."""
    return json.dumps(data, indent=2, default=lambda value: value.isoformat())


def run_as_dict(run: JobRun) -> dict[str, Any]:
    return {**vars(run), "duration_seconds": run.duration_seconds}


def jobs_table(rows: list[dict[str, Any]], zone: tzinfo, width: int) -> Table:
    """The jobs with their schedule and runs; descriptions only where the terminal has room."""
    table = Table(box=box.SIMPLE_HEAD)
    for header in ("job", "plugin", "schedule", f"next run ({zone})", f"last run ({zone})", "status"):
        table.add_column(header, no_wrap=header in ("job", "status"))
    with_description = width >= WIDE_TERMINAL
    if with_description:
        table.add_column("description", overflow="ellipsis", no_wrap=True)
    for row in rows:
        cells = [
            row["name"],
            row["plugin"],
            row["trigger"],
            format_time(row["next_run_time"], zone),
            format_time(row["last_run_at"], zone),
            styled_status(row["last_status"]),
        ]
        table.add_row(*cells, *([row["description"]] if with_description else []))
    return table


def build(ctx: SuiteContext) -> typer.Typer:
    from services.scheduling import RunLog
    from services.scheduling.service import resolve_timezone

    app = typer.Typer(help="Jobs that plugins schedule: list, run one now, history.", no_args_is_help=True)

    @app.command("list")
    def list_command(as_json: bool = typer.Option(False, "--json", help="JSON instead of a table")) -> None:
        """List jobs: name, plugin, schedule, next run (once a scheduler has run) and last run."""
        ctx.startup()
        with ctx.scheduler() as service:
            rows = service.list_jobs()
        if as_json:
            typer.echo(to_json(rows))
        elif not rows:
            console.print("no scheduled jobs declared by the enabled plugins")
        else:
            console.print(jobs_table(rows, service.timezone, console.width))

    @app.command("run")
    def run_command(name: str = typer.Argument(..., help="job name, e.g. sentiment.poll_feeds")) -> None:
        """Run one job now, in the foreground, and record it as a manual run."""
        ctx.startup()
        with ctx.scheduler(record_failures=False) as service:
            run = service.run_now(name)
        if run.status == "failed":
            raise SuiteError(f"job '{name}' failed: {run.error}")
        console.print(f"job {name}: [green]ok[/] in {run.duration_seconds:.2f}s (run {run.id})")

    @app.command("history")
    def history_command(
        name: str = typer.Argument(None, help="one job; default all"),
        limit: int = typer.Option(20, "--limit", "-n", min=1, help="how many runs, newest first"),
        as_json: bool = typer.Option(False, "--json", help="JSON instead of a table"),
    ) -> None:
        """Show recent runs, scheduled and manual, newest first."""
        zone = resolve_timezone(ctx.settings.scheduler.timezone)
        ctx.prepare_schema("jobstore")
        run_log = RunLog(ctx.database_url("jobstore"))
        try:
            runs = run_log.recent(name, limit)
        finally:
            run_log.close()
        if as_json:
            typer.echo(to_json([run_as_dict(run) for run in runs]))
            return
        if not runs:
            console.print(f"no runs of {name} recorded" if name else "no job runs recorded")
            return
        table = Table(
            "run", "job", "plugin", "trigger", f"started ({zone})", "seconds", "status", "error", box=box.SIMPLE_HEAD
        )
        for run in runs:
            seconds = run.duration_seconds
            table.add_row(
                str(run.id),
                run.job,
                run.plugin,
                run.trigger,
                format_time(run.started_at, zone),
                f"{seconds:.2f}" if seconds is not None else "-",
                styled_status(run.status),
                run.error or "",
            )
        console.print(table)

    return app
