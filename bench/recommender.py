"""Recommender: citeulike-a through the recommender plugin's training, pipeline and evaluation helpers.

Items are articles, an item's text is its tags (``, ``-joined; 3,461 of the 16,980
articles have none, so their text is empty); users' libraries have no timestamps, so
each is read in a seeded random order. Two splits from ``plugins.recommender.evaluation``:

- warm: 20% of each user's items held out (``holdout_split``), ranked among all items;
- cold: 10% of the items removed from every training history (``cold_item_split``),
  ranked among those unseen items only.

For each split the plugin's bi-encoder is fine-tuned on the training histories with
the plugin's defaults (``fine_tune``), the catalogue is embedded with it, and every
method ranks through the plugin's ``rank_items``, in the same run: the plugin's blend
(``recommender``), its text signal alone with the fine-tuned and with the zero-shot
backbone, and the baselines most-popular, item-kNN (co-occurrence) and BM25 over the
tags. Reported: recall@20, recall@100 and NDCG@20 (one ranking of 100 per user),
fine-tuning wall time, catalogue embedding time, and the plugin's ranking latency per
user (in-memory catalogue, as in the plugin's offline evaluation; no store reads).

    python -m bench.recommender
    python -m bench.recommender --users 150 --max-pairs 64   # smoke run
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    add_thread_option,
    command_line,
    data_path,
    percentile,
    set_threads,
    suite_context,
    table,
    write_results,
)

KS = (20, 100)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=None, help="keep N random users and their items (smoke runs)")
    parser.add_argument("--eval-users", type=int, default=None, help="evaluate at most N test users per split")
    parser.add_argument("--max-pairs", type=int, default=None, help="override the plugin's cap on training pairs")
    parser.add_argument("--epochs", type=float, default=None, help="override the plugin's fine-tuning epochs")
    parser.add_argument("--splits", default="warm,cold")
    add_thread_option(parser)
    return parser.parse_args()


# -- data -------------------------------------------------------------------------------------------------
def load_citeulike(users: int | None) -> tuple[dict[str, list[tuple[str, None]]], dict[str, str]]:
    folder = data_path("citeulike_a")
    tags = (folder / "tags.dat").read_text(encoding="utf-8").splitlines()
    texts = {}
    for number, line in enumerate((folder / "item-tag.dat").read_text(encoding="utf-8").splitlines()):
        ids = line.split()[1:]
        texts[f"i{number}"] = ", ".join(tags[int(tag)] for tag in ids)
    histories = {}
    for number, line in enumerate((folder / "users.dat").read_text(encoding="utf-8").splitlines()):
        histories[f"u{number}"] = [(f"i{item}", None) for item in line.split()[1:]]
    if users and users < len(histories):
        kept = random.Random(42).sample(sorted(histories), users)
        histories = {user: histories[user] for user in sorted(kept)}
        seen = {item for history in histories.values() for item, _ in history}
        texts = {item: text for item, text in texts.items() if item in seen}
    return histories, texts


def embed(model_path: str, texts: list[str], settings) -> tuple[np.ndarray, float]:
    from services.embeddings import Embedder

    embedder = Embedder(
        model_path,
        batch_size=settings.embeddings.batch_size,
        max_length=settings.embeddings.max_length,
        cache_dir=None,
        device="cpu",
    )
    started = time.perf_counter()
    vectors = embedder.encode(texts)
    return vectors, time.perf_counter() - started


# -- ranking ----------------------------------------------------------------------------------------------
def rank_all(components, split, options, blends: dict[str, Any], users: list[str]) -> dict[str, dict[str, Any]]:
    """Each method's top 100 for each user, through the plugin's ``rank_items``, timed per user.

    The query is built as ``evaluation.evaluate`` builds it: the training history in its
    stored order with recency weights by position, seen items excluded.
    """
    from plugins.recommender.evaluation import ndcg_at_k, recall_at_k
    from plugins.recommender.pipeline import CollaborativeModel, Query, rank_items
    from plugins.recommender.ranking import decay_weights

    catalogue = components.catalogue(split)
    collaborative = CollaborativeModel(split.train, options.neighbours)
    report: dict[str, dict[str, Any]] = {}
    for method, (weights, catalogue_for) in blends.items():
        chosen = catalogue_for(split) if catalogue_for else catalogue
        scores: dict[str, list[float]] = {"recall@20": [], "recall@100": [], "ndcg@20": []}
        latencies = []
        for user in users:
            history = [item for item in split.train.get(user, []) if item in chosen.position]
            ages = np.arange(len(history) - 1, -1, -1, dtype=np.float64)
            query = Query(
                history=history,
                weights=list(decay_weights(ages, options.recency_half_life_items)),
                exclude=set(history),
                k=max(KS),
            )
            started = time.perf_counter()
            ranked = [r.item for r in rank_items(chosen, collaborative, query, options, weights)]
            latencies.append(time.perf_counter() - started)
            relevant = split.test[user]
            scores["recall@20"].append(recall_at_k(ranked, relevant, 20))
            scores["recall@100"].append(recall_at_k(ranked, relevant, 100))
            scores["ndcg@20"].append(ndcg_at_k(ranked, relevant, 20))
        report[method] = {name: float(np.mean(values)) for name, values in scores.items()}
        report[method]["latencies"] = latencies
        print(f"  {method}: recall@20 {report[method]['recall@20']:.3f}")
    return report


def main() -> None:
    args = parse_args()
    set_threads(args.threads)
    from plugins.recommender.evaluation import BASELINES, Components, cold_item_split, holdout_split
    from plugins.recommender.training import fine_tune

    histories, texts = load_citeulike(args.users)
    ids = sorted(texts, key=lambda item: int(item[1:]))
    item_texts = [texts[item] for item in ids]
    training: dict[str, Any] = {}
    if args.max_pairs:
        training["max_pairs"] = args.max_pairs
    if args.epochs:
        training["epochs"] = args.epochs
    results: dict[str, Any] = {"items": len(ids), "users": len(histories), "splits": {}}
    with tempfile.TemporaryDirectory(prefix="bench-recommender-") as scratch:
        plugin_options = {"training": training} if training else {}
        ctx = suite_context(Path(scratch) / "data", "recommender", plugin_options, threads=args.threads)
        try:
            options = ctx.plugin_options("recommender")
            results["training"] = options.training
            print(f"embedding {len(ids)} items with the zero-shot backbone")
            zero_shot, zero_seconds = embed(ctx.backbone("recommender"), item_texts, ctx.settings)
            results["zero_shot_seconds"] = zero_seconds
            for name in [s.strip() for s in args.splits.split(",") if s.strip()]:
                if name == "warm":
                    split = holdout_split(histories, fraction=0.2, seed=42)
                elif name == "cold":
                    split = cold_item_split(histories, fraction=0.1, seed=42)
                else:
                    raise SystemExit(f"unknown split '{name}' (choose warm, cold)")
                print(f"{name} split: fine-tuning")
                result = fine_tune(
                    ctx,
                    split.train,
                    dict(zip(ids, item_texts, strict=True)),
                    options,
                    {},
                    Path(scratch) / f"model-{name}",
                    progress=False,
                )
                print(f"{name} split: embedding the catalogue with the fine-tuned model")
                vectors, embed_seconds = embed(str(result.model_dir), item_texts, ctx.settings)
                components = Components(ids, item_texts, vectors, options=options)
                plain = Components(ids, item_texts, zero_shot, options=options)
                blends = {
                    "recommender (plugin blend, fine-tuned)": (options.weights, None),
                    "text only, fine-tuned": (BASELINES["text-only"], None),
                    "text only, zero-shot backbone": (BASELINES["text-only"], plain.catalogue),
                    "most-popular": (BASELINES["most-popular"], None),
                    "item-kNN (co-occurrence)": (BASELINES["item-knn"], None),
                    "BM25 over the tags": (BASELINES["bm25"], None),
                }
                users = sorted(split.test)
                if args.eval_users and len(users) > args.eval_users:
                    users = sorted(random.Random(42).sample(users, args.eval_users))
                print(f"{name} split: ranking for {len(users)} users")
                results["splits"][name] = {
                    "methods": rank_all(components, split, options, blends, users),
                    "users": len(users),
                    "train_seconds": result.wall_seconds,
                    "pairs": result.train_examples,
                    "steps": result.steps,
                    "embed_seconds": embed_seconds,
                    "candidates": len(split.candidates) if split.candidates is not None else len(ids),
                }
        finally:
            ctx.shutdown()
    report(args, results)


def report(args, results: dict[str, Any]) -> None:
    training = results["training"]
    body = [
        f"Data: citeulike-a, {results['users']:,} users, {results['items']:,} items (text = tags). Fine-tuning: the "
        f"plugin's `fine_tune` with its options (up to {training.max_pairs} item-to-item pairs, {training.epochs:g} "
        f"epoch(s), batch {training.batch_size}, learning rate {training.learning_rate:g}). Zero-shot catalogue "
        f"embedding: {results['zero_shot_seconds']:.0f} s ({results['items'] / results['zero_shot_seconds']:.0f} "
        "items/s).",
    ]
    for name, split in results["splits"].items():
        methods = split["methods"]
        rows = [
            [method, f"{m['recall@20']:.3f}", f"{m['recall@100']:.3f}", f"{m['ndcg@20']:.3f}"]
            for method, m in methods.items()
        ]
        latencies = next(iter(methods.values()))["latencies"]
        where = "among all items" if name == "warm" else f"among the {split['candidates']:,} unseen items"
        body += [
            "",
            f"{name.capitalize()} split ({split['users']:,} test users, held-out items ranked {where}):",
            "",
            table(["method", "recall@20", "recall@100", "NDCG@20"], rows),
            "",
            f"Fine-tuning: {split['train_seconds']:.0f} s ({split['pairs']} pairs, {split['steps']} steps); catalogue "
            f"embedding with the fine-tuned model: {split['embed_seconds']:.0f} s "
            f"({results['items'] / split['embed_seconds']:.0f} items/s); ranking latency per user of the plugin's "
            f"blend (top 100): median {statistics.median(latencies) * 1000:.1f} ms, "
            f"p95 {percentile(latencies, 95) * 1000:.1f} ms.",
        ]
    write_results("Recommender", command_line("bench.recommender"), "\n".join(body))


if __name__ == "__main__":
    main()
