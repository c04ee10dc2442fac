"""``suite models``: the model registry (list, show, activate, verify) and a generic ``train``
for users who fine-tune on their own CSV/JSONL file without writing a plugin."""

from __future__ import annotations

import json
import shutil
import uuid
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from suite.errors import ModelError, NotFoundError

if TYPE_CHECKING:
    from services.registry import ModelVersion
    from suite.context import SuiteContext

console = Console()


class Kind(str, Enum):
    classification = "classification"
    biencoder = "biencoder"


def format_number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


SHORT_METRIC_NAMES = {
    "accuracy": "acc",
    "macro_f1": "f1",
    "recall@1": "r@1",
    "recall@10": "r@10",
    "mrr": "mrr",
    "teacher_accuracy": "teacher",
    "perplexity_before": "ppl0",
    "perplexity": "ppl",
}


def versions_table(versions: list[ModelVersion], wide: bool = False) -> Table:
    """ref, active, metrics and examples; ``wide`` adds kind and creation date."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("ref", no_wrap=True)
    table.add_column("active", justify="center")
    if wide:
        table.add_column("kind", no_wrap=True)
        table.add_column("created", no_wrap=True)
    table.add_column("metrics", min_width=18)
    table.add_column("examples", justify="right", no_wrap=True)
    for version in versions:
        card = version.card
        metrics = " ".join(f"{SHORT_METRIC_NAMES.get(k, k)}={format_number(v)}" for k, v in card.key_metrics().items())
        kind = "classifier" if card.kind == "classification" else card.kind
        table.add_row(
            version.ref,
            "[green]*[/]" if version.active else "",
            *([kind, card.created_at[:10]] if wide else []),
            metrics or "-",
            str(card.train_examples),
        )
    return table


def version_summary(version: ModelVersion) -> dict[str, Any]:
    return {"ref": version.ref, "active": version.active, "path": str(version.path), **version.card.to_dict()}


def build(ctx: SuiteContext) -> typer.Typer:
    app = typer.Typer(help="Fine-tuned models: list, show, activate, verify, train.", no_args_is_help=True)

    def registry():
        return ctx.registry

    @app.command("list")
    def list_command(
        plugin: str = typer.Option(None, "--plugin", "-p", help="only this plugin's models"),
        task: str = typer.Option(None, "--task", "-t", help="only this task's models"),
        as_json: bool = typer.Option(False, "--json", help="JSON instead of a table"),
        wide: bool = typer.Option(False, "--wide", help="also the kind and creation date"),
    ) -> None:
        """List registered model versions; '*' marks the active one of each task."""
        versions = registry().list(plugin, task)
        if as_json:
            typer.echo(json.dumps([version_summary(v) for v in versions], indent=2))
        elif not versions:
            console.print("no models registered")
        else:
            console.print(versions_table(versions, wide or console.width >= 100))

    @app.command("show")
    def show_command(
        ref: str = typer.Argument(..., help="plugin/task@vN, or plugin/task for the active version"),
        as_json: bool = typer.Option(False, "--json", help="the card as JSON"),
    ) -> None:
        """Print a version's model card."""
        version = registry().resolve(ref)
        if as_json:
            typer.echo(json.dumps(version_summary(version), indent=2))
            return
        from rich.markdown import Markdown

        from services.registry import README_FILE, render_readme

        readme = version.path / README_FILE
        text = readme.read_text(encoding="utf-8") if readme.is_file() else render_readme(version.card, version.version)
        console.print(f"{version.ref}{'  (active)' if version.active else ''}  {version.path}")
        console.print(Markdown(text))

    @app.command("activate")
    def activate_command(ref: str = typer.Argument(..., help="plugin/task@vN")) -> None:
        """Make a version the one plugins use (after verifying it)."""
        from services.registry import parse_ref

        plugin, task, number = parse_ref(ref)
        if number is None:
            raise NotFoundError(f"give the version to activate, e.g. {plugin}/{task}@v1")
        version = registry().activate(plugin, task, number)
        console.print(f"active: {version.ref}")

    @app.command("verify")
    def verify_command(
        ref: str = typer.Argument(None, help="plugin/task@vN or plugin/task; default every version"),
    ) -> None:
        """Check that model folders are complete and unchanged since registration."""
        versions = [registry().resolve(ref)] if ref else registry().list()
        if not versions:
            console.print("no models registered")
        failed = []
        for version in versions:
            try:
                registry().verify(version)
            except ModelError as exc:
                failed.append(version.ref)
                console.print(f"[red]FAILED[/] {version.ref}: {exc}", highlight=False)
            else:
                console.print(f"[green]ok[/] {version.ref}")
        if failed:
            raise ModelError(
                f"{len(failed)} of {len(versions)} model versions failed verification: {', '.join(failed)}"
            )

    @app.command("train")
    def train_command(
        kind: Kind = typer.Argument(..., help="classification (text,label) or biencoder (query,positive)"),
        data: Path = typer.Option(..., "--data", "-d", help="CSV or JSONL training file"),
        plugin: str = typer.Option(..., "--plugin", help="registry namespace (need not be an installed plugin)"),
        task: str = typer.Option(..., "--task", help="task name in the registry"),
        validation: Path = typer.Option(None, "--validation", help="CSV/JSONL validation file"),
        validation_fraction: float = typer.Option(
            0.1, min=0, max=0.5, help="held out of --data for validation when --validation is not given (0: none)"
        ),
        text_field: str = typer.Option("text", help="classification: text column"),
        label_field: str = typer.Option("label", help="classification: label column"),
        query_field: str = typer.Option("query", help="biencoder: query column"),
        positive_field: str = typer.Option("positive", help="biencoder: positive column"),
        epochs: float = typer.Option(None, help="number of epochs (fractions allowed)"),
        max_steps: int = typer.Option(None, help="stop after this many optimiser steps"),
        batch_size: int = typer.Option(None),
        learning_rate: float = typer.Option(None),
        strategy: str = typer.Option(None, help="full, freeze or gradual"),
        freeze_layers: int = typer.Option(None, help="lower encoder layers to freeze"),
        activate: bool = typer.Option(True, "--activate/--no-activate", help="make the new version active"),
        restart: bool = typer.Option(False, "--restart", help="discard checkpoints of an interrupted run"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Fine-tune the plugin's backbone on a file and register the result.

        An interrupted run resumes from its last checkpoint when the same command is run again.
        """
        from services.training import load_labeled_file, load_pair_file, split_train_validation
        from services.training.checkpoint import CheckpointMismatchError

        if kind is Kind.classification:
            rows = load_labeled_file(data, text_field, label_field)
            val_rows = load_labeled_file(validation, text_field, label_field) if validation else None
        else:
            rows = load_pair_file(data, query_field, positive_field)
            val_rows = load_pair_file(validation, query_field, positive_field) if validation else None
        if val_rows is None and validation_fraction > 0:
            rows, val_rows = split_train_validation(rows, validation_fraction, seed=ctx.settings.training.seed)
            val_rows = val_rows or None
        params = {
            key: value
            for key, value in dict(
                epochs=epochs,
                max_steps=max_steps,
                batch_size=batch_size,
                learning_rate=learning_rate,
                strategy=strategy,
                freeze_layers=freeze_layers,
            ).items()
            if value is not None
        }
        backbone = ctx.backbone(plugin)
        data_dir = ctx.settings.data_dir
        checkpoint_dir = data_dir / "checkpoints" / plugin / task
        if restart:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        output_dir = data_dir / "tmp" / f"train-{uuid.uuid4().hex[:12]}"
        train = ctx.trainer.train_classifier if kind is Kind.classification else ctx.trainer.train_biencoder
        console.print(
            f"training {kind.value} {plugin}/{task} on {len(rows)} examples"
            f"{f' ({len(val_rows)} for validation)' if val_rows else ''} from {backbone}"
        )
        try:
            result = train(
                backbone,
                rows,
                val_rows,
                params,
                output_dir=output_dir,
                checkpoint_dir=checkpoint_dir,
                progress=progress,
            )
        except CheckpointMismatchError:
            raise ModelError(
                f"an interrupted run of {plugin}/{task} used other data or parameters; add --restart to discard it"
            ) from None
        try:
            version = registry().register_result(result, plugin, task, activate=activate)
        finally:
            shutil.rmtree(output_dir, ignore_errors=True)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the run is done; nothing to resume
        metrics = "  ".join(f"{k}={format_number(v)}" for k, v in version.card.key_metrics().items())
        where = result.metrics.get("evaluated_on", "")
        console.print(
            f"registered {version.ref}{' (active)' if version.active else ''}  {metrics}"
            f"{f' on {where}' if where else ''}  [{result.steps} steps, {result.wall_seconds:.1f}s]"
        )

    return app
