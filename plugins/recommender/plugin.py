"""Hook implementations of the recommender plugin: thin wiring of the modules beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from suite import hookimpl
from suite.plugins import PluginInfo
from suite.training_tasks import TrainingTask

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter
    from pydantic import BaseModel

    from services.schema import MigrationHistory
    from services.search import IndexSpec
    from suite.context import SuiteContext

NAME = "recommender"


@hookimpl
def suite_plugin_info() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        description="Recommends catalogue items from their text and users' histories, new items included",
    )


@hookimpl
def suite_config_model() -> type[BaseModel]:
    from plugins.recommender.options import RecommenderOptions

    return RecommenderOptions


@hookimpl
def suite_migrations() -> MigrationHistory:
    from plugins.recommender.migrations import HISTORY

    return HISTORY


@hookimpl
def suite_cli_commands(cli: typer.Typer, ctx: SuiteContext) -> None:
    from plugins.recommender.cli import register

    register(cli, ctx)


@hookimpl
def suite_http_routers(ctx: SuiteContext) -> list[APIRouter]:
    from plugins.recommender import api, pages

    return [api.build_router(ctx), pages.build_router(ctx)]


@hookimpl
def suite_search_indexes(ctx: SuiteContext) -> list[IndexSpec]:
    from plugins.recommender.index import index_spec

    return [index_spec(ctx, ctx.plugin_options(NAME))]


@hookimpl
def suite_training_tasks(ctx: SuiteContext) -> list[TrainingTask]:
    from plugins.recommender.training import train_and_register

    return [
        TrainingTask(
            plugin=NAME,
            name="biencoder",
            kind="biencoder",
            description="item-to-item bi-encoder from users' histories (contrastive, in-batch negatives)",
            run=lambda ctx, overrides: train_and_register(ctx, overrides),
        )
    ]


@hookimpl
def suite_pretraining_texts(ctx: SuiteContext) -> list[str]:
    """The catalogue's item texts (the sample catalogue on a fresh store), as the model embeds them."""
    from plugins.recommender.service import get_recommender

    recommender = get_recommender(ctx)
    recommender.ensure_data(embed=False)
    return list(recommender.item_texts().values())


@hookimpl
def suite_cli_examples(ctx: SuiteContext) -> list[list[str]]:
    return [
        ["recommend", "maya", "-k", "5"],
        ["recommend", "--interests", "training for a long bike ride", "-k", "3"],
        ["recommender", "similar", "stock-from-scraps", "-k", "3"],
    ]


@hookimpl
def suite_warm_up(ctx: SuiteContext) -> None:
    if ctx.registry.active(NAME, "biencoder") is None:
        return  # nothing trained yet: /ready says so
    from plugins.recommender.service import get_recommender

    get_recommender(ctx).recommend(None, 1, interests="warm-up")  # loads the model, catalogue and index
