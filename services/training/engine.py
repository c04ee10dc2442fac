"""The fine-tuning engine: one hand-written training loop for classifiers and bi-encoders.

Why not ``transformers.Trainer``: on a CPU most of its time goes to padding and to
small default batches. This loop tokenizes once, batches by length with dynamic
padding, gives the freshly initialised head a higher learning rate (so a small
backbone converges in a few epochs), evaluates under ``torch.inference_mode`` and
checkpoints in a form that resumes exactly and never unpickles code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.backbone import pretrained_kwargs
from services.errors import ConfigError, ModelError, one_line
from services.settings import TrainingConfig
from services.training.data import LabeledText, TextPair, check_classification_data, check_pair_data, data_fingerprint
from services.training.loop import RunOutcome, StepCallback, TrainingRun
from services.training.tasks import BiencoderTask, ClassificationTask

log = logging.getLogger(__name__)

PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")


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
    early_stopping_metric: str | None = Field(None, description="default macro_f1 (classifier), mrr (bi-encoder)")
    checkpoint_every: int | None = Field(None, ge=1, description="steps between checkpoints; default eval_every")
    unfreeze_every: int | None = Field(
        None, ge=1, description="'gradual': steps per unfrozen layer; default as eval_every"
    )
    similarity_scale: float | None = Field(None, gt=0, description="bi-encoder: cosine similarity x scale = logits")
    symmetric_loss: bool | None = Field(None, description="bi-encoder: also rank queries for each positive")
    head_init: Literal["auto", "random", "centroids"] | None = Field(None, description="classifier head start")
    group_by_length: bool | None = Field(None, description="False: plain shuffled batches (slower on a CPU)")
    padding: Literal["longest", "max_length"] | None = Field(None, description="'max_length': fixed-size batches")
    pooling: Literal["auto", "model", "mean"] | None = Field(None, description="classifier: head on [CLS] or the mean")

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
    head_init: str = "auto"
    pooling: str = "auto"


@dataclass
class TrainResult:
    model_dir: Path
    metrics: dict[str, Any]
    params: dict[str, Any]
    train_examples: int
    wall_seconds: float
    data_fingerprint: str
    # Additions to the contract:
    kind: str = "classification"
    backbone: str = ""
    labels: list[str] | None = None
    steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from_step: int | None = None


class TrainingEngine:
    """Fine-tunes backbones into classifiers and bi-encoders (see the package docstring)."""

    def __init__(self, config: TrainingConfig | None = None, *, allow_downloads: bool = False) -> None:
        self.config = config or TrainingConfig()
        self.allow_downloads = allow_downloads

    # -- public API ------------------------------------------------------------------------
    def resolve_params(
        self, params: TrainParams | dict[str, Any] | None, kind: str = "classification"
    ) -> ResolvedParams:
        """Fill the ``None`` fields of ``params`` from the config."""
        given = TrainParams.coerce(params).model_dump()
        cfg = self.config
        defaults: dict[str, Any] = {
            "learning_rate": cfg.learning_rate if kind == "classification" else cfg.biencoder_learning_rate,
            "batch_size": cfg.batch_size,
            "epochs": cfg.epochs,
            "warmup_ratio": cfg.warmup_ratio,
            "weight_decay": cfg.weight_decay,
            "max_length": cfg.max_length,
            "seed": cfg.seed,
            "early_stopping_patience": cfg.early_stopping_patience,
            "early_stopping_metric": "macro_f1" if kind == "classification" else "mrr",
            "strategy": cfg.strategy,
            "freeze_layers": cfg.freeze_layers,
            "min_steps": cfg.min_steps,
            "head_lr_multiplier": cfg.head_lr_multiplier,
            "similarity_scale": cfg.similarity_scale,
            "symmetric_loss": cfg.symmetric_loss,
            "group_by_length": cfg.group_by_length,
            "padding": cfg.padding,
            "head_init": cfg.head_init,
            "pooling": cfg.pooling,
        }
        values = {name: given[name] if given.get(name) is not None else defaults.get(name) for name in given}
        if values["early_stopping_patience"] == 0:
            values["early_stopping_patience"] = None
        allowed = _CLASSIFICATION_METRICS if kind == "classification" else _RETRIEVAL_METRICS
        if values["early_stopping_metric"] not in allowed:
            raise ConfigError(
                f"early_stopping_metric '{values['early_stopping_metric']}' is not a {kind} metric "
                f"(choose {', '.join(allowed)})"
            )
        return ResolvedParams(**values)

    def train_classifier(
        self,
        backbone: str,
        train: Sequence[LabeledText],
        validation: Sequence[LabeledText] | None = None,
        params: TrainParams | dict[str, Any] | None = None,
        *,
        output_dir: Path,
        checkpoint_dir: Path | None = None,
        progress: bool = True,
        callback: StepCallback | None = None,
    ) -> TrainResult:
        """Fine-tune ``backbone`` into a single-label classifier saved in ``output_dir``.

        The folder loads with ``AutoModelForSequenceClassification``, a ``transformers``
        text-classification pipeline and :class:`TextClassifier`. With ``pooling`` "mean" (the
        default for a sentence-encoder backbone) the model is a
        :class:`~services.training.pooling.MeanPooledForSequenceClassification`; outside the
        suite, call ``services.training.pooling.register_auto_classes()`` before loading it.
        With ``checkpoint_dir`` the run checkpoints as it goes, and calling again with the
        same folder resumes.
        """
        from services.training.pooling import resolve_pooling

        labels = check_classification_data(train, validation)
        resolved = self.resolve_params(params, "classification")
        resolved = replace(resolved, pooling=resolve_pooling(resolved.pooling, backbone))
        started = time.perf_counter()
        with self._runtime(resolved) as device:
            tokenizer = self._load_tokenizer(backbone)
            model = self._load_model(
                backbone,
                "mean-pooled" if resolved.pooling == "mean" else "classification",
                num_labels=len(labels),
                id2label=dict(enumerate(labels)),
                label2id={label: i for i, label in enumerate(labels)},
                problem_type="single_label_classification",
                ignore_mismatched_sizes=True,
            ).to(device)
            task = ClassificationTask(model, tokenizer, train, validation, labels, resolved, device)
            if starts_from_centroids(resolved.head_init, len(train), len(labels)):
                task.init_head_from_centroids()
            fingerprint = _run_fingerprint("classification", backbone, train, validation, resolved)
            outcome = TrainingRun(task, resolved, device, checkpoint_dir, fingerprint, progress, callback).run()
            _save_atomically(Path(output_dir), lambda folder: _save_classifier(model, tokenizer, folder))
        return self._result(outcome, "classification", backbone, train, resolved, output_dir, started, labels)

    def train_biencoder(
        self,
        backbone: str,
        pairs: Sequence[TextPair],
        validation: Sequence[TextPair] | None = None,
        params: TrainParams | dict[str, Any] | None = None,
        *,
        output_dir: Path,
        checkpoint_dir: Path | None = None,
        progress: bool = True,
        callback: StepCallback | None = None,
    ) -> TrainResult:
        """Fine-tune ``backbone`` as a bi-encoder with in-batch negatives (multiple-negatives ranking loss).

        The folder is a plain ``AutoModel`` (safetensors + tokenizer) to be used with mean
        pooling and L2 normalisation, e.g. by ``services.embeddings.Embedder``; it also
        carries the sentence-transformers module files.
        """
        check_pair_data(pairs, validation)
        resolved = self.resolve_params(params, "biencoder")
        started = time.perf_counter()
        with self._runtime(resolved) as device:
            tokenizer = self._load_tokenizer(backbone)
            model = self._load_model(backbone, "biencoder").to(device)
            task = BiencoderTask(model, tokenizer, pairs, validation, resolved, device)
            fingerprint = _run_fingerprint("biencoder", backbone, pairs, validation, resolved)
            outcome = TrainingRun(task, resolved, device, checkpoint_dir, fingerprint, progress, callback).run()
            _save_atomically(
                Path(output_dir), lambda folder: _save_biencoder(model, tokenizer, folder, resolved.max_length)
            )
        return self._result(outcome, "biencoder", backbone, pairs, resolved, output_dir, started, None)

    # -- helpers ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _runtime(self, params: ResolvedParams) -> Iterator[torch.device]:
        """Threads, seed and quiet transformers logging for the duration of a run."""
        import transformers

        previous_threads = torch.get_num_threads()
        previous_verbosity = transformers.logging.get_verbosity()
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        transformers.logging.set_verbosity_error()  # "newly initialized weights" is expected here
        transformers.set_seed(params.seed)
        try:
            yield resolve_device(self.config.device)
        finally:
            torch.set_num_threads(previous_threads)
            transformers.logging.set_verbosity(previous_verbosity)

    def _load_tokenizer(self, backbone: str):
        from transformers import AutoTokenizer

        check_weights_format(backbone)
        try:
            return AutoTokenizer.from_pretrained(backbone, use_fast=True, **pretrained_kwargs(self.allow_downloads))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load the tokenizer of backbone '{backbone}': {one_line(exc)}") from None

    def _load_model(self, backbone: str, kind: str, **kwargs: Any) -> torch.nn.Module:
        from transformers import AutoModel, AutoModelForSequenceClassification

        from services.training.pooling import MeanPooledForSequenceClassification, register_auto_classes

        register_auto_classes()  # a mean-pooled classifier may be the backbone of another run
        factories = {"classification": AutoModelForSequenceClassification, "biencoder": AutoModel}
        try:
            if kind == "mean-pooled":
                return MeanPooledForSequenceClassification.from_backbone(
                    backbone, use_safetensors=True, **pretrained_kwargs(self.allow_downloads), **kwargs
                )
            return factories[kind].from_pretrained(
                backbone, use_safetensors=True, **pretrained_kwargs(self.allow_downloads), **kwargs
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load backbone '{backbone}': {one_line(exc)}") from None

    def _result(
        self,
        outcome: RunOutcome,
        kind: str,
        backbone: str,
        train: Sequence[Any],
        params: ResolvedParams,
        output_dir: Path,
        started: float,
        labels: list[str] | None,
    ) -> TrainResult:
        return TrainResult(
            model_dir=Path(output_dir),
            metrics=outcome.metrics,
            params=asdict(params),
            train_examples=len(train),
            wall_seconds=round(time.perf_counter() - started, 3),
            data_fingerprint=data_fingerprint(train),
            kind=kind,
            backbone=backbone,
            labels=labels,
            steps=outcome.steps,
            history=outcome.history,
            resumed_from_step=outcome.resumed_from_step,
        )


_CLASSIFICATION_METRICS = ("macro_f1", "accuracy", "precision", "recall")
_RETRIEVAL_METRICS = ("mrr", "recall@1", "recall@10")


# Below this many examples per label a random head costs most of the run ("auto" head_init).
FEW_SHOT_EXAMPLES_PER_LABEL = 50


def starts_from_centroids(head_init: str, examples: int, labels: int) -> bool:
    """Whether a classification run imprints its head from class centroids."""
    if head_init == "auto":
        return examples < FEW_SHOT_EXAMPLES_PER_LABEL * labels
    return head_init == "centroids"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown torch device '{name}'") from None


def check_weights_format(path: str | Path) -> None:
    """Refuse a local model folder whose weights are only in a pickle-based format."""
    folder = Path(path)
    if not folder.is_dir():
        return  # a hub id: from_pretrained(use_safetensors=True) refuses pickles itself
    if any(folder.glob("*.safetensors")):
        return
    pickles = [name for name in PICKLE_WEIGHTS if (folder / name).exists()]
    if pickles:
        raise ModelError(f"{folder}: has only {pickles[0]} weights; refusing to unpickle (convert to safetensors)")
    raise ModelError(f"{folder}: no model.safetensors weights")


def _run_fingerprint(
    kind: str, backbone: str, train: Sequence[Any], validation: Sequence[Any] | None, params: ResolvedParams
) -> str:
    payload = {
        "kind": kind,
        "backbone": backbone,
        "train": data_fingerprint(train),
        "validation": data_fingerprint(validation or []),
        "params": asdict(params),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# -- saving -------------------------------------------------------------------------------------


def _save_atomically(output_dir: Path, write: Callable[[Path], None]) -> None:
    """Write a model folder under a temporary name, then swap it in: never a half-written folder."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    temp = output_dir.parent / f".{output_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    try:
        write(temp)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    if output_dir.exists():
        old = output_dir.parent / f".{output_dir.name}.old-{os.getpid()}"
        os.replace(output_dir, old)
        os.replace(temp, output_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(temp, output_dir)


def _save_classifier(model, tokenizer, folder: Path) -> None:
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def _save_biencoder(model, tokenizer, folder: Path, max_length: int) -> None:
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    # sentence-transformers reads these; plain transformers ignores them.
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_length, "do_lower_case": False})
    )
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling = {
        "word_embedding_dimension": model.config.hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (folder / "2_Normalize").mkdir(exist_ok=True)
