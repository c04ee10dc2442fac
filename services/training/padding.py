"""Length-sorted inference batches and padding in numpy: what serving needs, without torch.

``batching.py`` builds the torch tensors of training on these; the ONNX Runtime classifier
(``serving.py``) uses them as they are, so a one-shot command never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def length_sorted_chunks(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[np.ndarray]:
    """Indices in batches of similar length, for evaluation and inference (no shuffling).

    With ``max_tokens`` a batch also stops before its rows x longest length would pass
    it (one row always fits): long texts go in smaller batches, which stay in cache.
    """
    order = np.argsort(np.asarray(lengths), kind="stable")
    if max_tokens is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    sorted_lengths = np.asarray(lengths)[order]
    chunks, start = [], 0
    while start < len(order):
        end = start + 1
        while end < len(order) and end - start < batch_size and (end - start + 1) * sorted_lengths[end] <= max_tokens:
            end += 1
        chunks.append(order[start:end])
        start = end
    return chunks


def padded_arrays(
    sequences: Sequence[Sequence[int]], pad_id: int, *, pad_to: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``input_ids`` padded to the longest sequence (or to ``pad_to``) and the attention mask, as int64 arrays."""
    longest = max(max(len(sequence) for sequence in sequences), pad_to or 0)
    ids = np.full((len(sequences), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), longest), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = sequence
        mask[row, : len(sequence)] = 1
    return ids, mask
