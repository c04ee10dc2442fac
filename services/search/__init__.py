r"""Search: one interface, two backends (embedded on disk, Elasticsearch).

CONTRACT (implemented in base.py / embedded.py / elastic.py):

    @dataclass class Document:  id: str; text: str; vector: list[float] | np.ndarray | None = None;
                                metadata: dict[str, Any] = {}
    @dataclass class Hit:       id: str; score: float; text: str; metadata: dict[str, Any];
                                bm25_rank: int | None = None; vector_rank: int | None = None
    @dataclass class IndexSpec: name: str; vector_dim: int | None = 384; description: str = ""

    class SearchBackend(Protocol):
        def ensure_index(self, spec: IndexSpec) -> None            # idempotent
        def drop_index(self, name: str) -> None
        def list_indexes(self) -> list[str]
        def upsert(self, index: str, documents: Iterable[Document], batch_size: int = 500) -> int
        def delete(self, index: str, ids: Iterable[str]) -> int
        def get(self, index: str, id: str) -> Document | None
        def count(self, index: str, filters: dict | None = None) -> int
        def search(self, index: str, *, text: str | None = None, vector=None, k: int = 10,
                   mode: Literal["bm25", "vector", "hybrid"] | None = None,   # None: inferred
                   filters: dict[str, Any] | None = None) -> list[Hit]
        def close(self) -> None

    Filters: {"field": value} equality on metadata, {"field": [v1, v2]} any-of,
    {"field": {"gte": x, "lte": y}} range. Hybrid = reciprocal-rank fusion (k = config rrf_k).

    def open_search_backend(config: SearchConfig, data_dir: Path) -> SearchBackend

Additions to the contract (additive, same on both backends):

    @dataclass class IndexInfo: name: str; documents: int; vector_dim: int | None; backend: str;
                                description: str = ""
    SearchBackend.describe(name: str) -> IndexInfo

Behaviour both backends share:

* Errors: an unknown index -> NotFoundError (search, upsert, delete, get, count, describe,
  drop_index); a vector of the wrong dimension, NaN or all zeros -> DataError; empty query
  text in bm25/hybrid mode -> DataError; a vector mode without a vector -> DataError (the
  backend never embeds: callers use ``ctx.embedder()``); ensure_index with another
  vector_dim than the existing index -> DataError. Index names: ``[a-z0-9][a-z0-9_.-]*``.
* Mode inference: text and vector -> hybrid, text only -> bm25, vector only -> vector.
* Scores: bm25 is Okapi BM25 (k1=1.5, b=0.75, idf = ln(1 + (N - df + 0.5) / (df + 0.5)));
  vector is the cosine similarity; hybrid is sum(1 / (rrf_k + rank)) over the two lists,
  each cut at ``max(50, 2k)``. Equal scores are ordered by id on the embedded backend.
* Filters: a field is a metadata key, dots reach nested keys ("source.site"). Values
  compare within one kind (strings, numbers, booleans); a range takes gte/lte/gt/lt
  with all-number or all-string bounds; a list-valued metadata field matches when
  any element does (as in Elasticsearch). All filters must hold.
* Writes are visible to the next search of any process: the embedded backend reloads
  what other processes wrote, Elasticsearch writes end with ``refresh="wait_for"``.
  Embedded upserts are all-or-nothing per call; Elasticsearch ones per batch.
* ``get`` returns the vector as it was given (not normalised).

Where things are: ``base.py`` (records, filters, fusion), ``text.py`` (``Tokenizer``: lowercase
``\w+`` tokens minus spaCy's English stop words, configurable pattern/stop words/stemmer),
``bm25.py`` (``BM25Params``, the scipy term matrix), ``memory.py`` (``MemoryIndex``: BM25, exact
kNN and filters in memory, usable alone, e.g. by benchmarks), ``embedded.py`` (SQLite at
``<data_dir>/search/search.db`` plus memory indexes), ``snapshot.py`` (reopen caches),
``elastic.py`` (Elasticsearch). Same tokens for rank_bm25/bm25s: ``Tokenizer()(text)``;
bm25s ``method="lucene"`` scores are ours divided by (k1 + 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from services.search.base import Document, Hit, IndexInfo, IndexSpec, SearchBackend

if TYPE_CHECKING:
    from services.settings import SearchConfig

__all__ = ["Document", "Hit", "IndexInfo", "IndexSpec", "SearchBackend", "open_search_backend"]


def open_search_backend(config: SearchConfig, data_dir: Path) -> SearchBackend:
    """The backend the config names: embedded under ``data_dir/search``, or Elasticsearch."""
    if config.backend == "elasticsearch":
        from services.search.elastic import ElasticsearchBackend

        return ElasticsearchBackend.from_config(config)
    from services.search.embedded import EmbeddedSearchBackend

    return EmbeddedSearchBackend(Path(data_dir) / "search", rrf_k=config.rrf_k)
