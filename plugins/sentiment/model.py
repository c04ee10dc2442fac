"""Fine-tuning and scoring: the sentiment (and optional topic) classifiers of the plugin.

Both go through the shared :class:`services.training.TrainingEngine` on the plugin's own
backbone and are registered in the model registry; scoring loads the *active* version
once per process (re-loading when another version is activated) and runs it in large
batches, so the per-document cost is the forward pass and little else.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from plugins.sentiment.data import SENTIMENT_LABELS, LabelledSentence
from suite.errors import DataError, ModelError

if TYPE_CHECKING:
    from services.registry import ModelVersion
    from services.training import LabeledText
    from services.training.serving import Classifier
    from suite.context import SuiteContext

PLUGIN = "sentiment"
SENTIMENT_TASK = "sentiment"
TOPIC_TASK = "topic"
TRAIN_PARAM_KEYS = {
    "learning_rate",
    "batch_size",
    "epochs",
    "warmup_ratio",
    "weight_decay",
    "max_length",
    "seed",
    "early_stopping_patience",
    "strategy",
    "freeze_layers",
    "max_steps",
    "min_steps",
    "eval_every",
}


@dataclass(frozen=True, slots=True)
class SentimentScore:
    """One document's sentiment: the label, ``P(positive) - P(negative)`` and every probability."""

    label: str
    score: float
    probabilities: dict[str, float]


@dataclass(frozen=True, slots=True)
class TopicScore:
    topic: str
    confidence: float


# -- training -------------------------------------------------------------------------------------
Row = Any  # LabeledText, LabelledSentence, (text, label) or {"text":..., "label":...}


def _labeled(rows: Sequence[Row], field: str = "label") -> list[LabeledText]:
    from services.training import LabeledText

    out = []
    for row in rows:
        if isinstance(row, Mapping):
            text, label = row.get("text"), row.get(field)
        elif isinstance(row, tuple | list):
            text, label = row[0], row[1]
        else:
            text, label = row.text, getattr(row, field)
        if text and label:
            out.append(LabeledText(str(text), str(label)))
    return out


def _options(ctx: SuiteContext) -> Any:
    return ctx.plugin_options(PLUGIN)


def _train_params(ctx: SuiteContext, params: Any) -> dict[str, Any]:
    """The sample-sized defaults of the options, overridden by ``params`` (dict or TrainParams)."""
    defaults = _options(ctx).training
    merged: dict[str, Any] = {
        "epochs": defaults.epochs,
        "batch_size": defaults.batch_size,
        "learning_rate": defaults.learning_rate,
        "max_length": defaults.max_length,
        "max_steps": defaults.max_steps,
        "min_steps": defaults.min_steps,
        "seed": defaults.seed,
    }
    given = params.model_dump(exclude_none=True) if hasattr(params, "model_dump") else dict(params or {})
    merged.update({k: v for k, v in given.items() if k in TRAIN_PARAM_KEYS and v is not None})
    return {k: v for k, v in merged.items() if v is not None}


def _train(
    ctx: SuiteContext,
    task: str,
    train: list[LabeledText],
    validation: list[LabeledText] | None,
    params: Any,
    notes: str,
) -> ModelVersion:
    from services.registry import ModelCard
    from services.training import split_train_validation

    labels = sorted({row.label for row in train})
    if len(labels) < 2:
        raise DataError(f"{task} training needs at least two different labels (got {labels or 'none'})")
    if validation is None:
        fraction = _options(ctx).training.validation_fraction
        if fraction and len(train) >= 20:
            train, validation = split_train_validation(train, fraction=fraction, seed=_options(ctx).training.seed)
    merged = _train_params(ctx, params)
    scratch = ctx.plugin_dir(PLUGIN) / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    output = tempfile.mkdtemp(prefix=f"{task}-", dir=scratch)
    try:
        result = ctx.trainer.train_classifier(
            ctx.backbone(PLUGIN), train, validation or None, merged, output_dir=Path(output), progress=True
        )
        card = ModelCard(
            plugin=PLUGIN,
            task=task,
            kind="classification",
            backbone=ctx.backbone_name(PLUGIN),
            data_fingerprint=result.data_fingerprint,
            hyperparameters=result.params,
            metrics=result.metrics,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            train_examples=result.train_examples,
            wall_seconds=result.wall_seconds,
            labels=labels,
            notes=notes,
        )
        return ctx.registry.register(result.model_dir, card, activate=True, move=True)
    finally:
        shutil.rmtree(output, ignore_errors=True)


def train_sentiment_model(
    ctx: SuiteContext, rows: Sequence[Row], validation: Sequence[Row] | None = None, params: Any = None
) -> ModelVersion:
    """Fine-tune the negative/neutral/positive classifier on the plugin's backbone and register it.

    ``rows``: LabeledText, (text, label) pairs or dicts; ``validation`` defaults to a stratified
    split of ``rows`` (``training.validation_fraction``); ``params``: TrainParams or a dict
    overriding the options' training defaults. Returns the new, active version.
    """
    train = _labeled(rows)
    bad = sorted({row.label for row in train} - set(SENTIMENT_LABELS))
    if bad:
        raise DataError(f"sentiment labels must be {', '.join(SENTIMENT_LABELS)}; got {', '.join(bad)}")
    if not {"negative", "positive"} <= {row.label for row in train}:
        raise DataError("sentiment training data needs both negative and positive examples")
    checked = _labeled(validation) if validation is not None else None
    return _train(ctx, SENTIMENT_TASK, train, checked, params, "financial sentiment: negative/neutral/positive")


def train_topic_model(
    ctx: SuiteContext, rows: Sequence[Row], validation: Sequence[Row] | None = None, params: Any = None
) -> ModelVersion:
    """Fine-tune the topic classifier (earnings, m&a, legal...) from the rows' ``topic`` field."""
    train = _labeled(rows, "topic")
    if not train:
        raise DataError("topic training needs rows with a topic (a 'topic' column)")
    checked = _labeled(validation, "topic") if validation is not None else None
    return _train(ctx, TOPIC_TASK, train, checked, params, "financial news topic")


def train_from_options(ctx: SuiteContext, task: str, overrides: Mapping[str, Any]) -> ModelVersion:
    """What ``suite train sentiment[:topic]`` and ``suite sentiment train`` run."""
    from plugins.sentiment.data import load_labelled

    rows: list[LabelledSentence] = load_labelled(overrides.get("data") or _options(ctx).training.data)
    params = {k: v for k, v in overrides.items() if k in TRAIN_PARAM_KEYS}
    if task == TOPIC_TASK:
        with_topic = [r for r in rows if r.topic]
        if not with_topic:
            from suite.training_tasks import TrainingSkipped

            raise TrainingSkipped(
                "the data has no 'topic' column: add one (text,label,topic) to train the topic classifier, "
                "or set [plugins.sentiment.training] topic = false"
            )
        return train_topic_model(ctx, with_topic, params=params)
    return train_sentiment_model(ctx, rows, params=params)


# -- inference ------------------------------------------------------------------------------------
_cache: dict[str, Classifier] = {}  # version folder, device, max length -> loaded model
_cache_lock = threading.Lock()
CACHED_MODELS = 4


def load_classifier(ctx: SuiteContext, task: str = SENTIMENT_TASK, *, required: bool = True) -> Classifier | None:
    """The active version of ``task``, loaded once per process and version folder.

    Keyed by the version's folder, so activating another version loads it on next use.
    """
    version = ctx.registry.active(PLUGIN, task)
    if version is None:
        if not required:
            return None
        raise ModelError(f"no {task} model yet: run `suite sentiment train` (or `suite train sentiment`)")
    options = _options(ctx)
    training = ctx.settings.training
    key = "|".join(
        str(part)
        for part in (
            Path(version.path).resolve(),
            training.device,
            options.max_length,
            training.inference_runtime,
            training.inference_precision,
        )
    )
    with _cache_lock:
        classifier = _cache.get(key)
        if classifier is None:
            from services.training.loading import load_classifier as load_saved_classifier

            classifier = load_saved_classifier(
                version.path,
                device=training.device,
                max_length=options.max_length,
                runtime=training.inference_runtime,
                precision=training.inference_precision,
            )
            if task == SENTIMENT_TASK and not {"negative", "positive"} <= set(classifier.labels):
                raise ModelError(f"{version.ref}: labels {classifier.labels} lack negative/positive")
            while len(_cache) >= CACHED_MODELS:
                _cache.pop(next(iter(_cache)))
            _cache[key] = classifier
    return classifier


def score_texts(ctx: SuiteContext, texts: Sequence[str]) -> list[SentimentScore]:
    """Score texts with the active sentiment model, in large batches."""
    texts = list(texts)
    if not texts:
        return []
    classifier = load_classifier(ctx, SENTIMENT_TASK)
    probs = np.asarray(classifier.predict_proba(texts, batch_size=_options(ctx).inference_batch_size))
    labels = list(classifier.labels)
    scores = (probs[:, labels.index("positive")] - probs[:, labels.index("negative")]).tolist()
    winners = np.asarray(labels, dtype=object)[probs.argmax(axis=1)].tolist()
    rows = probs.tolist()
    return [
        SentimentScore(label, score, dict(zip(labels, row, strict=True)))
        for label, score, row in zip(winners, scores, rows, strict=True)
    ]


def classify_topics(ctx: SuiteContext, texts: Sequence[str]) -> list[TopicScore] | None:
    """Topics from the active topic model, or ``None`` when none is trained."""
    texts = list(texts)
    classifier = load_classifier(ctx, TOPIC_TASK, required=False)
    if classifier is None or not texts:
        return None if classifier is None else []
    probs = np.asarray(classifier.predict_proba(texts, batch_size=_options(ctx).inference_batch_size))
    best = probs.argmax(axis=1)
    labels = np.asarray(classifier.labels, dtype=object)
    return [
        TopicScore(topic, conf) for topic, conf in zip(labels[best].tolist(), probs.max(axis=1).tolist(), strict=True)
    ]
