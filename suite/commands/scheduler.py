"""``suite scheduler``: run the scheduler process in the foreground, or see who runs it.

The scheduler is always a process of its own (a systemd unit, a container); the HTTP
server never starts it. Run as many as you like against one job store: one is active,
the others stand by and take over when it stops.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from suite.commands.jobs import jobs_table, to_json

if TYPE_CHECKING:
    from suite.context import SuiteContext

console = Console()


def show_scheduler_progress() -> None:
    """Let the scheduler's own INFO lines (active, standby, stopped) through the CLI's WARNING default."""
    logger = logging.getLogger("services.scheduling")
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


def build(ctx: SuiteContext) -> typer.Typer:

    app = typer.Typer(help="Run the scheduler process or show its state.", no_args_is_help=True)

    @app.command("run")
    def run_command(
        no_standby: bool = typer.Option(
            False, "--no-standby", help="exit 1 if another scheduler holds the lock instead of standing by"
        ),
    ) -> None:
        """Run scheduled jobs in the foreground until SIGINT or SIGTERM.

        Another scheduler on this job store? Stand by, take over when it stops.
        """
        ctx.require_current_schema()  # never run jobs on an outdated schema: 'suite db upgrade' first
        show_scheduler_progress()
        from services.training.loading import set_long_running

        set_long_running()  # bulk scoring for hours: worth torch's import where bfloat16 is native
        port = ctx.settings.scheduler.metrics_port
        if port:  # job runs and alert deliveries happen here, not in the API
            from services.metrics import serve_metrics

            serve_metrics(port)
            logging.getLogger("services.scheduling").info("metrics at http://127.0.0.1:%d/metrics", port)
        ctx.startup()
        with ctx.scheduler() as service:
            service.run_forever(standby=not no_standby)

    @app.command("status")
    def status_command(as_json: bool = typer.Option(False, "--json", help="JSON instead of text")) -> None:
        """Show which process holds the scheduler lock, and every job's next run."""
        ctx.startup()
        with ctx.scheduler() as service:
            holder = service.lock_holder()
            rows = service.list_jobs()
            store = service.store_description
        if as_json:
            typer.echo(to_json({"store": store, "lock_holder": holder, "jobs": rows}))
            return
        console.print(f"job store: {store}")
        console.print(f"scheduler: running in {holder}" if holder else "scheduler: not running")
        if rows:
            console.print(jobs_table(rows, service.timezone, console.width))
        else:
            console.print("no scheduled jobs declared by the enabled plugins")

    return app
