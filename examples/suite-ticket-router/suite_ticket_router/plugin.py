"""Hook implementations of the ticket router: each hook wires one small component.

Components: options (``options``), ticket files (``data``), the model (``model``), similar
tickets in the search service (``index``), the routed-ticket table (``store``), routing and
the inbox job (``routing``), commands (``cli``) and HTTP routes (``api``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from suite import hookimpl
from suite.plugins import PluginInfo
from suite.training_tasks import TrainingTask
from suite_ticket_router.options import PLUGIN, TASK, TicketOptions

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from services.scheduling import JobSpec
    from services.schema import MigrationHistory
    from services.search import IndexSpec
    from suite.context import SuiteContext


@hookimpl
def suite_plugin_info() -> PluginInfo:
    return PluginInfo(name=PLUGIN, description="Support-ticket router: queue classifier, similar tickets, inbox job")


@hookimpl
def suite_config_model() -> type[TicketOptions]:
    return TicketOptions


@hookimpl
def suite_migrations() -> MigrationHistory:
    from suite_ticket_router.migrations import HISTORY

    return HISTORY


@hookimpl
def suite_training_tasks(ctx: SuiteContext) -> list[TrainingTask]:
    from suite_ticket_router.model import train_router

    return [TrainingTask(PLUGIN, TASK, "classification", "route tickets to a support queue", train_router)]


@hookimpl
def suite_search_indexes(ctx: SuiteContext) -> list[IndexSpec]:
    from suite_ticket_router.index import index_spec

    return [index_spec(ctx)]


@hookimpl
def suite_entity_patterns(ctx: SuiteContext) -> list[dict[str, Any]]:
    from suite_ticket_router.routing import entity_patterns

    return entity_patterns()


@hookimpl
def suite_cli_commands(cli: typer.Typer, ctx: SuiteContext) -> None:
    from suite_ticket_router.cli import register

    register(cli, ctx)


@hookimpl
def suite_http_routers(ctx: SuiteContext) -> APIRouter:
    from suite_ticket_router.api import build_router

    return build_router(ctx)


@hookimpl
def suite_scheduled_jobs(ctx: SuiteContext) -> list[JobSpec]:
    from services.scheduling import JobSpec
    from suite_ticket_router.routing import process_inbox

    return [
        JobSpec(
            name=f"{PLUGIN}.process-inbox",
            func=lambda: process_inbox(ctx).to_dict(),
            trigger="interval",
            trigger_args={"minutes": ctx.plugin_options(PLUGIN).inbox_minutes},
            description="route the new tickets of the inbox and store them",
            plugin=PLUGIN,
        )
    ]


@hookimpl
def suite_cli_examples(ctx: SuiteContext) -> list[list[str]]:
    return [
        [PLUGIN, "route", "My laptop LT-20431 shows a black screen after the update"],
        [PLUGIN, "process-inbox"],
        [PLUGIN, "routed", "--limit", "5"],
    ]
