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
import warnings
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path

# Plain click help and usage errors: typer's rich help imports Markdown, pretty-printing and attrs,
# a fifth of a `suite --help`. Read by typer when it is imported, hence before the imports below.
os.environ.setdefault("TYPER_USE_RICH", "0")

import typer  # noqa: E402
from rich import box  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

from suite import __version__  # noqa: E402
from suite.context import SuiteContext  # noqa: E402
from suite.errors import SuiteError, one_line  # noqa: E402
from suite.training_tasks import TrainingSkipped, TrainingTask  # noqa: E402

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

VERBOSITY_FLAGS = {"-v", "--verbose", "-vv", "-vvv", "-q", "--quiet"}

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


def current_context(typer_ctx: typer.Context) -> SuiteContext:
    """The :class:`SuiteContext` of the running command (``build_app`` puts it on the root context)."""
    obj = typer_ctx.find_root().obj
    if not isinstance(obj, SuiteContext):
        raise SuiteError("no suite context: build the CLI with suite.cli.build_app(ctx)")
    return obj


def build_app(ctx: SuiteContext) -> typer.Typer:
    app = typer.Typer(
        name="suite",
        help="A plugin-based NLP application suite.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"obj": ctx},
    )
    app.callback()(root_callback)
    _add_core_commands(app, ctx)
    _add_quickstart(app, ctx)
    import_module("suite.commands.pretrain").register(app, ctx)
    for name, module in SERVICE_COMMAND_GROUPS.items():  # built-in: a missing one is a broken install, not skipped
        app.add_typer(import_module(module).build(ctx), name=name)
    ctx.plugins.call_each("suite_cli_commands", cli=app, ctx=ctx)
    return app


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"suite {__version__}")
        raise typer.Exit()


def root_callback(
    config: str = typer.Option(None, "--config", "-c", help="TOML file (default: $SUITE_CONFIG, ./suite.toml)"),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Show version."),
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True, show_default=False, help="more log lines (-vv: debug); after any command too"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="errors only, no progress bars; works after any command"),
) -> None:
    """A plugin-based NLP application suite."""
    configure_output(-1 if quiet else verbose)


def configure_output(verbosity: int) -> None:
    """Log level, Python warnings and progress bars for ``-q`` (-1), the default (0), ``-v`` (1), ``-vv`` (2).

    By default a user sees the suite's warnings and errors, never a third-party library's.
    """
    from services.progress import set_quiet

    default = os.environ.get("SUITE_LOG_LEVEL", "WARNING")
    level = {-1: "ERROR", 0: default, 1: "INFO"}.get(verbosity, "DEBUG")
    logging.getLogger().setLevel(level)
    set_quiet(verbosity < 0)
    if verbosity <= 0:
        warnings.simplefilter("ignore")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def hoist_verbosity_flags(argv: list[str]) -> list[str]:
    """Move ``-v``/``-vv``/``-q`` (wherever typed, before ``--``) to the root, which owns them."""
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [arg for arg in argv[:end] if arg in VERBOSITY_FLAGS]
    rest = [arg for arg in argv[:end] if arg not in VERBOSITY_FLAGS]
    return [*flags, *rest, *argv[end:]]


def _add_core_commands(app: typer.Typer, ctx: SuiteContext) -> None:
    config_app = typer.Typer(help="Show and check the effective configuration.", no_args_is_help=True)
    app.add_typer(config_app, name="config")
    config_app.command("show")(config_show)
    config_app.command("check")(config_check)
    app.command("plugins")(plugins_command)
    app.command("new-plugin")(new_plugin)
    app.command("train")(train_command)
    app.command("serve")(serve_command)


def config_show(
    typer_ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="JSON instead of TOML"),
    show_all: bool = typer.Option(
        False, "--all", help="every setting, plugin options included, with its default and where its value came from"
    ),
) -> None:
    """Print the effective configuration (file + environment + defaults), secrets hidden."""
    ctx = current_context(typer_ctx)
    if show_all:
        from suite.settings_report import describe_settings, format_settings

        rows = describe_settings(ctx, typer_ctx.find_root().params.get("config"))
        typer.echo(json.dumps([vars(row) for row in rows], indent=2) if as_json else format_settings(rows))
        return
    data = ctx.settings.redacted()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        import tomli_w

        typer.echo(tomli_w.dumps(_drop_none(data)))
        typer.echo("# unset settings and plugin options: `suite config show --all` lists them")


def config_check(typer_ctx: typer.Context) -> None:
    """Validate the configuration and every plugin's options; exit non-zero if invalid."""
    console.print("configuration is valid")


def plugins_command(
    typer_ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    examples: bool = typer.Option(False, "--examples", help="list each plugin's example commands"),
    wide: bool = typer.Option(False, "--wide", help="also list the hooks each plugin implements"),
) -> None:
    """List plugins: name, version, hooks implemented, enabled."""
    ctx = current_context(typer_ctx)
    if examples:
        for plugin, example in ctx.plugins.collect("suite_cli_examples", ctx=ctx):
            typer.echo(f"{plugin}: suite {shlex.join(example)}")
        return
    infos = ctx.plugins.describe()
    if as_json:
        typer.echo(json.dumps([{**vars(i), "status": i.status} for i in infos], indent=2))
        return
    table = Table("plugin", "version", "status", *(["hooks"] if wide else []), "description", box=box.SIMPLE_HEAD)
    for info in infos:
        hooks = [", ".join(h.removeprefix("suite_") for h in info.hooks)] if wide else []
        table.add_row(info.name, info.version, info.status, *hooks, info.error or info.description)
    console.print(table)


def new_plugin(
    typer_ctx: typer.Context,
    name: str = typer.Argument(..., help="plugin name: lowercase letters, digits, '_'"),
    directory: Path = typer.Option(Path("."), "--dir", help="where to create suite-<name>/"),
) -> None:
    """Write an installable plugin package (pyproject with the entry point, hooks, sample data, a test)."""
    from suite.scaffold import render_plugin

    target = render_plugin(name, directory.resolve())
    console.print(f"created {target}\nnext: pip install -e {target} && suite plugins")


def train_command(
    typer_ctx: typer.Context,
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

    ctx = current_context(typer_ctx)
    chosen = [(t, task) for t in targets for task in ctx.select_training_tasks(t)] if targets else []
    tasks = [task for _, task in chosen] if targets else ctx.training_tasks()
    if not tasks:
        raise SuiteError("no training tasks declared by the enabled plugins")
    named = {task.qualified_name for target, task in chosen if target != task.plugin}  # asked for by name
    given = dict(epochs=epochs, max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate)
    overrides = {k: v for k, v in given.items() if v is not None}
    changes = dict(backbone=backbone, teacher=teacher, transfer=transfer, temperature=temperature, alpha=alpha)
    ctx.startup()
    for task in tasks:
        console.print(f"[bold]training {task.qualified_name}[/] ({task.kind}): {task.description}")
        with training_overrides(ctx, task, **changes):
            run_task(task, ctx, overrides, required=task.qualified_name in named)


def run_task(task: TrainingTask, ctx: SuiteContext, overrides: dict, *, required: bool = False) -> None:
    """Train one task and print what was registered, or one line saying why its data does not allow it."""
    try:
        version = task.run(ctx, overrides)
    except TrainingSkipped as exc:
        if required:
            raise
        console.print(f"[yellow]skipped {task.qualified_name}[/]: {escape(one_line(exc))}", soft_wrap=True)
        return
    console.print(f"registered {version.ref}  {format_metrics(version.card.metrics)}")


def serve_command(
    typer_ctx: typer.Context,
    host: str = typer.Option(None, help="address to bind (default: http.host, 127.0.0.1)"),
    port: int = typer.Option(None, help="port (default: http.port, 8000)"),
    workers: int = typer.Option(None, help="worker processes, each loads its own models (default: 1)"),
) -> None:
    """Serve the HTTP API of the core and every enabled plugin (OpenAPI docs at /docs)."""
    from suite.app import serve

    config_file = typer_ctx.find_root().params.get("config")
    serve(current_context(typer_ctx), host=host, port=port, workers=workers, config_file=config_file)


def _add_quickstart(app: typer.Typer, ctx: SuiteContext) -> None:
    app.command("quickstart")(quickstart)


def quickstart(
    typer_ctx: typer.Context,
    retrain: bool = typer.Option(False, help="train again even where an active model exists"),
) -> None:
    """Train every plugin on its sample data, then run each plugin's example requests."""
    ctx = current_context(typer_ctx)
    root = typer_ctx.find_root().command
    ctx.startup()
    for task in ctx.training_tasks():
        if not retrain and ctx.registry.active(task.plugin, task.name) is not None:
            console.print(f"[dim]{task.qualified_name}: active model exists, skipping (--retrain to redo)[/]")
            continue
        console.rule(f"suite train {task.qualified_name}")
        run_task(task, ctx, {})
    for plugin, example in ctx.plugins.collect("suite_cli_examples", ctx=ctx):
        console.rule(f"$ suite {' '.join(example)}", style="cyan")
        try:
            root.main(args=list(example), prog_name="suite", standalone_mode=False, obj=ctx)
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
    argv = hoist_verbosity_flags(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(format="%(name)s: %(message)s")
    configure_output(0)
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
