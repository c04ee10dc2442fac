"""The ranking maths, free of storage and services: numpy arrays in, numpy arrays out.

The live recommender (``service.py``) and the offline evaluation (``evaluation.py``)
share these functions, so a number measured offline is the number users get.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

SIGNALS = ("text", "collaborative", "lexical", "popularity", "freshness")


# -- user profile ------------------------------------------------------------------------
def decay_weights(ages: Sequence[float] | np.ndarray, half_life: float | None) -> np.ndarray:
    """``0.5 ** (age / half_life)``: an item ``half_life`` old counts half as much as a new one."""
    ages = np.maximum(np.asarray(ages, dtype=np.float64), 0.0)
    if not half_life:
        return np.ones_like(ages)
    return np.power(0.5, ages / half_life)


def profile_vector(vectors: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The L2-normalised weighted mean of the history's item vectors."""
    if len(vectors) == 0:
        raise ValueError("a profile needs at least one vector")
    weights = np.ones(len(vectors)) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.sum() <= 0:
        weights = np.ones(len(vectors))
    mean = (np.asarray(vectors, dtype=np.float64) * weights[:, None]).sum(axis=0) / weights.sum()
    norm = np.linalg.norm(mean)
    return (mean / norm if norm > 0 else mean).astype(np.float32)


def nearest_history_scores(
    candidate_vectors: np.ndarray, history_vectors: np.ndarray, weights: np.ndarray, neighbours: int
) -> np.ndarray:
    """Each candidate's weighted mean cosine to its ``neighbours`` closest history items.

    A mean profile blurs a reader of two topics into a point between them; scoring each
    candidate by the history items closest to it keeps every interest, and is the
    item-to-item similarity that the bi-encoder's training pairs teach.
    """
    cosine = np.asarray(candidate_vectors, dtype=np.float32) @ np.asarray(history_vectors, dtype=np.float32).T
    if cosine.shape[1] == 0:
        return np.zeros(len(cosine), dtype=np.float32)
    k = min(neighbours, cosine.shape[1])
    closest = np.argpartition(-cosine, k - 1, axis=1)[:, :k]
    chosen_weights = np.asarray(weights, dtype=np.float32)[closest]
    total = chosen_weights.sum(axis=1)
    weighted = (np.take_along_axis(cosine, closest, axis=1) * chosen_weights).sum(axis=1)
    return np.where(total > 0, weighted / np.maximum(total, 1e-12), 0.0).astype(np.float32)


# -- collaborative signal ----------------------------------------------------------------
def user_item_matrix(
    histories: Sequence[Sequence[int]], n_items: int, weights: Sequence[Sequence[float]] | None = None
) -> sparse.csr_matrix:
    """A (users, items) CSR matrix from per-user lists of item indices (1.0 unless weighted)."""
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    cols = np.fromiter((i for h in histories for i in h), dtype=np.int64, count=len(rows))
    data = (
        np.fromiter((w for ws in weights for w in ws), dtype=np.float32, count=len(rows))
        if weights is not None
        else np.ones(len(rows), dtype=np.float32)
    )
    matrix = sparse.csr_matrix((data, (rows, cols)), shape=(len(histories), n_items), dtype=np.float32)
    matrix.sum_duplicates()
    matrix.data = np.minimum(matrix.data, 1.0) if weights is None else matrix.data
    return matrix


def item_similarity(
    user_items: sparse.spmatrix, neighbours: int | None = None, method: str = "cosine", beta: float = 0.3
) -> sparse.csr_matrix:
    """Item-item similarity from who interacted with what; row i scores every item j given i.

    ``cosine``: co-occurrence counts over the square roots of both items' counts (classic
    item-kNN). ``rp3beta``: the probability of a two-step random walk item -> user -> item,
    where heavy users weigh less, divided by the target's popularity ** ``beta`` (Paudel et
    al., 2017) -- usually clearly better than cosine on sparse data. ``neighbours`` keeps
    only each item's strongest links.
    """
    binary = (user_items > 0).astype(np.float32).tocsr()
    counts = np.asarray(binary.sum(axis=0)).ravel()
    if method == "cosine":
        sim = (binary.T @ binary).tocsr()
        sim.setdiag(0)
        sim.eliminate_zeros()
        norms = np.sqrt(np.maximum(counts, 1.0))
        rows = np.repeat(np.arange(sim.shape[0]), np.diff(sim.indptr))
        sim.data = sim.data / (norms[rows] * norms[sim.indices])
    elif method == "rp3beta":
        user_degree = np.maximum(np.asarray(binary.sum(axis=1)).ravel(), 1.0)
        item_to_user = sparse.diags(1.0 / np.maximum(counts, 1.0)) @ binary.T.tocsr()
        user_to_item = sparse.diags(1.0 / user_degree) @ binary
        sim = (item_to_user @ user_to_item).tocsr()
        sim.setdiag(0)
        sim.eliminate_zeros()
        sim = (sim @ sparse.diags(1.0 / np.power(np.maximum(counts, 1.0), beta))).tocsr()
    else:
        raise ValueError(f"unknown item similarity {method!r} (use cosine or rp3beta)")
    sim = sim.astype(np.float32)
    if neighbours:
        sim = _keep_top_per_row(sim, neighbours)
    return sim


def _keep_top_per_row(matrix: sparse.csr_matrix, top: int) -> sparse.csr_matrix:
    matrix = matrix.tocsr()
    keep = np.zeros(len(matrix.data), dtype=bool)
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        if end - start <= top:
            keep[start:end] = True
        else:
            best = np.argpartition(-matrix.data[start:end], top - 1)[:top]
            keep[start + best] = True
    matrix.data = np.where(keep, matrix.data, 0.0).astype(matrix.dtype)
    matrix.eliminate_zeros()
    return matrix


def collaborative_scores(similarity: sparse.csr_matrix, history: Sequence[int], weights: np.ndarray) -> np.ndarray:
    """Scores of every item: the weighted sum of its similarities to the history items."""
    if len(history) == 0:
        return np.zeros(similarity.shape[1], dtype=np.float32)
    rows = similarity[np.asarray(history)]
    return np.asarray(rows.T @ np.asarray(weights, dtype=np.float32)).ravel()


# -- item priors -------------------------------------------------------------------------
def popularity_scores(counts: np.ndarray) -> np.ndarray:
    """log-damped popularity in [0, 1]."""
    counts = np.log1p(np.maximum(np.asarray(counts, dtype=np.float64), 0))
    top = counts.max() if len(counts) else 0.0
    return (counts / top if top > 0 else counts).astype(np.float32)


def freshness_scores(ages_days: np.ndarray, half_life_days: float | None) -> np.ndarray:
    """1 for a brand-new item, halving every ``half_life_days``; 0 where the age is unknown (NaN)."""
    ages = np.asarray(ages_days, dtype=np.float64)
    scores = decay_weights(np.nan_to_num(ages, nan=0.0), half_life_days)
    return np.where(np.isnan(ages), 0.0, scores).astype(np.float32)


# -- blending ----------------------------------------------------------------------------
def normalise(values: np.ndarray, method: str = "max") -> np.ndarray:
    """Scale to [0, 1] by the best value (0 stays 0), so each signal's weight means the same for every user.

    Dividing by the maximum rather than min-max keeps the zero of signals that are sparse
    (no co-occurrence at all is 0, not "the least bad"), and does not depend on which
    other candidates happened to be retrieved.
    """
    values = np.asarray(values, dtype=np.float32)
    if method == "none":
        return np.maximum(values, 0.0)
    if method == "minmax" and len(values):
        low, high = float(values.min()), float(values.max())
        return (values - low) / (high - low) if high > low else np.ones_like(values)
    top = values.max() if len(values) else 0.0
    if top <= 0:
        return np.zeros_like(values)
    return np.maximum(values, 0.0) / top


@dataclass
class Blend:
    scores: np.ndarray  # (n,)
    contributions: dict[str, np.ndarray]  # signal -> (n,) weighted normalised value


def blend(
    signals: Mapping[str, np.ndarray],
    weights: Mapping[str, float | np.ndarray],
    keep_scale: Iterable[str] = (),
    methods: Mapping[str, str] | None = None,
) -> Blend:
    """Weighted sum of signals normalised by :func:`normalise` (except those in ``keep_scale``,
    already on a global [0, 1] scale). A weight is one number, or one per item; signals
    whose weight is 0 everywhere (or absent) are left out."""
    keep_scale = set(keep_scale)
    contributions = {}
    for name, values in signals.items():
        weight = np.asarray(weights.get(name, 0.0), dtype=np.float32)
        if not np.any(weight):
            continue
        scaled = np.asarray(values, dtype=np.float32)
        if name not in keep_scale:
            scaled = normalise(scaled, (methods or {}).get(name, "max"))
        contributions[name] = weight * scaled
    n = len(next(iter(signals.values()))) if signals else 0
    total = np.zeros(n, dtype=np.float32)
    for part in contributions.values():
        total += part
    return Blend(total, contributions)


def signal_shares(blended: Blend, index: int) -> dict[str, float]:
    """How much of one item's score each signal gave, as fractions summing to 1."""
    parts = {name: float(values[index]) for name, values in blended.contributions.items()}
    total = sum(parts.values())
    return {name: round(value / total, 3) if total > 0 else 0.0 for name, value in parts.items()}


# -- diversity ---------------------------------------------------------------------------
def mmr(relevance: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> list[int]:
    """Maximal marginal relevance: indices of ``k`` items trading relevance for novelty.

    ``diversity`` 0 keeps the relevance order; 1 picks the least similar item each time.
    Relevance is scaled to [0, 1] so it is comparable with cosine similarity.
    """
    n = len(relevance)
    k = min(k, n)
    if diversity <= 0 or n == 0:
        return list(np.argsort(-relevance, kind="stable")[:k])
    lam = 1.0 - diversity
    low, high = float(relevance.min()), float(relevance.max())
    rel = (relevance - low) / (high - low) if high > low else np.ones(n)
    vectors = np.asarray(vectors, dtype=np.float32)
    similarity = vectors @ vectors.T
    chosen: list[int] = []
    max_sim = np.full(n, -np.inf)
    available = np.ones(n, dtype=bool)
    for _ in range(k):
        redundancy = np.where(np.isfinite(max_sim), max_sim, 0.0)
        score = np.where(available, lam * rel - (1 - lam) * redundancy, -np.inf)
        best = int(np.argmax(score))
        chosen.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, similarity[best])
    return chosen


# -- explanations ------------------------------------------------------------------------
def closest_history(
    candidate_vectors: np.ndarray, history_vectors: np.ndarray, top: int = 2
) -> list[list[tuple[int, float]]]:
    """For each candidate, the ``top`` history positions with the highest cosine, with the cosine."""
    if len(history_vectors) == 0:
        return [[] for _ in range(len(candidate_vectors))]
    cosine = np.asarray(candidate_vectors) @ np.asarray(history_vectors).T
    order = np.argsort(-cosine, axis=1)[:, :top]
    return [[(int(j), round(float(cosine[i, j]), 4)) for j in row] for i, row in enumerate(order)]


def top_indices(scores: np.ndarray, k: int, exclude: Iterable[int] = ()) -> np.ndarray:
    """Indices of the ``k`` best scores, best first, skipping ``exclude``."""
    scores = np.asarray(scores, dtype=np.float64).copy()
    excluded = np.fromiter(exclude, dtype=np.int64)
    if len(excluded):
        scores[excluded] = -math.inf
    k = min(k, int(np.isfinite(scores).sum()))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    best = np.argpartition(-scores, k - 1)[:k]
    return best[np.argsort(-scores[best], kind="stable")]
