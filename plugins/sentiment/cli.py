"""``suite sentiment``, ``suite monitor`` and ``suite alerts``."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from plugins.sentiment.options import parse_duration
from suite.commands import command_group
from suite.errors import DataError
from suite.training_tasks import TrainingSkipped

if TYPE_CHECKING:
    from plugins.sentiment.monitor import Monitor
    from plugins.sentiment.store import AlertRecord, RunRecord
    from suite.context import SuiteContext

console = Console()
MAX_TEXTS = 100_000


def register(cli: typer.Typer, ctx: SuiteContext) -> None:
    cli.add_typer(sentiment_commands(ctx), name="sentiment")
    cli.add_typer(monitor_commands(ctx), name="monitor")
    add_alert_commands(command_group(cli, "alerts"), ctx)  # the core's group: beside deliveries, redeliver


def _monitor(ctx: SuiteContext) -> Monitor:
    from plugins.sentiment.monitor import monitor_for

    ctx.startup()
    return monitor_for(ctx)


def _metrics(metrics: dict[str, Any]) -> str:
    shown = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())


def parse_when(value: str, option: str) -> datetime:
    """``2025-03-01``, an ISO time, or a duration ago (``7d``, ``12h``)."""
    from plugins.sentiment.sources import parse_timestamp  # imports the store (SQLAlchemy)

    ago = parse_duration(value)
    if isinstance(ago, timedelta):
        return datetime.now(UTC) - ago
    try:
        parsed = parse_timestamp(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise DataError(
            f"{option}: expected a date (2025-03-01), a time (2025-03-01T12:00) or an age (7d), got {value!r}"
        )
    return parsed


# -- suite sentiment ----------------------------------------------------------------------------
def sentiment_commands(ctx: SuiteContext) -> typer.Typer:
    app = typer.Typer(help="Financial sentiment: train the classifier, score texts.", no_args_is_help=True)

    @app.command("train")
    def train(
        data: Path = typer.Option(None, "--data", help="CSV/JSONL with text,label[,topic] (default: the sample)"),
        topic: bool = typer.Option(None, "--topic/--no-topic", help="also train the topic classifier"),
        epochs: float = typer.Option(None, help="override the number of epochs"),
        max_steps: int = typer.Option(None, help="stop after this many optimiser steps"),
        batch_size: int = typer.Option(None),
        learning_rate: float = typer.Option(None),
    ) -> None:
        """Fine-tune the sentiment classifier (and the topic classifier) and register them."""
        from plugins.sentiment.model import SENTIMENT_TASK, TOPIC_TASK, train_from_options

        ctx.startup()
        options = ctx.plugin_options("sentiment")
        overrides = {
            k: v
            for k, v in dict(
                data=str(data) if data else None,
                epochs=epochs,
                max_steps=max_steps,
                batch_size=batch_size,
                learning_rate=learning_rate,
            ).items()
            if v is not None
        }
        tasks = [SENTIMENT_TASK]
        if options.training.topic if topic is None else topic:
            tasks.append(TOPIC_TASK)
        for task in tasks:
            console.print(f"[bold]training sentiment:{task}[/]")
            try:
                version = train_from_options(ctx, task, overrides)
            except TrainingSkipped as exc:
                if topic:  # asked for with --topic: not having it is a failure
                    raise
                console.print(f"[yellow]skipped sentiment:{task}[/]: {escape(str(exc))}", soft_wrap=True)
                continue
            console.print(f"registered {version.ref}  {_metrics(version.card.metrics)}")

    @app.command("score")
    def score(
        texts: list[str] = typer.Argument(None, help="texts to score"),
        file: Path = typer.Option(None, "--file", "-f", help=".txt (one text a line), .csv or .jsonl with 'text'"),
        as_json: bool = typer.Option(False, "--json", help="one JSON object per text"),
    ) -> None:
        """Score texts: label, score (P(positive) - P(negative)) and probabilities."""
        from plugins.sentiment.model import score_texts

        chosen = list(texts or []) + (read_texts(file) if file else [])
        if not chosen:
            raise DataError("nothing to score: give texts as arguments or --file")
        for number, text in enumerate(chosen, 1):
            if not text.strip():
                raise DataError(f"text {number} is empty")
        ctx.startup()
        results = score_texts(ctx, chosen)
        if as_json:
            for text, result in zip(chosen, results, strict=True):
                typer.echo(
                    json.dumps(
                        {
                            "text": text,
                            "label": result.label,
                            "score": round(result.score, 4),
                            "probabilities": {k: round(v, 4) for k, v in result.probabilities.items()},
                        }
                    )
                )
            return
        console.print(scores_table(chosen, results))

    return app


SCORE_CAPTION = "label: the most probable class; score: P(positive) - P(negative), from -1 to +1"


def scores_table(texts: list[str], results: list[Any]) -> Table:
    """Label, score and each class's probability, so that a label and a near-zero score never puzzle."""
    classes = list(results[0].probabilities) if results else []
    table = Table("#", "label", "score", *classes, "text", box=box.SIMPLE_HEAD, caption=SCORE_CAPTION)
    for column in table.columns[3 : 3 + len(classes)]:
        column.justify = "right"
    table.columns[-1].overflow = "fold"
    colours = {"negative": "red", "positive": "green"}
    for number, (text, result) in enumerate(zip(texts, results, strict=True), 1):
        colour = colours.get(result.label, "white")
        shown = text if len(text) <= 90 else text[:87] + "..."
        shares = [f"{result.probabilities[name]:.0%}" for name in classes]
        table.add_row(str(number), f"[{colour}]{result.label}[/]", f"{result.score:+.3f}", *shares, escape(shown))
    return table


def read_texts(path: Path) -> list[str]:
    """Texts from a .txt (one a line), .csv or .jsonl (a 'text' field) file; DataError on bad input."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(content))
        if "text" not in (reader.fieldnames or []):
            raise DataError(f"{path}: no 'text' column")
        texts = [row["text"] or "" for row in reader]
    elif suffix == ".jsonl":
        texts = []
        for number, line in enumerate(content.splitlines(), 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise DataError(f"{path}: line {number}: no 'text' string")
                texts.append(record["text"])
    else:
        texts = [line for line in content.splitlines() if line.strip()]
    if len(texts) > MAX_TEXTS:
        raise DataError(f"{path}: {len(texts)} texts; split the file (at most {MAX_TEXTS})")
    return texts


# -- suite monitor -------------------------------------------------------------------------------
def print_run(record: RunRecord) -> None:
    colour = {"ok": "green", "partial": "yellow"}.get(record.status, "red")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(record.counts.items())) or "nothing to do"
    console.print(f"run {record.id} ({record.trigger}): [{colour}]{record.status}[/]  {counts}")
    for message in record.messages:
        style = {"error": "red", "warning": "yellow"}.get(message["level"], "dim")
        where = f"[{message['source']}] " if message.get("source") else ""
        console.print(f"  [{style}]{message['level']}[/] {escape(where + message['message'])}", highlight=False)


def monitor_commands(ctx: SuiteContext) -> typer.Typer:
    app = typer.Typer(help="Watch news and posts about the watchlist; raise alerts.", no_args_is_help=True)

    @app.command("run-once")
    def run_once(
        dispatch: bool = typer.Option(True, "--dispatch/--no-dispatch", help="send new alerts to the sinks"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Fetch every source, score new documents and evaluate the alert rules once (for cron).

        New alerts are queued for every sink; one delivery pass follows (no waiting between
        retries: what fails is retried by the scheduler's delivery job or the next run-once).
        """
        record = _monitor(ctx).run_once(trigger="cli", dispatch=dispatch)
        delivered = ctx.alert_outbox.deliver_due() if dispatch else None
        if as_json:
            data = record.to_dict()
            data["deliveries"] = delivered.to_dict() if delivered else None
            typer.echo(json.dumps(data, indent=2))
            return
        print_run(record)
        if delivered and (delivered.sent or delivered.failed or delivered.given_up):
            colour = "yellow" if delivered.failed or delivered.given_up else "green"
            console.print(f"  alert deliveries: [{colour}]{delivered}[/]  (suite alerts deliveries)")

    @app.command("backfill")
    def backfill(
        since: str = typer.Option(..., "--since", help="start: 2025-03-01, 2025-03-01T06:00 or an age like 7d"),
        until: str = typer.Option(None, "--until", help="end (default: now)"),
        dispatch: bool = typer.Option(False, "--dispatch/--no-dispatch", help="also send the alerts found"),
        fetch: bool = typer.Option(True, "--fetch/--no-fetch", help="fetch the sources first"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Re-evaluate the alert rules over a past date range; alerts are stored, and sent with --dispatch."""
        start = parse_when(since, "--since")
        end = parse_when(until, "--until") if until else None
        record = _monitor(ctx).backfill(start, end, dispatch=dispatch, fetch_sources=fetch)
        _show_run(record, as_json)

    @app.command("report")
    def report(
        entity: str = typer.Argument(..., help="watchlist name, alias or ticker"),
        output: Path = typer.Option(None, "--output", "-o", help="write the chart to this PNG file"),
        days: float = typer.Option(7.0, min=0.01, help="how far back the chart goes"),
        bucket: str = typer.Option(None, help="bucket size, e.g. 1h, 30m, 1d (default: windows.bucket)"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Current window against baseline, per topic, recent alerts, and a chart over time."""
        from plugins.sentiment.report import write_chart

        monitor = _monitor(ctx)
        name = monitor.resolve_entity(entity)
        size = parse_duration(bucket) if bucket else monitor.options.windows.bucket
        if not isinstance(size, timedelta) or size <= timedelta(0):
            raise DataError(f"--bucket: expected a duration like 1h or 30m, got {bucket!r}")
        now = datetime.now(UTC)
        series = monitor.series(name, start=now - timedelta(days=days), end=now, bucket=size)
        current = next(c for c in monitor.comparisons(now) if c.subject.entity == name)
        by_topic = monitor.topic_comparisons(name, now)
        recent = monitor.store.alerts(include_acknowledged=True, limit=5, entity=name)
        if output:
            write_chart(series, f"{name}: sentiment and volume, last {days:g} days", output)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "entity": name,
                        "comparison": current.to_dict(),
                        "topics": [c.to_dict() for c in by_topic],
                        "series": [b.to_dict() for b in series],
                        "alerts": [a.to_dict() for a in recent],
                        "chart": str(output) if output else None,
                    },
                    indent=2,
                )
            )
            return
        table = Table("", "documents", "mean score", "negative", "positive", title=f"{name}")
        for label, stats in (("current", current.current), ("baseline", current.baseline)):
            table.add_row(label, *_stats_cells(stats))
        for comparison in by_topic:
            table.add_row(f"  topic {comparison.subject.topic}", *_stats_cells(comparison.current))
        console.print(table)
        for alert in recent:
            console.print(
                f"  alert {alert.id} [{alert.severity}] {escape(alert.title)}"
                f"{'  (acknowledged)' if alert.acknowledged else ''}",
                highlight=False,
            )
        if output:
            console.print(f"chart written to {output}")

    @app.command("runs")
    def runs(
        run_id: int = typer.Argument(None, help="show one run with all its messages"),
        limit: int = typer.Option(20, min=1),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """List monitoring runs (newest first), or show one."""
        store = _monitor(ctx).store
        records = [store.run(run_id)] if run_id is not None else store.runs(limit)
        if as_json:
            typer.echo(json.dumps([r.to_dict() for r in records], indent=2))
        elif run_id is not None:
            print_run(records[0])
        else:
            table = Table("id", "trigger", "started", "status", "new", "scored", "alerts", "messages")
            for r in records:
                table.add_row(
                    str(r.id),
                    r.trigger,
                    f"{r.started_at:%Y-%m-%d %H:%M:%S}",
                    r.status,
                    str(r.counts.get("new", 0)),
                    str(r.counts.get("scored", 0)),
                    str(r.counts.get("alerts", 0)),
                    str(len(r.messages)),
                )
            console.print(table)

    return app


def _stats_cells(stats: Any) -> list[str]:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    mean = "-" if stats.mean_score is None else f"{stats.mean_score:+.2f}"
    return [str(stats.volume), mean, pct(stats.negative_share), pct(stats.positive_share)]


def _show_run(record: RunRecord, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(record.to_dict(), indent=2))
    else:
        print_run(record)


# -- suite alerts ----------------------------------------------------------------------------------
def add_alert_commands(app: typer.Typer, ctx: SuiteContext) -> None:
    """``list``, ``show`` and ``ack`` of sentiment alerts, in the core's ``alerts`` group."""

    @app.command("list")
    def list_alerts(
        show_all: bool = typer.Option(False, "--all", help="include acknowledged alerts"),
        entity: str = typer.Option(None, help="only this entity"),
        limit: int = typer.Option(50, min=1),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Open alerts, newest first (--all adds the acknowledged ones)."""
        monitor = _monitor(ctx)
        name = monitor.resolve_entity(entity) if entity else None
        records = monitor.store.alerts(include_acknowledged=show_all, limit=limit, entity=name)
        if as_json:
            typer.echo(json.dumps(monitor.alert_dicts(records), indent=2))
            return
        if not records:
            console.print("no alerts" if show_all else "no open alerts")
            return
        table = Table("id", "created", "severity", "rule", "title", "ack")
        colours = {"critical": "red", "warning": "yellow"}
        for r in records:
            severity = f"[{colours.get(r.severity, 'cyan')}]{r.severity}[/]"
            table.add_row(
                str(r.id),
                f"{r.created_at:%Y-%m-%d %H:%M}",
                severity,
                r.rule,
                escape(r.title),
                "yes" if r.acknowledged else "",
            )
        console.print(table)

    @app.command("show")
    def show(alert_id: int = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
        """One alert with its message, evidence and deliveries."""
        monitor = _monitor(ctx)
        record = monitor.store.alert(alert_id)
        [data] = monitor.alert_dicts([record])
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        print_alert(record, data["deliveries"])

    @app.command("ack")
    def ack(
        alert_id: int = typer.Argument(...),
        by: str = typer.Option(None, "--by", help="who acknowledges (recorded)"),
    ) -> None:
        """Acknowledge an alert."""
        record = _monitor(ctx).store.acknowledge(alert_id, by)
        who = f" by {record.acknowledged_by}" if record.acknowledged_by else ""
        console.print(f"alert {record.id} acknowledged{who} at {record.acknowledged_at:%Y-%m-%d %H:%M:%S} UTC")


def print_alert(record: AlertRecord, deliveries: list[dict[str, Any]] | None = None) -> None:
    state = f"acknowledged {record.acknowledged_at:%Y-%m-%d %H:%M}" if record.acknowledged else "open"
    console.print(f"[bold]alert {record.id}[/] [{record.severity}] {escape(record.title)}  ({state})", highlight=False)
    console.print(
        f"  rule {record.rule} ({record.kind}), created {record.created_at:%Y-%m-%d %H:%M} UTC"
        f"{', backfill' if record.backfill else ''}"
    )
    console.print(f"  {escape(record.message)}", highlight=False)
    for item in record.evidence:
        console.print(
            f"  - [{item.get('label')} {item.get('score', 0):+.2f}] {escape(item.get('title') or '')}"
            f"  {item.get('url')}",
            highlight=False,
        )
    for delivery in record.deliveries if deliveries is None else deliveries:
        console.print(f"  {escape(describe_delivery(delivery))}", highlight=False)


def describe_delivery(delivery: dict[str, Any]) -> str:
    """``webhook https://hooks.example: failed, 2 attempt(s), next 12:03:10: HTTP 503``."""
    status = delivery.get("status") or ("sent" if delivery.get("ok") else "failed")
    parts = [f"{delivery['sink']}: {status}"]
    if delivery.get("attempts"):
        parts.append(f"{delivery['attempts']} attempt(s)")
    if delivery.get("next_attempt_at"):
        parts.append(f"next {delivery['next_attempt_at'][11:19]} UTC")
    text = ", ".join(parts)
    return f"{text}: {delivery['error']}" if delivery.get("error") else text
