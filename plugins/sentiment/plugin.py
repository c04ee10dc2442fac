"""Hook implementations of the sentiment plugin: financial news and social sentiment monitoring.

The hooks only wire the plugin's components together: options (``options``), training and
scoring (``model``), sources (``sources``), entity linking (``entities``), storage
(``store``), aggregation and rules (``aggregation``, ``rules``), the monitoring cycle
(``monitor``), charts (``report``), commands (``cli``) and HTTP routes (``api``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from plugins.sentiment.options import SentimentOptions
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

NAME = "sentiment"
log = logging.getLogger(__name__)


@hookimpl
def suite_plugin_info() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        description="Financial sentiment monitoring: watchlist entities in news and posts, alerts on tone",
    )


@hookimpl
def suite_config_model() -> type[SentimentOptions]:
    return SentimentOptions


@hookimpl
def suite_migrations() -> MigrationHistory:
    from plugins.sentiment.migrations import HISTORY

    return HISTORY


@hookimpl
def suite_startup(ctx: SuiteContext) -> None:
    for message in ctx.plugin_options(NAME).unknown_rule_entities():
        log.warning("sentiment: %s", message)


@hookimpl
def suite_cli_commands(cli: typer.Typer, ctx: SuiteContext) -> None:
    from plugins.sentiment.cli import register

    register(cli, ctx)


@hookimpl
def suite_http_routers(ctx: SuiteContext) -> list[APIRouter]:
    from plugins.sentiment import api, pages

    return [api.build_router(ctx), pages.build_router(ctx)]


@hookimpl
def suite_training_tasks(ctx: SuiteContext) -> list[TrainingTask]:
    from plugins.sentiment.model import SENTIMENT_TASK, TOPIC_TASK, train_from_options
    from suite.training_tasks import TrainingTask

    tasks = [
        TrainingTask(
            plugin=NAME,
            name=SENTIMENT_TASK,
            kind="classification",
            description="financial sentiment (negative/neutral/positive)",
            run=lambda c, overrides: train_from_options(c, SENTIMENT_TASK, overrides),
        )
    ]
    if ctx.plugin_options(NAME).training.topic:
        tasks.append(
            TrainingTask(
                plugin=NAME,
                name=TOPIC_TASK,
                kind="classification",
                description="financial news topic (earnings, m&a, legal, management, product)",
                run=lambda c, overrides: train_from_options(c, TOPIC_TASK, overrides),
            )
        )
    return tasks


@hookimpl
def suite_pretraining_texts(ctx: SuiteContext) -> list[str]:
    """The monitor's stored documents and the texts of the configured training data."""
    from plugins.sentiment.data import load_labelled
    from plugins.sentiment.store import SentimentStore

    options: SentimentOptions = ctx.plugin_options(NAME)
    return [*SentimentStore(ctx.database).document_texts(), *(row.text for row in load_labelled(options.training.data))]


@hookimpl
def suite_entity_patterns(ctx: SuiteContext) -> list[dict[str, Any]]:
    from plugins.sentiment.entities import EntityLinker

    return EntityLinker(ctx.plugin_options(NAME).watchlist).patterns(ctx.settings.data_dir / "cache")


@hookimpl
def suite_search_indexes(ctx: SuiteContext) -> list[IndexSpec]:
    from plugins.sentiment.monitor import index_spec

    return [index_spec(ctx)]


@hookimpl
def suite_scheduled_jobs(ctx: SuiteContext) -> list[JobSpec]:
    from services.scheduling import JobSpec

    minutes = ctx.plugin_options(NAME).schedule_minutes
    if not minutes:
        return []

    def monitor_job() -> dict[str, Any]:
        from plugins.sentiment.monitor import monitor_for

        return monitor_for(ctx).run_once(trigger="schedule").to_dict()

    return [
        JobSpec(
            name="sentiment.monitor",
            func=monitor_job,
            trigger="interval",
            trigger_args={"minutes": minutes},
            description="fetch the sentiment sources, score new documents, evaluate the alert rules",
            plugin=NAME,
        )
    ]


@hookimpl
def suite_cli_examples(ctx: SuiteContext) -> list[list[str]]:
    return [
        ["sentiment", "score", "Northwind Bank shares plunged after regulators opened a probe."],
        ["monitor", "run-once"],
        ["alerts", "list"],
        ["monitor", "report", "NWBK", "--bucket", "6h"],
    ]


@hookimpl
def suite_warm_up(ctx: SuiteContext) -> None:
    from plugins.sentiment.model import SENTIMENT_TASK, TOPIC_TASK, load_classifier

    for task in (SENTIMENT_TASK, TOPIC_TASK):
        classifier = load_classifier(ctx, task, required=False)
        if classifier is not None:
            classifier.prepare().predict_proba(["Shares rose after the results."])
