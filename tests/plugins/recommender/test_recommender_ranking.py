"""The ranking maths and the offline evaluation, on small arrays and the sample data (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from plugins.recommender import ranking
from plugins.recommender.data import SAMPLE_INTERACTIONS, SAMPLE_ITEMS, item_text, load_interactions, load_items
from plugins.recommender.evaluation import (
    Components,
    cold_item_split,
    evaluate,
    holdout_split,
    ndcg_at_k,
    recall_at_k,
)
from plugins.recommender.options import RecommenderOptions
from plugins.recommender.pipeline import CollaborativeModel, MatrixCatalogue, Query, rank_items
from suite.errors import DataError


def unit(rows) -> np.ndarray:
    array = np.asarray(rows, dtype=np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def test_profile_weights_recent_items_more():
    vectors = unit([[1, 0], [0, 1]])
    weights = ranking.decay_weights([30.0, 0.0], half_life=30.0)
    assert weights.tolist() == [0.5, 1.0]
    profile = ranking.profile_vector(vectors, weights)
    assert profile[1] > profile[0] and np.isclose(np.linalg.norm(profile), 1.0)


def test_nearest_history_scores_keep_two_interests_apart():
    # A reader of two topics (x and y); the candidates: one of each topic, and one in between.
    history = unit([[1, 0, 0], [1, 0.05, 0], [0, 1, 0]])
    candidates = unit([[1, 0.02, 0], [0, 1, 0.02], [1, 1, 0]])
    nearest = ranking.nearest_history_scores(candidates, history, np.ones(3), neighbours=1)
    assert nearest[0] > 0.99 and nearest[1] > 0.99 and nearest[2] < nearest[1]
    mean = candidates @ ranking.profile_vector(history)
    assert mean[2] > mean[1]  # the mean profile prefers the blur between the two interests
    # Weights: an old interest counts less among a candidate's closest items.
    weighted = ranking.nearest_history_scores(candidates, history, np.array([1.0, 1.0, 0.0]), neighbours=2)
    assert weighted[1] < nearest[1] and np.isclose(weighted[0], nearest[0], atol=0.01)
    assert ranking.nearest_history_scores(candidates, history[:0], np.ones(0), 5).tolist() == [0, 0, 0]


def test_the_nearest_profile_ranks_each_interest_above_their_blend():
    ids = ["x", "y", "blend", "seen-x1", "seen-x2", "seen-y"]
    vectors = unit([[1, 0.02, 0], [0, 1, 0.02], [1, 1, 0], [1, 0, 0], [1, 0.05, 0], [0, 1, 0]])
    catalogue = MatrixCatalogue(ids, ids, vectors)
    query = Query(history=ids[3:], weights=[1.0] * 3, exclude=set(ids[3:]), k=3)
    text_only = RecommenderOptions().weights.model_copy(
        update={"collaborative": 0, "lexical": 0, "popularity": 0, "text": 1}
    )
    mean = [r.item for r in rank_items(catalogue, None, query, RecommenderOptions(), text_only)]
    nearest_options = RecommenderOptions(profile="nearest", profile_neighbours=1)
    nearest = [r.item for r in rank_items(catalogue, None, query, nearest_options, text_only)]
    assert mean[0] == "blend" and nearest[-1] == "blend" and set(nearest) == {"x", "y", "blend"}


def test_items_without_text_have_no_text_signal():
    ids = ["seen", "blank-seen", "match", "blank"]
    vectors = unit([[1, 0], [0, 1], [1, 0.1], [0, 1]])  # the blanks share the empty string's vector
    catalogue = MatrixCatalogue(ids, ["x", "", "x y", " "], vectors)
    assert not catalogue.vectors(["blank", "blank-seen"]).any() and catalogue.vectors(["match"]).any()
    text_only = RecommenderOptions().weights.model_copy(
        update={"collaborative": 0, "lexical": 0, "popularity": 0, "text": 1}
    )
    query = Query(history=ids[:2], weights=[1.0, 1.0], exclude=set(ids[:2]), k=2)
    for profile in ("mean", "nearest"):
        ranked = rank_items(catalogue, None, query, RecommenderOptions(profile=profile), text_only)
        assert [r.item for r in ranked] == ["match", "blank"] and ranked[1].score == 0


def test_item_similarity_is_cosine_of_co_occurrence():
    # users: {0,1}, {0,1}, {0,2}
    matrix = ranking.user_item_matrix([[0, 1], [0, 1], [0, 2]], 3)
    similarity = ranking.item_similarity(matrix, neighbours=None).toarray()
    assert similarity[0, 1] == pytest.approx(2 / np.sqrt(3 * 2))
    assert similarity[0, 2] == pytest.approx(1 / np.sqrt(3 * 1))
    assert similarity[1, 2] == 0 and similarity[0, 0] == 0
    top1 = ranking.item_similarity(matrix, neighbours=1).toarray()
    assert (top1 > 0).sum(axis=1).tolist() == [1, 1, 1]


def test_offline_lexical_signal_is_the_search_services_bm25(tmp_path):
    """The in-memory catalogue (offline evaluation) scores exactly as the live search backend does."""
    from plugins.recommender.pipeline import MatrixCatalogue, lexical_query
    from services.search import Document, IndexSpec
    from services.search.embedded import EmbeddedSearchBackend

    texts = ["sourdough bread baking", "bread and butter", "galaxies and stars", "the bread of the stars"]
    ids = [f"i{n}" for n in range(len(texts))]
    catalogue = MatrixCatalogue(ids, texts, np.eye(len(texts), dtype=np.float32), allowed=["i0", "i1", "i3"])
    history = ["Sourdough starter", "a loaf of bread"]
    offline = catalogue.lexical(history, 10, None)
    with EmbeddedSearchBackend(tmp_path / "search") as search:
        search.ensure_index(IndexSpec("items", vector_dim=None))
        search.upsert("items", [Document(i, t) for i, t in zip(ids, texts, strict=True)])
        live = search.search("items", text=lexical_query(history), k=10, mode="bm25")
    expected = {hit.id: hit.score for hit in live if hit.id != "i2"}  # i2 is not allowed offline
    assert list(offline) == list(expected) and offline["i0"] == pytest.approx(expected["i0"])
    assert list(offline)[0] == "i0" and "i2" not in offline
    assert catalogue.lexical(["the and of"], 10, None) == {}  # stop words only: no query at all


def test_blend_normalises_and_reports_shares():
    blended = ranking.blend(
        {"text": np.array([0.8, 0.4]), "collaborative": np.array([0.0, 3.0]), "popularity": np.array([0.5, 0.5])},
        {"text": 1.0, "collaborative": 1.0, "popularity": 0.0},
    )
    assert blended.scores.tolist() == pytest.approx([1.0, 1.5])
    assert set(blended.contributions) == {"text", "collaborative"}
    assert ranking.signal_shares(blended, 1) == {"text": pytest.approx(0.333, abs=1e-3), "collaborative": 0.667}


def test_mmr_trades_relevance_for_novelty():
    # two near-duplicates on top, a different item just below them
    vectors = unit([[1, 0.01], [1, 0.02], [0, 1]])
    relevance = np.array([1.0, 0.95, 0.9])
    assert ranking.mmr(relevance, vectors, 2, diversity=0.0) == [0, 1]
    assert ranking.mmr(relevance, vectors, 2, diversity=0.5) == [0, 2]


def test_top_indices_skips_excluded():
    assert ranking.top_indices(np.array([0.1, 0.9, 0.5]), 2, exclude=[1]).tolist() == [2, 0]


def test_metrics():
    assert recall_at_k(["a", "b", "c"], {"a", "x"}, 2) == 0.5
    assert ndcg_at_k(["x", "a"], {"a"}, 2) == pytest.approx(1 / np.log2(3))
    assert ndcg_at_k(["a"], {"a"}, 1) == 1.0


def sample_histories():
    items = load_items(SAMPLE_ITEMS, RecommenderOptions().text_template)
    interactions = load_interactions(SAMPLE_INTERACTIONS, {item.id for item in items}.__contains__)
    histories: dict[str, list] = {}
    for interaction in interactions:
        histories.setdefault(interaction.user, []).append((interaction.item, interaction.timestamp))
    return items, histories


def category_components(items, options: RecommenderOptions | None = None) -> Components:
    """Vectors that know only an item's category: a stand-in text model, fast and deterministic."""
    categories = sorted({item.metadata["category"] for item in items})
    rng = np.random.default_rng(0)
    vectors = unit(
        [
            np.eye(len(categories))[categories.index(item.metadata["category"])] + 0.3 * rng.random(len(categories))
            for item in items
        ]
    )
    return Components(
        ids=[item.id for item in items],
        texts=[item_text(item, RecommenderOptions().text_template) for item in items],
        vectors=vectors,
        metadata=[item.metadata for item in items],
        options=options or RecommenderOptions(),
    )


def test_splits_hold_out_the_latest_items():
    _, histories = sample_histories()
    split = holdout_split(histories, fraction=0.2, seed=1)
    for user, held in split.test.items():
        latest = sorted(histories[user], key=lambda pair: pair[1])[-len(held) :]
        assert held == {item for item, _ in latest}
        assert not held & set(split.train[user])
    cold = cold_item_split(histories, fraction=0.2, seed=1)
    assert cold.candidates and all(cold.candidates.isdisjoint(items) for items in cold.train.values())
    assert all(held <= cold.candidates for held in cold.test.values())
    with pytest.raises(DataError, match="between 0 and 1"):
        holdout_split(histories, fraction=1.5)


def test_evaluate_reports_the_recommender_and_three_baselines():
    items, histories = sample_histories()
    split = holdout_split(histories, fraction=0.25, seed=3)
    report = evaluate(category_components(items), split, k=10)
    assert set(report) == {"recommender", "most-popular", "item-knn", "bm25"}
    for metrics in report.values():
        assert set(metrics) == {"recall@10", "ndcg@10", "users"} and 0 <= metrics["recall@10"] <= 1
    # On clustered tastes, both content and co-occurrence beat raw popularity, and the blend is best.
    assert report["recommender"]["recall@10"] > report["most-popular"]["recall@10"]
    assert report["recommender"]["recall@10"] >= max(report["item-knn"]["recall@10"], report["bm25"]["recall@10"])


def test_cold_items_are_found_by_text_alone():
    items, histories = sample_histories()
    split = cold_item_split(histories, fraction=0.2, seed=5)
    report = evaluate(category_components(items), split, k=5, methods=["recommender", "item-knn"])
    assert report["item-knn"]["recall@5"] == 0.0  # co-occurrence cannot know unseen items
    assert report["recommender"]["recall@5"] > 0.3


def test_pipeline_filters_excludes_and_explains():
    items, histories = sample_histories()
    components = category_components(items)
    catalogue = MatrixCatalogue(components.ids, components.texts, components.vectors, metadata=components.metadata)
    train = {user: [item for item, _ in history] for user, history in histories.items()}
    history = train["ada"]
    ranked = rank_items(
        catalogue,
        CollaborativeModel(train),
        Query(
            history=history, weights=[1.0] * len(history), exclude=set(history), k=5, filters={"category": "cooking"}
        ),
        RecommenderOptions(),
    )
    assert len(ranked) == 5
    chosen = {item.id: item for item in items}
    assert all(chosen[r.item].metadata["category"] == "cooking" for r in ranked)
    assert not {r.item for r in ranked} & set(history)
    assert all(len(r.because) == 2 and r.because[0][0] in history for r in ranked)
