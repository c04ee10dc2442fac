"""Command groups of the shared services, mounted by suite.cli."""

from __future__ import annotations

import typer


def command_group(cli: typer.Typer, name: str, help: str = "") -> typer.Typer:
    """The group ``name`` of ``cli``, created if no one has added it yet.

    For a plugin that adds commands to a group the core owns (``alerts``) or that it
    may share with another plugin, rather than replacing it with a group of its own.
    """
    for info in cli.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(help=help, no_args_is_help=True)
    cli.add_typer(group, name=name)
    return group
