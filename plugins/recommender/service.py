"""The recommender as one object per process: catalogue updates, recommendations, similar items, search."""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from plugins.recommender import data as data_files
from plugins.recommender.data import Interaction, Item, item_text, parse_items
from plugins.recommender.evaluation import Components
from plugins.recommender.index import MODEL_STATE_KEY, ItemIndex, LiveCatalogue
from plugins.recommender.options import RankingWeights, RecommenderOptions
from plugins.recommender.pipeline import CollaborativeModel, Query, Ranked, collaborative_model, rank_items
from plugins.recommender.ranking import decay_weights
from plugins.recommender.store import RecommenderStore, StoredInteraction, utcnow
from suite.errors import DataError, NotFoundError

if TYPE_CHECKING:
    from suite.context import SuiteContext

log = logging.getLogger(__name__)
PLUGIN = "recommender"
TASK = "biencoder"
TUNED_WEIGHTS_KEY = "blend_weights"
MAX_K = 1000
MAX_INTERESTS_CHARS = 5000


@dataclass
class Because:
    item: str
    title: str
    similarity: float


@dataclass
class Recommendation:
    item: str
    title: str
    score: float
    signals: dict[str, float]  # share of the score each signal gave
    because: list[Because] = field(default_factory=list)  # the history items it is closest to
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    item: str
    title: str
    score: float
    tags: list[str]
    metadata: dict[str, Any]


@dataclass
class ImportReport:
    added: int
    updated_or_skipped: int
    source: str


class Recommender:
    """Store + index + pipeline for one :class:`SuiteContext`."""

    def __init__(self, ctx: SuiteContext) -> None:
        self.ctx = ctx
        self.options: RecommenderOptions = ctx.plugin_options(PLUGIN)
        self._lock = threading.RLock()
        self._collaborative: tuple[int, CollaborativeModel, dict[str, int]] | None = None

    @property
    def store(self) -> RecommenderStore:
        with self._lock:
            if "_store" not in self.__dict__:
                self._store = RecommenderStore(self.ctx.database)
            return self._store

    @property
    def index(self) -> ItemIndex:
        with self._lock:
            if "_index" not in self.__dict__:
                self._index = ItemIndex(self.ctx, self.store, self.options)
            return self._index

    # -- catalogue and history updates ---------------------------------------------------
    def import_items(self, path: str | Path, *, replace: bool = False, embed: bool = True) -> ImportReport:
        """Validate the whole file, then store and embed its items (all or nothing).

        ``embed=False`` only stores them: the index sees it is incomplete and embeds
        everything before the next query (useful right before training a new model).
        """
        items = data_files.load_items(path, self.options.text_template)
        if not embed:
            added, updated = self.store.add_items(items, replace=replace)
            self.store.set_state(MODEL_STATE_KEY, "stale")  # updated texts need new vectors too
            return ImportReport(added, updated, str(path))
        added, updated = self.add_items(items, replace=replace)
        return ImportReport(added, updated, str(path))

    def add_items(self, items: Sequence[Item], *, replace: bool = False) -> tuple[int, int]:
        """Store items and embed them from their text alone: recommendable at once, no retraining."""
        if not replace:
            existing = self.store.has_items(item.id for item in items)
            if existing:
                shown = ", ".join(sorted(existing)[:5])
                raise DataError(f"item id(s) already exist: {shown} (use --replace to update)")
        self.index.ensure_current()
        vectors = self.index.embed(items)  # before any write: a model failure leaves nothing behind
        added, updated = self.store.add_items(items, replace=replace)
        # The database is the truth: if this write fails, the next query finds the index
        # incomplete and rebuilds it.
        self.index.put(self.store.get_items([item.id for item in items]), vectors)
        return added, updated

    def add_item(self, item: Item, *, replace: bool = False) -> Item:
        checked = parse_items([(1, _item_record(item))], self.options.text_template, "item")[0]
        self.add_items([checked], replace=replace)
        return self.store.get_item(checked.id)

    def remove_item(self, item_id: str) -> int:
        """Remove an item, its interactions and its vector; returns the interactions removed."""
        removed = self.store.remove_item(item_id)
        self.index.delete([item_id])
        return removed

    def import_interactions(self, path: str | Path) -> ImportReport:
        interactions = data_files.load_interactions(path, self._item_checker())
        added, skipped = self.store.add_interactions(interactions)
        return ImportReport(added, skipped, str(path))

    def add_interactions(self, records: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
        """Validate and store interaction records (dicts with user, item, timestamp, event, rating)."""
        interactions = data_files.parse_interactions(list(enumerate(records, start=1)), self._item_checker(), "request")
        return self.store.add_interactions(interactions)

    def _item_checker(self):
        known = set(self.store.item_ids())
        return known.__contains__

    def ensure_data(self, folder: str | Path | None = None, *, embed: bool = True) -> None:
        """Import ``folder``'s items and interactions, or on a fresh store the configured (sample) files."""
        if folder:
            items_file, interactions_file = _data_files_in(Path(folder))
            self.import_items(items_file, replace=True, embed=embed)
            self.import_interactions(interactions_file)
            return
        if self.store.stats()["items"]:
            return
        items_file = self.options.items_file or data_files.SAMPLE_ITEMS
        interactions_file = self.options.interactions_file or data_files.SAMPLE_INTERACTIONS
        log.info("recommender: empty store, importing %s and %s", items_file, interactions_file)
        self.import_items(items_file, embed=embed)
        self.import_interactions(interactions_file)

    # -- reading the store ---------------------------------------------------------------
    def histories(self) -> dict[str, list[tuple[str, datetime | None]]]:
        """Every user's positive interactions, in stored (chronological) order."""
        histories: dict[str, list[tuple[str, datetime | None]]] = {}
        for interaction in self.store.all_interactions():
            if self._interaction_weight(interaction) > 0:
                histories.setdefault(interaction.user, []).append((interaction.item, interaction.timestamp))
        return histories

    def item_texts(self) -> dict[str, str]:
        return {item.id: item_text(item, self.options.text_template) for item in self.store.iter_items()}

    def item(self, item_id: str) -> Item:
        return self.store.get_item(item_id)

    def users(self, limit: int = 50, offset: int = 0) -> list[tuple[str, int]]:
        return self.store.users(limit, offset)

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = dict(self.store.stats())
        stats["index_model"] = self.store.get_state(MODEL_STATE_KEY) or "(not built yet)"
        stats["active_model"] = self.index.model().ref
        return stats

    def collaborative(self) -> CollaborativeModel:
        """The item-item co-occurrence model, rebuilt when the store changed (in any process)."""
        return self._interaction_models()[0]

    def _interaction_models(self) -> tuple[CollaborativeModel, dict[str, int]]:
        """Co-occurrence model and popularity counts, cached until the store's revision moves."""
        revision = self.store.revision()
        with self._lock:
            if self._collaborative is None or self._collaborative[0] != revision:
                histories = {user: [item for item, _ in items] for user, items in self.histories().items()}
                model = collaborative_model(histories, self.options)
                self._collaborative = (revision, model, self.store.popularity())
            return self._collaborative[1], self._collaborative[2]

    # -- recommending -----------------------------------------------------------------------
    def recommend(
        self,
        user: str | None = None,
        k: int | None = None,
        *,
        like: Sequence[str] = (),
        interests: str | None = None,
        filters: Mapping[str, Any] | None = None,
        diversity: float | None = None,
    ) -> list[Recommendation]:
        """Top-k unseen items for a known user, or for a new one from liked items and/or interests text."""
        k = _check_k(self.options.default_k if k is None else k)
        diversity = self.options.diversity if diversity is None else _check_diversity(diversity)
        interests = _check_interests(interests)
        history = self.store.history(user, limit=self.options.history_limit) if user else []
        if user and not history and not like and not interests:
            self._require_catalogue()
            raise NotFoundError(
                f"unknown user '{user}' (no interactions): give liked items (--like) or interests (--interests)"
            )
        if not user and not like and not interests:
            raise DataError("say who to recommend for: a user, liked items, or a description of interests")
        self._require_catalogue()
        liked = list(dict.fromkeys(like))
        missing = set(liked) - self.store.has_items(liked)
        if missing:
            raise NotFoundError(f"unknown item(s): {', '.join(sorted(missing))}")
        self.index.ensure_current()
        items, weights = self._profile_weights(history)
        for item in liked:  # explicitly liked items count as much as the strongest history item
            if item not in items:
                items.append(item)
                weights.append(max(weights, default=1.0))
        seen = (self.store.seen_items(user) if user else set()) | set(liked)
        query = Query(
            history=items,
            weights=weights,
            exclude=seen,
            interests=self.index.embedder().encode_one(interests) if interests else None,
            interests_text=interests,
            k=k,
            filters=dict(filters) if filters else None,
            diversity=diversity,
        )
        return self._rank(query)

    def similar(
        self, item_id: str, k: int | None = None, *, filters: Mapping[str, Any] | None = None
    ) -> list[Recommendation]:
        """Items like ``item_id``: close in text and chosen by the same users."""
        k = _check_k(self.options.default_k if k is None else k)
        self.store.get_item(item_id)  # NotFoundError if unknown
        self.index.ensure_current()
        query = Query(history=[item_id], weights=[1.0], exclude={item_id}, k=k, filters=dict(filters or {}) or None)
        return self._rank(query)

    def search(
        self, text: str, k: int | None = None, *, filters: Mapping[str, Any] | None = None, mode: str = "hybrid"
    ) -> list[SearchResult]:
        """The catalogue searched by text: BM25, vector or both fused (hybrid)."""
        k = _check_k(self.options.default_k if k is None else k)
        text = _check_interests(text)
        if not text:
            raise DataError("search text is empty")
        self._require_catalogue()
        self.index.ensure_current()
        vector = self.index.embedder().encode_one(text) if mode in ("vector", "hybrid") else None
        hits = self.ctx.search.search(
            self.index.name,
            text=text if mode != "vector" else None,
            vector=vector,
            k=k,
            mode=mode,
            filters=dict(filters) if filters else None,
        )
        items = {item.id: item for item in self.store.get_items([hit.id for hit in hits])}
        return [
            SearchResult(
                hit.id, items[hit.id].title, round(float(hit.score), 6), items[hit.id].tags, items[hit.id].metadata
            )
            for hit in hits
            if hit.id in items
        ]

    def _require_catalogue(self) -> None:
        if not self.store.stats()["items"]:
            raise DataError(
                "the catalogue is empty: import items (suite recommender import-items FILE) "
                "or load the sample data with 'suite train recommender'"
            )

    def _rank(self, query: Query) -> list[Recommendation]:
        collaborative, popularity = self._interaction_models()
        catalogue = LiveCatalogue(self.index, self.store, self.options, popularity)
        ranked = rank_items(catalogue, collaborative, query, self.options, self.serving_weights())
        return self._describe(ranked, catalogue)

    def _describe(self, ranked: Sequence[Ranked], catalogue: LiveCatalogue) -> list[Recommendation]:
        named = {r.item for r in ranked} | {item for r in ranked for item, _ in r.because}
        items = catalogue.items(sorted(named))
        out = []
        for r in ranked:
            item = items[r.item]
            because = [Because(h, items[h].title if h in items else h, round(s, 4)) for h, s in r.because]
            out.append(Recommendation(r.item, item.title, r.score, r.shares, because, item.tags, item.metadata))
        return out

    def _interaction_weight(self, interaction: Interaction) -> float:
        weight = self.options.event_weights.get(interaction.event or "", 1.0)
        min_rating = self.options.min_rating
        if min_rating is not None and interaction.rating is not None and interaction.rating < min_rating:
            return 0.0
        return float(weight)

    def _profile_weights(self, history: Sequence[StoredInteraction]) -> tuple[list[str], list[float]]:
        """Per distinct item: event weight x recency decay, summed over its interactions."""
        if not history:
            return [], []
        if all(h.timestamp is not None for h in history):
            latest = max(h.timestamp for h in history)
            ages = [(latest - h.timestamp).total_seconds() / 86400.0 for h in history]
            decay = decay_weights(ages, self.options.recency_half_life_days)
        else:
            decay = decay_weights(np.arange(len(history) - 1, -1, -1), self.options.recency_half_life_items)
        totals: dict[str, float] = {}
        for interaction, factor in zip(history, decay, strict=True):
            weight = self._interaction_weight(interaction) * float(factor)
            totals[interaction.item] = totals.get(interaction.item, 0.0) + weight
        # Order by last interaction, so "most recent" stays last for the lexical query.
        last = {h.item: n for n, h in enumerate(history)}
        items = sorted(totals, key=last.__getitem__)
        return items, [totals[item] for item in items]

    # -- blend weights ------------------------------------------------------------------------
    def serving_weights(self) -> RankingWeights:
        """The config's weights when it sets them; else those ``evaluate --tune`` chose for the
        serving model (on its card, or in the plugin state for the zero-shot backbone); else the defaults."""
        if "weights" in self.options.model_fields_set:
            return self.options.weights
        model = self.index.model()
        stored: Any = None
        if model.fine_tuned:
            version = self.ctx.registry.active(PLUGIN, TASK)
            stored = version.card.metrics.get(TUNED_WEIGHTS_KEY) if version is not None else None
        else:
            saved = json.loads(self.store.get_state(TUNED_WEIGHTS_KEY) or "{}")
            stored = saved.get("weights") if saved.get("model") == model.ref else None
        try:
            return RankingWeights.model_validate(stored) if stored else self.options.weights
        except ValueError:
            log.warning("ignoring unreadable tuned blend weights for %s", model.ref)
            return self.options.weights

    def save_tuned_weights(self, weights: RankingWeights, details: Mapping[str, Any]) -> str:
        """Keep ``weights`` for the serving model (its card, or the plugin state); returns where."""
        model = self.index.model()
        version = self.ctx.registry.active(PLUGIN, TASK) if model.fine_tuned else None
        if version is not None:
            self.ctx.registry.update_card(
                version, metrics={TUNED_WEIGHTS_KEY: weights.model_dump(), "blend_tuning": dict(details)}
            )
            return f"the model card of {version.ref}"
        self.store.set_state(
            TUNED_WEIGHTS_KEY, json.dumps({"model": model.ref, "weights": weights.model_dump(), **details})
        )
        return f"the recommender's state (model {model.ref})"

    # -- evaluation ---------------------------------------------------------------------------
    def components(self, model_path: str | None = None) -> Components:
        """The stored catalogue in memory, embedded by ``model_path`` (default: the serving model)."""
        items = list(self.store.iter_items())
        if not items:
            raise DataError("the catalogue is empty: import items first (suite recommender import-items FILE)")
        texts = [item_text(item, self.options.text_template) for item in items]
        embedder = self._throwaway_embedder(model_path) if model_path else self.index.embedder()
        now = utcnow()
        return Components(
            ids=[item.id for item in items],
            texts=texts,
            vectors=embedder.encode(texts),
            ages_days=np.asarray([(now - item.created_at).total_seconds() / 86400.0 for item in items]),
            metadata=[{**item.metadata, "title": item.title, "tags": item.tags} for item in items],
            options=self.options,
        )

    def _throwaway_embedder(self, model_path: str):
        """An embedder with no disk cache, for a model that is deleted after use (evaluation)."""
        from services.embeddings import Embedder

        settings = self.ctx.settings
        return Embedder(
            model_path,
            batch_size=settings.embeddings.batch_size,
            max_length=settings.embeddings.max_length,
            device=settings.training.device,
            local_files_only=True,
        )


_RECOMMENDERS: weakref.WeakKeyDictionary[Any, Recommender] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def get_recommender(ctx: SuiteContext) -> Recommender:
    """The process's recommender for ``ctx`` (built once)."""
    with _GUARD:
        if ctx not in _RECOMMENDERS:
            _RECOMMENDERS[ctx] = Recommender(ctx)
        return _RECOMMENDERS[ctx]


def _item_record(item: Item) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": item.id,
        "title": item.title,
        "description": item.description,
        "tags": list(item.tags),
        "metadata": dict(item.metadata),
    }
    if item.created_at:
        record["created_at"] = item.created_at.isoformat()
    return record


def _data_files_in(folder: Path) -> tuple[Path, Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: expected a folder with items.(jsonl|csv) and interactions.(csv|jsonl)")
    found = []
    for stem in ("items", "interactions"):
        matches = [folder / f"{stem}{suffix}" for suffix in (".jsonl", ".csv", ".tsv", ".json")]
        existing = [path for path in matches if path.is_file()]
        if not existing:
            raise DataError(f"{folder}: no {stem}.jsonl or {stem}.csv")
        found.append(existing[0])
    return found[0], found[1]


def _check_k(k: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise DataError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return k


def _check_diversity(value: float) -> float:
    if not 0 <= value <= 1:
        raise DataError(f"diversity must be between 0 and 1, got {value}")
    return float(value)


def _check_interests(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(str(text).split())
    if len(text) > MAX_INTERESTS_CHARS:
        raise DataError(f"text longer than {MAX_INTERESTS_CHARS} characters")
    return text or None


def parse_filters(pairs: Iterable[str]) -> dict[str, Any]:
    """``key=value`` strings (CLI ``--filter``) as a filter dict; repeated keys mean any-of."""
    filters: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DataError(f"filter {pair!r} is not key=value")
        key, value = key.strip(), value.strip()
        if key in filters:
            previous = filters[key]
            filters[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            filters[key] = value
    return filters
