"""Continued pre-training: whole-word masked-language modelling on unlabelled text.

Domain-adaptive (a plugin's stored documents) or task-adaptive (its training texts)
pre-training in the sense of Gururangan et al. 2020, "Don't Stop Pretraining". Every
sub-word of a chosen word is masked together, so the model cannot guess "##ings" from
"earn"; of the masked tokens 80% become the mask token, 10% a random token and 10% stay,
as in BERT. Held-out texts get one fixed set of masks, so the loss before training and
after it are measured on the same questions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from services.backbone import pretrained_kwargs
from services.errors import DataError, ModelError, one_line
from services.training.batching import length_sorted_chunks, pad_batch
from services.training.folders import copy_sentence_transformers_modules, load_tokenizer, save_model
from services.training.params import ResolvedParams
from services.training.task import sample_indices

IGNORE = -100
MIN_WORDS = 2  # a one-word text teaches nothing: its only word is masked and there is no context


def check_texts(texts: Sequence[str], validation: Sequence[str] | None = None) -> None:
    """Raise :class:`DataError` for texts that cannot train a masked LM."""
    if not any(isinstance(text, str) and text.strip() for text in texts):
        raise DataError("no texts to pre-train on")
    if validation is not None and not any(isinstance(text, str) and text.strip() for text in validation):
        raise DataError("the held-out texts are all empty")


def load_masked_lm(backbone: str, allow_downloads: bool = False) -> tuple[torch.nn.Module, bool]:
    """The backbone with a masked-LM head, and whether that head is new (a sentence-transformers
    folder saves the bare encoder, so its head starts from random weights)."""
    from transformers import AutoModelForMaskedLM

    try:
        model, info = AutoModelForMaskedLM.from_pretrained(
            backbone, use_safetensors=True, output_loading_info=True, **pretrained_kwargs(allow_downloads)
        )
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"cannot load backbone '{backbone}' as a masked LM: {one_line(exc)}") from None
    prefix = f"{model.base_model_prefix}."
    head_is_new = any(not key.startswith(prefix) for key in info.get("missing_keys", []))
    return model, head_is_new


class MaskedLMTask:
    """Whole-word masked-LM loss on texts; metrics: masked-token loss, perplexity and accuracy."""

    kind = "masked-lm"
    has_head = True
    baseline_first = True  # the held-out loss before training; keep the backbone if training never beats it

    def __init__(
        self,
        model,
        tokenizer,
        texts: Sequence[str],
        validation: Sequence[str] | None,
        params: ResolvedParams,
        device,
        *,
        backbone: str = "",
        head_is_new: bool = False,
    ) -> None:
        if tokenizer.mask_token_id is None:
            raise ModelError(f"the tokenizer of '{backbone}' has no mask token: it cannot train a masked LM")
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.backbone = backbone
        self.head_is_new = head_is_new
        self.probability = params.mlm_probability
        self.seed = params.seed
        self.pad_id = tokenizer.pad_token_id or 0
        self.mask_id = tokenizer.mask_token_id
        # Logits span the vocabulary at every position: evaluation batches stay training-sized.
        self.eval_batch_size = params.batch_size
        self.ids, self.words = _tokenize_words(tokenizer, texts, params.max_length)
        if not self.ids:
            raise DataError(f"no text with at least {MIN_WORDS} words to pre-train on")
        self.lengths = [len(ids) for ids in self.ids]
        self.documents = len(texts)
        self.val_batches = None
        if validation:
            ids, words = _tokenize_words(tokenizer, validation, params.max_length)
            self.val_batches = self._fixed_masks(ids, words) if ids else None
        self._train_sample = None

    @classmethod
    def create(
        cls,
        backbone: str,
        texts: Sequence[str],
        validation: Sequence[str] | None,
        params: ResolvedParams,
        device: torch.device,
        allow_downloads: bool = False,
    ) -> MaskedLMTask:
        tokenizer = load_tokenizer(backbone, allow_downloads)
        model, head_is_new = load_masked_lm(backbone, allow_downloads)
        model = model.to(device)
        return cls(model, tokenizer, texts, validation, params, device, backbone=backbone, head_is_new=head_is_new)

    @property
    def has_validation(self) -> bool:
        return self.val_batches is not None

    # -- masking ---------------------------------------------------------------------------
    def _mask(self, ids: list[list[int]], words: list[np.ndarray], generator: torch.Generator | None = None):
        """Input ids with whole words masked, and the labels (original ids where masked, else -100)."""
        input_ids, attention = pad_batch(ids, self.pad_id, "cpu")
        labels = torch.full_like(input_ids, IGNORE)
        chosen = torch.zeros_like(input_ids, dtype=torch.bool)
        for row, word_ids in enumerate(words):
            count = int(word_ids.max()) + 1
            picked = torch.rand(count, generator=generator) < self.probability
            if not picked.any():  # at least one word per text, or short texts teach nothing
                picked[torch.randint(count, (1,), generator=generator)] = True
            positions = torch.from_numpy(word_ids >= 0) & picked[torch.from_numpy(word_ids.clip(min=0))]
            chosen[row, : len(word_ids)] = positions
        labels[chosen] = input_ids[chosen]
        draw = torch.rand(input_ids.shape, generator=generator)
        masked = input_ids.clone()
        masked[chosen & (draw < 0.8)] = self.mask_id
        swap = chosen & (draw >= 0.8) & (draw < 0.9)
        vocabulary = len(self.tokenizer)
        masked[swap] = torch.randint(vocabulary, (int(swap.sum()),), generator=generator)
        return masked, attention, labels

    def _fixed_masks(self, ids: list[list[int]], words: list[np.ndarray]) -> list[tuple]:
        generator = torch.Generator().manual_seed(self.seed)
        return [
            self._mask([ids[i] for i in chunk], [words[i] for i in chunk], generator)
            for chunk in length_sorted_chunks([len(x) for x in ids], self.eval_batch_size)
        ]

    # -- the Task interface ----------------------------------------------------------------
    def loss(self, batch: np.ndarray) -> torch.Tensor:
        masked, attention, labels = self._mask([self.ids[i] for i in batch], [self.words[i] for i in batch])
        logits = self._logits(masked, attention)
        return F.cross_entropy(logits.flatten(0, 1), labels.to(self.device).flatten(), ignore_index=IGNORE)

    def _logits(self, masked: torch.Tensor, attention: torch.Tensor | None) -> torch.Tensor:
        attention = attention.to(self.device) if attention is not None else None
        return self.model(input_ids=masked.to(self.device), attention_mask=attention).logits

    def evaluate(self, on_train: bool = False) -> dict[str, Any]:
        if on_train:
            if self._train_sample is None:
                sample = sample_indices(len(self.ids))
                self._train_sample = self._fixed_masks([self.ids[i] for i in sample], [self.words[i] for i in sample])
            batches = self._train_sample
        else:
            batches = self.val_batches
        total, correct, count = 0.0, 0, 0
        with torch.inference_mode():
            for masked, attention, labels in batches:
                logits = self._logits(masked, attention).float()
                labels = labels.to(self.device)
                where = labels != IGNORE
                total += float(F.cross_entropy(logits[where], labels[where], reduction="sum"))
                correct += int((logits[where].argmax(-1) == labels[where]).sum())
                count += int(where.sum())
        loss = total / max(count, 1)
        return {
            "masked_lm_loss": loss,
            "perplexity": math.exp(min(loss, 50.0)),
            "masked_lm_accuracy": correct / max(count, 1),
            "masked_tokens": count,
        }

    def card_metrics(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "tokens": int(sum(self.lengths)),
            "mlm_head": "new" if self.head_is_new else "pretrained",
        }

    def save(self, folder: Path) -> None:
        """The encoder with its masked-LM head; a sentence-transformers backbone's pooling files come along,
        so that later fine-tunes pool as the backbone did."""
        save_model(self.model, self.tokenizer, folder)
        copy_sentence_transformers_modules(self.backbone, folder)


def _tokenize_words(tokenizer, texts: Sequence[str], max_length: int) -> tuple[list[list[int]], list[np.ndarray]]:
    """Token ids of each text with at least ``MIN_WORDS`` words, and each token's word index (-1: special)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError("whole-word masking needs a fast tokenizer (tokenizer.json)")
    cleaned = [text.strip() for text in texts if isinstance(text, str) and text.strip()]
    encoded = tokenizer(
        cleaned, truncation=True, max_length=max_length, return_attention_mask=False, return_token_type_ids=False
    )
    ids, words = [], []
    for row, input_ids in enumerate(encoded["input_ids"]):
        word_ids = np.array([-1 if w is None else w for w in encoded.word_ids(row)], dtype=np.int64)
        present = np.unique(word_ids[word_ids >= 0])
        if len(present) < MIN_WORDS:
            continue
        # Renumber the words 0..n-1 (truncation may have cut the last ones).
        word_ids[word_ids >= 0] = np.searchsorted(present, word_ids[word_ids >= 0])
        ids.append(input_ids)
        words.append(word_ids)
    return ids, words
