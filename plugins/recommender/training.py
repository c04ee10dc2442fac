"""Fine-tuning the plugin's backbone as a bi-encoder of items that users choose together.

Each user's history, in order (chronological when timestamps exist, else shuffled with
a fixed seed), is read as a series of held-back choices: every item after the first is
the positive of a pair whose query is one of the ``history_window`` items just before
it. Contrastive loss with in-batch negatives then pulls an item toward the items its
readers go on to choose. Queries are single items rather than a concatenated history
because the serving profile is a mean of item vectors: item-to-item training shapes
exactly the space that mean lives in.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugins.recommender.options import RecommenderOptions, TrainingOptions
from services.training import TextPair, split_train_validation
from suite.errors import DataError

if TYPE_CHECKING:
    from services.registry import ModelVersion
    from suite.context import SuiteContext

PLUGIN = "recommender"
TASK = "biencoder"
MIN_PAIRS = 4


def build_pairs(
    histories: Mapping[str, Sequence[str]], texts: Mapping[str, str], options: TrainingOptions
) -> list[TextPair]:
    """(earlier item, later item) text pairs from ordered histories, sampled down to ``max_pairs``."""
    rng = random.Random(options.seed)
    pairs: list[tuple[str, str]] = []
    for user in sorted(histories):
        items = [item for item in dict.fromkeys(histories[user]) if texts.get(item)]
        for position in range(1, len(items)):
            for earlier in items[max(0, position - options.history_window) : position]:
                pairs.append((earlier, items[position]))
    if len(pairs) > options.max_pairs:
        pairs = rng.sample(pairs, options.max_pairs)
    rng.shuffle(pairs)
    return [TextPair(texts[query], texts[positive]) for query, positive in pairs]


def train_params(options: TrainingOptions, overrides: Mapping[str, Any]) -> dict[str, Any]:
    params = {
        "epochs": overrides.get("epochs", options.epochs),
        "batch_size": overrides.get("batch_size", options.batch_size),
        "learning_rate": overrides.get("learning_rate", options.learning_rate),
        "seed": options.seed,
        "symmetric_loss": True,  # an item is as much a query as a positive: train both directions
    }
    max_steps = overrides.get("max_steps", options.max_steps)
    if max_steps:
        params["max_steps"] = max_steps
    from services.training import TrainParams

    if "min_steps" in TrainParams.model_fields:
        # The epochs above are sized for the data; the engine's floor is meant for new classifier heads.
        params["min_steps"] = 0
    return params


def fine_tune(
    ctx: SuiteContext,
    histories: Mapping[str, Sequence[str]],
    texts: Mapping[str, str],
    options: RecommenderOptions,
    overrides: Mapping[str, Any],
    output_dir: Path,
    *,
    progress: bool = True,
):
    """Train a bi-encoder on pairs from ``histories`` into ``output_dir``; returns the TrainResult."""
    pairs = build_pairs(histories, texts, options.training)
    if len(pairs) < MIN_PAIRS:
        raise DataError(
            f"only {len(pairs)} training pairs: the recommender needs users with two or more items "
            "(import interactions first: suite recommender import-interactions FILE)"
        )
    fraction = options.training.validation_fraction if len(pairs) >= 20 else 0.0
    train, validation = split_train_validation(pairs, fraction, seed=options.training.seed, stratify=False)
    return ctx.trainer.train_biencoder(
        ctx.backbone(PLUGIN),
        train,
        validation or None,
        train_params(options.training, overrides),
        output_dir=output_dir,
        progress=progress,
    )


def train_and_register(ctx: SuiteContext, overrides: Mapping[str, Any], *, progress: bool = True) -> ModelVersion:
    """The ``recommender:biencoder`` training task: data in the store (sample data on first
    use), fine-tune, register and activate, then re-embed the catalogue with the new model."""
    from plugins.recommender.evaluation import ordered_items
    from plugins.recommender.service import get_recommender

    recommender = get_recommender(ctx)
    recommender.ensure_data(overrides.get("data"), embed=False)  # the new model embeds them below
    rng = random.Random(recommender.options.training.seed)
    histories = {user: ordered_items(history, rng) for user, history in sorted(recommender.histories().items())}
    texts = recommender.item_texts()
    with tempfile.TemporaryDirectory(dir=ctx.plugin_dir(PLUGIN), prefix="train-") as scratch:
        result = fine_tune(
            ctx, histories, texts, recommender.options, overrides, Path(scratch) / "model", progress=progress
        )
        version = ctx.registry.register_result(
            result,
            PLUGIN,
            TASK,
            kind="biencoder",
            backbone=ctx.backbone(PLUGIN),
            notes="item-to-item pairs from user histories (in-batch negatives)",
        )
    recommender.index.ensure_current(progress=progress)
    return version
