"""Commands: ``suite chat`` and the ``suite chatbot`` group (train, index, ask, feedback...)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from plugins.chatbot.options import PLUGIN
from suite.errors import DataError, SuiteError, one_line

if TYPE_CHECKING:
    from plugins.chatbot.engine import ChatAnswer, Chatbot
    from plugins.chatbot.evaluate import Evaluation
    from services.registry import ModelVersion
    from suite.context import SuiteContext

console = Console()
CHAT_HELP = "commands: /rate up|down, /intent NAME (correct the last answer's intent), /new, /quit"


def build(ctx: SuiteContext) -> typer.Typer:
    group = typer.Typer(help="Customer-service chatbot: train, index, ask, feedback.", no_args_is_help=True)

    def bot() -> Chatbot:
        from plugins.chatbot.engine import Chatbot

        ctx.startup()
        return Chatbot(ctx)

    @group.command("train")
    def train(
        data: Path = typer.Option(
            None, "--data", help="labelled utterances (CSV/JSONL text,label) instead of the configured ones"
        ),
        extra: list[Path] = typer.Option(None, "--extra", help="more labelled files, e.g. exported feedback"),
        epochs: float = typer.Option(None, help="override the number of epochs"),
        max_steps: int = typer.Option(None, help="stop after this many optimiser steps"),
        batch_size: int = typer.Option(None),
        learning_rate: float = typer.Option(None),
        index: bool = typer.Option(True, "--index/--no-index", help="(re)index the knowledge base first"),
    ) -> None:
        """Index the knowledge base, fine-tune the intent classifier, calibrate thresholds, register it."""
        from plugins.chatbot.training import train_from_files

        ctx.startup()
        overrides = {
            "data": data,
            "extra": extra or [],
            "epochs": epochs,
            "max_steps": max_steps,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "index": index,
        }
        with validation_progress(console):
            version = train_from_files(ctx, overrides)
        print_training_report(version, console)
        warn_missing_templates(bot(), version.card.labels or [], console)

    @group.command("evaluate")
    def evaluate_command(
        path: Path = typer.Argument(..., help="labelled messages (CSV/JSONL text,label)"),
        oos_label: str = typer.Option(
            "out_of_scope", "--oos-label", help="the label of out-of-scope messages (oos and none are also taken)"
        ),
        as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    ) -> None:
        """Answer every message of FILE (nothing is saved): accuracy, macro F1, routing, out-of-scope AUROC."""
        from plugins.chatbot.data import load_labeled_texts
        from plugins.chatbot.evaluate import evaluate

        report = evaluate(bot(), load_labeled_texts(path), oos_label=oos_label)
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
        else:
            print_evaluation(report, console)

    @group.command("index")
    def index_command(
        paths: list[Path] = typer.Argument(None, help="FAQ CSV, Markdown or text files/folders (default: configured)"),
    ) -> None:
        """(Re)index the knowledge base in the shared search service."""
        from plugins.chatbot.training import index_knowledge_base

        ctx.startup()
        report = index_knowledge_base(ctx, paths or None)
        console.print(
            f"indexed {report.passages} passages from {report.files} files into '{report.index}'"
            f" ({report.removed} stale removed)"
        )
        if report.retrieval_threshold is not None:
            console.print(f"retrieval threshold {report.retrieval_threshold:.3f} ({report.calibration.get('source')})")

    @group.command("ask")
    def ask(
        message: str = typer.Argument(..., help="the customer's message"),
        conversation_id: str = typer.Option(None, "--conversation-id", "-c", help="continue a conversation"),
        as_json: bool = typer.Option(False, "--json", help="print the full answer as JSON"),
    ) -> None:
        """Answer one message."""
        answer = bot().answer(message, conversation_id)
        if as_json:
            typer.echo(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        else:
            print_answer(answer, console)

    @group.command("intents")
    def intents() -> None:
        """List the intents, their titles and slots."""
        table = Table("intent", "title", "slots", "answer")
        for item in bot().intents():
            kind = "hand-off" if item["handoff"] else "template" if item["has_template"] else "knowledge base"
            table.add_row(item["name"], item["title"], ", ".join(item["slots"]), kind)
        console.print(table)

    @group.command("feedback")
    def feedback(
        exchange_id: int = typer.Argument(..., help="the feedback id printed with an answer"),
        rating: str = typer.Argument(None, help="up or down"),
        intent: str = typer.Option(None, "--intent", help="the intent the message really had"),
    ) -> None:
        """Rate an answer and/or correct its intent."""
        row = bot().feedback(exchange_id, rating, intent)
        console.print(f"exchange {row['id']}: rating={row['rating']} corrected_intent={row['corrected_intent']}")

    @group.command("export-feedback")
    def export_feedback(
        output: Path = typer.Option(..., "--output", "-o", help="CSV file to write (text,label)"),
        include_confirmed: bool = typer.Option(
            False, "--include-confirmed", help="also export answers rated up, with their predicted intent"
        ),
    ) -> None:
        """Turn corrected exchanges into training data for the next fine-tune (`train --extra FILE`)."""
        count = bot().export_feedback(output, include_confirmed=include_confirmed)
        console.print(f"wrote {count} labelled messages to {output}")

    @group.command("import-qa")
    def import_qa_command(
        path: Path = typer.Argument(..., help="CSV/JSONL of past question,answer pairs"),
        output_dir: Path = typer.Option(
            None, "--output-dir", "-o", help="default: <data dir>/plugins/chatbot/imported"
        ),
        threshold: float = typer.Option(0.6, help="cosine similarity above which questions share an intent"),
        min_size: int = typer.Option(2, min=1, help="smallest group of questions that becomes an intent"),
    ) -> None:
        """Derive intents and answer templates from past conversations, for review before training."""
        from plugins.chatbot.qa_import import import_qa

        ctx.startup()
        target = output_dir or ctx.plugin_dir(PLUGIN) / "imported"
        report = import_qa(ctx, path, target, threshold=threshold, min_size=min_size)
        console.print(
            f"{report.pairs} pairs -> {report.intents} intents, {report.utterances} utterances, "
            f"{report.unclustered} left unclustered"
        )
        console.print(f"review {report.intents_path} and {report.templates_path}, then:")
        console.print(f"  suite chatbot train --data {report.intents_path}", style="dim")
        console.print(f'  (and set templates = "{report.templates_path}" under [plugins.chatbot])', style="dim")

    return group


def print_evaluation(report: Evaluation, out: Console) -> None:
    """The evaluation as a person reads it: scores, then one routing row per scope."""
    from plugins.chatbot.evaluate import ROUTES

    scores = [f"{report.in_scope} in scope, {report.out_of_scope} out of scope"]
    if report.accuracy is not None:
        scores.append(f"accuracy {report.accuracy:.4f}, macro F1 {report.macro_f1:.4f}")
    if report.auroc is not None:
        scores.append(f"out-of-scope AUROC {report.auroc:.4f}")
    if report.caught is not None:
        scores.append(f"out of scope caught {report.caught:.1%}")
    out.print("; ".join(scores), soft_wrap=True)
    scopes = [(name, count) for name, count in (("in_scope", report.in_scope), ("out_of_scope", report.out_of_scope))]
    scopes = [(name, count) for name, count in scopes if count]
    table = Table("answered by", *(f"{name.replace('_', ' ')} ({count})" for name, count in scopes))
    shares = {name: report.shares(name) for name, _ in scopes}
    for route in ROUTES:
        table.add_row(route, *(f"{shares[name][route]:.1%}" for name, _ in scopes))
    out.print(table)
    if report.unknown_labels:
        out.print(
            f"[yellow]labels the model does not know, counted out of scope:[/] {', '.join(report.unknown_labels)}"
        )
    if report.latency_ms:
        out.print(f"answer latency: median {report.latency_ms['median']:.1f} ms, p95 {report.latency_ms['p95']:.1f} ms")


@contextmanager
def validation_progress(out: Console) -> Iterator[None]:
    """Print each validation evaluation the trainer logs while it runs (per epoch by default)."""

    class Printer(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            out.print(f"  validation {escape(record.getMessage())}", style="dim")

    logger, handler = logging.getLogger("services.training.loop"), Printer(logging.INFO)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # printed once, here, whatever the log level
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def print_training_report(version: ModelVersion, out: Console) -> None:
    """The registered version, its scores, thresholds and the routing they give on the validation split."""
    from plugins.chatbot.calibration import Calibration

    metrics = version.card.metrics
    out.print(f"registered [bold]{version.ref}[/]  {version.card.train_examples} training examples")
    shown = {k: metrics.get(k) for k in ("accuracy", "macro_f1", "confidence_threshold", "margin_threshold")}
    out.print("  ".join(f"{k}={v:.3f}" for k, v in shown.items() if isinstance(v, int | float)))
    out.print(escape(version.card.notes), style="dim")
    calibration = Calibration.load(version.path)
    routing = calibration.details.get("validation_routing", {}) if calibration else {}
    for scope, shares in routing.items():
        parts = ", ".join(f"{route} {share:.1%}" for route, share in shares.items() if route != "messages")
        out.print(f"expected on the validation split, {scope.replace('_', ' ')} ({shares['messages']}): {parts}")


def warn_missing_templates(chatbot: Chatbot, labels: list[str], out: Console) -> None:
    """Intents without an answer template are answered from the knowledge base, else handed off: say which."""
    book = chatbot.templates
    labels = [label for label in labels if label != chatbot.options.out_of_scope_label]  # a class, not an intent
    missing = [label for label in labels if not ((template := book.get(label)) and template.template)]
    if missing:
        shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        out.print(
            f"[yellow]warning:[/] {len(missing)} of {len(labels)} intents have no template in "
            f"{chatbot.paths.templates.name} (answered from the knowledge base, else handed off): {escape(shown)}"
        )


def add_chat_command(app: typer.Typer, ctx: SuiteContext) -> None:
    @app.command("chat")
    def chat(
        conversation_id: str = typer.Option(None, "--conversation-id", "-c", help="continue a conversation"),
    ) -> None:
        """Talk to the customer-service chatbot in the terminal (reads stdin; /quit to leave)."""
        from plugins.chatbot.engine import Chatbot

        ctx.startup()
        run_chat(Chatbot(ctx), sys.stdin, console, conversation_id)


def run_chat(bot: Chatbot, stream: TextIO, out: Console, conversation_id: str | None = None) -> None:
    """The chat loop; a prompt only when a person is typing, so piped input stays clean."""
    interactive = stream.isatty()
    if interactive:
        out.print(f"[dim]{CHAT_HELP}[/]")
    last: ChatAnswer | None = None
    while True:
        if interactive:
            out.print("[bold]you>[/] ", end="")
        line = stream.readline()
        if not line:  # end of input
            break
        line = line.rstrip("\n")
        command, _, argument = line.strip().partition(" ")
        if command in ("/quit", "/exit"):
            break
        if command == "/new":
            conversation_id, last = None, None
            out.print("[dim]new conversation[/]")
            continue
        if command in ("/rate", "/intent"):
            if last is None or last.exchange_id is None:
                out.print("[yellow]nothing to rate yet[/]")
                continue
            rating, intent = (argument.strip(), None) if command == "/rate" else (None, argument.strip())
            try:
                bot.feedback(last.exchange_id, rating or None, intent or None)
                out.print("[dim]thanks, noted[/]")
            except SuiteError as exc:
                out.print(f"[red]error:[/] {escape(one_line(exc))}")
            continue
        if command == "/help":
            out.print(f"[dim]{CHAT_HELP}[/]")
            continue
        try:
            last = bot.answer(line, conversation_id)
        except DataError as exc:  # e.g. too long: say so and carry on
            out.print(f"[red]error:[/] {escape(one_line(exc))}")
            continue
        conversation_id = last.conversation_id
        print_answer(last, out)


def print_answer(answer: ChatAnswer, out: Console) -> None:
    confidence = f" {answer.intent} {answer.confidence:.2f}" if answer.intent and answer.confidence is not None else ""
    out.print(f"[bold cyan]bot[/] [dim]\\[{answer.source}{escape(confidence)}][/] {escape(answer.answer)}")
    for number, citation in enumerate(answer.citations, start=1):
        where = citation.url or citation.doc
        out.print(f"    [dim]\\[{number}] {escape(citation.title)} ({escape(where)}) {citation.score:.2f}[/]")
    if answer.handoff_reason:
        out.print(f"    [dim]hand-off: {escape(answer.handoff_reason)}[/]")
    # The exchange id is the log's row id (for `suite chatbot feedback ID up|down`), not a turn count.
    out.print(f"    [dim]conversation {answer.conversation_id}; feedback id {answer.exchange_id}[/]")
