"""``suite recommend USER`` and the ``suite recommender`` command group."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from plugins.recommender.service import Recommendation
    from suite.context import SuiteContext

console = Console()


def _recommender(ctx: SuiteContext):
    from plugins.recommender.service import get_recommender  # numpy, the index: only when a command runs

    ctx.startup()
    return get_recommender(ctx)


def parse_filters(options: list[str] | tuple[str, ...]) -> dict:
    from plugins.recommender.service import parse_filters as parse

    return parse(options)


def _print_recommendations(
    recommendations: list[Recommendation], title: str, as_json: bool, wide: bool = False
) -> None:
    """One row per item: id over title, score, the history items it matches; ``wide`` adds the signal shares."""
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in recommendations], indent=2, ensure_ascii=False, default=str))
        return
    if not recommendations:
        console.print("no recommendations (the catalogue has nothing left that matches)")
        return
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("#", justify="right")
    table.add_column("item", overflow="fold", ratio=3)
    table.add_column("score", justify="right")
    table.add_column("because", overflow="fold", ratio=2)
    if wide:
        table.add_column("signals", overflow="fold", ratio=2)
    for rank, r in enumerate(recommendations, start=1):
        because = "\n".join(f"{escape(b.item)} ({b.similarity:.2f})" for b in r.because) or "-"
        signals = [" ".join(f"{name}={share:.0%}" for name, share in r.signals.items() if share)] if wide else []
        table.add_row(str(rank), f"[bold]{escape(r.item)}[/]\n{escape(r.title)}", f"{r.score:.3f}", because, *signals)
    console.print(table)


def _tune(ctx: SuiteContext, k: int, seed: int, *, quiet: bool) -> None:
    from plugins.recommender.evaluation import tune_store

    tuning, where = tune_store(ctx, k=k, seed=seed)
    if not quiet:
        weights = ", ".join(f"{name} {value:g}" for name, value in tuning.weights.model_dump().items())
        console.print(
            f"tuned blend: {weights} (validation recall@{k} {tuning.start_score:.4f} -> {tuning.score:.4f}, "
            f"{tuning.tried} weightings tried); written to {where}"
        )


def register(cli: typer.Typer, ctx: SuiteContext) -> None:
    """Add ``suite recommend`` and ``suite recommender ...`` to the CLI."""

    @cli.command("recommend")
    def recommend(
        user: str = typer.Argument(None, help="a user with history; leave out for a new user"),
        k: int = typer.Option(None, "-k", "--k", help="how many items (default: the config's default_k)"),
        like: list[str] = typer.Option(None, "--like", help="an item the user likes (repeat for more)"),
        interests: str = typer.Option(None, "--interests", help="free-text description of interests"),
        filter_: list[str] = typer.Option(None, "--filter", help="metadata key=value (repeat; same key = any of)"),
        diversity: float = typer.Option(None, "--diversity", min=0.0, max=1.0, help="MMR diversity, 0..1"),
        as_json: bool = typer.Option(False, "--json", help="print JSON"),
        wide: bool = typer.Option(False, "--wide", help="also the share of each ranking signal"),
    ) -> None:
        """Recommend items a user has not seen yet, each with the history items it matches."""
        recommendations = _recommender(ctx).recommend(
            user, k, like=like or (), interests=interests, filters=parse_filters(filter_ or ()), diversity=diversity
        )
        _print_recommendations(recommendations, f"for {user or 'a new user'}", as_json, wide)

    group = typer.Typer(help="Text-based recommendations: catalogue, training, evaluation.", no_args_is_help=True)
    cli.add_typer(group, name="recommender")

    @group.command("train")
    def train(
        epochs: float = typer.Option(None, help="override the number of epochs"),
        max_steps: int = typer.Option(None, help="stop after this many optimiser steps"),
        batch_size: int = typer.Option(None),
        learning_rate: float = typer.Option(None),
        data: str = typer.Option(
            None, help="folder with items.(jsonl|csv) and interactions.(csv|jsonl) to import first"
        ),
    ) -> None:
        """Fine-tune the bi-encoder on the stored histories, register it, re-embed the catalogue."""
        from plugins.recommender.training import train_and_register

        ctx.startup()
        overrides = {
            key: value
            for key, value in dict(
                epochs=epochs, max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate, data=data
            ).items()
            if value is not None
        }
        version = train_and_register(ctx, overrides)
        metrics = "  ".join(f"{k}={v:.3f}" for k, v in version.card.metrics.items() if isinstance(v, float))
        console.print(f"registered {version.ref}  {metrics}")

    @group.command("import-items")
    def import_items(
        path: str = typer.Argument(..., help="CSV or JSONL: id, title, description, tags, any metadata"),
        replace: bool = typer.Option(False, "--replace", help="update items that already exist"),
    ) -> None:
        """Import items (all or nothing) and embed them; they are recommendable at once."""
        report = _recommender(ctx).import_items(path, replace=replace)
        console.print(f"imported {report.added} new item(s), updated {report.updated_or_skipped} from {report.source}")

    @group.command("import-interactions")
    def import_interactions(
        path: str = typer.Argument(..., help="CSV or JSONL: user, item, timestamp, event, rating"),
    ) -> None:
        """Import interactions (all or nothing); exact repeats of stored ones are skipped."""
        report = _recommender(ctx).import_interactions(path)
        console.print(
            f"imported {report.added} interaction(s), skipped {report.updated_or_skipped} already stored, "
            f"from {report.source}"
        )

    @group.command("add-item")
    def add_item(
        item_id: str = typer.Option(..., "--id"),
        title: str = typer.Option("", "--title"),
        description: str = typer.Option("", "--description"),
        tags: str = typer.Option("", "--tags", help="separated by ';' or ','"),
        meta: list[str] = typer.Option(None, "--meta", help="metadata key=value (repeat)"),
        replace: bool = typer.Option(False, "--replace", help="update the item if it exists"),
    ) -> None:
        """Add one item, embedded from its text alone (no retraining)."""
        from plugins.recommender.data import parse_tags

        metadata = parse_filters(meta or ())
        from plugins.recommender.data import Item

        item = Item(item_id, title, description, parse_tags(tags), metadata)
        stored = _recommender(ctx).add_item(item, replace=replace)
        console.print(f"added {stored.id}: {stored.title or stored.description[:60]}")

    @group.command("remove-item")
    def remove_item(item_id: str = typer.Argument(...)) -> None:
        """Remove an item, its interactions and its vector."""
        removed = _recommender(ctx).remove_item(item_id)
        console.print(f"removed {item_id} and {removed} interaction(s)")

    @group.command("similar")
    def similar(
        item_id: str = typer.Argument(...),
        k: int = typer.Option(None, "-k", "--k"),
        filter_: list[str] = typer.Option(None, "--filter", help="metadata key=value"),
        as_json: bool = typer.Option(False, "--json"),
        wide: bool = typer.Option(False, "--wide", help="also the share of each ranking signal"),
    ) -> None:
        """Items similar to ITEM, in text and in who chose them."""
        recommendations = _recommender(ctx).similar(item_id, k, filters=parse_filters(filter_ or ()))
        _print_recommendations(recommendations, f"similar to {item_id}", as_json, wide)

    @group.command("search")
    def search(
        text: str = typer.Argument(...),
        k: int = typer.Option(None, "-k", "--k"),
        mode: str = typer.Option("hybrid", help="bm25, vector or hybrid"),
        filter_: list[str] = typer.Option(None, "--filter", help="metadata key=value"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Search the catalogue by text."""
        results = _recommender(ctx).search(text, k, filters=parse_filters(filter_ or ()), mode=mode)
        if as_json:
            typer.echo(json.dumps([asdict(r) for r in results], indent=2, ensure_ascii=False, default=str))
            return
        table = Table("#", "item", "title", "score", "tags", title=f"search: {text}")
        for rank, r in enumerate(results, start=1):
            table.add_row(str(rank), r.item, r.title, f"{r.score:.3f}", ", ".join(r.tags))
        console.print(table)

    @group.command("evaluate")
    def evaluate_command(
        holdout: float = typer.Option(0.2, help="share of each user's items held out"),
        k: int = typer.Option(20, "--k", "-k"),
        cold: float = typer.Option(None, help="instead: this share of items made unseen (cold-start split)"),
        retrain: bool = typer.Option(
            False, help="fine-tune a throw-away model on the training part first (the active model saw the test items)"
        ),
        seed: int = typer.Option(42),
        tune: bool = typer.Option(
            False, "--tune", help="first tune the blend weights on validation splits and keep them for serving"
        ),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """recall@k and NDCG@k of the recommender and of most-popular, item-kNN and BM25."""
        from plugins.recommender.evaluation import evaluate_store

        if tune:
            _tune(ctx, k, seed, quiet=as_json)
        report, note = evaluate_store(ctx, holdout=holdout, k=k, cold=cold, retrain=retrain, seed=seed)
        if as_json:
            typer.echo(json.dumps(report, indent=2))
            return
        table = Table("method", f"recall@{k}", f"ndcg@{k}", "users", title=note)
        for method, metrics in report.items():
            table.add_row(method, f"{metrics[f'recall@{k}']:.4f}", f"{metrics[f'ndcg@{k}']:.4f}", str(metrics["users"]))
        console.print(table)

    @group.command("stats")
    def stats(as_json: bool = typer.Option(False, "--json")) -> None:
        """Items, interactions, users, and which model embedded the index."""
        values = _recommender(ctx).stats()
        if as_json:
            typer.echo(json.dumps(values, indent=2))
            return
        table = Table("what", "value")
        for key, value in values.items():
            table.add_row(key.replace("_", " "), str(value))
        console.print(table)

    @group.command("users")
    def users(limit: int = typer.Option(20, min=1, max=1000), as_json: bool = typer.Option(False, "--json")) -> None:
        """Users with the most history."""
        rows = _recommender(ctx).users(limit)
        if as_json:
            typer.echo(json.dumps([{"user": u, "items": n} for u, n in rows], indent=2))
            return
        table = Table("user", "items")
        for user, size in rows:
            table.add_row(user, str(size))
        console.print(table)
