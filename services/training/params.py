"""Hyper-parameters of a run and how their defaults are filled in.

The bottom of the training modules: it imports none of them, and every other one may
import it. ``TrainParams`` is what a caller gives (every field optional);
``ResolvedParams`` is what a run uses and a model card records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.errors import ConfigError
from services.settings import TrainingConfig

TaskKind = Literal["classification", "biencoder", "masked-lm"]

CLASSIFICATION_METRICS = ("macro_f1", "accuracy", "precision", "recall")
RETRIEVAL_METRICS = ("mrr", "recall@1", "recall@10")
MASKED_LM_METRICS = ("masked_lm_loss", "perplexity", "masked_lm_accuracy")
METRICS: dict[str, tuple[str, ...]] = {
    "classification": CLASSIFICATION_METRICS,
    "biencoder": RETRIEVAL_METRICS,
    "masked-lm": MASKED_LM_METRICS,
}
DEFAULT_METRIC = {"classification": "macro_f1", "biencoder": "mrr", "masked-lm": "masked_lm_loss"}
# Metrics where smaller is better; every other one is maximised.
LOWER_IS_BETTER = frozenset({"masked_lm_loss", "perplexity"})

# Distillation defaults: Hinton et al.'s soft targets at T=2, weighted 0.5 against the gold labels.
DISTILL_TEMPERATURE = 2.0
DISTILL_ALPHA = 0.5
MLM_PROBABILITY = 0.15


class TrainParams(BaseModel):
    """Hyper-parameters of one run; every ``None`` takes the :class:`TrainingConfig` default."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: float | None = Field(None, gt=0)
    batch_size: int | None = Field(None, ge=1)
    epochs: float | None = Field(None, gt=0, description="fractions allowed: 2.5 epochs")
    warmup_ratio: float | None = Field(None, ge=0, le=1)
    weight_decay: float | None = Field(None, ge=0)
    max_length: int | None = Field(None, ge=8)
    seed: int | None = None
    early_stopping_patience: int | None = Field(None, ge=0, description="0 turns early stopping off")
    strategy: Literal["full", "freeze", "gradual"] | None = None
    freeze_layers: int | None = Field(None, ge=0)
    max_steps: int | None = Field(None, ge=1)
    min_steps: int | None = Field(None, ge=0, description="at least this many steps, whatever epochs gives")
    eval_every: int | None = Field(
        None, ge=1, description="steps between evaluations; default once per epoch (at most ~10 per run)"
    )
    # Additions to the contract:
    head_lr_multiplier: float | None = Field(None, gt=0, description="head learning rate / body learning rate")
    early_stopping_metric: str | None = Field(
        None, description="default macro_f1 (classifier), mrr (bi-encoder), masked_lm_loss (masked-LM)"
    )
    checkpoint_every: int | None = Field(None, ge=1, description="steps between checkpoints; default eval_every")
    unfreeze_every: int | None = Field(
        None, ge=1, description="'gradual': steps per unfrozen layer; default as eval_every"
    )
    similarity_scale: float | None = Field(None, gt=0, description="bi-encoder: cosine similarity x scale = logits")
    symmetric_loss: bool | None = Field(None, description="bi-encoder: also rank queries for each positive")
    head_init: Literal["auto", "random", "centroids"] | None = Field(None, description="classifier head start")
    precision: Literal["float32", "bfloat16", "auto"] | None = Field(
        None, description="training steps in float32 or under bfloat16 autocast ('auto': where native)"
    )
    group_by_length: bool | None = Field(None, description="False: plain shuffled batches (slower on a CPU)")
    padding: Literal["longest", "max_length"] | None = Field(None, description="'max_length': fixed-size batches")
    pooling: Literal["auto", "model", "mean"] | None = Field(None, description="classifier: head on [CLS] or the mean")
    mlm_probability: float | None = Field(None, gt=0, lt=1, description="masked-LM: share of words masked")
    teacher: str | None = Field(None, description="classifier: distil from this classifier folder")
    distill_temperature: float | None = Field(None, gt=0, description="distillation: softmax temperature")
    distill_alpha: float | None = Field(
        None, ge=0, le=1, description="distillation: weight of the teacher's soft targets (1 - alpha: gold labels)"
    )
    outlier_label: str | None = Field(
        None, description="classifier: the label that synthetic outliers train (added when no example has it)"
    )
    outlier_weight: float | None = Field(
        None, ge=0, description="classifier: weight of the synthetic-outlier loss against the labelled one; 0: off"
    )

    @classmethod
    def coerce(cls, params: TrainParams | dict[str, Any] | None) -> TrainParams:
        if isinstance(params, TrainParams):
            return params
        try:
            return cls.model_validate(params or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ConfigError(f"invalid training parameter '{where}': {first['msg']}") from None


@dataclass(frozen=True)
class ResolvedParams:
    """Every hyper-parameter of a run, defaults filled in; what a model card records."""

    learning_rate: float
    batch_size: int
    epochs: float
    warmup_ratio: float
    weight_decay: float
    max_length: int
    seed: int
    early_stopping_patience: int | None
    early_stopping_metric: str
    strategy: str
    freeze_layers: int
    max_steps: int | None
    min_steps: int
    eval_every: int | None
    checkpoint_every: int | None
    unfreeze_every: int | None
    head_lr_multiplier: float
    similarity_scale: float
    symmetric_loss: bool
    group_by_length: bool = True
    padding: str = "longest"
    precision: str = "float32"
    head_init: str = "auto"
    pooling: str = "auto"
    mlm_probability: float = MLM_PROBABILITY
    teacher: str | None = None
    distill_temperature: float = DISTILL_TEMPERATURE
    distill_alpha: float = DISTILL_ALPHA
    outlier_label: str | None = None
    outlier_weight: float = 0.0


def merge_params(*layers: TrainParams | dict[str, Any] | None) -> TrainParams:
    """Later layers' set fields win: ``merge_params(plugin_defaults, command_line)``."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(TrainParams.coerce(layer).model_dump(exclude_none=True))
    return TrainParams.coerce(merged)


def resolve_params(
    config: TrainingConfig, params: TrainParams | dict[str, Any] | None, kind: str = "classification"
) -> ResolvedParams:
    """Fill the ``None`` fields of ``params`` from ``config`` for a run of ``kind``."""
    given = TrainParams.coerce(params).model_dump()
    defaults: dict[str, Any] = {
        "learning_rate": config.learning_rate if kind == "classification" else config.biencoder_learning_rate,
        "batch_size": config.batch_size,
        "epochs": config.epochs,
        "warmup_ratio": config.warmup_ratio,
        "weight_decay": config.weight_decay,
        "max_length": config.max_length,
        "seed": config.seed,
        "early_stopping_patience": config.early_stopping_patience,
        "early_stopping_metric": DEFAULT_METRIC.get(kind, "macro_f1"),
        "strategy": config.strategy,
        "freeze_layers": config.freeze_layers,
        # The floor exists for a new classifier head; pre-training has none to train.
        "min_steps": 0 if kind == "masked-lm" else config.min_steps,
        "head_lr_multiplier": config.head_lr_multiplier,
        "similarity_scale": config.similarity_scale,
        "symmetric_loss": config.symmetric_loss,
        "group_by_length": config.group_by_length,
        "precision": config.precision,
        "padding": config.padding,
        "head_init": config.head_init,
        "pooling": config.pooling,
        "mlm_probability": MLM_PROBABILITY,
        "distill_temperature": DISTILL_TEMPERATURE,
        "distill_alpha": DISTILL_ALPHA,
        "outlier_weight": 0.0,
    }
    values = {name: given[name] if given.get(name) is not None else defaults.get(name) for name in given}
    if values["early_stopping_patience"] == 0:
        values["early_stopping_patience"] = None
    allowed = METRICS.get(kind, CLASSIFICATION_METRICS)
    if values["early_stopping_metric"] not in allowed:
        raise ConfigError(
            f"early_stopping_metric '{values['early_stopping_metric']}' is not a {kind} metric "
            f"(choose {', '.join(allowed)})"
        )
    return ResolvedParams(**values)


def improves(metric: str, value: float, best: float | None) -> bool:
    """Whether ``value`` of ``metric`` beats ``best`` (lower is better for losses and perplexity)."""
    if best is None:
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best
