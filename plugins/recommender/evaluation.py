"""Offline evaluation: splits, recall@k and NDCG@k, and the baselines the recommender must beat.

Public API (reused by the benchmarks in ``bench/``)::

    split = holdout_split(histories, fraction=0.2, seed=42)      # per-user holdout
    split = cold_item_split(histories, fraction=0.1, seed=42)    # unseen items
    components = Components(ids, texts, vectors, ...)            # or a SuiteContext
    report = evaluate(components, split, k=20)                   # {method: {"recall@20": ...}}

Every method, the recommender and the baselines, ranks through the same
:func:`plugins.recommender.pipeline.rank_items`; a baseline is just a set of signal
weights (most-popular: popularity only; item-kNN: co-occurrence only; BM25: lexical only).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from plugins.recommender.options import RankingWeights, RecommenderOptions
from plugins.recommender.pipeline import CollaborativeModel, MatrixCatalogue, Query, collaborative_model, rank_items
from services.progress import progress_bar
from suite.errors import DataError

if TYPE_CHECKING:
    from suite.context import SuiteContext

BASELINES: dict[str, RankingWeights] = {
    "most-popular": RankingWeights(text=0, collaborative=0, lexical=0, popularity=1, freshness=0),
    "item-knn": RankingWeights(text=0, collaborative=1, lexical=0, popularity=0, freshness=0),
    "bm25": RankingWeights(text=0, collaborative=0, lexical=1, popularity=0, freshness=0),
    "text-only": RankingWeights(text=1, collaborative=0, lexical=0, popularity=0, freshness=0),
}
DEFAULT_METHODS = ("recommender", "most-popular", "item-knn", "bm25")

# A history: per user, (item, timestamp or None) in the order they happened (or were stored).
Histories = Mapping[str, Sequence[tuple[str, datetime | None]]]


@dataclass
class Split:
    """Training histories (oldest first) and the held-out items to find for each test user.

    ``candidates`` limits what may be recommended (the unseen items of a cold split);
    None means the whole catalogue.
    """

    train: dict[str, list[str]]
    test: dict[str, set[str]]
    candidates: set[str] | None = None
    name: str = "holdout"
    chronological: bool = False  # every history had timestamps: recency weighting means something

    @property
    def test_interactions(self) -> int:
        return sum(len(items) for items in self.test.values())


def ordered_items(history: Sequence[tuple[str, datetime | None]], rng: random.Random) -> list[str]:
    """Distinct items, chronological when every interaction has a timestamp, else in a seeded shuffle."""
    if history and all(ts is not None for _, ts in history):
        order = sorted(range(len(history)), key=lambda i: (history[i][1], i))
        return list(dict.fromkeys(history[i][0] for i in order))
    items = list(dict.fromkeys(item for item, _ in history))
    rng.shuffle(items)
    return items


def holdout_split(histories: Histories, fraction: float = 0.2, seed: int = 42, min_items: int = 2) -> Split:
    """Hold out ``fraction`` of each user's items (at least one): the latest ones when every
    interaction has a timestamp, a seeded random choice otherwise. Users with fewer than
    ``min_items`` items only train."""
    if not 0 < fraction < 1:
        raise DataError(f"holdout fraction must be between 0 and 1, got {fraction}")
    rng = random.Random(seed)
    train: dict[str, list[str]] = {}
    test: dict[str, set[str]] = {}
    for user in sorted(histories):
        items = ordered_items(histories[user], rng)
        if len(items) < max(min_items, 2):
            train[user] = items
            continue
        held = min(max(1, round(len(items) * fraction)), len(items) - 1)
        train[user], test[user] = items[:-held], set(items[-held:])
    if not test:
        raise DataError(f"no user has {max(min_items, 2)} or more items: nothing to hold out")
    return Split(train, test, None, "holdout", _all_timed(histories))


def cold_item_split(histories: Histories, fraction: float = 0.1, seed: int = 42) -> Split:
    """Make ``fraction`` of the interacted items unseen: they leave every training history and
    become the test items, ranked among themselves (as brand-new catalogue items would be)."""
    if not 0 < fraction < 1:
        raise DataError(f"cold fraction must be between 0 and 1, got {fraction}")
    rng = random.Random(seed)
    items = sorted({item for history in histories.values() for item, _ in history})
    cold = set(rng.sample(items, max(1, round(len(items) * fraction))))
    train: dict[str, list[str]] = {}
    test: dict[str, set[str]] = {}
    for user in sorted(histories):
        ordered = ordered_items(histories[user], rng)
        warm = [item for item in ordered if item not in cold]
        train[user] = warm
        held = {item for item in ordered if item in cold}
        if warm and held:
            test[user] = held
    if not test:
        raise DataError("no user has both warm and cold items: nothing to evaluate")
    return Split(train, test, cold, "cold-items", _all_timed(histories))


def _all_timed(histories: Histories) -> bool:
    return all(ts is not None for history in histories.values() for _, ts in history)


# -- metrics -----------------------------------------------------------------------------
def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Share of the relevant items found in the first ``k``."""
    return len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Binary-relevance normalised discounted cumulative gain."""
    gain = sum(1.0 / math.log2(rank + 2) for rank, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return gain / ideal if ideal else 0.0


# -- what is evaluated -------------------------------------------------------------------
@dataclass
class Components:
    """A catalogue in memory: everything :func:`evaluate` needs besides the split.

    ``vectors`` are the item embeddings of the model under test (L2-normalised rows, in
    the order of ``ids``); ``ages_days`` feeds the freshness signal (NaN when unknown).
    Popularity is always recomputed from the split's training histories.
    """

    ids: list[str]
    texts: list[str]
    vectors: np.ndarray
    ages_days: np.ndarray | None = None
    metadata: list[dict[str, Any]] | None = None
    options: RecommenderOptions = field(default_factory=RecommenderOptions)
    embed: Any = None  # optional callable(texts) -> vectors, for interests queries

    def catalogue(self, split: Split) -> MatrixCatalogue:
        counts: dict[str, int] = {}
        for items in split.train.values():
            for item in items:
                counts[item] = counts.get(item, 0) + 1
        return MatrixCatalogue(
            self.ids,
            self.texts,
            self.vectors,
            popularity=np.asarray([counts.get(item, 0) for item in self.ids], dtype=np.float64),
            ages_days=self.ages_days,
            metadata=self.metadata,
            freshness_half_life_days=self.options.freshness_half_life_days,
            allowed=sorted(split.candidates) if split.candidates is not None else None,
        )


def components_from_context(ctx: SuiteContext, model_path: str | None = None) -> Components:
    """The stored catalogue, embedded with ``model_path`` (default: the model serving now)."""
    from plugins.recommender.service import get_recommender

    return get_recommender(ctx).components(model_path)


def histories_from_context(ctx: SuiteContext) -> dict[str, list[tuple[str, datetime | None]]]:
    from plugins.recommender.service import get_recommender

    return get_recommender(ctx).histories()


def evaluate(
    source: SuiteContext | Components,
    split: Split,
    k: int = 20,
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    weights: Mapping[str, RankingWeights] | None = None,
    max_users: int | None = None,
    seed: int = 42,
) -> dict[str, dict[str, float]]:
    """recall@k and NDCG@k of each method on the split's test users.

    ``methods``: "recommender" (the configured blend), any name of :data:`BASELINES`, or
    a name given in ``weights`` (custom blends, e.g. for tuning). ``max_users`` samples
    test users (seeded) to bound the run time.
    """
    components = source if isinstance(source, Components) else components_from_context(source)
    options = components.options
    catalogue = components.catalogue(split)
    # The item-kNN baseline is classic cosine item-kNN whatever the recommender is configured with.
    models = {"configured": collaborative_model(split.train, options)}
    if options.collaborative_method != "cosine" or options.neighbours:
        models["cosine"] = CollaborativeModel(split.train, None, "cosine")
    else:
        models["cosine"] = models["configured"]
    users = sorted(split.test)
    if max_users and len(users) > max_users:
        users = sorted(random.Random(seed).sample(users, max_users))
    blends = {"recommender": options.weights, **BASELINES, **(weights or {})}
    unknown = [name for name in methods if name not in blends]
    if unknown:
        raise DataError(f"unknown evaluation method(s): {', '.join(unknown)} (known: {', '.join(blends)})")
    report: dict[str, dict[str, float]] = {}
    with progress_bar(len(methods) * len(users), "evaluating", "user", leave=False) as bar:
        for method in methods:
            report[method] = _evaluate_method(method, users, split, catalogue, models, options, blends, k, bar)
    return report


def _evaluate_method(
    method: str,
    users: list[str],
    split: Split,
    catalogue: MatrixCatalogue,
    models: dict[str, Any],
    options: RecommenderOptions,
    blends: dict[str, Any],
    k: int,
    bar: Any,
) -> dict[str, float]:
    recalls, ndcgs = [], []
    for user in users:
        bar.update()
        history = [item for item in split.train.get(user, []) if item in catalogue.position]
        # Recency by position only where positions are chronological, and never for baselines.
        recency = split.chronological and method not in BASELINES
        weights = _position_weights(len(history), options) if recency else np.ones(len(history))
        query = Query(history=history, weights=list(weights), exclude=set(history), k=k)
        collaborative = models["cosine" if method == "item-knn" else "configured"]
        ranked = [r.item for r in rank_items(catalogue, collaborative, query, options, blends[method], explain=False)]
        recalls.append(recall_at_k(ranked, split.test[user], k))
        ndcgs.append(ndcg_at_k(ranked, split.test[user], k))
    return {
        f"recall@{k}": float(np.mean(recalls)) if recalls else 0.0,
        f"ndcg@{k}": float(np.mean(ndcgs)) if ndcgs else 0.0,
        "users": len(users),
    }


def _position_weights(n: int, options: RecommenderOptions) -> np.ndarray:
    """Recency weights by position (the split keeps order, not timestamps)."""
    from plugins.recommender.ranking import decay_weights

    return decay_weights(np.arange(n - 1, -1, -1, dtype=np.float64), options.recency_half_life_items)


def text_recall(
    split: Split,
    texts: Mapping[str, str],
    encode: Callable[[list[str]], np.ndarray],
    options: RecommenderOptions,
    *,
    k: int = 20,
    max_users: int | None = None,
    seed: int = 42,
) -> float:
    """recall@k of the text signal alone (``text-only``) for up to ``max_users`` test users,
    embedding with ``encode`` only the items those users' rankings touch: their histories and
    the split's candidates (the whole catalogue when it has none)."""
    users = sorted(split.test)
    if max_users and len(users) > max_users:
        users = sorted(random.Random(seed).sample(users, max_users))
    sub = Split(
        {user: split.train.get(user, []) for user in users},
        {user: split.test[user] for user in users},
        split.candidates,
        split.name,
        split.chronological,
    )
    if split.candidates is None:
        needed = set(texts)
    else:
        needed = set(split.candidates) | {item for user in users for item in sub.train[user]}
    ids = sorted(item for item in needed if item in texts)
    item_texts = [texts[item] for item in ids]
    components = Components(ids, item_texts, encode(item_texts), options=options)
    return evaluate(components, sub, k, ["text-only"], seed=seed)["text-only"][f"recall@{k}"]


# Multipliers tried on each signal's weight, one signal at a time, by :func:`tune_weights`.
TUNING_STEPS = (0.0, 0.5, 2.0)
TUNED_SIGNALS = ("text", "collaborative", "lexical", "popularity")


@dataclass
class Tuning:
    weights: RankingWeights
    score: float  # mean recall@k over the validation splits
    start_score: float
    tried: int


def tune_weights(
    components: Components,
    splits: Sequence[Split],
    k: int = 20,
    *,
    start: RankingWeights | None = None,
    rounds: int = 2,
    max_users: int | None = 300,
    seed: int = 42,
) -> Tuning:
    """Blend weights that maximise mean recall@k over ``splits`` (validation splits carved from
    training interactions, never the test users): coordinate ascent from ``start``, each signal's
    weight multiplied by :data:`TUNING_STEPS` in turn (a zero weight tries 0.25 and 1), ``rounds`` times."""
    if not splits:
        raise DataError("tuning needs at least one validation split")
    cache: dict[tuple[float, ...], float] = {}

    def score(weights: RankingWeights) -> float:
        key = tuple(round(v, 6) for v in weights.model_dump().values())
        if key not in cache:
            scores = [
                evaluate(components, split, k, ["tuned"], weights={"tuned": weights}, max_users=max_users, seed=seed)
                for split in splits
            ]
            cache[key] = float(np.mean([report["tuned"][f"recall@{k}"] for report in scores]))
        return cache[key]

    best = start or components.options.weights
    best_score = start_score = score(best)
    for _ in range(rounds):
        improved = False
        for signal in TUNED_SIGNALS:
            current = getattr(best, signal)
            values = [current * step for step in TUNING_STEPS] if current else [0.25, 1.0]
            for value in values:
                candidate = best.model_copy(update={signal: round(value, 6)})
                if not any(candidate.model_dump().values()):
                    continue
                value_score = score(candidate)
                if value_score > best_score + 1e-9:
                    best, best_score, improved = candidate, value_score, True
        if not improved:
            break
    return Tuning(best, best_score, start_score, len(cache))


def evaluate_store(
    ctx: SuiteContext,
    *,
    holdout: float = 0.2,
    k: int = 20,
    cold: float | None = None,
    retrain: bool = False,
    seed: int = 42,
    methods: Sequence[str] = DEFAULT_METHODS,
) -> tuple[dict[str, dict[str, float]], str]:
    """Evaluate on the stored histories (``suite recommender evaluate``); returns the report and a
    note saying which model was measured.

    Without ``retrain`` the serving model is measured; a fine-tuned one has seen the test
    interactions during training, so its numbers are optimistic. ``retrain`` fine-tunes a
    throw-away model on the training part first.
    """
    import tempfile
    from pathlib import Path

    from plugins.recommender.service import get_recommender
    from plugins.recommender.training import fine_tune

    recommender = get_recommender(ctx)
    histories = recommender.histories()
    served = {"recommender": recommender.serving_weights()}
    split = cold_item_split(histories, cold, seed) if cold else holdout_split(histories, holdout, seed)
    if not retrain:
        model = recommender.index.model()
        note = f"{split.name} split, model {model.ref if model.fine_tuned else 'zero-shot backbone'}"
        if model.fine_tuned:
            note += " (trained on every interaction, test ones included: optimistic; use --retrain)"
        return evaluate(recommender.components(), split, k, methods, weights=served, seed=seed), note
    with tempfile.TemporaryDirectory(dir=ctx.plugin_dir("recommender"), prefix="evaluate-") as scratch:
        result = fine_tune(
            ctx, split.train, recommender.item_texts(), recommender.options, {}, Path(scratch) / "model", progress=True
        )
        components = recommender.components(str(result.model_dir))
    return evaluate(
        components, split, k, methods, weights=served, seed=seed
    ), f"{split.name} split, model fine-tuned on the training part"


def tune_store(ctx: SuiteContext, *, k: int = 20, seed: int = 42, max_users: int | None = 300) -> tuple[Tuning, str]:
    """``suite recommender evaluate --tune``: blend weights tuned for the serving model on validation
    splits of the stored histories (20% of each user's items held out, and 10% of the items made
    unseen), kept with the model (its card) and used at serving time unless the config sets weights.
    Returns the tuning and where it was written."""
    from plugins.recommender.service import get_recommender

    recommender = get_recommender(ctx)
    histories = recommender.histories()
    splits = []
    for make in (lambda: holdout_split(histories, 0.2, seed), lambda: cold_item_split(histories, 0.1, seed)):
        try:
            splits.append(make())
        except DataError:
            continue  # too little data for this kind of split
    if not splits:
        raise DataError("too few interactions to carve a validation split: import interactions first")
    start = recommender.serving_weights()
    tuning = tune_weights(recommender.components(), splits, k, start=start, max_users=max_users, seed=seed)
    details = {
        f"validation_recall@{k}": round(tuning.score, 4),
        f"start_recall@{k}": round(tuning.start_score, 4),
        "splits": [split.name for split in splits],
    }
    return tuning, recommender.save_tuned_weights(tuning.weights, details)
