"""Item vectors in the shared search service, and the live catalogue the pipeline ranks from.

The index remembers which model embedded it (``index_model`` in the plugin's state
table). When another model is active, or the index lost documents, the whole catalogue
is re-embedded before the next query; adding an item embeds just that item.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from filelock import FileLock

from plugins.recommender import ranking
from plugins.recommender.data import Item, item_text
from plugins.recommender.options import RecommenderOptions
from plugins.recommender.pipeline import lexical_query, search_terms
from plugins.recommender.store import RecommenderStore, utcnow
from services.search import Document, IndexSpec
from suite.errors import NotFoundError

if TYPE_CHECKING:
    from services.embeddings import Embedder
    from suite.context import SuiteContext

log = logging.getLogger(__name__)

PLUGIN = "recommender"
TASK = "biencoder"
MODEL_STATE_KEY = "index_model"
EMBED_BATCH = 256
DEFAULT_DIMENSION = 384


@dataclass(frozen=True)
class ModelChoice:
    """The model that embeds items now: the active fine-tuned version, else the plain backbone."""

    ref: str  # "recommender/biencoder@v2" or "zero-shot:<backbone>"
    path: str

    @property
    def fine_tuned(self) -> bool:
        return not self.ref.startswith("zero-shot:")


def current_model(ctx: SuiteContext) -> ModelChoice:
    version = ctx.registry.active(PLUGIN, TASK)
    if version is not None:
        return ModelChoice(version.ref, str(version.path))
    backbone = ctx.backbone(PLUGIN)
    return ModelChoice(f"zero-shot:{backbone}", backbone)


def backbone_dimension(path: str) -> int:
    """The hidden size from a model folder's config.json, without loading torch."""
    try:
        config = json.loads((Path(path) / "config.json").read_text())
        return int(config.get("hidden_size") or config.get("dim") or DEFAULT_DIMENSION)
    except (OSError, ValueError, TypeError):
        return DEFAULT_DIMENSION


def index_spec(ctx: SuiteContext, options: RecommenderOptions, dimension: int | None = None) -> IndexSpec:
    dimension = dimension or backbone_dimension(ctx.backbone(PLUGIN))
    return IndexSpec(options.index, vector_dim=dimension, description="recommender items (text embeddings)")


class ItemIndex:
    """The ``recommender-items`` index: one document per item, its vector from the current model."""

    def __init__(self, ctx: SuiteContext, store: RecommenderStore, options: RecommenderOptions) -> None:
        self.ctx = ctx
        self.store = store
        self.options = options
        self.name = options.index
        self._lock = threading.Lock()

    @property
    def search(self):
        return self.ctx.search

    def model(self) -> ModelChoice:
        return current_model(self.ctx)

    def embedder(self, model: ModelChoice | None = None) -> Embedder:
        return self.ctx.embedder((model or self.model()).path)

    def spec(self, dimension: int | None = None) -> IndexSpec:
        return index_spec(self.ctx, self.options, dimension)

    def document(self, item: Item, vector: np.ndarray) -> Document:
        metadata = {
            **item.metadata,
            "title": item.title,
            "tags": list(item.tags),
            "created_at": (item.created_at or utcnow()).isoformat(),
        }
        return Document(item.id, item_text(item, self.options.text_template), vector, metadata)

    # -- writing ----------------------------------------------------------------------
    def ensure_current(self, progress: bool = True) -> bool:
        """Re-embed everything if the model changed or the index is not complete; True if it did."""
        model = self.model()
        if self._is_current(model):
            return False
        # One rebuild at a time, across threads and processes; whoever waited finds it done.
        with self._lock, FileLock(str(self.ctx.plugin_dir(PLUGIN) / "index.lock")):
            if self._is_current(model):
                return False
            self.rebuild(model, progress=progress)
        return True

    def _is_current(self, model: ModelChoice) -> bool:
        if self.store.get_state(MODEL_STATE_KEY) != model.ref or self.name not in self.search.list_indexes():
            return False
        return self.search.count(self.name) == self.store.stats()["items"]

    def rebuild(self, model: ModelChoice | None = None, progress: bool = True) -> int:
        """Embed every stored item with ``model``; returns the number of items.

        With an index of the same dimension the vectors are replaced in place, so queries
        keep working during the rebuild; documents left over from removed items (or a
        dimension change) mean a fresh index.
        """
        model = model or self.model()
        embedder = self.embedder(model)
        exists = self.name in self.search.list_indexes()
        if exists and self.search.describe(self.name).vector_dim != embedder.dimension:
            self.search.drop_index(self.name)
            exists = False
        self.search.ensure_index(self.spec(embedder.dimension))
        total = self._embed_all(embedder, progress)
        if exists and self.search.count(self.name) != total:
            self.search.drop_index(self.name)
            self.search.ensure_index(self.spec(embedder.dimension))
            total = self._embed_all(embedder, progress)  # vectors come from the embedder's cache
        self.store.set_state(MODEL_STATE_KEY, model.ref)
        log.info("recommender: embedded %d items with %s", total, model.ref)
        return total

    def _embed_all(self, embedder: Embedder, progress: bool) -> int:
        batch: list[Item] = []
        total = 0
        for item in self.store.iter_items():
            batch.append(item)
            if len(batch) >= EMBED_BATCH:
                total += self._embed_and_upsert(batch, embedder, progress)
                batch = []
        if batch:
            total += self._embed_and_upsert(batch, embedder, progress)
        return total

    def embed(self, items: Sequence[Item], embedder: Embedder | None = None, progress: bool = False) -> np.ndarray:
        """The items' vectors from ``embedder`` (default: the current model); writes nothing."""
        texts = [item_text(item, self.options.text_template) for item in items]
        return (embedder or self.embedder()).encode(texts, show_progress=progress)

    def put(self, items: Sequence[Item], vectors: np.ndarray) -> int:
        """Write already embedded items into the index."""
        return self.search.upsert(self.name, [self.document(i, v) for i, v in zip(items, vectors, strict=True)])

    def _embed_and_upsert(self, items: list[Item], embedder: Embedder, progress: bool) -> int:
        return self.put(items, self.embed(items, embedder, progress))

    def delete(self, ids: Iterable[str]) -> int:
        if self.name not in self.search.list_indexes():
            return 0
        return self.search.delete(self.name, list(ids))

    # -- reading ----------------------------------------------------------------------
    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        dimension = None
        rows: list[np.ndarray | None] = []
        for item in ids:
            document = self.search.get(self.name, item)
            vector = None if document is None or document.vector is None else np.asarray(document.vector, np.float32)
            if vector is not None:
                dimension = len(vector)
                norm = float(np.linalg.norm(vector))
                vector = vector / norm if norm > 0 else vector
            rows.append(vector)
        dimension = dimension or self.spec().vector_dim or DEFAULT_DIMENSION
        return (
            np.stack([row if row is not None else np.zeros(dimension, np.float32) for row in rows])
            if rows
            else (np.zeros((0, dimension), np.float32))
        )

    def nearest(self, vector: np.ndarray, n: int, filters: Mapping[str, Any] | None) -> dict[str, float]:
        hits = self.search.search(self.name, vector=vector, k=n, mode="vector", filters=_filters(filters))
        return {hit.id: float(hit.score) for hit in hits}

    def lexical(self, text: str, n: int, filters: Mapping[str, Any] | None) -> dict[str, float]:
        if not text or not search_terms(text):
            return {}
        hits = self.search.search(self.name, text=text, k=n, mode="bm25", filters=_filters(filters))
        return {hit.id: float(hit.score) for hit in hits}


def _filters(filters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(filters) if filters else None


class LiveCatalogue:
    """The pipeline's view of the stored catalogue: vectors and retrieval from the index,
    priors and filters from the database."""

    def __init__(
        self,
        index: ItemIndex,
        store: RecommenderStore,
        options: RecommenderOptions,
        popularity: Mapping[str, int] | None = None,
    ) -> None:
        self.index = index
        self.store = store
        self.options = options
        self._items: dict[str, Item] = {}
        self._popularity = popularity

    def items(self, ids: Sequence[str]) -> dict[str, Item]:
        missing = [item for item in ids if item not in self._items]
        if missing:
            self._items.update({item.id: item for item in self.store.get_items(missing)})
        return {item: self._items[item] for item in ids if item in self._items}

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        return self.index.vectors(ids)

    def nearest(self, vector: np.ndarray, n: int, filters: Mapping[str, Any] | None) -> dict[str, float]:
        return self.index.nearest(vector, n, filters)

    def lexical(self, texts: Sequence[str], n: int, filters: Mapping[str, Any] | None) -> dict[str, float]:
        return self.index.lexical(lexical_query(texts), n, filters)

    def popular(self, n: int, filters: Mapping[str, Any] | None) -> list[str]:
        ranked = sorted(self._counts().items(), key=lambda pair: (-pair[1], pair[0]))
        chosen: list[str] = []
        for start in range(0, len(ranked), max(n, 100)):
            chunk = [item for item, _ in ranked[start : start + max(n, 100)]]
            chosen.extend(self.keep(chunk, filters))
            if len(chosen) >= n:
                break
        return chosen[:n]

    def _counts(self) -> Mapping[str, int]:
        if self._popularity is None:
            self._popularity = self.store.popularity()
        return self._popularity

    def priors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        counts = self._counts()
        top = max(counts.values(), default=0)
        popularity = np.asarray([np.log1p(counts.get(item, 0)) for item in ids], dtype=np.float64)
        popularity = popularity / np.log1p(top) if top > 0 else popularity
        items = self.items(ids)
        now = utcnow()
        ages = np.asarray([_age_days(items[item].created_at, now) if item in items else np.nan for item in ids])
        return {
            "popularity": popularity.astype(np.float32),
            "freshness": ranking.freshness_scores(ages, self.options.freshness_half_life_days),
        }

    def texts(self, ids: Sequence[str]) -> list[str]:
        items = self.items(ids)
        return [item_text(items[item], self.options.text_template) for item in ids if item in items]

    def keep(self, ids: Sequence[str], filters: Mapping[str, Any] | None) -> list[str]:
        items = self.items(ids)
        return [item for item in ids if item in items and _passes(items[item], filters)]

    def item(self, item_id: str) -> Item:
        items = self.items([item_id])
        if item_id not in items:
            raise NotFoundError(f"unknown item '{item_id}'")
        return items[item_id]


def _age_days(created: datetime | None, now: datetime) -> float:
    return np.nan if created is None else max((now - created).total_seconds() / 86400.0, 0.0)


def _passes(item: Item, filters: Mapping[str, Any] | None) -> bool:
    from plugins.recommender.pipeline import _matches

    if not filters:
        return True
    fields = {**item.metadata, "title": item.title, "tags": item.tags}
    return all(_matches(fields.get(key), value) for key, value in filters.items())
