"""The peers the suite is measured against, written as a user of plain Hugging Face tools would.

``hf_finetune`` is a ``transformers.Trainer`` run with the library's own defaults (only
what a script must say is said: epochs, evaluation each epoch, no checkpoints, no
reporting); ``hf_pipeline`` is ``transformers.pipeline("text-classification")``. Both
run on the CPU, like the suite's side of each comparison.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class PeerRun:
    """What a Trainer run did: wall time, steps and one entry per evaluation (epoch, seconds, accuracy)."""

    wall_seconds: float
    steps: int
    epochs: float
    batch_size: int
    learning_rate: float
    history: list[dict[str, float]] = field(default_factory=list)


def hf_finetune(
    backbone: str,
    train: Sequence[Any],
    validation: Sequence[Any],
    labels: list[str],
    output_dir: Path,
    *,
    epochs: float,
    batch_size: int | None = None,
    max_length: int = 128,
    seed: int = 42,
) -> PeerRun:
    """Fine-tune ``backbone`` with ``transformers.Trainer`` and save it (safetensors + tokenizer).

    ``batch_size=None`` keeps the Trainer's default (8 per device). The clock starts
    before the model loads and stops when training ends, as for the suite's engine;
    the evaluations each epoch are part of it (the Trainer's default eval batch size).
    """
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    transformers.logging.set_verbosity_error()
    label_ids = {label: i for i, label in enumerate(labels)}
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(backbone, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        backbone,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id=label_ids,
        local_files_only=True,
    )

    def encode(rows: Sequence[Any]) -> list[dict[str, Any]]:
        encoded = tokenizer([row.text for row in rows], truncation=True, max_length=max_length)
        return [
            {**{key: values[i] for key, values in encoded.items()}, "labels": label_ids[row.label]}
            for i, row in enumerate(rows)
        ]

    history: list[dict[str, float]] = []

    class Clock(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            history.append(
                {
                    "epoch": float(state.epoch or 0),
                    "step": state.global_step,
                    "seconds": time.perf_counter() - started,
                    "accuracy": float(metrics.get("eval_accuracy", float("nan"))),
                }
            )

    def accuracy(prediction) -> dict[str, float]:
        return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}

    options: dict[str, Any] = {
        "output_dir": tempfile.mkdtemp(prefix="hf-trainer-"),
        "num_train_epochs": epochs,
        "eval_strategy": "epoch",
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "logging_strategy": "no",
        "use_cpu": True,
        "seed": seed,
    }
    if batch_size is not None:
        options["per_device_train_batch_size"] = batch_size
    arguments = TrainingArguments(**options)
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=encode(train),
        eval_dataset=encode(validation),
        processing_class=tokenizer,  # gives DataCollatorWithPadding: the Trainer's default for text
        compute_metrics=accuracy,
        callbacks=[Clock()],
    )
    trainer.remove_callback(PrinterCallback)  # its end-of-training dict is noise in the report
    trainer.train()
    wall = time.perf_counter() - started
    trainer.save_model(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    return PeerRun(
        wall_seconds=wall,
        steps=trainer.state.global_step,
        epochs=epochs,
        batch_size=arguments.per_device_train_batch_size,
        learning_rate=arguments.learning_rate,
        history=history,
    )


def hf_pipeline(model_dir: str | Path, max_length: int = 128, dtype: str = "float32"):
    """``transformers.pipeline("text-classification")`` on the CPU, truncating as the suite does.

    ``dtype="bfloat16"`` loads the weights in bfloat16 (the pipeline's own precision setting).

    A mean-pooled classifier (the engine's default on a sentence-encoder backbone) is a
    ``transformers`` model class of the suite's, registered with the Auto classes first.
    """
    import transformers
    from transformers import pipeline

    from services.training.pooling import register_auto_classes

    register_auto_classes()
    transformers.logging.set_verbosity_error()
    import torch

    classify = pipeline("text-classification", model=str(model_dir), device=-1, dtype=getattr(torch, dtype))
    return lambda texts, batch_size=1: [
        result["label"]
        for result in classify(list(texts), batch_size=batch_size, truncation=True, max_length=max_length)
    ]
