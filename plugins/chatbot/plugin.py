"""Hook implementations of the chatbot plugin: each one wires a component of its own module."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plugins.chatbot.options import INTENT_TASK, PLUGIN, ChatbotOptions
from suite import hookimpl
from suite.plugins import PluginInfo

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from services.scheduling import JobSpec
    from services.schema import MigrationHistory
    from services.search import IndexSpec
    from suite.context import SuiteContext
    from suite.training_tasks import TrainingTask

PURGE_EVERY_MINUTES = 15


@hookimpl
def suite_plugin_info() -> PluginInfo:
    return PluginInfo(
        name=PLUGIN,
        description="Customer-service chatbot: fine-tuned intents, slot-filling templates, cited answers",
    )


@hookimpl
def suite_config_model() -> type[ChatbotOptions]:
    return ChatbotOptions


@hookimpl
def suite_migrations() -> MigrationHistory:
    from plugins.chatbot.migrations import HISTORY

    return HISTORY


@hookimpl
def suite_cli_commands(cli: typer.Typer, ctx: SuiteContext) -> None:
    from plugins.chatbot.cli import add_chat_command, build

    cli.add_typer(build(ctx), name=PLUGIN)
    add_chat_command(cli, ctx)


@hookimpl
def suite_http_routers(ctx: SuiteContext) -> list[APIRouter]:
    from plugins.chatbot import api, pages

    return [api.build_router(ctx), pages.build_router(ctx)]


@hookimpl
def suite_training_tasks(ctx: SuiteContext) -> list[TrainingTask]:
    from plugins.chatbot.training import train_from_files
    from suite.training_tasks import TrainingTask

    return [
        TrainingTask(
            plugin=PLUGIN,
            name=INTENT_TASK,
            kind="classification",
            description="intent classifier with calibrated thresholds; (re)indexes the knowledge base",
            run=train_from_files,
        )
    ]


@hookimpl
def suite_pretraining_texts(ctx: SuiteContext) -> list[str]:
    """Logged customer messages, knowledge-base passages and the configured training utterances."""
    from plugins.chatbot.data import load_labeled_texts
    from plugins.chatbot.knowledge import load_passages
    from plugins.chatbot.options import DataPaths
    from plugins.chatbot.store import ConversationStore

    paths = DataPaths.from_options(ctx.plugin_options(PLUGIN))
    messages = ConversationStore(ctx.database).messages()
    passages = [passage.text for passage in load_passages(paths.knowledge)]
    return [*messages, *passages, *(row.text for row in load_labeled_texts(paths.data))]


@hookimpl
def suite_entity_patterns(ctx: SuiteContext) -> list[dict[str, Any]]:
    from plugins.chatbot.slots import entity_patterns

    return entity_patterns()


@hookimpl
def suite_search_indexes(ctx: SuiteContext) -> list[IndexSpec]:
    from plugins.chatbot.knowledge import KnowledgeBase

    return [KnowledgeBase(ctx, ctx.plugin_options(PLUGIN).index).spec()]


@hookimpl
def suite_scheduled_jobs(ctx: SuiteContext) -> list[JobSpec]:
    from services.scheduling import JobSpec

    def purge_expired_sessions() -> int:
        from plugins.chatbot.store import ConversationStore

        return ConversationStore(ctx.database).purge_expired()

    return [
        JobSpec(
            name=f"{PLUGIN}.purge_sessions",
            func=purge_expired_sessions,
            trigger="interval",
            trigger_args={"minutes": PURGE_EVERY_MINUTES},
            description="delete expired chatbot conversations (the exchange log is kept)",
            plugin=PLUGIN,
        )
    ]


@hookimpl
def suite_cli_examples(ctx: SuiteContext) -> list[list[str]]:
    return [
        [PLUGIN, "ask", "I lost my credit card yesterday"],  # intent template with a slot filled
        [PLUGIN, "ask", "what are the fees for paying abroad in another currency?"],
        [PLUGIN, "ask", "write me a poem about the sea"],  # out of scope: retrieval or hand-off
    ]


@hookimpl
def suite_warm_up(ctx: SuiteContext) -> None:
    if ctx.registry.active(PLUGIN, INTENT_TASK) is None:
        return  # nothing trained yet: requests say so
    from plugins.chatbot.engine import Chatbot

    Chatbot(ctx).warm_up()
