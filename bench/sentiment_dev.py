"""Sentiment settings on a dev split: what moves PhraseBank accuracy, measured without the test split.

A stratified 15% of ``train.csv`` (seed 7) is the dev set; every run trains on the rest
through the shared engine (itself holding out 15% for validation, as ``train_sentiment_model``
does, except the "all data" rows) and is scored on the dev set. The plugin's defaults run
with three seeds, so the other rows can be read against seed noise. ``test.csv`` is never read.

    python -m bench.sentiment_dev
    python -m bench.sentiment_dev --only defaults,cls-head,all-data   # some settings
    python -m bench.sentiment_dev --max-steps 5 --limit 300  # smoke run
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    add_thread_option,
    command_line,
    load_labeled,
    set_threads,
    stratified_sample,
    suite_context,
    table,
    write_results,
)

TUNED = ("epochs", "batch_size", "learning_rate", "max_length", "seed")
# name -> (overrides of the plugin's defaults, whether to train on every non-dev row, no validation)
SETTINGS: dict[str, tuple[dict[str, Any], bool]] = {
    "defaults": ({}, False),
    "defaults-seed1": ({"seed": 1}, False),
    "defaults-seed2": ({"seed": 2}, False),
    "cls-head": ({"pooling": "model"}, False),
    "lr1e-4-4epochs": ({"learning_rate": 1e-4, "epochs": 4}, False),
    "lr5e-5-5epochs": ({"learning_rate": 5e-5, "epochs": 5}, False),
    "lr3e-4": ({"learning_rate": 3e-4}, False),
    "5epochs": ({"epochs": 5}, False),
    "batch32-4epochs": ({"batch_size": 32, "epochs": 4}, False),
    "all-data": ({}, True),
    "all-data-seed1": ({"seed": 1}, True),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=None, help="comma-separated setting names (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="use at most N training rows (smoke runs)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap training steps (smoke runs)")
    add_thread_option(parser)
    return parser.parse_args()


def dev_split(rows: list) -> tuple[list, list]:
    from services.training import split_train_validation

    return split_train_validation(rows, fraction=0.15, seed=7)


def plugin_defaults() -> dict[str, Any]:
    """The sentiment plugin's own training defaults (what ``suite sentiment train`` uses)."""
    from plugins.sentiment.options import TrainingOptions

    options = TrainingOptions()
    return {name: getattr(options, name) for name in TUNED}


def run_setting(ctx, rest: list, dev: list, overrides: dict[str, Any], all_data: bool, max_steps: int | None):
    from plugins.sentiment.options import TrainingOptions
    from services.training import TextClassifier, classification_metrics, split_train_validation

    if all_data:
        train, validation = rest, None
    else:
        options = TrainingOptions()
        train, validation = split_train_validation(rest, fraction=options.validation_fraction, seed=options.seed)
    params = {**plugin_defaults(), **overrides, **({"max_steps": max_steps} if max_steps else {})}
    with tempfile.TemporaryDirectory(prefix="sentiment-dev-") as scratch:
        started = time.perf_counter()
        result = ctx.trainer.train_classifier(
            ctx.backbone("sentiment"), train, validation, params, output_dir=Path(scratch) / "model", progress=False
        )
        wall = time.perf_counter() - started
        classifier = TextClassifier.from_pretrained(result.model_dir, device="cpu", precision="float32")
        predicted = [p.label for p in classifier.predict([row.text for row in dev])]
    labels = sorted({row.label for row in rest})
    index = {label: i for i, label in enumerate(labels)}
    metrics = classification_metrics([index[row.label] for row in dev], [index[p] for p in predicted], labels)
    return metrics["accuracy"], metrics["macro_f1"], result.steps, wall


def main() -> None:
    args = parse_args()
    set_threads(args.threads)
    chosen = args.only.split(",") if args.only else list(SETTINGS)
    unknown = [name for name in chosen if name not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown settings {unknown} (choose from {', '.join(SETTINGS)})")
    rest, dev = dev_split(stratified_sample(load_labeled("financial_phrasebank", "train"), args.limit))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-sentiment-dev-") as scratch:
        ctx = suite_context(Path(scratch), "sentiment", threads=args.threads)
        try:
            for name in chosen:
                overrides, all_data = SETTINGS[name]
                print(f"{name}: training")
                accuracy, macro_f1, steps, wall = run_setting(ctx, rest, dev, overrides, all_data, args.max_steps)
                print(f"{name}: dev accuracy {accuracy:.4f}")
                rows.append([name, overrides or "-", f"{accuracy:.4f}", f"{macro_f1:.4f}", steps, f"{wall:.0f}"])
        finally:
            ctx.shutdown()
    body = [
        f"Dev set: {len(dev)} sentences, a stratified 15% of the financial_phrasebank training split (seed 7); "
        f"runs train on the other {len(rest)} (less 15% for validation and early stopping, except the 'all-data' "
        f"rows), with the sentiment plugin's defaults {plugin_defaults()} unless the row says "
        "otherwise. The test split is not read. Wall times are indicative only (other work may share the CPU).",
        "",
        table(["setting", "overrides", "dev accuracy", "dev macro F1", "steps", "train s"], rows),
    ]
    write_results("Sentiment settings on the dev set", command_line("bench.sentiment_dev"), "\n".join(body))


if __name__ == "__main__":
    main()
