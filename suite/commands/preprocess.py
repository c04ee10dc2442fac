"""``suite preprocess``: look at what the shared spaCy pipeline and the normaliser do to a text."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import typer
from rich.console import Console
from rich.table import Table

from suite.context import SuiteContext

console = Console()

TEXT_HELP = "the text; '-' reads it from stdin"


def read_text(text: str) -> str:
    return sys.stdin.read() if text == "-" else text


def build(ctx: SuiteContext) -> typer.Typer:
    app = typer.Typer(
        help="Inspect the shared text preprocessing (spaCy pipeline, normalisation).", no_args_is_help=True
    )

    @app.command("entities")
    def entities_command(
        text: str = typer.Argument(..., help=TEXT_HELP),
        as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table"),
    ) -> None:
        """Named entities of TEXT, plugin entity patterns included."""
        ctx.startup()
        found = ctx.preprocessor.entities([read_text(text)])[0]
        if as_json:
            for entity in found:
                typer.echo(json.dumps(asdict(entity)))
            return
        if not found:
            console.print("no entities")
            return
        table = Table("text", "label", "start", "end", "id")
        for entity in found:
            table.add_row(entity.text, entity.label, str(entity.start), str(entity.end), entity.id or "")
        console.print(table)

    @app.command("normalize")
    def normalize_command(
        text: str = typer.Argument(..., help=TEXT_HELP),
        mask_urls: bool = typer.Option(False, "--mask-urls", help="replace URLs with <URL>"),
        mask_emails: bool = typer.Option(False, "--mask-emails", help="replace e-mail addresses with <EMAIL>"),
        mask_numbers: bool = typer.Option(False, "--mask-numbers", help="replace numbers with <NUM>"),
        lowercase: bool = typer.Option(False, "--lowercase"),
        keep_html: bool = typer.Option(False, "--keep-html", help="do not strip HTML tags"),
        unicode_form: str = typer.Option("NFKC", help="NFC, NFD, NFKC, NFKD or 'none'"),
        keep_whitespace: bool = typer.Option(False, "--keep-whitespace", help="do not collapse whitespace"),
    ) -> None:
        """Print TEXT normalised as the plugins see it (Unicode, HTML, masks, whitespace)."""
        from services.preprocessing import normalize_text
        from services.preprocessing.normalize import UNICODE_FORMS

        form = None if unicode_form.lower() == "none" else unicode_form.upper()
        if form is not None and form not in UNICODE_FORMS:
            raise typer.BadParameter(f"must be one of {', '.join(UNICODE_FORMS)} or none", param_hint="--unicode-form")
        typer.echo(
            normalize_text(
                read_text(text),
                unicode_form=form,
                strip_html=not keep_html,
                mask_urls=mask_urls,
                mask_emails=mask_emails,
                mask_numbers=mask_numbers,
                lowercase=lowercase,
                collapse_whitespace=not keep_whitespace,
            )
        )

    @app.command("sentences")
    def sentences_command(text: str = typer.Argument(..., help=TEXT_HELP)) -> None:
        """Split TEXT into sentences, one per line."""
        ctx.startup()
        for sentence in ctx.preprocessor.sentences(read_text(text)):
            typer.echo(sentence)

    @app.command("info")
    def info_command(as_json: bool = typer.Option(False, "--json")) -> None:
        """The loaded spaCy model, its components and the number of plugin entity patterns."""
        ctx.startup()
        info = ctx.preprocessor.describe()
        if as_json:
            typer.echo(json.dumps(info, indent=2))
            return
        table = Table("setting", "value", show_header=False)
        wanted = ctx.settings.preprocessing.spacy_model
        model = info["model"] + (f" (fallback: '{wanted}' is not installed)" if info["fallback"] else "")
        table.add_row("model", f"{model} {info['version']}".strip())
        table.add_row("components", ", ".join(info["components"]) or "none")
        table.add_row("disabled", ", ".join(info["disabled"]) or "none")
        table.add_row("entity patterns", str(info["entity_patterns"]))
        console.print(table)

    return app
