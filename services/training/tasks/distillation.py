"""Knowledge distillation: a student classifier learns the teacher's softened probabilities.

The loss of a labelled example is ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) *
CE(gold)`` (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network"); an
unlabelled transfer text contributes the first term alone. The teacher scores every text
once, before training, and its log-probabilities are kept by text hash (on disk in the
engine's cache folder, so later runs with the same teacher reuse them), never recomputed
per epoch. The teacher must predict exactly the task's labels.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from services.errors import ConfigError
from services.training.data import LabeledText
from services.training.folders import load_tokenizer
from services.training.metrics import classification_metrics
from services.training.params import ResolvedParams
from services.training.task import sample_indices, tokenize_texts
from services.training.tasks.classification import ClassificationTask, load_classifier_model, starts_from_centroids

# Log-probabilities below this are clipped: float32 probabilities underflow to 0 far from the top class.
MIN_LOG_PROBABILITY = -60.0


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TeacherScores:
    """The teacher's log-probabilities of texts, computed once per text and kept by text hash.

    With ``cache_dir`` they persist as ``<cache_dir>/<teacher key>.npz``; the key covers the
    teacher folder's path, its weights' sizes and times, its config and ``max_length``.
    """

    def __init__(self, teacher: str, device: torch.device, max_length: int, cache_dir: Path | None = None) -> None:
        from services.training.inference import TextClassifier

        self.folder = Path(teacher)
        self.classifier = TextClassifier.from_pretrained(self.folder, device=str(device), max_length=max_length)
        self.labels = list(self.classifier.labels)
        self.file = Path(cache_dir) / f"{self._key(max_length)}.npz" if cache_dir else None
        self.cache: dict[str, np.ndarray] = self._load()
        self.computed = 0

    def _key(self, max_length: int) -> str:
        stats = sorted(
            (path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in self.folder.glob("*.safetensors")
        )
        config = (self.folder / "config.json").read_text()
        payload = json.dumps([str(self.folder.resolve()), stats, config, max_length])
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    def _load(self) -> dict[str, np.ndarray]:
        if self.file is None or not self.file.is_file():
            return {}
        try:
            with np.load(self.file) as saved:
                return dict(zip(saved["keys"].tolist(), saved["scores"], strict=True))
        except (OSError, ValueError, KeyError):
            return {}  # a damaged cache is recomputed, never trusted

    def _save(self) -> None:
        if self.file is None:
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        temp = self.file.with_name(f".{self.file.stem}.{os.getpid()}.npz")
        keys = np.array(list(self.cache), dtype="U64")
        np.savez(temp, keys=keys, scores=np.stack(list(self.cache.values())).astype(np.float32))
        os.replace(temp, self.file)

    def log_probabilities(self, texts: Sequence[str], labels: list[str]) -> np.ndarray:
        """Shape ``(len(texts), len(labels))``, columns in ``labels`` order."""
        keys = [text_key(text) for text in texts]
        missing = list(dict.fromkeys(text for text, key in zip(texts, keys, strict=True) if key not in self.cache))
        if missing:
            probabilities = self.classifier.predict_proba(missing, batch_size=64)
            scores = np.maximum(np.log(np.maximum(probabilities, 1e-30)), MIN_LOG_PROBABILITY)
            self.cache.update(zip((text_key(text) for text in missing), scores, strict=True))
            self.computed += len(missing)
            self._save()
        order = [self.labels.index(label) for label in labels]
        return np.stack([self.cache[key] for key in keys])[:, order].astype(np.float32)


def check_teacher_labels(teacher_labels: Sequence[str], labels: Sequence[str], name: str) -> None:
    if sorted(teacher_labels) != sorted(labels):
        extra = sorted(set(teacher_labels) - set(labels))
        lacking = sorted(set(labels) - set(teacher_labels))
        detail = "; ".join(
            part
            for part in (
                f"the teacher also predicts {', '.join(extra[:5])}" if extra else "",
                f"it lacks {', '.join(lacking[:5])}" if lacking else "",
            )
            if part
        )
        raise ConfigError(f"teacher '{name}' has other labels than the task ({detail})")


class DistillationTask(ClassificationTask):
    """A classification task whose loss mixes the teacher's soft targets with the gold labels."""

    def __init__(
        self,
        model,
        tokenizer,
        train: Sequence[LabeledText],
        validation: Sequence[LabeledText] | None,
        labels: list[str],
        params: ResolvedParams,
        device,
        *,
        teacher: TeacherScores,
        teacher_name: str,
        transfer_texts: Sequence[str] = (),
    ) -> None:
        super().__init__(model, tokenizer, train, validation, labels, params, device)
        seen = {row.text for row in train}
        transfer = [text for text in dict.fromkeys(transfer_texts) if text.strip() and text not in seen]
        self.transfer_count = len(transfer)
        if transfer:
            self.ids = self.ids + tokenize_texts(tokenizer, transfer, params.max_length)
        self.lengths = [len(ids) for ids in self.ids]
        self.temperature = params.distill_temperature
        self.alpha = params.distill_alpha
        all_texts = [row.text for row in train] + transfer
        self.soft_targets = torch.from_numpy(teacher.log_probabilities(all_texts, labels)).to(device)
        self.teacher_name = teacher_name
        self.teacher_metrics = self._teacher_metrics(teacher, train, validation, labels)
        self.teacher_scored = teacher.computed

    @classmethod
    def create(
        cls,
        backbone: str,
        train: Sequence[LabeledText],
        validation: Sequence[LabeledText] | None,
        labels: list[str],
        params: ResolvedParams,
        device: torch.device,
        allow_downloads: bool = False,
        *,
        transfer_texts: Sequence[str] = (),
        teacher_name: str | None = None,
        cache_dir: Path | None = None,
    ) -> DistillationTask:
        if not params.teacher:
            raise ConfigError("distillation needs a teacher")
        name = teacher_name or params.teacher
        teacher = TeacherScores(params.teacher, device, params.max_length, cache_dir)
        check_teacher_labels(teacher.labels, labels, name)
        tokenizer = load_tokenizer(backbone, allow_downloads)
        model = load_classifier_model(backbone, labels, params.pooling, allow_downloads).to(device)
        task = cls(
            model,
            tokenizer,
            train,
            validation,
            labels,
            params,
            device,
            teacher=teacher,
            teacher_name=name,
            transfer_texts=transfer_texts,
        )
        del teacher  # the student trains alone: free the teacher's memory
        if starts_from_centroids(params.head_init, len(train), len(labels)):
            task.init_head_from_centroids()
        return task

    def _teacher_metrics(self, teacher, train, validation, labels) -> dict[str, Any]:
        rows = list(validation) if validation else [train[i] for i in sample_indices(len(train))]
        scores = teacher.log_probabilities([row.text for row in rows], labels)
        label_ids = {label: i for i, label in enumerate(labels)}
        targets = np.array([label_ids[row.label] for row in rows], dtype=np.int64)
        metrics = classification_metrics(targets, scores.argmax(axis=1), labels)
        return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}

    def loss(self, batch: np.ndarray) -> torch.Tensor:
        logits = self.logits(batch)
        index = torch.from_numpy(batch).to(self.device)
        t = self.temperature
        teacher = F.log_softmax(self.soft_targets[index] / t, dim=-1)
        soft = F.kl_div(F.log_softmax(logits / t, dim=-1), teacher, log_target=True, reduction="batchmean") * t * t
        labelled = batch < self.labelled_count()
        if not labelled.any() or self.alpha == 1.0:
            return soft
        gold = torch.from_numpy(self.targets[batch[labelled]]).to(self.device)
        hard = F.cross_entropy(logits[torch.from_numpy(labelled).to(self.device)], gold)
        return self.alpha * soft + (1 - self.alpha) * hard

    def card_metrics(self) -> dict[str, Any]:
        return {
            "teacher": {"name": self.teacher_name, **self.teacher_metrics},
            "teacher_accuracy": self.teacher_metrics["accuracy"],
            "teacher_macro_f1": self.teacher_metrics["macro_f1"],
            "transfer_texts": self.transfer_count,
            "teacher_texts_scored": self.teacher_scored,
        }
