"""From a user's history to a ranked, explained list: candidates, signals, blend, diversity.

The pipeline reads items through a :class:`Catalogue`: the live one sits on the search
service and the database (``index.py``), :class:`MatrixCatalogue` on numpy arrays (the
offline evaluation and benchmarks). Both run the same :func:`rank_items`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy import sparse

from plugins.recommender import ranking
from plugins.recommender.options import RankingWeights, RecommenderOptions
from services.search.memory import MemoryIndex
from services.search.text import Tokenizer

# Signals already on a global [0, 1] scale; the others are scaled per query by their best candidate.
GLOBAL_SIGNALS = frozenset({"popularity", "freshness"})
CONTENT_SIGNALS = ("text", "lexical")
NORMALISATION = {"text": "max", "collaborative": "max", "lexical": "max"}
_TOKENIZER = Tokenizer()  # the embedded search backend's default


class Catalogue(Protocol):
    """What the pipeline needs to know about items; ids are strings."""

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """(len(ids), dim) L2-normalised vectors; zero rows for unknown ids."""

    def nearest(self, vector: np.ndarray, n: int, filters: Mapping[str, Any] | None) -> dict[str, float]:
        """The ``n`` items closest to ``vector`` (cosine), filters applied."""

    def lexical(self, texts: Sequence[str], n: int, filters: Mapping[str, Any] | None) -> dict[str, float]:
        """The ``n`` best BM25 matches of the texts taken as one query."""

    def popular(self, n: int, filters: Mapping[str, Any] | None) -> list[str]:
        """The ``n`` most popular items, filters applied."""

    def priors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Per-id ``popularity`` and ``freshness`` in [0, 1]."""

    def texts(self, ids: Sequence[str]) -> list[str]:
        """The items' texts (what they are embedded and searched by)."""

    def keep(self, ids: Sequence[str], filters: Mapping[str, Any] | None) -> list[str]:
        """The ids that exist, may be recommended and pass the filters, in order."""


class CollaborativeModel:
    """Item-item similarity learned from users' histories (see :func:`ranking.item_similarity`)."""

    def __init__(
        self,
        histories: Mapping[str, Sequence[str]],
        neighbours: int | None = None,
        method: str = "rp3beta",
        beta: float = 0.3,
    ) -> None:
        self.item_ids = sorted({item for items in histories.values() for item in items})
        self.position = {item: i for i, item in enumerate(self.item_ids)}
        rows = [[self.position[item] for item in items] for items in histories.values()]
        matrix = ranking.user_item_matrix(rows, len(self.item_ids))
        self.counts = np.asarray(matrix.sum(axis=0)).ravel()
        self.similarity = (
            ranking.item_similarity(matrix, neighbours, method, beta) if self.item_ids else sparse.csr_matrix((0, 0))
        )

    def scores(self, history: Sequence[str], weights: Sequence[float]) -> np.ndarray:
        """Each item's weighted mean similarity to the history: in [0, 1], and small on weak evidence."""
        known = [(self.position[item], w) for item, w in zip(history, weights, strict=True) if item in self.position]
        total = float(np.sum(weights)) if len(weights) else 0.0
        if not known or total <= 0:
            return np.zeros(len(self.item_ids), dtype=np.float32)
        rows, row_weights = zip(*known, strict=True)
        return ranking.collaborative_scores(self.similarity, list(rows), np.asarray(row_weights)) / total

    def top(self, history: Sequence[str], weights: Sequence[float], n: int, exclude: set[str]) -> dict[str, float]:
        scores = self.scores(history, weights)
        if not scores.any():
            return {}
        excluded = [self.position[item] for item in exclude if item in self.position]
        best = ranking.top_indices(scores, n, excluded)
        return {self.item_ids[i]: float(scores[i]) for i in best if scores[i] > 0}


def collaborative_model(histories: Mapping[str, Sequence[str]], options: RecommenderOptions) -> CollaborativeModel:
    """The collaborative model the options describe."""
    return CollaborativeModel(histories, options.neighbours, options.collaborative_method, options.rp3_beta)


@dataclass
class Query:
    """One recommendation request, already resolved to item ids and weights."""

    history: list[str] = field(default_factory=list)  # positive items, oldest first
    weights: list[float] = field(default_factory=list)  # profile weight of each history item
    exclude: set[str] = field(default_factory=set)  # never recommended (what the user has seen)
    interests: np.ndarray | None = None  # an embedded free-text description of interests
    interests_text: str | None = None
    k: int = 10
    filters: dict[str, Any] | None = None
    diversity: float = 0.0


@dataclass
class Ranked:
    item: str
    score: float
    shares: dict[str, float]  # signal -> fraction of the score
    because: list[tuple[str, float]]  # (history item, cosine) most similar first


def rank_items(
    catalogue: Catalogue,
    collaborative: CollaborativeModel | None,
    query: Query,
    options: RecommenderOptions,
    weights: RankingWeights | None = None,
    *,
    explain: bool = True,
) -> list[Ranked]:
    """The top ``query.k`` items for a query, each with its signal shares and (``explain``) the
    history items closest to it."""
    weights = weights or options.weights
    w = weights.model_dump()
    history = [item for item, weight in zip(query.history, query.weights, strict=True) if weight > 0]
    history_weights = np.asarray([weight for weight in query.weights if weight > 0], dtype=np.float64)
    history_vectors = catalogue.vectors(history) if history else np.zeros((0, 0), dtype=np.float32)
    profile = _profile(history_vectors, history_weights, query.interests)
    pool = options.candidates + len(query.exclude)

    found: dict[str, dict[str, float]] = {}
    if w["text"] and profile is not None:
        found["text"] = catalogue.nearest(profile, pool, query.filters)
    if w["collaborative"] and collaborative is not None and history:
        found["collaborative"] = collaborative.top(history, history_weights, pool, query.exclude)
    if w["lexical"]:
        query_texts = catalogue.texts(history[-options.history_limit :])
        query_texts += [query.interests_text] if query.interests_text else []
        if query_texts:
            found["lexical"] = catalogue.lexical(query_texts, pool, query.filters)
    popular = catalogue.popular(pool, query.filters) if w["popularity"] or not any(found.values()) else []

    candidates = list(dict.fromkeys(item for hits in [*found.values(), popular] for item in hits))
    candidates = catalogue.keep([item for item in candidates if item not in query.exclude], query.filters)
    if not candidates:
        return []

    vectors = catalogue.vectors(candidates)
    signals: dict[str, np.ndarray] = {}
    if "text" in found:
        signals["text"] = _text_scores(vectors, history_vectors, history_weights, profile, query.interests, options)
    for name in ("collaborative", "lexical"):
        if name in found:
            signals[name] = np.asarray([found[name].get(item, 0.0) for item in candidates], dtype=np.float32)
    priors = catalogue.priors(candidates)
    for name in GLOBAL_SIGNALS:
        if w[name]:
            signals[name] = priors[name]
    blended = ranking.blend(
        signals,
        _item_weights(w, candidates, signals, collaborative, options.new_item_boost),
        GLOBAL_SIGNALS,
        NORMALISATION,
    )
    if not any(w.values()):
        blended = ranking.Blend(priors["popularity"], {"popularity": priors["popularity"]})

    order = _order(blended.scores, vectors, query.k, query.diversity)
    explain = explain and bool(history) and options.explain_top > 0
    explained = ranking.closest_history(vectors[order], history_vectors, options.explain_top) if explain else []
    return [
        Ranked(
            item=candidates[i],
            score=round(float(blended.scores[i]), 6),
            shares=ranking.signal_shares(blended, i),
            because=[(history[j], cosine) for j, cosine in explained[n]] if explain else [],
        )
        for n, i in enumerate(order)
    ]


def _item_weights(
    weights: dict[str, float],
    candidates: Sequence[str],
    signals: Mapping[str, np.ndarray],
    collaborative: CollaborativeModel | None,
    boost: float,
) -> dict[str, float | np.ndarray]:
    """Signal weights per candidate. Items nobody has interacted with yet have no co-occurrence
    to measure (missing, not zero): ``boost`` of their collaborative weight goes to the content
    signals (text, lexical) in proportion to theirs, so that new items are not a whole signal
    behind the established ones."""
    content = [name for name in CONTENT_SIGNALS if name in signals and weights[name] > 0]
    if not boost or not content or "collaborative" not in signals or collaborative is None:
        return dict(weights)
    unknown = np.fromiter(
        (item not in collaborative.position for item in candidates), dtype=bool, count=len(candidates)
    )
    moved = boost * weights["collaborative"]
    content_total = sum(weights[name] for name in content)
    per_item: dict[str, float | np.ndarray] = dict(weights)
    for name in content:
        per_item[name] = np.where(unknown, weights[name] * (1 + moved / content_total), weights[name])
    per_item["collaborative"] = np.where(unknown, 0.0, weights["collaborative"])
    return per_item


def _profile(history_vectors: np.ndarray, weights: np.ndarray, interests: np.ndarray | None) -> np.ndarray | None:
    profile = ranking.profile_vector(history_vectors, weights) if len(history_vectors) else None
    if interests is None:
        return profile
    if profile is None:
        return np.asarray(interests, dtype=np.float32)
    combined = profile + np.asarray(interests, dtype=np.float32)
    return (combined / max(float(np.linalg.norm(combined)), 1e-12)).astype(np.float32)


def _text_scores(
    vectors: np.ndarray,
    history_vectors: np.ndarray,
    history_weights: np.ndarray,
    profile: np.ndarray,
    interests: np.ndarray | None,
    options: RecommenderOptions,
) -> np.ndarray:
    """The text signal of each candidate (the mean profile still picks the text candidates)."""
    if options.profile == "mean" or not len(history_vectors):
        return vectors @ profile
    scores = ranking.nearest_history_scores(vectors, history_vectors, history_weights, options.profile_neighbours)
    if interests is not None:  # a stated interest counts as much as the history, as in the mean profile
        scores = (scores + vectors @ np.asarray(interests, dtype=np.float32)) / 2
    return scores


def _order(scores: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> list[int]:
    if diversity <= 0:
        return [int(i) for i in ranking.top_indices(scores, k)]
    # MMR re-ranks a pool a few times larger than k: enough room to diversify, still relevant.
    pool = ranking.top_indices(scores, max(3 * k, k + 10))
    chosen = ranking.mmr(scores[pool], vectors[pool], k, diversity)
    return [int(pool[i]) for i in chosen]


# Long histories make long BM25 queries; the most recent texts up to this size are enough.
MAX_LEXICAL_QUERY_CHARS = 8000


def lexical_query(texts: Sequence[str]) -> str:
    """One BM25 query text from a history's texts (oldest first): the most recent ones that fit
    ``MAX_LEXICAL_QUERY_CHARS``; empty when they hold no search term."""
    query, size = [], 0
    for text in reversed(texts):
        size += len(text) + 1
        if size > MAX_LEXICAL_QUERY_CHARS:
            break
        query.append(text)
    joined = " ".join(reversed(query))
    return joined if search_terms(joined) else ""


def search_terms(text: str) -> list[str]:
    """The terms the search service's BM25 matches ``text`` by."""
    return _TOKENIZER(text)


class MatrixCatalogue:
    """A catalogue in memory: ids, texts, vectors and priors as arrays.

    ``allowed`` restricts what may be recommended (e.g. only the cold items of a
    cold-start split); filters compare ``metadata`` values for equality.
    """

    def __init__(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        vectors: np.ndarray,
        popularity: Sequence[float] | np.ndarray | None = None,
        ages_days: Sequence[float] | np.ndarray | None = None,
        metadata: Sequence[Mapping[str, Any]] | None = None,
        *,
        freshness_half_life_days: float = 180.0,
        allowed: Sequence[str] | None = None,
    ) -> None:
        self.ids = list(ids)
        self.position = {item: i for i, item in enumerate(self.ids)}
        self._texts = list(texts)
        self.matrix = np.array(vectors, dtype=np.float32)
        # An item without text has no text signal: its vector would be the empty string's, one and
        # the same for every such item, and would make them all each other's nearest neighbours.
        self.matrix[[i for i, text in enumerate(self._texts) if not text.strip()]] = 0.0
        n = len(self.ids)
        self.popularity = ranking.popularity_scores(np.zeros(n) if popularity is None else np.asarray(popularity))
        ages = np.full(n, np.nan) if ages_days is None else np.asarray(ages_days, dtype=np.float64)
        self.freshness = ranking.freshness_scores(ages, freshness_half_life_days)
        self.metadata = list(metadata) if metadata is not None else [{} for _ in range(n)]
        self.allowed = np.ones(n, dtype=bool)
        if allowed is not None:
            self.allowed[:] = False
            self.allowed[[self.position[item] for item in allowed if item in self.position]] = True
        self._bm25: MemoryIndex | None = None

    def _mask(self, filters: Mapping[str, Any] | None) -> np.ndarray:
        if not filters:
            return self.allowed
        match = np.array(
            [all(_matches(meta.get(key), value) for key, value in filters.items()) for meta in self.metadata]
        )
        return self.allowed & match

    def _best(self, scores: np.ndarray, n: int, filters: Mapping[str, Any] | None) -> dict[str, float]:
        blocked = np.flatnonzero(~self._mask(filters))
        return {self.ids[i]: float(scores[i]) for i in ranking.top_indices(scores, n, blocked)}

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        rows = np.fromiter((self.position.get(item, -1) for item in ids), dtype=np.int64, count=len(ids))
        out = self.matrix[np.maximum(rows, 0)] if len(self.matrix) else np.zeros((len(ids), 0), np.float32)
        out[rows < 0] = 0.0
        return out

    def nearest(self, vector: np.ndarray, n: int, filters: Mapping[str, Any] | None) -> dict[str, float]:
        return self._best(self.matrix @ vector, n, filters)

    def lexical(self, texts: Sequence[str], n: int, filters: Mapping[str, Any] | None) -> dict[str, float]:
        """The search service's own BM25 (its in-memory index and tokeniser), on the query the live catalogue sends."""
        if self._bm25 is None:
            self._bm25 = MemoryIndex(None)
            self._bm25.add_many([(item, text, None, None) for item, text in zip(self.ids, self._texts, strict=True)])
        query = lexical_query(texts)
        if not query:
            return {}
        return dict(self._bm25.bm25(query, n, self._mask(filters)))

    def popular(self, n: int, filters: Mapping[str, Any] | None) -> list[str]:
        return list(self._best(self.popularity, n, filters))

    def priors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        rows = [self.position[item] for item in ids]
        return {"popularity": self.popularity[rows], "freshness": self.freshness[rows]}

    def texts(self, ids: Sequence[str]) -> list[str]:
        return [self._texts[self.position[item]] for item in ids if item in self.position]

    def keep(self, ids: Sequence[str], filters: Mapping[str, Any] | None) -> list[str]:
        mask = self._mask(filters)
        return [item for item in ids if item in self.position and mask[self.position[item]]]


def _matches(value: Any, wanted: Any) -> bool:
    """Equality on metadata as the search service does it: lists match any element, text compares as text."""
    if isinstance(wanted, list | tuple | set):
        return any(_matches(value, one) for one in wanted)
    if isinstance(value, list):
        return any(_matches(one, wanted) for one in value)
    return value == wanted or (value is not None and str(value) == str(wanted))
