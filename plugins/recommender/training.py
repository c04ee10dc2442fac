"""Fine-tuning the plugin's backbone as a bi-encoder of items that users choose together.

Each user's history, in order (chronological when timestamps exist, else shuffled with
a fixed seed), is read as a series of choices: every item after the first is the
positive of a pair whose query is one of the ``history_window`` items just before it.
Every user contributes, a heavy one at most ``pairs_per_user`` pairs an epoch, so the
model learns what the readership reads together rather than what a few collectors hoard.
Contrastive loss with in-batch negatives pulls an item toward the items its readers go
on to choose. Queries are single items rather than a concatenated history because
serving scores a candidate by its closest history items (``profile = "nearest"``), or by
the mean of their vectors: item-to-item training (both directions) shapes exactly the
similarity both read.

An epoch is one run of the training engine on that epoch's freshly sampled pairs,
starting from the previous epoch's weights. After each, the catalogue part that a
validation split needs is embedded and scored by :func:`evaluation.text_recall`: recall@k
of items held back from training, ranked by the text signal alone through the same
``rank_items`` the benchmark and the live service use. Training stops when that recall
stops improving, and the best epoch is kept; if none beats the backbone, the backbone's
own weights are kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugins.recommender.adapter import AdapterResult, adapt, mine_hard_negatives, save_adapter, train_adapter
from plugins.recommender.options import RecommenderOptions, TrainingOptions
from services.training import TextPair, TrainResult, split_train_validation
from suite.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from plugins.recommender.evaluation import Split
    from services.registry import ModelVersion
    from suite.context import SuiteContext

PLUGIN = "recommender"
TASK = "biencoder"
MIN_PAIRS = 4
MIN_VALIDATION_USERS = 5


def sample_pairs(
    histories: Mapping[str, Sequence[str]], texts: Mapping[str, str], options: TrainingOptions, epoch: int = 0
) -> list[tuple[str, str, str]]:
    """(user, earlier item, later item) from ordered histories: at most ``pairs_per_user`` per
    user, ``max_pairs`` in all, sampled anew for each ``epoch``."""
    rng = random.Random(f"{options.seed}:{epoch}")
    pairs: list[tuple[str, str, str]] = []
    for user in sorted(histories):
        items = [item for item in dict.fromkeys(histories[user]) if texts.get(item)]
        window = options.history_window
        mine = [(user, items[j], items[i]) for i in range(1, len(items)) for j in range(max(0, i - window), i)]
        pairs.extend(rng.sample(mine, options.pairs_per_user) if len(mine) > options.pairs_per_user else mine)
    if len(pairs) > options.max_pairs:
        pairs = rng.sample(pairs, options.max_pairs)
    rng.shuffle(pairs)
    return pairs


def build_pairs(
    histories: Mapping[str, Sequence[str]], texts: Mapping[str, str], options: TrainingOptions, epoch: int = 0
) -> list[TextPair]:
    """The text pairs of :func:`sample_pairs`."""
    sampled = sample_pairs(histories, texts, options, epoch)
    return [TextPair(texts[query], texts[positive]) for _, query, positive in sampled]


def validation_split(histories: Mapping[str, Sequence[str]], options: TrainingOptions) -> Split | None:
    """Items held back from every training history (unseen items, as new catalogue items are),
    to be found again for the users who chose them; None when the data is too small."""
    from plugins.recommender.evaluation import cold_item_split

    if not options.validation_items:
        return None
    # Positions as timestamps: the split keeps each history's order instead of shuffling it.
    timed = {
        user: [(item, datetime.fromtimestamp(i, UTC)) for i, item in enumerate(items)]
        for user, items in histories.items()
    }
    try:
        split = cold_item_split(timed, options.validation_items, options.seed)
    except DataError:
        return None
    return split if len(split.test) >= MIN_VALIDATION_USERS else None


def train_params(options: TrainingOptions, overrides: Mapping[str, Any], epochs: float = 1.0) -> dict[str, Any]:
    params = {
        "epochs": epochs,
        "batch_size": overrides.get("batch_size", options.batch_size),
        "learning_rate": overrides.get("learning_rate", options.learning_rate),
        "max_length": options.max_length,
        "seed": options.seed,
        "symmetric_loss": True,  # an item is as much a query as a positive: train both directions
        "min_steps": 0,  # the epochs are sized for the data; the engine's floor is meant for new heads
        "early_stopping_patience": 0,  # the epochs here stop on recall, not on the engine's pair MRR
    }
    max_steps = overrides.get("max_steps", options.max_steps)
    if max_steps:
        params["max_steps"] = max_steps
    return params


def resolved_training(options: RecommenderOptions, overrides: Mapping[str, Any]) -> TrainingOptions:
    """The training options with the run's overrides (epochs, max_pairs, ...) applied."""
    known = {key: value for key, value in overrides.items() if key in TrainingOptions.model_fields}
    return options.training.model_copy(update=known) if known else options.training


@dataclasses.dataclass
class EpochRecord:
    epoch: int
    pairs: int
    steps: int
    seconds: float
    recall: float | None

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.seconds if self.seconds else 0.0


def fine_tune(
    ctx: SuiteContext,
    histories: Mapping[str, Sequence[str]],
    texts: Mapping[str, str],
    options: RecommenderOptions,
    overrides: Mapping[str, Any],
    output_dir: Path,
    *,
    progress: bool = True,
    validation: Split | None | bool = True,
) -> TrainResult:
    """Train a bi-encoder on pairs from ``histories`` into ``output_dir``; returns the TrainResult.

    ``validation``: True carves the validation split from ``histories`` (its items never
    train), a :class:`Split` is used as given, False/None trains every epoch without one.
    """
    training = resolved_training(options, overrides)
    split = validation_split(histories, training) if validation is True else (validation or None)
    train_histories = split.train if split is not None else histories
    if len(build_pairs(train_histories, texts, training)) < MIN_PAIRS:
        raise DataError(
            "too few training pairs: the recommender needs users with two or more items "
            "(import interactions first: suite recommender import-interactions FILE)"
        )
    backbone = ctx.backbone(PLUGIN)
    score = _scorer(ctx, split, texts, options, training) if split is not None else None
    with tempfile.TemporaryDirectory(dir=ctx.plugin_dir(PLUGIN), prefix="epochs-") as scratch:
        run = _EpochRun(ctx, backbone, train_histories, texts, training, overrides, Path(scratch), score)
        best = run.run(progress) if training.epochs > 0 else None
        _save_atomically(best.model_dir if best else Path(backbone), Path(output_dir))
    adapter = None
    if training.adapter:
        ids = sorted(texts)
        vectors = _encoder(ctx, str(output_dir))([texts[item] for item in ids])
        adapter = fit_adapter(vectors, ids, train_histories, texts, split, options, training, progress=progress)
        if adapter.weight is not None:
            save_adapter(Path(output_dir), adapter.weight)
    return run.result(best, Path(output_dir), split, adapter)


def fit_adapter(
    vectors: np.ndarray,
    ids: Sequence[str],
    histories: Mapping[str, Sequence[str]],
    texts: Mapping[str, str],
    split: Split | None,
    options: RecommenderOptions,
    training: TrainingOptions,
    *,
    progress: bool = True,
) -> AdapterResult:
    """The adapter on catalogue ``vectors`` (rows in ``ids`` order, from the encoder it will sit on),
    trained on ``histories`` and stopped on ``split``'s validation recall (as the encoder's epochs)."""

    from plugins.recommender.evaluation import text_recall

    row = {item: i for i, item in enumerate(ids)}
    rows = {user: [row[item] for item in items if item in row and texts.get(item)] for user, items in histories.items()}
    score = None
    if split is not None:
        by_text = {texts[item]: i for i, item in reversed(list(enumerate(ids)))}

        def score(weight: np.ndarray | None) -> float:
            mapped = adapt(vectors, weight)
            return text_recall(
                split,
                texts,
                lambda batch: mapped[[by_text[text] for text in batch]],
                options,
                k=training.validation_k,
                max_users=training.validation_users,
                seed=training.seed,
            )

    return train_adapter(vectors, rows, training, score, progress=progress)


def mined_negatives(
    vectors: np.ndarray, ids: Sequence[str], sampled: Sequence[tuple[str, str, str]], histories, seed: int
) -> list[str | None]:
    """Per sampled (user, query, positive): one of the query's nearest items (``vectors``, rows in
    ``ids`` order) that the user never chose; None where none is left."""
    import numpy as np

    row = {item: i for i, item in enumerate(ids)}
    users = sorted({user for user, _, _ in sampled})
    position = {user: i for i, user in enumerate(users)}
    seen = [{row[item] for item in histories[user] if item in row} for user in users]
    triples = np.array([[position[u], row[q], row[p]] for u, q, p in sampled], dtype=np.int64).reshape(-1, 3)
    rows = mine_hard_negatives(vectors, triples, seen, np.random.default_rng(seed))
    return [ids[r] if r >= 0 else None for r in rows.tolist()]


class _EpochRun:
    """The epochs of one fine-tuning: train, score on validation, keep the best, stop when it stalls."""

    def __init__(self, ctx, backbone, histories, texts, training, overrides, scratch: Path, score) -> None:
        self.ctx = ctx
        self.backbone = backbone
        self.histories = histories
        self.texts = texts
        self.training = training
        self.overrides = overrides
        self.scratch = scratch
        self.score: Callable[[str], float] | None = score
        self.records: list[EpochRecord] = []
        self.baseline: float | None = None
        self.best_epoch = 0  # 0: the backbone
        self.last: TrainResult | None = None
        self.started = time.perf_counter()

    def _pairs(self, sampled: list[tuple[str, str, str]], model: str, epoch: int) -> list[TextPair]:
        """The epoch's text pairs; with ``encoder_hard_negatives``, each with a negative mined from ``model``."""
        texts = self.texts
        negatives: list[str | None] = [None] * len(sampled)
        if self.training.encoder_hard_negatives:
            ids = sorted(texts)
            vectors = _encoder(self.ctx, model)([texts[item] for item in ids])
            negatives = mined_negatives(vectors, ids, sampled, self.histories, self.training.seed + epoch)
        return [
            TextPair(texts[query], texts[positive], texts[negative] if negative else None)
            for (_, query, positive), negative in zip(sampled, negatives, strict=True)
        ]

    def run(self, progress: bool) -> TrainResult | None:
        """The best epoch's result (None: the backbone is best)."""
        from tqdm.auto import tqdm

        training = self.training
        k = training.validation_k
        epochs = max(1, int(-(-training.epochs // 1)))
        best: TrainResult | None = None
        best_recall = self.baseline = self.score(self.backbone) if self.score else None
        stalled = 0
        model = self.backbone
        bar = tqdm(total=epochs, desc="fine-tuning (epochs)", unit="epoch", disable=not progress)
        try:
            for epoch in range(epochs):
                fraction = min(1.0, training.epochs - epoch)
                sampled = sample_pairs(self.histories, self.texts, training, epoch)
                sampled = sampled[: max(MIN_PAIRS, round(len(sampled) * fraction))]
                pairs = self._pairs(sampled, model, epoch)
                started = time.perf_counter()
                result = self._train(model, pairs, epoch, progress)
                seconds = time.perf_counter() - started
                recall = self.score(str(result.model_dir)) if self.score else None
                record = EpochRecord(epoch + 1, result.train_examples, result.steps, seconds, recall)
                self.records.append(record)
                self.last = result
                model = str(result.model_dir)
                postfix = {"pairs_s": f"{record.pairs_per_second:.1f}"}
                if recall is not None:
                    postfix[f"val_recall@{k}"] = f"{recall:.4f}"
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
                if recall is None or best_recall is None or recall > best_recall:
                    best, best_recall, stalled, self.best_epoch = result, recall, 0, epoch + 1
                    continue
                stalled += 1
                if training.early_stopping_patience and stalled >= training.early_stopping_patience:
                    break
        finally:
            bar.close()
        return best

    def _train(self, model: str, pairs: list[TextPair], epoch: int, progress: bool) -> TrainResult:
        # With a recall split the engine gets no held-out pairs: scored on them it hands back an
        # epoch's starting weights whenever their pair MRR did not rise, whatever the recall.
        fraction = self.training.validation_fraction if len(pairs) >= 20 and self.score is None else 0.0
        train, held = split_train_validation(pairs, fraction, seed=self.training.seed + epoch, stratify=False)
        params = train_params(self.training, self.overrides)
        return self.ctx.trainer.train_biencoder(
            model, train, held or None, params, output_dir=self.scratch / f"epoch-{epoch + 1}", progress=progress
        )

    def result(
        self, best: TrainResult | None, output_dir: Path, split: Split | None, adapter: AdapterResult | None = None
    ) -> TrainResult:
        """One TrainResult for the whole run: the best epoch's model and metrics, every epoch's record."""
        k = self.training.validation_k
        chosen = best or self.last
        metrics = {key: value for key, value in chosen.metrics.items() if key != "baseline"} if chosen else {}
        if split is not None:
            recalls = [record.recall for record in self.records]
            metrics[f"validation_recall@{k}"] = max([r for r in recalls if r is not None] + [self.baseline or 0.0])
            metrics[f"zero_shot_recall@{k}"] = self.baseline
            users = min(len(split.test), self.training.validation_users)
            metrics["validation"] = (
                f"recall@{k} of held-back items, {users} users, {len(split.candidates or ())} unseen items"
            )
        metrics["best_epoch"] = self.best_epoch
        metrics["epochs"] = [dataclasses.asdict(record) for record in self.records]
        total_pairs = sum(record.pairs for record in self.records)
        seconds = sum(record.seconds for record in self.records)
        metrics["pairs_per_second"] = total_pairs / seconds if seconds else 0.0
        if adapter is not None:
            metrics["adapter_epochs"] = [dataclasses.asdict(epoch) for epoch in adapter.epochs]
            metrics["adapter_pairs_per_second"] = adapter.pairs_per_second
            metrics["adapter_used"] = adapter.weight is not None
            if adapter.best is not None:
                metrics[f"validation_recall@{k}"] = adapter.best
                metrics[f"encoder_recall@{k}"] = adapter.baseline
            total_pairs += sum(epoch.pairs for epoch in adapter.epochs)
        params = {**(chosen.params if chosen else {}), **self.training.model_dump()}
        return TrainResult(
            model_dir=output_dir,
            metrics=metrics,
            params=params,
            train_examples=total_pairs,
            wall_seconds=time.perf_counter() - self.started,
            data_fingerprint=chosen.data_fingerprint if chosen else _fingerprint(self.histories),
            kind="biencoder",
            backbone=self.backbone,
            steps=sum(record.steps for record in self.records),
            history=chosen.history if chosen else [],
        )


def _scorer(
    ctx: SuiteContext, split: Split, texts: Mapping[str, str], options: RecommenderOptions, training: TrainingOptions
) -> Callable[[str], float]:
    """``model folder -> validation recall@k`` (text signal alone, same code as the benchmark)."""
    from plugins.recommender.evaluation import text_recall

    def score(model_path: str) -> float:
        return text_recall(
            split,
            texts,
            _encoder(ctx, model_path),
            options,
            k=training.validation_k,
            max_users=training.validation_users,
            seed=training.seed,
        )

    return score


def _encoder(ctx: SuiteContext, model_path: str) -> Callable[[list[str]], np.ndarray]:
    """An uncached embedder for a throw-away epoch model (the shared cache would only fill up)."""
    from services.embeddings import Embedder

    settings = ctx.settings.embeddings
    embedder = Embedder(
        model_path,
        batch_size=settings.batch_size,
        max_length=settings.max_length,
        device=ctx.settings.training.device,
        local_files_only=True,
        precision=getattr(settings, "precision", "float32"),
    )
    return embedder.encode


def _fingerprint(histories: Mapping[str, Sequence[str]]) -> str:
    digest = hashlib.sha256()
    for user in sorted(histories):
        digest.update(("\x1f".join([user, *histories[user]]) + "\x1e").encode())
    return digest.hexdigest()


def _save_atomically(source: Path, target: Path) -> None:
    """Copy a model folder to ``target`` (a sibling temp folder first, then a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(target.name + ".partial")
    shutil.rmtree(temp, ignore_errors=True)
    shutil.copytree(source, temp)
    shutil.rmtree(target, ignore_errors=True)
    temp.rename(target)


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
            notes="item-to-item pairs from every user's history (in-batch negatives), epochs stopped on "
            "validation recall of held-back items",
        )
    recommender.index.ensure_current(progress=progress)
    return version
