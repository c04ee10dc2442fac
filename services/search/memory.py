"""The in-memory side of the embedded backend: BM25 terms, vectors and metadata by slot.

A ``MemoryIndex`` knows nothing of SQLite; the embedded backend rebuilds one from the
database on open and feeds it every change, so it can also be used on its own (for
instance by a benchmark). Documents live in *slots*: an upsert of an existing id kills
the old slot and appends a new one; dead slots are dropped by an occasional compaction.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.search.base import AnyOf, Condition, Equals, Range, batched, scalar_kind
from services.search.bm25 import BM25Params, TermMatrix, decode_strings, encode_strings
from services.search.text import Tokenizer

MISSING = object()
ADD_CHUNK = 4096  # documents tokenised and appended per vectorised step
COMPACT_MIN_DEAD = 1_000
COMPACT_FRACTION = 0.3

# (id, text, float32 vector or None, metadata dict or None when not at hand)
Entry = tuple[str, str, "np.ndarray | None", "dict[str, Any] | None"]
MetadataLoader = Callable[[str], Iterable[tuple[str, Any]]]


def lookup(metadata: dict[str, Any], field: str) -> Any:
    """``metadata["a"]["b"]`` for field ``"a.b"``; MISSING where absent."""
    value: Any = metadata
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def normalise(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32, copy=False)


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


@dataclass
class _TypedValues:
    """A column's first ``size`` slots split by kind, for vectorised filtering."""

    size: int
    numbers: np.ndarray  # float64, NaN where not a number
    booleans: np.ndarray  # int8: 0, 1, or -1 where not a boolean
    strings: np.ndarray  # the string values, sorted (object array: no fixed-width copies)
    string_slots: np.ndarray  # the slot of each sorted string
    list_slots: np.ndarray  # slots holding lists: matched element by element

    @classmethod
    def of(cls, values: list[Any]) -> _TypedValues:
        size = len(values)
        numbers = np.fromiter(
            (v if scalar_kind(v) == "number" else np.nan for v in values), dtype=np.float64, count=size
        )
        booleans = np.fromiter((int(v) if isinstance(v, bool) else -1 for v in values), dtype=np.int8, count=size)
        string_slots = np.fromiter((i for i, v in enumerate(values) if isinstance(v, str)), dtype=np.int64)
        strings = np.empty(string_slots.size, dtype=object)
        strings[:] = [values[i] for i in string_slots]
        order = np.argsort(strings, kind="stable")
        list_slots = np.fromiter((i for i, v in enumerate(values) if isinstance(v, list)), dtype=np.int64)
        return cls(size, numbers, booleans, strings[order], string_slots[order], list_slots)

    def mask(self, condition: Condition) -> np.ndarray:
        if isinstance(condition, AnyOf):
            result = np.zeros(self.size, dtype=bool)
            for value in condition.values:
                result |= self.mask(Equals(value))
            return result
        if isinstance(condition, Equals):
            kind = scalar_kind(condition.value)
            if kind == "bool":
                return self.booleans == int(condition.value)
            if kind == "number":
                return self.numbers == condition.value
            return self._string_range(Range(gte=condition.value, lte=condition.value))
        if scalar_kind(next(iter(condition.bounds().values()))) == "string":
            return self._string_range(condition)
        result = np.ones(self.size, dtype=bool)
        for op, bound in condition.bounds().items():
            result &= _compare(self.numbers, op, bound)  # NaN compares False: non-numbers drop out
        return result

    def _string_range(self, condition: Range) -> np.ndarray:
        """Binary search in the sorted strings: O(log n) per bound, not a Python compare per row."""
        low, high = 0, self.strings.size
        if condition.gte is not None:
            low = max(low, int(np.searchsorted(self.strings, condition.gte, "left")))
        if condition.gt is not None:
            low = max(low, int(np.searchsorted(self.strings, condition.gt, "right")))
        if condition.lte is not None:
            high = min(high, int(np.searchsorted(self.strings, condition.lte, "right")))
        if condition.lt is not None:
            high = min(high, int(np.searchsorted(self.strings, condition.lt, "left")))
        result = np.zeros(self.size, dtype=bool)
        if low < high:
            result[self.string_slots[low:high]] = True
        return result


class MetadataColumn:
    """One metadata field across slots.

    Filtering uses typed arrays of the slots present when they were built; slots added
    since (upserts append slots, they never change old ones) are checked one by one until
    there are enough of them to make rebuilding the arrays worth it.
    """

    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self._typed: _TypedValues | None = None

    def set(self, slot: int, value: Any) -> None:
        if slot >= len(self.values):
            self.values.extend([MISSING] * (slot + 1 - len(self.values)))
        self.values[slot] = value
        if self._typed is not None and slot < self._typed.size:
            self._typed = None

    def take(self, rows: np.ndarray) -> None:
        self.values = [self.values[row] if row < len(self.values) else MISSING for row in rows]
        self._typed = None

    def mask(self, condition: Condition, n: int) -> np.ndarray:
        if len(self.values) < n:
            self.values.extend([MISSING] * (n - len(self.values)))
        typed = self._typed
        if typed is None or typed.size > n or n - typed.size > max(1_000, n // 10):
            typed = self._typed = _TypedValues.of(self.values[:n])
        result = np.zeros(n, dtype=bool)
        result[: typed.size] = typed.mask(condition)
        for slot in itertools.chain(typed.list_slots, range(typed.size, n)):
            result[slot] = value_matches(self.values[slot], condition)
        return result


def _compare(values: Any, op: str, bound: Any) -> Any:
    if op == "gte":
        return values >= bound
    if op == "lte":
        return values <= bound
    if op == "gt":
        return values > bound
    return values < bound


def value_matches(value: Any, condition: Condition) -> bool:
    """Does one metadata value satisfy a condition? A list does when any element does."""
    if isinstance(value, list):
        return any(matches(item, condition) for item in value)
    return matches(value, condition)


def matches(value: Any, condition: Condition) -> bool:
    """Does one scalar metadata value satisfy a condition? (Same rules as the typed arrays.)"""
    kind = scalar_kind(value)
    if kind is None:
        return False
    if isinstance(condition, Equals):
        return kind == scalar_kind(condition.value) and value == condition.value
    if isinstance(condition, AnyOf):
        return any(matches(value, Equals(item)) for item in condition.values)
    assert isinstance(condition, Range)
    bounds = condition.bounds()
    if kind != scalar_kind(next(iter(bounds.values()))):
        return False
    return all(_compare(value, op, bound) for op, bound in bounds.items())


class MemoryIndex:
    """BM25 + exact kNN + metadata filters over documents held by slot."""

    def __init__(
        self,
        vector_dim: int | None,
        *,
        tokenizer: Tokenizer | None = None,
        bm25: BM25Params | None = None,
        metadata_loader: MetadataLoader | None = None,
    ) -> None:
        self.vector_dim = vector_dim
        self.tokenizer = tokenizer or Tokenizer()
        self.params = bm25 or BM25Params()
        self.metadata_loader = metadata_loader
        self.terms = TermMatrix()
        self.ids: list[str] = []
        self.slot_of: dict[str, int] = {}
        self.alive = np.zeros(0, dtype=bool)
        self.has_vector = np.zeros(0, dtype=bool)
        self.vectors = np.zeros((0, vector_dim or 0), dtype=np.float32)
        self.columns: dict[str, MetadataColumn] = {}
        self.n_alive = 0
        self.total_length = 0.0

    def __len__(self) -> int:
        return self.n_alive

    @property
    def n_slots(self) -> int:
        return len(self.ids)

    # -- changes -------------------------------------------------------------------------
    def add_many(self, entries: Iterable[Entry]) -> None:
        """Insert or replace documents (vectors need not be normalised: that happens here)."""
        if isinstance(entries, Sized) and len(entries) > self.alive.shape[0] // 2:
            self._reserve(self.n_slots + len(entries), exact=True)  # a bulk load: grow once, no slack
        for chunk in batched(entries, ADD_CHUNK):
            token_lists = self.tokenizer.tokenize_many(text for _, text, _, _ in chunk)
            first = self.terms.append_many(token_lists)
            self._reserve(first + len(chunk))
            with_vector = []
            for offset, (doc_id, _, vector, metadata) in enumerate(chunk):
                slot = first + offset
                self._remove(doc_id)  # an earlier version, perhaps earlier in this very chunk
                self.ids.append(doc_id)
                self.slot_of[doc_id] = slot
                self.alive[slot] = True
                if vector is not None:
                    with_vector.append(offset)
                self._set_metadata(slot, metadata)
            self.n_alive += len(chunk)
            self.total_length += float(self.terms.lengths[first : first + len(chunk)].sum())
            if with_vector and self.vector_dim:
                slots = first + np.asarray(with_vector)
                self.vectors[slots] = normalise_rows(np.stack([chunk[offset][2] for offset in with_vector]))
                self.has_vector[slots] = True
        self.terms.maybe_merge()
        self.maybe_compact()

    def remove_many(self, ids: Iterable[str]) -> int:
        removed = sum(self._remove(doc_id) for doc_id in ids)
        self.maybe_compact()
        return removed

    def _remove(self, doc_id: str) -> bool:
        slot = self.slot_of.pop(doc_id, None)
        if slot is None:
            return False
        self.alive[slot] = False
        self.has_vector[slot] = False
        self.n_alive -= 1
        self.total_length -= self.terms.lengths[slot]
        return True

    def _set_metadata(self, slot: int, metadata: dict[str, Any] | None) -> None:
        if not self.columns:
            return
        if metadata is None:  # values not at hand: forget the columns, they reload on demand
            self.columns.clear()
            return
        for field, column in self.columns.items():
            column.set(slot, lookup(metadata, field))

    def _reserve(self, size: int, exact: bool = False) -> None:
        capacity = self.alive.shape[0]
        if size <= capacity:
            return
        capacity = size if exact else max(size, 1024, int(capacity * 1.5))
        self.alive = _grow(self.alive, capacity)
        self.has_vector = _grow(self.has_vector, capacity)
        if self.vector_dim:
            self.vectors = _grow(self.vectors, capacity)

    def maybe_compact(self) -> None:
        dead = self.n_slots - self.n_alive
        if dead >= COMPACT_MIN_DEAD and dead > COMPACT_FRACTION * self.n_slots:
            self.compact()

    def compact(self) -> None:
        """Drop dead slots and renumber the live ones in order."""
        keep = np.flatnonzero(self.alive[: self.n_slots])
        self.terms.take(keep)
        self.ids = [self.ids[slot] for slot in keep]
        self.slot_of = {doc_id: slot for slot, doc_id in enumerate(self.ids)}
        self.alive = np.ones(len(keep), dtype=bool)
        self.has_vector = self.has_vector[keep]  # fancy indexing copies already
        if self.vector_dim:
            self.vectors = self.vectors[keep]
        for column in self.columns.values():
            column.take(keep)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The whole index as plain arrays (after a compaction), for a snapshot file."""
        if self.n_alive != self.n_slots:
            self.compact()
        n = self.n_slots
        return {
            **self.terms.to_arrays(),
            "ids": encode_strings(self.ids),
            "has_vector": self.has_vector[:n],
            "vectors": self.vectors[:n],
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], vector_dim: int | None, **options: Any) -> MemoryIndex:
        """The inverse of :meth:`to_arrays`; ``options`` as for the constructor."""
        memory = cls(vector_dim, **options)
        memory.terms = TermMatrix.from_arrays(arrays)
        memory.ids = decode_strings(arrays["ids"])
        n = len(memory.ids)
        if memory.terms.n_rows != n or (vector_dim and arrays["vectors"].shape != (n, vector_dim)):
            raise ValueError("snapshot arrays do not agree in size")
        memory.slot_of = {doc_id: slot for slot, doc_id in enumerate(memory.ids)}
        memory.alive = np.ones(n, dtype=bool)
        memory.has_vector = np.array(arrays["has_vector"], dtype=bool)
        if vector_dim:
            memory.vectors = np.array(arrays["vectors"], dtype=np.float32)
        memory.n_alive = n
        memory.total_length = float(memory.terms.lengths.sum())
        return memory

    # -- queries -------------------------------------------------------------------------
    def filter_mask(self, conditions: list[tuple[str, Condition]]) -> np.ndarray | None:
        """Live slots that satisfy every condition, or None when there are no conditions."""
        if not conditions:
            return None
        n = self.n_slots
        mask = self.alive[:n].copy()
        for field, condition in conditions:
            mask &= self._column(field).mask(condition, n)
        return mask

    def _column(self, field: str) -> MetadataColumn:
        column = self.columns.get(field)
        if column is None:
            values: list[Any] = [MISSING] * self.n_slots
            for doc_id, value in self.metadata_loader(field) if self.metadata_loader else ():
                slot = self.slot_of.get(doc_id)
                if slot is not None:
                    values[slot] = value
            column = self.columns[field] = MetadataColumn(values)
        return column

    def count(self, conditions: list[tuple[str, Condition]]) -> int:
        mask = self.filter_mask(conditions)
        return self.n_alive if mask is None else int(mask.sum())

    def bm25(self, text: str, k: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """The top ``k`` BM25 matches of ``text`` as ``(id, score)``, best first."""
        alive = self.alive if mask is None else mask
        slots, scores = self.terms.score(self.tokenizer(text), alive, self.n_alive, self.total_length, self.params)
        return self._top(slots, scores, k)

    def knn(self, vector: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """The ``k`` nearest documents by cosine similarity as ``(id, similarity)``, best first."""
        if not self.vector_dim:
            return []
        n = self.n_slots
        eligible = self.has_vector[:n] if mask is None else self.has_vector[:n] & mask
        query = normalise(np.asarray(vector, dtype=np.float32))
        if eligible.all():  # the common case: every row, no index arrays, no gather
            return self._top(None, self.vectors[:n] @ query, k)
        slots = np.flatnonzero(eligible)
        if slots.size == 0:
            return []
        # A selective filter scores only its rows; otherwise one matrix product beats a gather.
        selective = slots.size < n // 2
        scores = self.vectors[slots] @ query if selective else (self.vectors[:n] @ query)[slots]
        return self._top(slots, scores, k)

    def _top(self, slots: np.ndarray | None, scores: np.ndarray, k: int) -> list[tuple[str, float]]:
        """Best ``k`` by score; ties go to the smaller id, so slot order never shows.

        ``slots`` maps score positions to slots; ``None`` means position ``i`` is slot ``i``.
        """
        ids = self.ids

        def doc_id(position: int) -> str:
            return ids[position if slots is None else slots[position]]

        if scores.size > k:
            kth = scores[np.argpartition(scores, scores.size - k)[scores.size - k]]
            above = np.flatnonzero(scores > kth)
            ties = np.flatnonzero(scores == kth)
            chosen = list(above) + heapq.nsmallest(k - above.size, ties, key=doc_id)
        else:
            chosen = range(scores.size)
        ordered = sorted(chosen, key=lambda i: (-scores[i], doc_id(i)))
        return [(doc_id(i), float(scores[i])) for i in ordered]


def _grow(array: np.ndarray, capacity: int) -> np.ndarray:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: array.shape[0]] = array
    return grown
