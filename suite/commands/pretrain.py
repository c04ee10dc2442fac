"""``suite pretrain PLUGIN``: continued masked-LM pre-training of a plugin's backbone."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from suite.context import SuiteContext

console = Console()


def pretrain(
    ctx: SuiteContext,
    plugin: str,
    texts: Path | None = None,
    text_field: str = "text",
    params: dict | None = None,
    *,
    progress: bool = True,
    restart: bool = False,
    activate: bool = True,
) -> str:
    """Run one pre-training and return the line to print."""
    from services.training import load_text_file
    from suite.pretraining import pretrain_backbone
    from suite.training_tasks import plugin_texts

    if texts is not None:
        documents, source = list(dict.fromkeys(load_text_file(texts, text_field))), f"file {texts.name}"
    else:
        documents, source = plugin_texts(ctx, plugin), f"the {plugin} plugin's own texts"
    console.print(f"pre-training {plugin}'s backbone {ctx.backbone_name(plugin)} on {len(documents)} documents")
    ctx.startup()
    version = pretrain_backbone(
        ctx, plugin, documents, params, source=source, progress=progress, restart=restart, activate=activate
    )
    metrics = version.card.metrics
    before = metrics.get("perplexity_before")
    change = (
        f"perplexity {before:.2f} -> {metrics['perplexity']:.2f}"
        if before
        else f"perplexity {metrics['perplexity']:.2f}"
    )
    return f"registered {version.ref}{' (active)' if version.active else ''}  {change}  [{metrics['steps']} steps]"


def register(app: typer.Typer, ctx: SuiteContext) -> None:
    """Add ``suite pretrain`` to ``app``."""

    @app.command("pretrain")
    def pretrain_command(
        plugin: str = typer.Argument(..., help="the plugin whose backbone to adapt"),
        texts: Path = typer.Option(
            None, "--texts", help="txt (one document per line), CSV or JSONL; default: the plugin's own texts"
        ),
        text_field: str = typer.Option("text", help="CSV/JSONL: the text column"),
        epochs: float = typer.Option(None, help="passes over the texts"),
        max_steps: int = typer.Option(None, help="stop after this many optimiser steps"),
        batch_size: int = typer.Option(None),
        learning_rate: float = typer.Option(None),
        mlm_probability: float = typer.Option(None, help="share of words masked (default 0.15)"),
        activate: bool = typer.Option(True, "--activate/--no-activate", help="fine-tunes start from it at once"),
        restart: bool = typer.Option(False, "--restart", help="discard the checkpoint of an interrupted run"),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Continue pre-training the plugin's backbone (whole-word masked LM) and register it as
        <plugin>/backbone@vN; the plugin's next fine-tune starts from it. An interrupted run
        resumes when the same command is run again."""
        given = dict(
            epochs=epochs,
            max_steps=max_steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            mlm_probability=mlm_probability,
        )
        params = {key: value for key, value in given.items() if value is not None}
        line = pretrain(ctx, plugin, texts, text_field, params, progress=progress, restart=restart, activate=activate)
        console.print(line)
