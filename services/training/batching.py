"""Length-grouped batches and dynamic padding, shared by training, evaluation and inference.

On a CPU the cost of a transformer batch is its padded size, so batches of similar
lengths padded to their own longest sequence do the same work in far less time than
random batches padded to ``max_length``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from services.training.padding import length_sorted_chunks, padded_arrays

__all__ = ["LengthGroupedBatches", "PooledEmbeddings", "length_sorted_chunks", "mean_pool", "pad_batch"]

# Examples are sorted by length inside windows of this many batches: small enough that
# batch membership still changes from epoch to epoch, large enough that padding is tiny.
MEGABATCH_BATCHES = 16


class LengthGroupedBatches:
    """The batches of each epoch: shuffle, sort by length within mega-batches, shuffle batch order.

    Every epoch's plan depends only on ``(seed, epoch)``, so an interrupted run that
    resumes at step ``k`` of an epoch sees exactly the batches it would have seen.
    ``grouped=False`` gives plain shuffled batches (what most training loops do).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, *, grouped: bool = True) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.grouped = grouped
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-len(self.lengths) // self.batch_size)

    def epoch(self, epoch: int) -> list[np.ndarray]:
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self._plan(epoch))
        return self._cache[1]

    def _plan(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        if not self.grouped:
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        window = self.batch_size * MEGABATCH_BATCHES
        batches = []
        for start in range(0, len(order), window):
            chunk = order[start : start + window]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        return [batches[i] for i in rng.permutation(len(batches))]


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu", *, pad_to: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``input_ids`` padded to the longest sequence (or to ``pad_to``) and its attention mask.

    The mask is ``None`` when nothing is padded (one sequence, or equal lengths): the
    model then skips building and applying it, which is the same computation, faster.
    """
    ids, mask = padded_arrays(sequences, pad_id, pad_to=pad_to)
    input_ids = torch.from_numpy(ids).to(device)
    if mask.all():
        return input_ids, None
    return input_ids, torch.from_numpy(mask).to(device)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Average the token vectors that are not padding, then L2-normalise (sentence-transformers style)."""
    if mask is None:
        pooled = hidden.mean(dim=1)
    else:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=-1)


class PooledEmbeddings(torch.nn.Module):
    """An encoder's masked mean of token vectors, L2-normalised in float32 (sentence-transformers' pooling)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled.float(), p=2, dim=-1)
