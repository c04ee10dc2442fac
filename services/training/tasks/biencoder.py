"""Bi-encoder: mean-pooled, L2-normalised embeddings trained with multiple-negatives ranking loss."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from services.backbone import pretrained_kwargs
from services.errors import ModelError, one_line
from services.training.batching import length_sorted_chunks, mean_pool, pad_batch
from services.training.data import TextPair
from services.training.folders import load_tokenizer, save_model, write_sentence_transformers_modules
from services.training.metrics import retrieval_metrics
from services.training.params import ResolvedParams
from services.training.task import sample_indices, tokenize_texts


class BiencoderTask:
    """Bi-encoder: mean-pooled, L2-normalised embeddings; multiple-negatives ranking loss
    (each query against its positive, the other positives of the batch, and the batch's hard
    negatives where pairs carry them)."""

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
        negatives = [pair.negative or "" for pair in pairs]
        self.negative_ids = tokenize_texts(tokenizer, negatives, params.max_length) if any(negatives) else None
        # Identical texts inside a batch are not negatives of each other (a hard negative that is
        # another pair's positive, or this query's own positive, is left out for that query).
        self.query_keys = _text_keys([pair.query for pair in pairs])
        passage_keys = _text_keys([pair.positive for pair in pairs] + negatives)
        self.positive_keys = passage_keys[: len(pairs)]
        self.negative_keys = np.where([bool(text) for text in negatives], passage_keys[len(pairs) :], -1)
        self.lengths = [len(q) + len(p) for q, p in zip(self.query_ids, self.positive_ids, strict=True)]
        self.pairs = list(pairs)
        self.validation = list(validation) if validation else None

    @classmethod
    def create(
        cls,
        backbone: str,
        pairs: Sequence[TextPair],
        validation: Sequence[TextPair] | None,
        params: ResolvedParams,
        device: torch.device,
        allow_downloads: bool = False,
    ) -> BiencoderTask:
        from transformers import AutoModel

        tokenizer = load_tokenizer(backbone, allow_downloads)
        try:
            model = AutoModel.from_pretrained(backbone, use_safetensors=True, **pretrained_kwargs(allow_downloads))
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load backbone '{backbone}': {one_line(exc)}") from None
        return cls(model.to(device), tokenizer, pairs, validation, params, device)

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
        loss = F.cross_entropy(torch.cat([scores, self._negative_scores(queries, batch, p_keys)], dim=1), target)
        if self.symmetric:  # positives against the queries: the hard negatives are no query's answer
            loss = (loss + F.cross_entropy(scores.T, target)) / 2
        return loss

    def _negative_scores(self, queries: torch.Tensor, batch: np.ndarray, p_keys: torch.Tensor) -> torch.Tensor:
        """Each query against the batch's hard negatives, ``(len(batch), negatives)`` (none: zero columns)."""
        rows = [i for i in batch if self.negative_keys[i] >= 0] if self.negative_ids is not None else []
        if not rows:
            return queries.new_empty((len(batch), 0))
        negatives = self._embed([self.negative_ids[i] for i in rows], self.pad_to)
        n_keys = torch.from_numpy(self.negative_keys[rows])
        scores = queries @ negatives.T * self.scale
        return scores.masked_fill((p_keys[:, None] == n_keys[None, :]).to(self.device), float("-inf"))

    def _encode(self, texts: list[str]) -> np.ndarray:
        ids = tokenize_texts(self.tokenizer, texts, self.max_length)
        vectors = np.empty((len(ids), self.model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for chunk in length_sorted_chunks([len(x) for x in ids], self.eval_batch_size):
                vectors[chunk] = self._embed([ids[i] for i in chunk]).float().cpu().numpy()
        return vectors

    def evaluate(self, on_train: bool = False) -> dict[str, Any]:
        pairs = [self.pairs[i] for i in sample_indices(len(self.pairs))] if on_train else self.validation
        candidates = list(dict.fromkeys(pair.positive for pair in pairs))
        position = {text: i for i, text in enumerate(candidates)}
        return retrieval_metrics(
            self._encode([pair.query for pair in pairs]),
            self._encode(candidates),
            [position[pair.positive] for pair in pairs],
        )

    def card_metrics(self) -> dict[str, Any]:
        return {}

    def save(self, folder: Path) -> None:
        """The bare encoder plus the sentence-transformers module files (mean pooling, normalisation)."""
        save_model(self.model, self.tokenizer, folder)
        write_sentence_transformers_modules(folder, self.model.config.hidden_size, self.max_length)


def _text_keys(texts: list[str]) -> np.ndarray:
    index: dict[str, int] = {}
    return np.array([index.setdefault(text, len(index)) for text in texts], dtype=np.int64)
