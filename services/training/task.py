"""The interface between a training task and the loop that trains it.

A task owns the model and its tokenized data. The loop (``loop.py``) knows nothing else
about it: it batches indices into ``lengths``, asks for the ``loss`` of each batch, calls
``evaluate`` from time to time, and keeps the best weights. The tasks live one per file
in ``services/training/tasks/``; the engine builds them and saves what they trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

# Without a validation set the final metrics are measured on (at most this many) training examples.
TRAIN_EVAL_SAMPLE = 2000


@runtime_checkable
class Task(Protocol):
    """What the training loop needs of a task."""

    kind: str  # "classification", "biencoder", "masked-lm"... (progress bar, logs)
    has_head: bool  # a freshly initialised output layer: higher learning rate, unfrozen first
    baseline_first: bool  # score the untrained model first and keep it if training never beats it
    model: torch.nn.Module
    lengths: Sequence[int]  # one per training example: what batches are grouped by

    @property
    def has_validation(self) -> bool:
        """Whether ``evaluate()`` measures held-out data (else only ``evaluate(on_train=True)`` works)."""

    def loss(self, batch: np.ndarray) -> torch.Tensor:
        """The mean loss of the training examples at indices ``batch``, with a graph to back-propagate."""

    def evaluate(self, on_train: bool = False) -> dict[str, Any]:
        """Metrics on the validation data (or a sample of the training data), the model in eval mode."""

    def card_metrics(self) -> dict[str, Any]:
        """What the model card should record beyond the loop's metrics (a teacher's scores...); may be empty."""

    def save(self, folder: Path) -> None:
        """Write the trained model to ``folder`` (``save_pretrained`` layout)."""


def tokenize_texts(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    encoded = tokenizer(
        texts, truncation=True, max_length=max_length, return_attention_mask=False, return_token_type_ids=False
    )
    return encoded["input_ids"]


def sample_indices(count: int) -> np.ndarray:
    """At most ``TRAIN_EVAL_SAMPLE`` indices below ``count``, the same every time."""
    if count <= TRAIN_EVAL_SAMPLE:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).choice(count, TRAIN_EVAL_SAMPLE, replace=False))
