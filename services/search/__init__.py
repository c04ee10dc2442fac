"""Search: one interface, two backends (embedded on disk, Elasticsearch).

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
"""
