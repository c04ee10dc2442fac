"""Okapi BM25 over a scipy sparse term-frequency matrix that grows one document at a time.

Scoring (Robertson/Sparck Jones Okapi BM25, with Lucene's always-positive idf)::

    score(q, d) = sum over query tokens t of
                  idf(t) * tf(t,d) * (k1 + 1) / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))            # idf="lucene" (default)
    idf(t)      = ln((N - df(t) + 0.5) / (df(t) + 0.5))                # idf="robertson" (may be negative)

N is the number of live documents, df(t) the live documents containing t, |d| the number
of tokens of d and avgdl the mean over live documents. A token repeated in the query
counts once per occurrence (as in rank_bm25). Lucene drops the constant (k1 + 1), so
Elasticsearch and ``bm25s(method="lucene")`` scores are these divided by (k1 + 1): same ranking.

Layout: document *slots* are rows of CSC matrices (fast column slices: one slice per
query term), kept in a few parts of geometrically shrinking size so bulk loads and single
upserts are both cheap (see :class:`TermMatrix`). Deleted rows are masked out by the
caller's ``alive`` array until compaction.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Literal

import numpy as np
import scipy.sparse as sp

TAIL_ROWS = 20_000  # recent rows kept as CSR blocks before they become a CSC part
MERGE_RATIO = 0.25  # a part this large relative to the one before it is merged into it


def encode_strings(strings: Sequence[str]) -> np.ndarray:
    """A list of strings as one uint8 array (JSON), for ``np.savez`` without pickle."""
    return np.frombuffer(json.dumps(list(strings), ensure_ascii=False).encode(), dtype=np.uint8)


def decode_strings(array: np.ndarray) -> list[str]:
    return json.loads(array.tobytes().decode())


@dataclass(frozen=True)
class BM25Params:
    k1: float = 1.5
    b: float = 0.75
    idf: Literal["lucene", "robertson"] = "lucene"

    def idf_of(self, n_docs: int, df: np.ndarray) -> np.ndarray:
        ratio = (n_docs - df + 0.5) / (df + 0.5)
        return np.log1p(ratio) if self.idf == "lucene" else np.log(ratio)


class TermMatrix:
    """Term frequencies per slot, plus each slot's length; the vocabulary grows as needed.

    Rows live in a few CSC *parts* (oldest and largest first) and a *tail* of recent CSR
    blocks. The tail becomes a part once it has ``TAIL_ROWS`` rows, and a part at least a
    ``MERGE_RATIO`` of the one before it is merged into it, so there are only a few parts
    (sizes shrink geometrically), a write costs its own size plus amortised merges, and a
    search after a write re-converts only the tail.
    """

    def __init__(self) -> None:
        self.vocabulary: dict[str, int] = {}
        self._parts: list[sp.csc_matrix] = []
        self._tail: list[sp.csr_matrix] = []
        self._tail_rows = 0
        self._tail_csc: sp.csc_matrix | None = None
        self.lengths = np.zeros(0, dtype=np.float64)
        self.n_rows = 0

    def append_many(self, token_lists: Sequence[Sequence[str]]) -> int:
        """Add one row per token list; return the slot of the first.

        Vectorised per batch: new terms get ids in one pass, all tokens map to ids through
        one ``itemgetter`` call, and a COO matrix sums repeated terms into frequencies.
        """
        first = self.n_rows
        if not token_lists:
            return first
        vocabulary = self.vocabulary
        flat = [token for tokens in token_lists for token in tokens]
        for term in [term for term in dict.fromkeys(flat) if term not in vocabulary]:
            vocabulary[term] = len(vocabulary)
        lengths = np.fromiter((len(tokens) for tokens in token_lists), dtype=np.int64, count=len(token_lists))
        if flat:
            ids = itemgetter(*flat)(vocabulary) if len(flat) > 1 else (vocabulary[flat[0]],)
            cols = np.fromiter(ids, dtype=np.int32, count=len(flat))
        else:
            cols = np.zeros(0, dtype=np.int32)
        rows = np.repeat(np.arange(len(token_lists), dtype=np.int32), lengths)
        block = sp.coo_matrix(
            (np.ones(len(flat), dtype=np.float32), (rows, cols)), shape=(len(token_lists), len(vocabulary))
        ).tocsr()
        self._tail.append(block)
        self._tail_rows += len(token_lists)
        self._tail_csc = None
        self._reserve(first + len(token_lists))
        self.lengths[first : first + len(token_lists)] = lengths
        self.n_rows += len(token_lists)
        return first

    def _reserve(self, size: int) -> None:
        if size > self.lengths.shape[0]:
            grown = np.zeros(max(size, 1024, int(self.lengths.shape[0] * 1.5)), dtype=np.float64)
            grown[: self.n_rows] = self.lengths[: self.n_rows]
            self.lengths = grown

    def maybe_merge(self) -> None:
        """Turn a large tail into a part, then merge parts that grew close to their elders."""
        if self._tail_rows < TAIL_ROWS:
            return
        self._parts.append(self._tail_matrix().tocsc())
        self._tail, self._tail_rows, self._tail_csc = [], 0, None
        while len(self._parts) > 1 and self._parts[-1].shape[0] >= MERGE_RATIO * self._parts[-2].shape[0]:
            younger = self._parts.pop()
            self._parts[-1] = _stack([self._parts[-1], younger], len(self.vocabulary))

    def merge(self) -> None:
        """Everything into one CSC part (before a compaction or a snapshot)."""
        pieces = [*self._parts, self._tail_matrix()] if self._tail_rows else self._parts
        if len(pieces) > 1 or self._tail_rows:
            self._parts = [_stack(pieces, len(self.vocabulary))]
        self._tail, self._tail_rows, self._tail_csc = [], 0, None

    def _main(self) -> sp.csc_matrix:
        self.merge()
        return self._parts[0] if self._parts else sp.csc_matrix((0, len(self.vocabulary)), dtype=np.float32)

    def take(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (ascending), renumbered 0..len-1: drops deleted slots."""
        self._parts = [self._main().tocsr()[rows].tocsc()]
        self.lengths = self.lengths[rows]
        self.n_rows = len(rows)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild this matrix."""
        main = self._main()
        return {
            "terms_data": main.data,
            "terms_indices": main.indices,
            "terms_indptr": main.indptr,
            "terms_shape": np.asarray(main.shape, dtype=np.int64),
            "terms_lengths": self.lengths[: self.n_rows],
            "terms_vocabulary": encode_strings(sorted(self.vocabulary, key=self.vocabulary.__getitem__)),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TermMatrix:
        matrix = cls()
        shape = tuple(int(x) for x in arrays["terms_shape"])
        main = (arrays["terms_data"], arrays["terms_indices"], arrays["terms_indptr"])
        matrix._parts = [sp.csc_matrix(main, shape=shape)]
        matrix.vocabulary = {term: i for i, term in enumerate(decode_strings(arrays["terms_vocabulary"]))}
        matrix.lengths = np.array(arrays["terms_lengths"], dtype=np.float64)
        matrix.n_rows = shape[0]
        return matrix

    def _tail_matrix(self) -> sp.csr_matrix:
        return _stack(self._tail, len(self.vocabulary), format="csr")

    def _searchable(self) -> list[sp.csc_matrix]:
        if self._tail_rows and self._tail_csc is None:
            self._tail_csc = self._tail_matrix().tocsc()
        return [*self._parts, self._tail_csc] if self._tail_rows else self._parts

    def postings(self, term_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Slots containing the term and its frequency in each."""
        slots, freqs, offset = [], [], 0
        for matrix in self._searchable():
            if term_id < matrix.shape[1]:
                start, end = matrix.indptr[term_id], matrix.indptr[term_id + 1]
                if end > start:
                    slots.append(matrix.indices[start:end].astype(np.int64) + offset)
                    freqs.append(matrix.data[start:end])
            offset += matrix.shape[0]
        if not slots:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return (slots[0], freqs[0]) if len(slots) == 1 else (np.concatenate(slots), np.concatenate(freqs))

    def score(
        self,
        query_tokens: Sequence[str],
        alive: np.ndarray,
        n_alive: int,
        total_length: float,
        params: BM25Params,
    ) -> tuple[np.ndarray, np.ndarray]:
        """BM25 of every live slot matching a query token: ``(slots, scores)``, unordered."""
        weights = Counter(term for term in query_tokens if term in self.vocabulary)
        if not weights or n_alive == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        avgdl = total_length / n_alive if total_length > 0 else 1.0
        k1, b = params.k1, params.b
        all_slots, all_scores = [], []
        for term, weight in weights.items():
            slots, tf = self.postings(self.vocabulary[term])
            live = alive[slots]
            slots, tf = slots[live], tf[live].astype(np.float64)
            if slots.size == 0:
                continue
            idf = float(params.idf_of(n_alive, np.float64(slots.size)))
            norm = k1 * (1.0 - b + b * self.lengths[slots] / avgdl)
            all_slots.append(slots)
            all_scores.append(weight * idf * tf * (k1 + 1.0) / (tf + norm))
        if not all_slots:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        slots = np.concatenate(all_slots)
        scores = np.concatenate(all_scores)
        if len(all_slots) == 1:
            return slots, scores
        unique, inverse = np.unique(slots, return_inverse=True)
        return unique, np.bincount(inverse, weights=scores, minlength=unique.size)


def _stack(blocks: Sequence[sp.spmatrix], width: int, format: str = "csc") -> sp.spmatrix:
    """Stack row blocks whose vocabularies grew over time, padding each to ``width`` columns."""
    resized = []
    for block in blocks:
        block = block.tocsr()
        if block.shape[1] != width:
            block = sp.csr_matrix((block.data, block.indices, block.indptr), shape=(block.shape[0], width))
        resized.append(block)
    if not resized:
        return sp.csr_matrix((0, width), dtype=np.float32).asformat(format)
    return sp.vstack(resized, format=format, dtype=np.float32)
