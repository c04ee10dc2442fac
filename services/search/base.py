"""The search contract shared by both backends: records, filters, query checks and fusion.

Everything here is backend-neutral, so the embedded and the Elasticsearch backends
validate input the same way and raise the same errors for the same mistakes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from services.errors import DataError

SearchMode = Literal["bm25", "vector", "hybrid"]
SEARCH_MODES: tuple[str, ...] = ("bm25", "vector", "hybrid")
RANGE_OPERATORS = frozenset({"gte", "lte", "gt", "lt"})
INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
MAX_ID_BYTES = 512  # Elasticsearch's limit on _id; the embedded backend keeps the same rule.


@dataclass
class Document:
    """One searchable passage: its id, text, optional embedding and metadata for filters."""

    id: str
    text: str
    vector: list[float] | np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hit:
    """One search result; ``bm25_rank``/``vector_rank`` are 1-based ranks in each leg."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any]
    bm25_rank: int | None = None
    vector_rank: int | None = None


@dataclass
class IndexSpec:
    """An index to create: ``vector_dim=None`` makes a text-only (BM25) index."""

    name: str
    vector_dim: int | None = 384
    description: str = ""


@dataclass
class IndexInfo:
    """What ``describe`` reports about an existing index."""

    name: str
    documents: int
    vector_dim: int | None
    backend: str
    description: str = ""


@runtime_checkable
class SearchBackend(Protocol):
    """The interface both backends implement (see the CONTRACT in ``services.search``)."""

    def ensure_index(self, spec: IndexSpec) -> None: ...

    def drop_index(self, name: str) -> None: ...

    def list_indexes(self) -> list[str]: ...

    def describe(self, name: str) -> IndexInfo: ...

    def upsert(self, index: str, documents: Iterable[Document], batch_size: int = 500) -> int: ...

    def delete(self, index: str, ids: Iterable[str]) -> int: ...

    def get(self, index: str, id: str) -> Document | None: ...

    def count(self, index: str, filters: dict[str, Any] | None = None) -> int: ...

    def search(
        self,
        index: str,
        *,
        text: str | None = None,
        vector: Sequence[float] | np.ndarray | None = None,
        k: int = 10,
        mode: SearchMode | None = None,
        filters: dict[str, Any] | None = None,
    ) -> list[Hit]: ...

    def close(self) -> None: ...


# -- filters ---------------------------------------------------------------------------
Scalar = str | int | float | bool


@dataclass(frozen=True)
class Equals:
    value: Scalar


@dataclass(frozen=True)
class AnyOf:
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Range:
    gte: Scalar | None = None
    lte: Scalar | None = None
    gt: Scalar | None = None
    lt: Scalar | None = None

    def bounds(self) -> dict[str, Scalar]:
        return {op: value for op in ("gte", "lte", "gt", "lt") if (value := getattr(self, op)) is not None}


Condition = Equals | AnyOf | Range


def parse_filters(filters: dict[str, Any] | None) -> list[tuple[str, Condition]]:
    """Check a filter dict and turn it into ``(field, condition)`` pairs, all of which must hold.

    ``{"lang": "en"}`` equality, ``{"lang": ["en", "de"]}`` any-of, ``{"year": {"gte": 2020}}``
    range (``gte``/``lte``/``gt``/``lt``). A field is a metadata key; dots reach into nested
    metadata (``"source.site"``). A list-valued metadata field matches when any element does.
    """
    if not filters:
        return []
    if not isinstance(filters, dict):
        raise DataError(f"filters must be a dict of field -> value, not {type(filters).__name__}")
    return [(_check_field(name), _condition(name, value)) for name, value in filters.items()]


def _check_field(name: Any) -> str:
    if not isinstance(name, str) or not name or '"' in name or any(not part for part in name.split(".")):
        raise DataError(f"filter field must be a metadata key (dots for nested keys, no quotes), got {name!r}")
    return name


def _condition(name: str, value: Any) -> Condition:
    if isinstance(value, dict):
        unknown = set(value) - RANGE_OPERATORS
        if unknown or not value:
            raise DataError(
                f"filter '{name}': a range takes gte, lte, gt, lt (got {', '.join(map(str, value)) or 'nothing'})"
            )
        bounds = {op: _scalar(name, bound) for op, bound in value.items()}
        kinds = {scalar_kind(bound) for bound in bounds.values()}
        if len(kinds) > 1 or "bool" in kinds:
            raise DataError(f"filter '{name}': range bounds must be all numbers or all strings")
        return Range(**bounds)
    if isinstance(value, list | tuple | set | frozenset):
        return AnyOf(tuple(_scalar(name, item) for item in value))
    return Equals(_scalar(name, value))


def _scalar(name: str, value: Any) -> Scalar:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise DataError(f"filter '{name}': {value} is not a finite number")
    if not isinstance(value, str | int | float | bool):
        raise DataError(f"filter '{name}': values must be strings, numbers or booleans, not {value!r}")
    return value


def scalar_kind(value: Any) -> str | None:
    """'bool', 'number', 'string' or None: values only compare within one kind."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


# -- documents and queries -------------------------------------------------------------
def check_index_name(name: str) -> str:
    if not isinstance(name, str) or not INDEX_NAME.match(name):
        raise DataError(
            f"invalid index name {name!r}: use lowercase letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return name


def check_spec(spec: IndexSpec) -> IndexSpec:
    check_index_name(spec.name)
    if spec.vector_dim is not None and (not isinstance(spec.vector_dim, int) or not 1 <= spec.vector_dim <= 4096):
        raise DataError(f"index '{spec.name}': vector_dim must be an integer from 1 to 4096 or None")
    return spec


def check_k(k: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise DataError(f"k must be a positive integer, got {k!r}")
    return k


def as_vector(vector: Any, dim: int | None, what: str) -> np.ndarray:
    """A finite, non-zero float32 vector of length ``dim``, or :class:`DataError`."""
    if dim is None:
        raise DataError(f"{what}: this index stores no vectors (vector_dim is None)")
    try:
        array = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError(f"{what}: vector is not a list of numbers") from None
    if array.ndim != 1 or array.shape[0] != dim:
        got = array.shape[0] if array.ndim == 1 else array.shape
        raise DataError(f"{what}: vector has dimension {got}, index expects {dim}")
    if not np.isfinite(array).all():
        raise DataError(f"{what}: vector contains NaN or infinity")
    if not np.any(array):
        raise DataError(f"{what}: vector is all zeros (cosine similarity is undefined)")
    return array


def check_document(doc: Any, dim: int | None) -> tuple[Document, np.ndarray | None, str]:
    """Validate one document; return it, its float32 vector (or None) and its metadata as JSON."""
    if not isinstance(doc, Document):
        raise DataError(f"expected a services.search.Document, got {type(doc).__name__}")
    if not isinstance(doc.id, str) or not doc.id or len(doc.id.encode()) > MAX_ID_BYTES:
        raise DataError(f"document id must be a non-empty string of at most {MAX_ID_BYTES} bytes, got {doc.id!r}")
    if not isinstance(doc.text, str):
        raise DataError(f"document '{doc.id}': text must be a string")
    if not isinstance(doc.metadata, dict):
        raise DataError(f"document '{doc.id}': metadata must be a dict")
    try:
        metadata_json = json.dumps(doc.metadata, ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise DataError(f"document '{doc.id}': metadata is not JSON-serialisable ({exc})") from None
    vector = None if doc.vector is None else as_vector(doc.vector, dim, f"document '{doc.id}'")
    return doc, vector, metadata_json


def resolve_mode(text: str | None, vector: Any, mode: str | None) -> SearchMode:
    """The search mode to run: the one asked for, else inferred from what was given."""
    has_vector = vector is not None
    if mode is None:
        if text is not None and has_vector:
            return "hybrid"
        if has_vector:
            return "vector"
        if text is not None:
            mode = "bm25"
        else:
            raise DataError("search needs text, a vector, or both")
    if mode not in SEARCH_MODES:
        raise DataError(f"unknown search mode {mode!r} (use one of: {', '.join(SEARCH_MODES)})")
    if mode in ("bm25", "hybrid") and (not isinstance(text, str) or not text.strip()):
        raise DataError(f"{mode} search needs non-empty query text")
    if mode in ("vector", "hybrid") and not has_vector:
        raise DataError(f"{mode} search needs a query vector (embed the text first)")
    return mode  # type: ignore[return-value]


def rank_window(k: int) -> int:
    """How many results each leg of a hybrid search contributes to the fusion."""
    return max(50, 2 * k)


def reciprocal_rank_fusion(bm25_hits: Sequence[Hit], vector_hits: Sequence[Hit], *, k: int, rrf_k: int) -> list[Hit]:
    """Fuse two ranked lists: ``score(d) = sum over lists of 1 / (rrf_k + rank(d))``, ranks from 1.

    Ties are broken by the better single rank, then by id, so both backends agree.
    """
    fused: dict[str, Hit] = {}
    for leg, hits in (("bm25_rank", bm25_hits), ("vector_rank", vector_hits)):
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(hit.id, Hit(hit.id, 0.0, hit.text, hit.metadata))
            entry.score += 1.0 / (rrf_k + rank)
            setattr(entry, leg, rank)
    best_rank = lambda hit: min(r for r in (hit.bm25_rank, hit.vector_rank) if r is not None)  # noqa: E731
    return sorted(fused.values(), key=lambda hit: (-hit.score, best_rank(hit), hit.id))[:k]


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    if size < 1:
        raise DataError(f"batch_size must be positive, got {size}")
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
