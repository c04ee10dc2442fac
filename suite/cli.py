"""The ``suite`` command line.

The app is built after the configuration is read and plugins are discovered, so that
plugins can add their commands through ``suite_cli_commands``. Every
:class:`~suite.errors.SuiteError` ends as one line on stderr and a non-zero exit; set
``SUITE_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from suite import __version__
from suite.context import SuiteContext
from suite.errors import SuiteError, one_line

# Command groups of the shared services, each a module with ``build(ctx) -> typer.Typer``.
SERVICE_COMMAND_GROUPS = {
    "models": "suite.commands.models",
    "jobs": "suite.commands.jobs",
    "scheduler": "suite.commands.scheduler",
    "search": "suite.commands.search",
    "preprocess": "suite.commands.preprocess",
    "db": "suite.commands.db",
    "alerts": "suite.commands.alerts",
}

console = Console()
err_console = Console(stderr=True)


def _config_arg(argv: Sequence[str]) -> str | None:
    """Read ``--config`` before the app exists: it decides which plugins add commands."""
    for index, arg in enumerate(argv):
        if arg in ("--config", "-c") and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def build_app(ctx: SuiteContext) -> typer.Typer:
    app = typer.Typer(
        name="suite",
        help="A plugin-based NLP application suite.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @app.callback()
    def _root(
        config: str = typer.Option(None, "--config", "-c", help="TOML file (default: $SUITE_CONFIG, ./suite.toml)"),
        version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Show version."),
    ) -> None:
        """A plugin-based NLP application suite."""

    _add_core_commands(app, ctx)
    _add_quickstart(app, ctx)
    import_module("suite.commands.pretrain").register(app, ctx)
    for name, module in SERVICE_COMMAND_GROUPS.items():  # built-in: a missing one is a broken install, not skipped
        app.add_typer(import_module(module).build(ctx), name=name)
    ctx.plugins.call_each("suite_cli_commands", cli=app, ctx=ctx)
    return app


def _add_core_commands(app: typer.Typer, ctx: SuiteContext) -> None:
    config_app = typer.Typer(help="Show and check the effective configuration.", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    @config_app.command("show")
    def config_show(as_json: bool = typer.Option(False, "--json", help="JSON instead of TOML")) -> None:
        """Print the effective configuration (file + environment + defaults), secrets hidden."""
        data = ctx.settings.redacted()
        if as_json:
            typer.echo(json.dumps(data, indent=2))
        else:
            import tomli_w

            typer.echo(tomli_w.dumps(_drop_none(data)))

    @config_app.command("check")
    def config_check() -> None:
        """Validate the configuration and every plugin's options; exit non-zero if invalid."""
        console.print("configuration is valid")

    @app.command("plugins")
    def plugins_command(
        as_json: bool = typer.Option(False, "--json"),
        examples: bool = typer.Option(False, "--examples", help="list each plugin's example commands"),
    ) -> None:
        """List plugins: name, version, hooks implemented, enabled."""
        if examples:
            for plugin, example in ctx.plugins.collect("suite_cli_examples", ctx=ctx):
                typer.echo(f"{plugin}: suite {shlex.join(example)}")
            return
        infos = ctx.plugins.describe()
        if as_json:
            typer.echo(json.dumps([{**vars(i), "status": i.status} for i in infos], indent=2))
            return
        table = Table("plugin", "version", "status", "hooks", "description")
        for info in infos:
            hooks = ", ".join(h.removeprefix("suite_") for h in info.hooks)
            table.add_row(info.name, info.version, info.status, hooks, info.error or info.description)
        console.print(table)

    @app.command("new-plugin")
    def new_plugin(
        name: str = typer.Argument(..., help="plugin name: lowercase letters, digits, '_'"),
        directory: Path = typer.Option(Path("."), "--dir", help="where to create suite-<name>/"),
    ) -> None:
        """Write an installable plugin package (pyproject with the entry point, hooks, sample data, a test)."""
        from suite.scaffold import render_plugin

        target = render_plugin(name, directory.resolve())
        console.print(f"created {target}\nnext: pip install -e {target} && suite plugins")

    @app.command("train")
    def train_command(
        targets: list[str] = typer.Argument(None, help="plugin or plugin:task; default all tasks"),
        epochs: float = typer.Option(None, help="override the number of epochs"),
        max_steps: int = typer.Option(None, help="stop after this many optimiser steps"),
        batch_size: int = typer.Option(None),
        learning_rate: float = typer.Option(None),
        backbone: str = typer.Option(None, help="start from this model folder, hub id or registry ref instead"),
        teacher: str = typer.Option(None, help="distil from this classifier: registry ref or folder"),
        transfer: str = typer.Option(None, help="with --teacher: unlabelled texts, a file or 'plugin'"),
        temperature: float = typer.Option(None, min=0.01, help="with --teacher: softmax temperature (2)"),
        alpha: float = typer.Option(None, min=0, max=1, help="with --teacher: weight of its soft targets (0.5)"),
    ) -> None:
        """Fine-tune the models that plugins declare, and register each new version."""
        from suite.training_tasks import training_overrides

        tasks = [task for t in targets for task in ctx.select_training_tasks(t)] if targets else ctx.training_tasks()
        if not tasks:
            raise SuiteError("no training tasks declared by the enabled plugins")
        given = dict(epochs=epochs, max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate)
        overrides = {k: v for k, v in given.items() if v is not None}
        changes = dict(backbone=backbone, teacher=teacher, transfer=transfer, temperature=temperature, alpha=alpha)
        ctx.startup()
        for task in tasks:
            console.print(f"[bold]training {task.qualified_name}[/] ({task.kind}): {task.description}")
            with training_overrides(ctx, task, **changes):
                version = task.run(ctx, overrides)
            console.print(f"registered {version.ref}  {format_metrics(version.card.metrics)}")

    @app.command("serve")
    def serve_command(
        typer_ctx: typer.Context,
        host: str = typer.Option(None, help="address to bind (default: http.host, 127.0.0.1)"),
        port: int = typer.Option(None, help="port (default: http.port, 8000)"),
        workers: int = typer.Option(None, help="worker processes, each loads its own models (default: 1)"),
    ) -> None:
        """Serve the HTTP API of the core and every enabled plugin (OpenAPI docs at /docs)."""
        from suite.app import serve

        config_file = typer_ctx.find_root().params.get("config")
        serve(ctx, host=host, port=port, workers=workers, config_file=config_file)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"suite {__version__}")
        raise typer.Exit()


def _add_quickstart(app: typer.Typer, ctx: SuiteContext) -> None:
    @app.command("quickstart")
    def quickstart(
        retrain: bool = typer.Option(False, help="train again even where an active model exists"),
    ) -> None:
        """Train every plugin on its sample data, then run each plugin's example requests."""
        ctx.startup()
        for task in ctx.training_tasks():
            if not retrain and ctx.registry.active(task.plugin, task.name) is not None:
                console.print(f"[dim]{task.qualified_name}: active model exists, skipping (--retrain to redo)[/]")
                continue
            console.rule(f"suite train {task.qualified_name}")
            version = task.run(ctx, {})
            console.print(f"registered {version.ref}  {format_metrics(version.card.metrics)}")
        for plugin, example in ctx.plugins.collect("suite_cli_examples", ctx=ctx):
            console.rule(f"$ suite {' '.join(example)}", style="cyan")
            try:
                app(args=list(example), prog_name="suite", standalone_mode=False)
            except SuiteError as exc:
                raise SuiteError(f"example of plugin '{plugin}' failed: {one_line(exc)}") from None


def format_metrics(metrics: dict) -> str:
    shown = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    return "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _fail(exc: BaseException) -> int:
    code = exc.exit_code if isinstance(exc, SuiteError) else 1
    err_console.print(f"[red]error:[/] {escape(one_line(exc))}", highlight=False, soft_wrap=True)
    return code


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    level = os.environ.get("SUITE_LOG_LEVEL", "WARNING")
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    debug = os.environ.get("SUITE_DEBUG") == "1"
    ctx = None
    try:
        ctx = SuiteContext.create(_config_arg(argv))
        for info in ctx.plugins.broken():
            err_console.print(f"[yellow]warning:[/] plugin '{info.name}' {escape(info.error)}", highlight=False)
        app = build_app(ctx)
        app(args=argv, prog_name="suite", standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        sys.exit(_fail(exc))
    finally:
        if ctx is not None:
            ctx.shutdown()


if __name__ == "__main__":
    main()
