"""Recommender: citeulike-a through the recommender plugin's training, pipeline and evaluation helpers.

Items are articles, an item's text is its tags (``, ``-joined; 3,461 of the 16,980
articles have none, so their text is empty); users' libraries have no timestamps, so
each is read in a seeded random order. Two test splits from ``plugins.recommender.evaluation``:

- warm: 20% of each user's items held out (``holdout_split``), ranked among all items;
- cold: 10% of the items removed from every training history (``cold_item_split``),
  ranked among those unseen items only.

One bi-encoder serves both: it is fine-tuned (the plugin's ``fine_tune``: pairs from every
user, epochs stopped on validation recall) on the interactions that are in the training
part of *both* splits, so it has seen no test interaction of either. Its validation split
(unseen items, for early stopping) is carved from those training interactions.

The blend's weights are tuned (``tune_weights``) on validation splits carved from the
training interactions, never on test users: the fine-tune's unseen-item validation split,
and 20% of each user's training items held out (the model saw those, so text looks a little
better there than on the test). Test users are ranked once, for the final table: the plugin's
blend with the tuned and with the default weights, its text signal alone with the fine-tuned
and with the zero-shot backbone, most-popular, item-kNN and BM25 (the search service's, over
the tags), all through the plugin's ``rank_items``. Reported: recall@20, recall@100 and
NDCG@20 (one ranking of 100 per user), fine-tuning time and pairs/s, catalogue embedding
items/s of the plugin's embedder against the previous eager path and sentence-transformers
``encode`` on the same texts in the same process, and ranking latency per user.

    python -m bench.recommender --max-pairs 6000 --epochs 3
    python -m bench.recommender --users 150 --max-pairs 64 --speed-texts 64   # smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
MEAN = "mean profile"  # rows ranked with profile = "mean" (the others: the plugin's default, "nearest")
TARGETS = {
    "text only, fine-tuned": {"cold": 0.45},
    "recommender (tuned blend, fine-tuned)": {"cold": 0.48, "warm": 0.33},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=None, help="keep N random users and their items (smoke runs)")
    parser.add_argument("--eval-users", type=int, default=None, help="rank at most N test users per split")
    parser.add_argument("--max-pairs", type=int, default=None, help="pairs per epoch (default: the plugin's)")
    parser.add_argument("--epochs", type=float, default=None, help="fine-tuning epochs (default: the plugin's)")
    parser.add_argument("--pairs-per-user", type=int, default=None, help="default: the plugin's")
    parser.add_argument("--validation-users", type=int, default=None, help="users scoring an epoch (default: plugin's)")
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--adapter-max-pairs", type=int, default=None, help="adapter pairs per epoch")
    parser.add_argument("--adapter-epochs", type=int, default=None)
    parser.add_argument("--tune-users", type=int, default=300, help="validation users per split when tuning")
    parser.add_argument("--speed-texts", type=int, default=1000, help="texts of the embedding speed comparison")
    parser.add_argument("--precision", default="auto", help="catalogue embedding precision (float32, bfloat16, auto)")
    parser.add_argument(
        "--train-precision", default="float32", help="precision of the transformer's training steps ([training])"
    )
    parser.add_argument(
        "--zero-shot",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also embed the whole catalogue with the zero-shot backbone (its text-only row)",
    )
    parser.add_argument("--work-dir", default=None, help="keep the model and vectors here (reused when present)")
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


# -- catalogue embedding speed ----------------------------------------------------------------------------
def previous_path(embedder, texts: list[str], batch_size: int) -> np.ndarray:
    """What the embedder did before: eager float32, batches of ``batch_size`` in length order, no token cap."""
    import torch

    from services.embeddings import mean_pool_normalize

    tokenizer, model, _ = embedder._load()
    ids = tokenizer(texts, truncation=True, max_length=embedder.max_length, return_attention_mask=False)["input_ids"]
    order = np.argsort([-len(row) for row in ids], kind="stable")
    out = np.empty((len(texts), embedder.dimension), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        rows = order[start : start + batch_size]
        width = len(ids[rows[0]])
        input_ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for row, index in enumerate(rows):
            input_ids[row, : len(ids[index])] = ids[index]
            mask[row, : len(ids[index])] = 1
        with torch.inference_mode():
            hidden = model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask))
            out[rows] = mean_pool_normalize(hidden.last_hidden_state, torch.from_numpy(mask)).numpy()
    return out


def embedding_speed(model_path: str, texts: list[str], settings) -> list[list[str]]:
    """items/s of each way to embed the same texts, one after the other in this process."""
    from sentence_transformers import SentenceTransformer

    from services.embeddings import Embedder

    batch, length = settings.embeddings.batch_size, settings.embeddings.max_length

    def embedder(precision: str) -> Embedder:
        made = Embedder(model_path, batch_size=batch, max_length=length, device="cpu", precision=precision)
        made.encode(texts[:4])  # load (and trace) before the clock starts
        return made

    eager, traced, bfloat16 = embedder("float32"), embedder("float32"), embedder("bfloat16")
    peer = SentenceTransformer(model_path, device="cpu")
    peer.max_seq_length = length
    peer.encode(texts[:4])
    ways = {
        "previous embedder path (eager float32, batches of 64)": lambda: previous_path(eager, texts, batch),
        "plugin embedder, float32 (traced, token-capped batches)": lambda: traced.encode(texts),
        "plugin embedder, bfloat16 (traced)": lambda: bfloat16.encode(texts),
        "sentence-transformers encode (batch 64)": lambda: peer.encode(texts, batch_size=batch),
    }
    reference = None
    rows = []
    for name, run in ways.items():
        started = time.perf_counter()
        vectors = np.asarray(run())
        seconds = time.perf_counter() - started
        reference = vectors if reference is None else reference
        cosine = float(np.min(np.sum(vectors * reference, axis=1)))
        rows.append([name, f"{len(texts) / seconds:.1f}", f"{cosine:.4f}"])
        print(f"  {name}: {len(texts) / seconds:.1f} items/s")
    base = float(rows[0][1])
    for row in rows:
        row.insert(2, f"{float(row[1]) / base:.2f}x")
    return rows


def embed_catalogue(model_path: str, texts: list[str], settings, precision: str) -> tuple[np.ndarray, float]:
    from services.embeddings import Embedder

    embedder = Embedder(
        model_path,
        batch_size=settings.embeddings.batch_size,
        max_length=settings.embeddings.max_length,
        device="cpu",
        precision=precision,
    )
    started = time.perf_counter()
    vectors = embedder.encode(texts)
    return vectors, time.perf_counter() - started


def cached_vectors(path: Path | None, compute) -> tuple[np.ndarray, float | None]:
    if path is not None and path.exists():
        return np.load(path), None
    vectors, seconds = compute()
    if path is not None:
        np.save(path, vectors)
    return vectors, seconds


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
    for method, (weights, catalogue_for, *method_options) in blends.items():
        chosen = catalogue_for(split) if catalogue_for else catalogue
        ranking_options = method_options[0] if method_options else options
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
            ranked = [r.item for r in rank_items(chosen, collaborative, query, ranking_options, weights)]
            latencies.append(time.perf_counter() - started)
            relevant = split.test[user]
            scores["recall@20"].append(recall_at_k(ranked, relevant, 20))
            scores["recall@100"].append(recall_at_k(ranked, relevant, 100))
            scores["ndcg@20"].append(ndcg_at_k(ranked, relevant, 20))
        report[method] = {name: float(np.mean(values)) for name, values in scores.items()}
        report[method]["latencies"] = latencies
        print(f"  {method}: recall@20 {report[method]['recall@20']:.3f}", flush=True)
    return report


def profile_validation(components, mean_options, split, max_users: int) -> dict[str, float]:
    """Validation recall@20 of the text signal with each profile (the fine-tune's unseen items)."""
    from plugins.recommender.evaluation import evaluate

    if split is None:
        return {}
    recalls = {}
    for profile, options in (("nearest", components.options), ("mean", mean_options)):
        chosen = dataclasses.replace(components, options=options)
        recalls[profile] = evaluate(chosen, split, 20, ["text-only"], max_users=max_users)["text-only"]["recall@20"]
        print(f"  validation recall@20 of the text signal, {profile} profile: {recalls[profile]:.3f}", flush=True)
    return recalls


def both_trains(warm, cold) -> dict[str, list[str]]:
    """Per user, the items in the training part of both splits (warm order)."""
    return {
        user: [item for item in items if item in set(cold.train.get(user, []))] for user, items in warm.train.items()
    }


def main() -> None:
    args = parse_args()
    set_threads(args.threads)
    histories, texts = load_citeulike(args.users)  # before importing the models: SKIP early without data
    from plugins.recommender.adapter import adapt
    from plugins.recommender.evaluation import (
        BASELINES,
        Components,
        cold_item_split,
        holdout_split,
        tune_weights,
    )
    from plugins.recommender.training import fine_tune, fit_adapter, resolved_training, validation_split

    ids = sorted(texts, key=lambda item: int(item[1:]))
    item_texts = [texts[item] for item in ids]
    training: dict[str, Any] = {
        key: value
        for key, value in {
            "max_pairs": args.max_pairs,
            "epochs": args.epochs,
            "pairs_per_user": args.pairs_per_user,
            "validation_users": args.validation_users,
            "learning_rate": args.learning_rate,
            "adapter_max_pairs": args.adapter_max_pairs,
            "adapter_epochs": args.adapter_epochs,
        }.items()
        if value is not None
    }
    work = Path(args.work_dir) if args.work_dir else None
    if work:
        work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"items": len(ids), "users": len(histories), "splits": {}}
    splits = {"warm": holdout_split(histories, fraction=0.2, seed=42), "cold": cold_item_split(histories, 0.1, 42)}
    train_histories = both_trains(splits["warm"], splits["cold"])
    results["train_interactions"] = sum(len(items) for items in train_histories.values())
    with tempfile.TemporaryDirectory(prefix="bench-recommender-") as scratch:
        plugin_options = {"training": training} if training else {}
        ctx = suite_context(
            Path(scratch) / "data",
            "recommender",
            plugin_options,
            threads=args.threads,
            embeddings={"precision": args.precision},
            training={"precision": args.train_precision},
        )
        try:
            options = ctx.plugin_options("recommender")
            results["training"] = resolved_training(options, {})
            backbone = ctx.backbone("recommender")
            speed_texts = random.Random(42).sample([t for t in item_texts if t], min(args.speed_texts, len(ids)))
            print(f"embedding speed on {len(speed_texts)} item texts")
            results["speed"] = embedding_speed(backbone, speed_texts, ctx.settings)
            results["speed_texts"] = len(speed_texts)

            model_dir = (work or Path(scratch)) / "fine-tuned"
            transformer_epochs = resolved_training(options, {}).epochs > 0
            if not transformer_epochs:
                print("no transformer epochs (--epochs 0): the encoder is the backbone, the adapter learns")
            elif not (model_dir / "config.json").exists():
                print(f"fine-tuning on {results['train_interactions']:,} training interactions")
                result = fine_tune(ctx, train_histories, texts, options, {}, model_dir, progress=True, validation=True)
                results["fine_tune"] = {
                    "seconds": result.wall_seconds,
                    "pairs": result.train_examples,
                    "steps": result.steps,
                    "metrics": {k: v for k, v in result.metrics.items() if k not in ("confusion_matrix",)},
                }
                if work:
                    (work / "fine_tune.json").write_text(json.dumps(results["fine_tune"], default=str))
            elif work and (work / "fine_tune.json").exists():
                results["fine_tune"] = json.loads((work / "fine_tune.json").read_text())
            print("embedding the catalogue (zero-shot and fine-tuned)")
            precision = args.precision
            zero_shot, zero_seconds = (
                cached_vectors(
                    work / f"zero-shot-{precision}.npy" if work else None,
                    lambda: embed_catalogue(backbone, item_texts, ctx.settings, precision),
                )
                if args.zero_shot
                else (None, None)
            )
            tuned_vectors, tuned_seconds = (
                cached_vectors(
                    work / f"fine-tuned-{precision}.npy" if work else None,
                    lambda: embed_catalogue(str(model_dir), item_texts, ctx.settings, precision),
                )
                if transformer_epochs
                else (zero_shot, zero_seconds)
            )
            results["catalogue_seconds"] = tuned_seconds or zero_seconds
            training_options = resolved_training(options, {})
            fine_tuned_split = validation_split(train_histories, training_options)
            encoder_vectors = tuned_vectors
            if training_options.adapter:
                print("fitting the adapter on the fine-tuned encoder's catalogue vectors")
                adapter_file = work / "adapter.npz" if work else None
                if adapter_file is not None and adapter_file.exists():
                    weight, results["adapter"] = (
                        np.load(adapter_file)["weight"],
                        json.loads((work / "adapter.json").read_text()),
                    )
                else:
                    started = time.perf_counter()
                    # Trained without the validation split's items, as fine_tune does.
                    adapter_histories = fine_tuned_split.train if fine_tuned_split else train_histories
                    adapter = fit_adapter(
                        tuned_vectors, ids, adapter_histories, texts, fine_tuned_split, options, training_options
                    )
                    weight = adapter.weight
                    results["adapter"] = {
                        "seconds": time.perf_counter() - started,
                        "pairs_per_second": adapter.pairs_per_second,
                        "baseline": adapter.baseline,
                        "best": adapter.best,
                        "epochs": [vars(epoch) for epoch in adapter.epochs],
                    }
                    if adapter_file is not None and weight is not None:
                        np.savez(adapter_file, weight=weight)
                        (work / "adapter.json").write_text(json.dumps(results["adapter"]))
                tuned_vectors = adapt(tuned_vectors, weight)
            components = Components(ids, item_texts, tuned_vectors, options=options)
            encoder_only = Components(ids, item_texts, encoder_vectors, options=options)
            plain = Components(ids, item_texts, zero_shot, options=options) if zero_shot is not None else None

            print("tuning the blend on validation splits carved from the training interactions")
            validation = [
                fine_tuned_split,
                holdout_split({u: [(i, None) for i in items] for u, items in train_histories.items()}, 0.2, 7),
            ]
            tuning = tune_weights(components, [s for s in validation if s], 20, max_users=args.tune_users)
            results["tuning"] = tuning
            print(
                f"  tuned {tuning.weights.model_dump()} validation recall@20 {tuning.start_score:.3f} -> "
                f"{tuning.score:.3f}"
            )
            mean = options.model_copy(update={"profile": "mean"})
            results["profiles"] = profile_validation(components, mean, fine_tuned_split, args.tune_users)
            blends = {
                "recommender (tuned blend, fine-tuned)": (tuning.weights, None),
                f"recommender (tuned blend, fine-tuned, {MEAN})": (tuning.weights, None, mean),
                "recommender (default blend, fine-tuned)": (options.weights, None),
                "text only, fine-tuned": (BASELINES["text-only"], None),
                f"text only, fine-tuned, {MEAN}": (BASELINES["text-only"], None, mean),
                **(
                    {
                        "text only, fine-tuned encoder without the adapter": (
                            BASELINES["text-only"],
                            encoder_only.catalogue,
                        )
                    }
                    if encoder_vectors is not tuned_vectors
                    else {}
                ),
                **(
                    {
                        "text only, zero-shot backbone": (BASELINES["text-only"], plain.catalogue),
                        f"text only, zero-shot backbone, {MEAN}": (BASELINES["text-only"], plain.catalogue, mean),
                    }
                    if plain
                    else {}
                ),
                "most-popular": (BASELINES["most-popular"], None),
                "item-kNN (co-occurrence)": (BASELINES["item-knn"], None),
                "BM25 (the search service's) over the tags": (BASELINES["bm25"], None),
            }
            for name, split in splits.items():
                users = sorted(split.test)
                if args.eval_users and len(users) > args.eval_users:
                    users = sorted(random.Random(42).sample(users, args.eval_users))
                print(f"{name} split: ranking for {len(users)} test users")
                results["splits"][name] = {
                    "methods": rank_all(components, split, options, blends, users),
                    "users": len(users),
                    "candidates": len(split.candidates) if split.candidates is not None else len(ids),
                }
        finally:
            ctx.shutdown()
    report(results)


def adapter_line(adapter: dict[str, Any] | None, training) -> str:
    if not adapter:
        return "No adapter: the text model is the fine-tuned encoder alone."
    epochs = adapter.get("epochs", [])
    pairs = sum(epoch["pairs"] for epoch in epochs)
    recalls = " ".join(f"{epoch['recall']:.3f}" for epoch in epochs if epoch.get("recall") is not None)
    return (
        f"Adapter (`text only, fine-tuned` and the blends use it): a linear map on the encoder's catalogue vectors, "
        f"{len(epochs)} epochs of up to {training.adapter_pairs_per_user} pairs per user ({pairs:,} pairs in all, "
        f"{adapter['pairs_per_second']:,.0f} pairs/s, {adapter['seconds']:.0f} s with validation), in-batch "
        f"{'and mined hard negatives' if training.hard_negatives else 'negatives'}; validation recall@20 per epoch: "
        f"{recalls} (encoder alone {adapter['baseline'] or float('nan'):.3f}, "
        f"kept {adapter['best'] or float('nan'):.3f})."
    )


def report(results: dict[str, Any]) -> None:
    training = results["training"]
    fine = results.get("fine_tune", {})
    metrics = fine.get("metrics", {})
    epochs = metrics.get("epochs", [])
    epoch_lines = ", ".join(
        f"epoch {e['epoch']}: {e['pairs']} pairs in {e['seconds']:.0f} s, validation recall@20 {e['recall']:.3f}"
        if e.get("recall") is not None
        else f"epoch {e['epoch']}: {e['pairs']} pairs"
        for e in epochs
    )
    tuning = results["tuning"]
    body = [
        f"Data: citeulike-a, {results['users']:,} users, {results['items']:,} items (text = tags). One bi-encoder "
        f"for both splits, fine-tuned with the plugin's `fine_tune` on the {results['train_interactions']:,} "
        "interactions in the training part of both (no test interaction of either split): item-to-item pairs "
        f"from every user (window {training.history_window}, at most {training.pairs_per_user} per user and "
        f"{training.max_pairs:,} per epoch, sampled afresh each epoch), up to {training.epochs:g} epochs, batch "
        f"{training.batch_size}, learning rate {training.learning_rate:g}, early stopping on recall@"
        f"{training.validation_k} of {training.validation_items:.0%} of the items held back as unseen "
        f"({training.validation_users} validation users).",
        "",
        (
            f"Transformer fine-tuning: {fine['seconds']:.0f} s, {fine['pairs']:,} pairs, "
            f"{metrics.get('pairs_per_second', float('nan')):.1f} pairs/s, training steps in "
            f"{metrics.get('train_precision', 'float32')}; {epoch_lines}; zero-shot validation "
            f"recall@20 {metrics.get('zero_shot_recall@20') or float('nan'):.3f}, best epoch "
            f"{metrics.get('best_epoch', '?')}."
            if fine
            else "Transformer fine-tuning: none in this run (`--epochs 0`): the encoder is the zero-shot backbone."
        ),
        "",
        adapter_line(results.get("adapter"), training),
        "",
        f"Blend weights tuned on the validation splits (mean recall@20 {tuning.start_score:.3f} with the defaults "
        f"-> {tuning.score:.3f}, {tuning.tried} weightings tried): "
        + ", ".join(f"{k} {v:g}" for k, v in tuning.weights.model_dump().items())
        + ".",
    ]
    profiles = results.get("profiles")
    if profiles:
        body += [
            "",
            "Profiles: the text signal scores a candidate by its cosine to the mean of the history's vectors "
            f'(`profile = "mean"`, in the rows marked {MEAN}) or by its mean cosine to the 5 history items '
            'closest to it (`profile = "nearest"`, the default, everywhere else); validation recall@20 of the text '
            f"signal (fine-tuned model, unseen validation items): mean {profiles['mean']:.3f}, nearest "
            f"{profiles['nearest']:.3f}.",
        ]
    for name, split in results["splits"].items():
        methods = split["methods"]
        rows = []
        for method, m in methods.items():
            target = TARGETS.get(method, {}).get(name)
            verdict = "" if target is None else f"{target:.2f} ({m['recall@20'] - target:+.3f})"
            rows.append([method, f"{m['recall@20']:.3f}", f"{m['recall@100']:.3f}", f"{m['ndcg@20']:.3f}", verdict])
        latencies = next(iter(methods.values()))["latencies"]
        where = "among all items" if name == "warm" else f"among the {split['candidates']:,} unseen items"
        body += [
            "",
            f"{name.capitalize()} split ({split['users']:,} test users, held-out items ranked {where}):",
            "",
            table(["method", "recall@20", "recall@100", "NDCG@20", "target recall@20 (gap)"], rows),
            "",
            f"Ranking latency per user of the tuned blend (top 100, in-memory catalogue): median "
            f"{statistics.median(latencies) * 1000:.1f} ms, p95 {percentile(latencies, 95) * 1000:.1f} ms.",
        ]
    seconds = results.get("catalogue_seconds")
    body += [
        "",
        f"Catalogue embedding, {results['speed_texts']:,} item texts, the same texts one way after the other in one "
        "process (min cosine to the first row's vectors):",
        "",
        table(["path", "items/s", "vs previous", "min cosine"], results["speed"]),
    ]
    if seconds:
        body += [
            "",
            f"Whole catalogue ({results['items']:,} items) with the plugin's embedder: {seconds:.0f} s "
            f"({results['items'] / seconds:.0f} items/s).",
        ]
    write_results("Recommender", command_line("bench.recommender"), "\n".join(body))


if __name__ == "__main__":
    main()
