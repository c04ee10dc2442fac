"""The fine-tuning engine: composes a task, the training loop and the model folder, for
classifiers (optionally distilled from a teacher), bi-encoders and masked-LM pre-training.

Why not ``transformers.Trainer``: on a CPU most of its time goes to padding and to
small default batches. The loop tokenizes once, batches by length with dynamic
padding, gives the freshly initialised head a higher learning rate (so a small
backbone converges in a few epochs), evaluates under ``torch.inference_mode`` and
checkpoints in a form that resumes exactly and never unpickles code.

Layers, bottom first: ``params`` (hyper-parameters) and ``folders`` (loading, saving);
``task`` (the interface) and ``tasks/*`` (one module per task); ``loop`` (knows only the
interface); this module, which builds a task, runs the loop and saves the result.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from services.settings import TrainingConfig
from services.training.data import (
    LabeledText,
    TextPair,
    check_classification_data,
    check_pair_data,
    data_fingerprint,
    text_fingerprint,
)
from services.training.folders import check_weights_format, resolve_device, save_atomically
from services.training.loop import RunOutcome, StepCallback, TrainingRun
from services.training.params import ResolvedParams, TrainParams, merge_params, resolve_params
from services.training.task import Task
from services.training.tasks.classification import (
    FEW_SHOT_EXAMPLES_PER_LABEL,
    starts_from_centroids,
    with_outlier_label,
)

log = logging.getLogger(__name__)

__all__ = [
    "FEW_SHOT_EXAMPLES_PER_LABEL",
    "ResolvedParams",
    "TrainParams",
    "TrainResult",
    "TrainingEngine",
    "check_weights_format",
    "resolve_device",
    "starts_from_centroids",
]


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


@dataclass(frozen=True)
class RunOverrides:
    """What one command forces on every run of the engine it wraps (``suite train --teacher``...)."""

    params: TrainParams | None = None
    transfer_texts: tuple[str, ...] = ()
    teacher_name: str | None = None


class TrainingEngine:
    """Fine-tunes backbones into classifiers and bi-encoders, and pre-trains them as masked LMs."""

    def __init__(
        self,
        config: TrainingConfig | None = None,
        *,
        allow_downloads: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        self.config = config or TrainingConfig()
        self.allow_downloads = allow_downloads
        # Teacher logits by text hash, reused by later runs with the same teacher; None: in memory per run.
        self.cache_dir = Path(cache_dir) if cache_dir else None
        # What :meth:`overriding` sets: per engine, and per thread or task (a context variable).
        self._overrides: contextvars.ContextVar[RunOverrides | None] = contextvars.ContextVar(
            f"training_overrides_{id(self)}", default=None
        )

    # -- public API ------------------------------------------------------------------------
    def resolve_params(
        self, params: TrainParams | dict[str, Any] | None, kind: str = "classification"
    ) -> ResolvedParams:
        """Fill the ``None`` fields of ``params`` from the config (and any :meth:`overriding` layer)."""
        return resolve_params(self.config, merge_params(params, self._current_overrides().params), kind)

    @contextlib.contextmanager
    def overriding(
        self,
        params: TrainParams | dict[str, Any] | None = None,
        *,
        transfer_texts: Sequence[str] = (),
        teacher_name: str | None = None,
    ) -> Iterator[None]:
        """Within the block, ``params`` win over what callers pass, and classifier runs that
        distil also train on ``transfer_texts``: how one command changes the runs of a plugin's
        training task without the plugin knowing (``suite train --teacher REF``)."""
        token = self._overrides.set(RunOverrides(TrainParams.coerce(params), tuple(transfer_texts), teacher_name))
        try:
            yield
        finally:
            self._overrides.reset(token)

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
        transfer_texts: Sequence[str] = (),
    ) -> TrainResult:
        """Fine-tune ``backbone`` into a single-label classifier saved in ``output_dir``.

        The folder loads with ``AutoModelForSequenceClassification``, a ``transformers``
        text-classification pipeline and :class:`TextClassifier`. With ``pooling`` "mean" (the
        default for a sentence-encoder backbone) the model is a
        :class:`~services.training.pooling.MeanPooledForSequenceClassification`; outside the
        suite, call ``services.training.pooling.register_auto_classes()`` before loading it.
        With ``checkpoint_dir`` the run checkpoints as it goes, and calling again with the
        same folder resumes.

        With the ``teacher`` parameter (a classifier folder with the same labels) the run is a
        distillation (see :mod:`services.training.tasks.distillation`); ``transfer_texts``,
        unlabelled, then train on the teacher's soft targets alone.
        """
        from services.training.pooling import resolve_pooling

        labels = check_classification_data(train, validation)
        resolved = self.resolve_params(params, "classification")
        resolved = replace(resolved, pooling=resolve_pooling(resolved.pooling, backbone))
        labels = with_outlier_label(labels, resolved)
        if resolved.teacher is None:
            from services.training.tasks.classification import ClassificationTask

            def build(device: torch.device) -> Task:
                return ClassificationTask.create(
                    backbone, train, validation, labels, resolved, device, self.allow_downloads
                )

            extra: dict[str, Any] = {}
        else:
            from services.training.tasks.distillation import DistillationTask

            transfer = tuple(transfer_texts) or self._current_overrides().transfer_texts
            teacher_name = self._current_overrides().teacher_name or resolved.teacher

            def build(device: torch.device) -> Task:
                return DistillationTask.create(
                    backbone,
                    train,
                    validation,
                    labels,
                    resolved,
                    device,
                    self.allow_downloads,
                    transfer_texts=transfer,
                    teacher_name=teacher_name,
                    cache_dir=self.cache_dir,
                )

            extra = {"transfer": text_fingerprint(transfer)}
        run = (backbone, build, train, validation, resolved, output_dir, checkpoint_dir, progress, callback)
        return self._fit("classification", *run, labels=labels, extra=extra)

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
        from services.training.tasks.biencoder import BiencoderTask

        check_pair_data(pairs, validation)
        resolved = self.resolve_params(params, "biencoder")

        def build(device: torch.device) -> Task:
            return BiencoderTask.create(backbone, pairs, validation, resolved, device, self.allow_downloads)

        run = (backbone, build, pairs, validation, resolved, output_dir, checkpoint_dir, progress, callback)
        return self._fit("biencoder", *run)

    def train_masked_lm(
        self,
        backbone: str,
        texts: Sequence[str],
        validation: Sequence[str] | None = None,
        params: TrainParams | dict[str, Any] | None = None,
        *,
        output_dir: Path,
        checkpoint_dir: Path | None = None,
        progress: bool = True,
        callback: StepCallback | None = None,
    ) -> TrainResult:
        """Continue pre-training ``backbone`` with whole-word masked-language modelling on ``texts``.

        The folder holds the encoder with its masked-LM head (``AutoModelForMaskedLM``; it
        loads as the backbone of any later fine-tune) and, for a sentence-transformers
        backbone, its pooling module files. With ``validation`` texts, ``metrics`` holds the
        masked-token loss and perplexity after training and, under ``baseline``, before it
        (the same masks both times); ``metrics["mlm_head"]`` is "new" where the backbone had
        no masked-LM head (a sentence-transformers folder) and one was initialised.
        """
        from services.training.tasks.masked_lm import MaskedLMTask, check_texts

        check_texts(texts, validation)
        resolved = self.resolve_params(params, "masked-lm")

        def build(device: torch.device) -> Task:
            return MaskedLMTask.create(backbone, texts, validation, resolved, device, self.allow_downloads)

        run = (backbone, build, texts, validation, resolved, output_dir, checkpoint_dir, progress, callback)
        result = self._fit("masked-lm", *run)
        before = result.metrics.get("baseline") or {}
        for name in ("masked_lm_loss", "perplexity"):
            if name in before:
                result.metrics[f"{name}_before"] = before[name]
        return result

    # -- composition -----------------------------------------------------------------------
    def _current_overrides(self) -> RunOverrides:
        return self._overrides.get() or RunOverrides()

    def _fit(
        self,
        kind: str,
        backbone: str,
        build: Callable[[torch.device], Task],
        train: Sequence[Any],
        validation: Sequence[Any] | None,
        resolved: ResolvedParams,
        output_dir: Path,
        checkpoint_dir: Path | None,
        progress: bool,
        callback: StepCallback | None,
        *,
        labels: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TrainResult:
        """Build the task, run the loop, save the model: what every kind of run shares."""
        started = time.perf_counter()
        with self._runtime(resolved) as device:
            task = build(device)
            fingerprint = _run_fingerprint(kind, backbone, train, validation, resolved, extra)
            outcome = TrainingRun(task, resolved, device, checkpoint_dir, fingerprint, progress, callback).run()
            outcome.metrics.update(task.card_metrics())
            save_atomically(Path(output_dir), lambda folder: self._save(task, folder))
        return _result(outcome, kind, backbone, train, resolved, output_dir, started, labels)

    def _save(self, task: Task, folder: Path) -> None:
        task.save(folder)
        export = getattr(task, "export_serving_graph", None)  # classifiers only
        if export is not None and self.config.serving_graph:
            export(folder)

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


def _result(
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
        data_fingerprint=_fingerprint(train),
        kind=kind,
        backbone=backbone,
        labels=labels,
        steps=outcome.steps,
        history=outcome.history,
        resumed_from_step=outcome.resumed_from_step,
    )


def _fingerprint(rows: Sequence[Any]) -> str:
    return text_fingerprint(rows) if rows and isinstance(rows[0], str) else data_fingerprint(rows)


def _run_fingerprint(
    kind: str,
    backbone: str,
    train: Sequence[Any],
    validation: Sequence[Any] | None,
    params: ResolvedParams,
    extra: dict[str, Any] | None = None,
) -> str:
    payload = {
        "kind": kind,
        "backbone": backbone,
        "train": _fingerprint(train),
        "validation": _fingerprint(validation or []),
        "params": asdict(params),
        **(extra or {}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
