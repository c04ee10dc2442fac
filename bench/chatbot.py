"""Chatbot: BANKING77 intents through the chatbot plugin's public functions.

Three training runs, each in its own temporary data dir, through
``plugins.chatbot.training.train_intent_model`` with the plugin's defaults (which hold
out 20% of what they are given to calibrate the answer thresholds):

- ``all``: the whole training split;
- ``per-intent``: ``--per-intent`` (10) labelled examples per intent;
- ``oos``: the whole training split less ``--oos-intents`` (10) intents picked at random;
  the test messages of those intents are out of scope, and the report says where
  ``Chatbot(ctx).answer`` sends them: a wrong intent, a clarifying question, retrieval
  from the knowledge base (the plugin's sample one), or a hand-off to a person. No
  out-of-scope example is given at training: nobody has examples of what they do not expect.

Every intent gets a one-line answer template, so an answer from a template means the
bot committed to an intent. Reported per run: test accuracy and macro F1 of the intent
classifier, fine-tuning wall time, and where the test messages went. For the ``all``
run, answer latency per message of ``Chatbot(ctx).answer`` (checks, classifier,
templates or retrieval, conversation log) against a plain ``transformers`` pipeline
on the same model folder, one message per call, back to back.

    python -m bench.chatbot
    python -m bench.chatbot --intents 6 --oos-intents 2 --max-steps 12 --test-limit 60 --latency-messages 10  # smoke
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.common import (
    add_thread_option,
    command_line,
    latency_summary,
    load_labeled,
    percentile,
    ratio,
    sample,
    set_threads,
    suite_context,
    table,
    write_results,
)

ROUTES = ("right intent", "wrong intent", "clarify", "retrieval", "handoff", "refusal")


ALL_RUNS = ("all", "per-intent", "oos")
# --report-on dev: this many training messages per intent, drawn with their own seed, are never trained on.
DEV_PER_INTENT = 10
DEV_SEED = 7


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=",".join(ALL_RUNS), help="which training runs, comma-separated")
    parser.add_argument("--per-intent", type=int, default=10)
    parser.add_argument("--oos-intents", type=int, default=10, help="intents held out of the 'oos' run")
    parser.add_argument("--intents", type=int, default=None, help="use only N intents (smoke runs)")
    parser.add_argument("--test-limit", type=int, default=None, help="answer at most N test messages per run")
    parser.add_argument("--latency-messages", type=int, default=300, help="messages timed on both sides")
    parser.add_argument("--epochs", type=float, default=None, help="override the plugin's training epochs")
    parser.add_argument("--max-steps", type=int, default=None, help="cap training steps (smoke runs)")
    parser.add_argument(
        "--report-on",
        choices=("test", "dev"),
        default="test",
        help="'dev': score on 10 held-out training messages per intent (never trained on), to choose settings "
        "without looking at the test split",
    )
    add_thread_option(parser)
    return parser.parse_args()


def write_templates(path: Path, intents: list[str]) -> Path:
    """One answer per intent: a template answer is the bot committing to that intent."""
    book = {
        "intents": {
            intent: {"title": intent.replace("_", " "), "template": f"Here is how to {intent.replace('_', ' ')}."}
            for intent in intents
        }
    }
    path.write_text(json.dumps(book, indent=1), encoding="utf-8")
    return path


def per_intent(rows: list, count: int, seed: int = 42) -> list:
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_label[row.label].append(index)
    rng = random.Random(seed)
    chosen = sorted(i for indices in by_label.values() for i in rng.sample(indices, min(count, len(indices))))
    return [rows[i] for i in chosen]


def route(answer: Any, truth: str | None) -> str:
    if answer.source == "template":
        return "right intent" if truth is not None and answer.intent == truth else "wrong intent"
    return answer.source


def run_setting(name: str, train_rows: list, test_rows: list, oos_rows: list, args, templates: Path) -> dict[str, Any]:
    from plugins.chatbot.engine import Chatbot
    from plugins.chatbot.training import index_knowledge_base, train_intent_model
    from services.training import classification_metrics

    params: dict[str, Any] = {}
    if args.epochs:
        params["epochs"] = args.epochs
    if args.max_steps:
        params["max_steps"] = args.max_steps
    with tempfile.TemporaryDirectory(prefix=f"bench-chatbot-{name}-") as scratch:
        ctx = suite_context(Path(scratch), "chatbot", {"templates": str(templates)}, threads=args.threads)
        try:
            index_knowledge_base(ctx)
            print(f"{name}: fine-tuning on {len(train_rows)} messages")
            started = time.perf_counter()
            version = train_intent_model(ctx, train_rows, params=params or None)
            wall = time.perf_counter() - started
            bot = Chatbot(ctx)
            model = bot.model()
            labels = model.labels
            predictions = model.predict_many([row.text for row in test_rows])
            index = {label: i for i, label in enumerate(labels)}
            metrics = classification_metrics(
                [index[row.label] for row in test_rows], [index[p.intent] for p in predictions], labels
            )
            bot.warm_up()
            print(f"{name}: answering {len(test_rows) + len(oos_rows)} test messages")
            in_scope, latencies = Counter(), []
            for row in test_rows:
                answer = bot.answer(row.text)
                in_scope[route(answer, row.label)] += 1
                latencies.append(answer.latency_ms / 1000)
            outside = Counter(route(bot.answer(row.text), None) for row in oos_rows)
            result = {
                "name": name,
                "train": len(train_rows),
                "intents": len(labels),
                "wall": wall,
                "card_wall": version.card.wall_seconds,
                "hyperparameters": version.card.hyperparameters,
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
                "in_scope": in_scope,
                "outside": outside,
                "test": len(test_rows),
                "oos": len(oos_rows),
            }
            if name == "all" and args.latency_messages:
                result["latency"] = compare_latency(bot, version.path, test_rows[: args.latency_messages], model)
            return result
        finally:
            ctx.shutdown()


def compare_latency(bot, model_dir: Path, rows: list, model) -> dict[str, list[float]]:
    """Chatbot.answer, then the pipeline, then the bare classifier, one message per call, same messages."""
    from bench.peers import hf_pipeline

    max_length = int(model.version.card.hyperparameters.get("max_length") or 128)
    pipeline = hf_pipeline(model_dir, max_length=max_length)
    pipeline(["warm up"], 1)
    timings: dict[str, list[float]] = {"Chatbot.answer": [], "pipeline": [], "intent classifier alone": []}
    for row in rows:
        for name, call in (
            ("Chatbot.answer", lambda text: bot.answer(text)),
            ("pipeline", lambda text: pipeline([text], 1)),
            ("intent classifier alone", lambda text: model.predict(text)),
        ):
            started = time.perf_counter()
            call(row.text)
            timings[name].append(time.perf_counter() - started)
    return timings


def main() -> None:
    args = parse_args()
    set_threads(args.threads)
    train = load_labeled("banking77", "train")
    test = load_labeled("banking77", "test")
    intents = sorted({row.label for row in train})
    if args.intents:
        intents = intents[: args.intents]
        train = [row for row in train if row.label in intents]
        test = [row for row in test if row.label in intents]
    if args.report_on == "dev":
        test = per_intent(train, DEV_PER_INTENT, seed=DEV_SEED)
        held = {id(row) for row in test}
        train = [row for row in train if id(row) not in held]
    runs = [run.strip() for run in args.runs.split(",") if run.strip()]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-chatbot-") as scratch:
        templates = write_templates(Path(scratch) / "templates.json", intents)
        for run in runs:
            if run == "all":
                results.append(run_setting("all", train, sample(test, args.test_limit), [], args, templates))
            elif run == "per-intent":
                rows = per_intent(train, args.per_intent)
                results.append(run_setting("per-intent", rows, sample(test, args.test_limit), [], args, templates))
            elif run == "oos":
                held_out = set(random.Random(42).sample(intents, args.oos_intents))
                rows = [row for row in train if row.label not in held_out]
                in_scope = sample([row for row in test if row.label not in held_out], args.test_limit)
                outside = sample([row for row in test if row.label in held_out], args.test_limit)
                results.append(run_setting("oos", rows, in_scope, outside, args, templates))
            else:
                raise SystemExit(f"unknown run '{run}' (choose all, per-intent, oos)")
    report(args, results)


def describe(name: str, args) -> str:
    return {
        "all": "all training data",
        "per-intent": f"{args.per_intent} examples per intent",
        "oos": f"all but {args.oos_intents} held-out intents",
    }[name]


def shares(counts: Counter, total: int) -> list[str]:
    return [f"{counts.get(key, 0) / total:.1%}" if total else "-" for key in ROUTES]


def report(args, results: list[dict[str, Any]]) -> None:
    rows = [
        [
            describe(r["name"], args),
            r["intents"],
            r["train"],
            f"{r['accuracy']:.4f}",
            f"{r['macro_f1']:.4f}",
            f"{r['card_wall']:.0f}",
            f"{r['wall']:.0f}",
        ]
        for r in results
    ]
    route_rows = [
        [describe(r["name"], args), "in-scope", r["test"], *shares(r["in_scope"], r["test"])] for r in results
    ]
    route_rows += [
        [describe(r["name"], args), "out of scope", r["oos"], *shares(r["outside"], r["oos"])]
        for r in results
        if r["oos"]
    ]
    first = results[0]["hyperparameters"] if results else {}
    settings = ", ".join(
        f"{k} {first[k]}" for k in ("epochs", "batch_size", "learning_rate", "max_length") if k in first
    )
    body = [
        "Data: BANKING77 (train/test), "
        + (f"the first {args.intents} intents only; " if args.intents else "")
        + f"fine-tuned through `train_intent_model` with the plugin's defaults ({settings}); the plugin holds out "
        "20% of the given examples to calibrate its thresholds. "
        + (
            f"**Scored on a dev set**: {DEV_PER_INTENT} training messages per intent, left out of every run's "
            "training data, in place of the test split (the columns still say test)."
            if args.report_on == "dev"
            else "Test scores are the intent classifier's on the test split (the out-of-scope run: on its in-scope "
            "intents)."
        ),
        "",
        table(
            [
                "run",
                "intents",
                "examples given",
                "test accuracy",
                "test macro F1",
                "fine-tuning s",
                "with calibration s",
            ],
            rows,
        ),
        "",
        "Where `Chatbot(ctx).answer` sent the test messages (each a new conversation; every intent has a template, "
        "so a template answer is a committed intent; retrieval is over the plugin's sample knowledge base):",
        "",
        table(["run", "messages", "count", *ROUTES], route_rows),
    ]
    latency = next((r["latency"] for r in results if "latency" in r), None)
    if latency:
        ours, peer = latency["Chatbot.answer"], latency["pipeline"]
        body += [
            "",
            f"Answer latency, {len(ours)} test messages, one per call, on the `all` model:",
            "",
            table(
                ["path", "median ms", "p95 ms"],
                [
                    [name, f"{statistics.median(v) * 1000:.1f}", f"{percentile(v, 95) * 1000:.1f}"]
                    for name, v in latency.items()
                ],
            ),
            "",
            f"Chatbot.answer / pipeline: median {ratio(statistics.median(ours), statistics.median(peer))}, "
            f"p95 {ratio(percentile(ours, 95), percentile(peer, 95))} (the answer does more: input checks, "
            "thresholds, templates or retrieval, and it writes the conversation log). "
            + "; ".join(f"{name}: {latency_summary(v)}" for name, v in latency.items()),
        ]
    # A partial run gets its own section, so it never replaces the full one.
    runs = [run.strip() for run in args.runs.split(",") if run.strip()]
    title = "Chatbot" if set(runs) == set(ALL_RUNS) else f"Chatbot {'+'.join(runs)}"
    if args.report_on == "dev":
        title += " on the dev set"
    write_results(title, command_line("bench.chatbot"), "\n".join(body))


if __name__ == "__main__":
    main()
