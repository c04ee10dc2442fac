"""Sentiment: Financial PhraseBank through the sentiment plugin's public functions.

1. Fine-tuning: ``train_sentiment_model`` on the training split with the plugin's
   defaults; accuracy and macro F1 of ``score_texts`` on the test split; wall time.
2. Scoring throughput: ``score_texts`` on ``--sentences`` (10,000) PhraseBank sentences
   against ``transformers.pipeline("text-classification")`` on the same model folder at
   its best batch size (tried on ``--trial`` sentences at 1, 8, 32 and 64), back to back,
   with the number of labels that differ and both accuracies on the test split.
3. Monitoring end to end: ``Monitor(ctx).run_once`` over ``--documents`` (10,000)
   documents in a JSONL file (PhraseBank sentences, each headed by one of 20 synthetic
   companies on the watchlist, published over the week before the run): ingest, score,
   link entities, index, aggregate and evaluate the alert rules, with each stage's time.
4. Alerting: a 10-day stream, one document per company per hour, with the plugin's default
   rules replayed hourly by ``Monitor.backfill``. From 09:00 on day 9 one company's documents turn
   mostly negative (and double in volume); reported: the delay from its first negative
   burst to its first alert, and alerts for the quiet companies (should be none).

    python -m bench.sentiment
    python -m bench.sentiment --backbone /path/to/model   # another backbone (hub id or folder)
    python -m bench.sentiment --max-steps 10 --train-limit 300 --sentences 300 --trial 64 \
        --documents 300 --days 4   # smoke run
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    add_thread_option,
    command_line,
    load_labeled,
    ratio,
    set_threads,
    stratified_sample,
    suite_context,
    table,
    write_results,
)

COMPANIES = [
    "Northwind Bank",
    "Contoso Motors",
    "Fabrikam Energy",
    "Litware Systems",
    "Tailspin Airlines",
    "Adventure Works",
    "Woodgrove Finance",
    "Proseware Software",
    "Wingtip Toys",
    "Alpine Ski House",
    "Blue Yonder Airlines",
    "Coho Winery",
    "Fourth Coffee",
    "Humongous Insurance",
    "Lucerne Publishing",
    "Margie Travel",
    "Southridge Video",
    "Trey Research",
    "Wide World Importers",
    "Datum Mining",
]
SCENARIO_COMPANIES = 5
NEGATIVE_BURST_SHARE = 0.8
PIPELINE_BATCHES = (1, 8, 32, 64)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--backbone", default=None, help="the plugin's backbone: a hub id or model folder (default: the suite's)"
    )
    parser.add_argument("--train-limit", type=int, default=None, help="train on at most N sentences (smoke runs)")
    parser.add_argument("--epochs", type=float, default=None, help="override the plugin's training epochs")
    parser.add_argument("--max-steps", type=int, default=None, help="cap training steps (smoke runs)")
    parser.add_argument("--sentences", type=int, default=10_000, help="sentences scored for throughput")
    parser.add_argument("--trial", type=int, default=1000, help="sentences used to pick the pipeline's batch size")
    parser.add_argument("--documents", type=int, default=10_000, help="documents of the monitoring run")
    parser.add_argument("--days", type=int, default=10, help="length of the alerting stream")
    add_thread_option(parser)
    return parser.parse_args()


def watchlist(names: list[str]) -> list[dict[str, Any]]:
    return [{"name": name, "aliases": [name.split()[0]]} for name in names]


def write_jsonl(path: Path, documents: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(doc) + "\n" for doc in documents), encoding="utf-8")
    return path


def monitoring_documents(sentences: list[str], count: int, end: datetime) -> list[dict[str, Any]]:
    """``count`` documents, each a (company, sentence) pair seen once, spread over the week before ``end``."""
    rng = random.Random(5)
    documents = []
    for i in range(count):
        company = COMPANIES[(i // len(sentences) + i) % len(COMPANIES)]
        published = end - timedelta(seconds=rng.uniform(0, 7 * 86400))
        documents.append(
            {
                "id": f"m{i}",
                "title": company,
                "text": sentences[i % len(sentences)],
                "published_at": published.isoformat(),
            }
        )
    return documents


def alert_stream(rows: list, days: int, end: datetime) -> tuple[list[dict[str, Any]], datetime]:
    """One document per company per hour; from day ``days - 2`` the first company's turn negative and double."""
    rng = random.Random(11)
    by_label: dict[str, list[str]] = {}
    for row in rows:
        by_label.setdefault(row.label, []).append(row.text)
    everything = [row.text for row in rows]
    start = end - timedelta(days=days)
    burst = end - timedelta(days=2) + timedelta(hours=9)
    used: dict[str, set[str]] = {name: set() for name in COMPANIES[:SCENARIO_COMPANIES]}

    def pick(company: str, pool: list[str]) -> str:
        for _ in range(100):  # a company never repeats a sentence: the store would drop it as a duplicate
            text = rng.choice(pool)
            if text not in used[company]:
                used[company].add(text)
                return text
        raise RuntimeError("sentence pool exhausted")

    documents = []
    hours = int((end - start) / timedelta(hours=1))
    for hour in range(hours):
        at = start + timedelta(hours=hour)
        for position, company in enumerate(COMPANIES[:SCENARIO_COMPANIES]):
            bursting = position == 0 and at >= burst
            for copy in range(2 if bursting else 1):
                negative = bursting and rng.random() < NEGATIVE_BURST_SHARE
                text = pick(company, by_label["negative"] if negative else everything)
                published = at + timedelta(minutes=rng.uniform(0, 59))
                documents.append(
                    {
                        "id": f"s{hour}-{position}-{copy}",
                        "title": company,
                        "text": text,
                        "published_at": published.isoformat(),
                    }
                )
    return documents, burst


def time_stages(monitor) -> dict[str, float]:
    """Wrap the monitor's steps (on this instance only) to time each stage of a run.

    Inside scoring, the model (``monitor.scorer``) and the entity linking are timed too.
    """
    stages: dict[str, float] = {}
    for name, label in (
        ("_ingest", "ingest (read, normalise, de-duplicate, store)"),
        ("_score_pending", "score, link and save, in all"),
        ("scorer", "- of which the sentiment model"),
        ("_link", "- of which entity linking (spaCy)"),
        ("_index", "index (search backend)"),
        ("_evaluate", "aggregate and evaluate rules"),
    ):
        step = getattr(monitor, name)

        def timed(*args, _step=step, _label=label, **kwargs):
            started = time.perf_counter()
            try:
                return _step(*args, **kwargs)
            finally:
                stages[_label] = stages.get(_label, 0.0) + time.perf_counter() - started

        setattr(monitor, name, timed)
    return stages


def main() -> None:
    args = parse_args()
    set_threads(args.threads)
    from bench.peers import hf_pipeline
    from plugins.sentiment import Monitor, score_texts, train_sentiment_model
    from plugins.sentiment.model import load_classifier
    from services.training import TextClassifier, classification_metrics

    train = stratified_sample(load_labeled("financial_phrasebank", "train"), args.train_limit)
    test = load_labeled("financial_phrasebank", "test")
    everything = load_labeled("financial_phrasebank", "train") + test
    sentences = list(dict.fromkeys(row.text for row in everything))
    now = datetime.now(UTC).replace(microsecond=0)
    params: dict[str, Any] = {}
    if args.epochs:
        params["epochs"] = args.epochs
    if args.max_steps:
        params["max_steps"] = args.max_steps
    out: dict[str, Any] = {}

    with tempfile.TemporaryDirectory(prefix="bench-sentiment-") as scratch:
        folder = Path(scratch)
        documents = write_jsonl(folder / "documents.jsonl", monitoring_documents(sentences, args.documents, now))
        options = {
            "watchlist": watchlist(COMPANIES),
            "sources": [{"name": "bench", "kind": "file", "url_or_path": str(documents)}],
            **backbone_option(args),
        }
        ctx = suite_context(folder / "data", "sentiment", options, threads=args.threads)
        try:
            # 1. fine-tuning and test scores
            print(f"fine-tuning on {len(train)} sentences")
            started = time.perf_counter()
            version = train_sentiment_model(ctx, train, params=params or None)
            out["train_wall"] = time.perf_counter() - started
            out["card"] = version.card
            predicted = [s.label for s in score_texts(ctx, [row.text for row in test])]
            labels = sorted({row.label for row in everything})
            index = {label: i for i, label in enumerate(labels)}
            metrics = classification_metrics([index[row.label] for row in test], [index[p] for p in predicted], labels)
            out["test"] = (metrics["accuracy"], metrics["macro_f1"])

            # 2. throughput against the pipeline
            classifier = load_classifier(ctx)
            pipeline = hf_pipeline(version.path, max_length=classifier.max_length)
            corpus = [sentences[i % len(sentences)] for i in range(args.sentences)]
            trial = corpus[: args.trial]
            pipeline(trial[:8], 8)
            score_texts(ctx, trial[:8])
            trials = {}
            for batch in PIPELINE_BATCHES:
                print(f"pipeline trial, batch {batch}")
                started = time.perf_counter()
                pipeline(trial, batch)
                trials[batch] = len(trial) / (time.perf_counter() - started)
            best = max(trials, key=trials.get)
            texts = [row.text for row in test]
            print(f"score_texts on {len(corpus)} sentences")
            checked_before = classifier.rechecked
            started = time.perf_counter()
            ours = [s.label for s in score_texts(ctx, corpus)]
            ours_rate = len(corpus) / (time.perf_counter() - started)
            rechecked = classifier.rechecked - checked_before
            print(f"pipeline, batch {best}, on {len(corpus)} sentences")
            started = time.perf_counter()
            theirs = pipeline(corpus, best)
            peer_rate = len(corpus) / (time.perf_counter() - started)
            inference_batch = ctx.plugin_options("sentiment").inference_batch_size
            float32 = TextClassifier.from_pretrained(version.path, device="cpu", max_length=classifier.max_length)
            float32_labels = float32.predict(corpus[:8])  # warm-up
            started = time.perf_counter()
            float32_labels = [p.label for p in float32.predict(corpus, inference_batch)]
            float32_rate = len(corpus) / (time.perf_counter() - started)
            half_pipeline = hf_pipeline(version.path, max_length=classifier.max_length, dtype="bfloat16")
            half_pipeline(trial[:8], best)
            started = time.perf_counter()
            half_labels = half_pipeline(corpus, best)
            half_rate = len(corpus) / (time.perf_counter() - started)
            out["throughput"] = {
                "trials": trials,
                "best": best,
                "ours": ours_rate,
                "precision": classifier.precision,
                "rechecked": rechecked,
                "peer": peer_rate,
                "differ": sum(a != b for a, b in zip(ours, theirs, strict=True)),
                "count": len(corpus),
                "peer_accuracy": accuracy_of(pipeline(texts, best), test),
                "inference_batch": inference_batch,
                "float32": float32_rate,
                "float32_differ": sum(a != b for a, b in zip(float32_labels, theirs, strict=True)),
                "float32_accuracy": accuracy_of([p.label for p in float32.predict(texts, inference_batch)], test),
                "half_pipeline": half_rate,
                "half_differ": sum(a != b for a, b in zip(half_labels, theirs, strict=True)),
                "half_accuracy": accuracy_of(half_pipeline(texts, best), test),
            }

            # 3. one monitoring run over the documents
            print(f"monitoring run over {args.documents} documents")
            monitor = Monitor(ctx)
            stages = time_stages(monitor)
            started = time.perf_counter()
            record = monitor.run_once(now=now, dispatch=False)
            out["monitor"] = {
                "wall": time.perf_counter() - started,
                "stages": stages,
                "counts": record.counts,
                "status": record.status,
            }
        finally:
            ctx.shutdown()

        # 4. the alerting scenario, with the same model (the registry folder is shared)
        stream, burst = alert_stream(everything, args.days, now)
        stream_file = write_jsonl(folder / "stream.jsonl", stream)
        scenario_dir = folder / "scenario"
        scenario_dir.mkdir()
        (scenario_dir / "models").symlink_to(folder / "data" / "models")
        options = {
            "watchlist": watchlist(COMPANIES[:SCENARIO_COMPANIES]),
            "sources": [{"name": "stream", "kind": "file", "url_or_path": str(stream_file)}],
            **backbone_option(args),
        }
        ctx = suite_context(scenario_dir, "sentiment", options, threads=args.threads)
        try:
            print(f"alerting scenario: {len(stream)} documents over {args.days} days")
            monitor = Monitor(ctx)
            started = time.perf_counter()
            monitor.backfill(now - timedelta(days=args.days), now, dispatch=False)
            alerts = monitor.store.alerts(include_acknowledged=True, limit=10_000)
            out["scenario"] = {
                "wall": time.perf_counter() - started,
                "documents": len(stream),
                "burst": burst,
                "alerts": alerts,
            }
        finally:
            ctx.shutdown()
    report(args, train, test, out)


def accuracy_of(predicted: list[str], test: list) -> float:
    return sum(p == row.label for p, row in zip(predicted, test, strict=True)) / len(test)


def describe_alerts(alerts: list) -> str:
    """``3 (volume-spike 2, turned-negative 1)``, or ``0``."""
    if not alerts:
        return "0"
    rules = Counter(alert.rule for alert in alerts)
    return f"{len(alerts)} (" + ", ".join(f"{rule} {count}" for rule, count in sorted(rules.items())) + ")"


def backbone_option(args) -> dict[str, str]:
    """The plugin option that swaps its backbone, when ``--backbone`` is given."""
    return {"backbone": args.backbone} if args.backbone else {}


def report(args, train, test, out: dict[str, Any]) -> None:
    card = out["card"]
    hyper = card.hyperparameters
    accuracy, macro_f1 = out["test"]
    body = [
        f"Fine-tuning: {len(train)} training sentences through `train_sentiment_model` on backbone "
        f"`{card.backbone}` with the plugin's defaults "
        f"(epochs {hyper.get('epochs')}, batch {hyper.get('batch_size')}, learning rate {hyper.get('learning_rate')}, "
        f"max length {hyper.get('max_length')}; 15% held out for validation); "
        f"scored on the {len(test)} test sentences.",
        "",
        table(
            ["test accuracy", "test macro F1", "fine-tuning s (engine)", "train_sentiment_model s"],
            [[f"{accuracy:.4f}", f"{macro_f1:.4f}", f"{card.wall_seconds:.0f}", f"{out['train_wall']:.0f}"]],
        ),
    ]
    t = out["throughput"]
    body += [
        "",
        f"Scoring throughput, {t['count']:,} PhraseBank sentences, same model folder (the pipeline's batch size "
        f"chosen on {args.trial} sentences; `score_texts` uses the plugin's inference batch "
        f"of {t['inference_batch']}):",
        "",
        table(
            ["pipeline batch", *[str(b) for b in t["trials"]]],
            [["docs/s (trial)", *[f"{rate:.1f}" for rate in t["trials"].values()]]],
        ),
        "",
        table(
            ["side", "docs/s", "test accuracy", "labels that differ from the pipeline's"],
            [
                [
                    f"score_texts ({t['precision']})",
                    f"{t['ours']:.1f}",
                    f"{accuracy:.4f}",
                    f"{t['differ']} of {t['count']:,}",
                ],
                [f"pipeline, batch {t['best']}", f"{t['peer']:.1f}", f"{t['peer_accuracy']:.4f}", "-"],
                [
                    f"TextClassifier float32, batch {t['inference_batch']}",
                    f"{t['float32']:.1f}",
                    f"{t['float32_accuracy']:.4f}",
                    f"{t['float32_differ']} of {t['count']:,}",
                ],
                [
                    f"pipeline bfloat16 weights, batch {t['best']}",
                    f"{t['half_pipeline']:.1f}",
                    f"{t['half_accuracy']:.4f}",
                    f"{t['half_differ']} of {t['count']:,}",
                ],
            ],
        ),
        "",
        f"score_texts / pipeline: {ratio(t['ours'], t['peer'])}; labels that differ: {t['differ']} of {t['count']:,}."
        f' score_texts ran in {t["precision"]} (the suite\'s `inference_precision = "auto"` on this CPU)'
        + (
            f" and re-scored {t['rechecked']:,} near ties ({t['rechecked'] / t['count']:.1%}) in float32."
            if t["precision"] == "bfloat16"
            else "."
        ),
        f"TextClassifier float32 / pipeline: {ratio(t['float32'], t['peer'])} (what score_texts runs on a CPU "
        f"without native bfloat16). score_texts / pipeline with bfloat16 weights: "
        f"{ratio(t['ours'], t['half_pipeline'])}.",
    ]
    m = out["monitor"]
    counts = m["counts"]
    body += [
        "",
        f"Monitoring run over {args.documents:,} documents (20 watchlist companies, one JSONL file source): "
        f"{m['wall']:.1f} s in all, {counts.get('new', 0) / m['wall']:.0f} documents/s, status {m['status']}; "
        f"counts {dict(sorted(counts.items()))}.",
        "",
        table(
            ["stage", "seconds", "share"],
            [[name, f"{seconds:.1f}", f"{seconds / m['wall']:.0%}"] for name, seconds in m["stages"].items()],
        ),
    ]
    s = out["scenario"]
    target, quiet = COMPANIES[0], COMPANIES[1:SCENARIO_COMPANIES]
    burst = s["burst"]
    after = sorted((a for a in s["alerts"] if a.entity == target and a.created_at >= burst), key=lambda a: a.created_at)
    before = [a for a in s["alerts"] if a.entity == target and a.created_at < burst]
    quiet_alerts = [a for a in s["alerts"] if a.entity in quiet]
    others = [a for a in s["alerts"] if a.entity not in (target, *quiet)]
    delay = (
        f"{(after[0].created_at - burst).total_seconds() / 3600:.1f} h (rule `{after[0].rule}`)"
        if after
        else "no alert"
    )
    body += [
        "",
        f"Alerting scenario: {s['documents']:,} documents over {args.days} days, {SCENARIO_COMPANIES} companies, one "
        f"document each per hour; from 09:00 two days before the end (day {args.days - 1}) {target}'s volume "
        f"doubles and {NEGATIVE_BURST_SHARE:.0%} of its documents are negative sentences."
        f" Rules: the plugin's defaults, replayed every hour by `Monitor.backfill` ({s['wall']:.1f} s).",
        "",
        table(
            ["measure", "value"],
            [
                [f"delay from {target}'s first negative burst to its first alert", delay],
                [f"{target} alerts after the burst (rules)", ", ".join(sorted({a.rule for a in after})) or "none"],
                [f"{target} alerts before the burst", describe_alerts(before)],
                ["alerts for the quiet companies", describe_alerts(quiet_alerts)],
                ["alerts not tied to one company", len(others)],
            ],
        ),
    ]
    write_results("Sentiment", command_line("bench.sentiment"), "\n".join(body))


if __name__ == "__main__":
    main()
