"""The search contract, run against every backend (Elasticsearch only when a server is given).

The corpus is small enough to reason about each expected order by hand; comments say why.
Tokens after lowercasing and stop-word removal are given beside each passage.
"""

from __future__ import annotations

import numpy as np
import pytest

from services.search import Document, IndexSpec, SearchBackend
from suite.errors import DataError, NotFoundError

PASSAGES = {
    # ferry harbour ferry harbour (4 tokens)
    "harbour-ferry": "Ferry to the harbour, ferry back from the harbour.",
    # castle museum shows history castle (5)
    "castle-museum": "The castle museum shows the history of the castle.",
    # walk old town castle gate (5)
    "old-town": "Walk through the old town to the castle gate.",
    # museum night museum city opens late (6)
    "museum-night": "Museum night: every museum in the city opens late.",
    # rent bicycle river ride harbour (5)
    "bike-rental": "Rent a bicycle by the river and ride to the harbour.",
    # scenic mountain train climbs city (5)
    "mountain-train": "A scenic mountain train climbs above the city.",
}
# Cosine to the query vector e0: old-town 1, mountain-train .89, museum-night .71,
# harbour-ferry .10, bike-rental -.20, castle-museum -.99 -> that is the vector ranking.
QUERY_VECTOR = [1.0, 0.0, 0.0, 0.0]
VECTORS = {
    "old-town": [1.0, 0.0, 0.0, 0.0],
    "mountain-train": [1.0, 0.5, 0.0, 0.0],
    "museum-night": [1.0, 1.0, 0.0, 0.0],
    "harbour-ferry": [0.1, 1.0, 0.0, 0.0],
    "bike-rental": [-0.2, 0.0, 1.0, 0.0],
    "castle-museum": [-1.0, 0.0, 0.0, 0.1],
}
VECTOR_ORDER = ["old-town", "mountain-train", "museum-night", "harbour-ferry", "bike-rental", "castle-museum"]
METADATA = {
    "harbour-ferry": {
        "city": "Bergen",
        "year": 2019,
        "price": 12.5,
        "tags": ["boat", "harbour"],
        "open": True,
        "date": "2024-03-01",
        "venue": {"kind": "port"},
    },
    "castle-museum": {
        "city": "Edinburgh",
        "year": 2021,
        "price": 18.0,
        "tags": ["history"],
        "open": False,
        "date": "2024-05-20",
        "venue": {"kind": "museum"},
    },
    "old-town": {
        "city": "Edinburgh",
        "year": 2020,
        "price": 0,
        "tags": ["walk", "history"],
        "open": True,
        "date": "2023-11-02",
        "venue": {"kind": "street"},
    },
    "museum-night": {
        "city": "Bergen",
        "year": 2022,
        "price": 25,
        "tags": ["art"],
        "open": True,
        "date": "2024-01-15",
        "venue": {"kind": "museum"},
    },
    "bike-rental": {
        "city": "Utrecht",
        "year": 2023,
        "price": 9.5,
        "tags": ["bike", "harbour"],
        "open": False,
        "date": "2022-07-30",
    },
    "mountain-train": {"city": "Zermatt", "year": 2018, "price": 99, "tags": [], "open": True, "date": "2024-12-24"},
}
RRF_K = 60  # SearchConfig's default


def corpus() -> list[Document]:
    return [Document(doc_id, text, VECTORS[doc_id], METADATA[doc_id]) for doc_id, text in PASSAGES.items()]


@pytest.fixture
def travel(backend: SearchBackend) -> SearchBackend:
    backend.ensure_index(IndexSpec("travel", vector_dim=4, description="travel passages"))
    assert backend.upsert("travel", corpus()) == len(PASSAGES)
    return backend


def ids(hits) -> list[str]:
    return [hit.id for hit in hits]


def all_ids_matching(backend: SearchBackend, filters: dict) -> set[str]:
    return set(ids(backend.search("travel", vector=QUERY_VECTOR, k=50, filters=filters)))


# -- BM25 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("castle", ["castle-museum", "old-town"]),  # tf 2 beats tf 1 at equal length; others lack it
        ("harbour", ["harbour-ferry", "bike-rental"]),  # tf 2 in 4 tokens beats tf 1 in 5
        ("city", ["mountain-train", "museum-night"]),  # same tf, the shorter passage wins
        ("Museum CASTLE", ["castle-museum", "museum-night", "old-town"]),  # 3 query hits > 2 > 1, case-blind
        ("ferry bicycle river", ["bike-rental", "harbour-ferry"]),  # two rare terms beat one twice
    ],
)
def test_bm25_ranks_by_term_frequency_length_and_rarity(travel: SearchBackend, query: str, expected: list[str]):
    hits = travel.search("travel", text=query, mode="bm25")
    assert ids(hits) == expected
    assert [hit.bm25_rank for hit in hits] == list(range(1, len(expected) + 1))
    assert all(hit.vector_rank is None for hit in hits)
    assert all(a.score > b.score > 0 for a, b in zip(hits, hits[1:], strict=False))
    assert hits[0].text == PASSAGES[expected[0]] and hits[0].metadata == METADATA[expected[0]]


def test_bm25_rare_term_outweighs_common_term(travel: SearchBackend):
    # "train" is in one passage, "harbour" in two: at equal length and tf the rarer term wins.
    order = ids(travel.search("travel", text="harbour train"))
    assert order.index("mountain-train") < order.index("bike-rental")
    assert set(order) == {"harbour-ferry", "mountain-train", "bike-rental"}


def test_bm25_edge_cases(travel: SearchBackend):
    assert travel.search("travel", text="the of and") == []  # stop words only: nothing to match
    assert travel.search("travel", text="submarine") == []
    assert ids(travel.search("travel", text="castle", k=1)) == ["castle-museum"]
    for empty in ("", "   "):
        with pytest.raises(DataError):
            travel.search("travel", text=empty, mode="bm25")


# -- vectors ---------------------------------------------------------------------------------------
def test_vector_search_orders_by_cosine(travel: SearchBackend):
    hits = travel.search("travel", vector=np.array(QUERY_VECTOR) * 3.0, k=6)  # scale must not matter
    assert ids(hits) == VECTOR_ORDER
    assert [hit.vector_rank for hit in hits] == list(range(1, 7))
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[1].score == pytest.approx(1 / np.sqrt(1.25), abs=1e-4)
    assert hits[-1].score == pytest.approx(-1 / np.sqrt(1.01), abs=1e-4)


def test_exact_knn_matches_numpy_brute_force(backend: SearchBackend):
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(200, 16)).astype(np.float32)
    backend.ensure_index(IndexSpec("knn", vector_dim=16))
    backend.upsert("knn", [Document(f"v{i}", f"passage {i}", vectors[i]) for i in range(200)])
    normalised = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for query in rng.normal(size=(5, 16)):
        similarities = normalised @ (query / np.linalg.norm(query))
        expected = np.argsort(-similarities)[:10]
        hits = backend.search("knn", vector=query, k=10)
        assert ids(hits) == [f"v{i}" for i in expected]
        assert [hit.score for hit in hits] == pytest.approx(similarities[expected], abs=1e-4)


def test_documents_without_vectors_are_left_out_of_vector_search(travel: SearchBackend):
    travel.upsert("travel", [Document("no-vector", "castle castle castle", None, {})])
    assert "no-vector" not in ids(travel.search("travel", vector=QUERY_VECTOR, k=50))
    assert ids(travel.search("travel", text="castle"))[0] == "no-vector"


# -- hybrid ------------------------------------------------------------------------------------
def test_hybrid_is_reciprocal_rank_fusion(travel: SearchBackend):
    hits = travel.search("travel", text="castle", vector=QUERY_VECTOR, k=6)  # both given: hybrid
    # old-town: bm25 #2 + vector #1; castle-museum: bm25 #1 + vector #6; the rest: vector only.
    assert ids(hits) == ["old-town", "castle-museum", "mountain-train", "museum-night", "harbour-ferry", "bike-rental"]
    by_id = {hit.id: hit for hit in hits}
    assert (by_id["old-town"].bm25_rank, by_id["old-town"].vector_rank) == (2, 1)
    assert (by_id["castle-museum"].bm25_rank, by_id["castle-museum"].vector_rank) == (1, 6)
    assert (by_id["museum-night"].bm25_rank, by_id["museum-night"].vector_rank) == (None, 3)
    assert by_id["old-town"].score == pytest.approx(1 / (RRF_K + 2) + 1 / (RRF_K + 1))
    assert by_id["castle-museum"].score == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 6))
    assert by_id["mountain-train"].score == pytest.approx(1 / (RRF_K + 2))


def test_hybrid_equals_fusing_the_two_single_searches(travel: SearchBackend):
    text, k = "museum harbour city", 4
    bm25 = ids(travel.search("travel", text=text, k=50, mode="bm25"))
    knn = ids(travel.search("travel", vector=QUERY_VECTOR, k=50, mode="vector"))
    fused: dict[str, float] = {}
    for ranking in (bm25, knn):
        for rank, doc_id in enumerate(ranking, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + 1 / (RRF_K + rank)
    expected = sorted(fused, key=lambda doc_id: -fused[doc_id])[:k]
    hits = travel.search("travel", text=text, vector=QUERY_VECTOR, k=k, mode="hybrid")
    assert ids(hits) == expected
    assert [hit.score for hit in hits] == pytest.approx([fused[doc_id] for doc_id in expected])


def test_mode_inference_and_mode_errors(travel: SearchBackend):
    assert travel.search("travel", vector=QUERY_VECTOR, k=1)[0].vector_rank == 1
    assert travel.search("travel", text="castle", k=1)[0].bm25_rank == 1
    with pytest.raises(DataError):
        travel.search("travel")  # neither text nor vector
    with pytest.raises(DataError):
        travel.search("travel", text="castle", mode="vector")  # the backend never embeds
    with pytest.raises(DataError):
        travel.search("travel", vector=QUERY_VECTOR, mode="hybrid")  # hybrid needs text too
    with pytest.raises(DataError):
        travel.search("travel", text="castle", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(DataError):
        travel.search("travel", text="castle", k=0)


# -- filters -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"city": "Bergen"}, {"harbour-ferry", "museum-night"}),
        ({"city": "bergen"}, set()),  # exact, case-sensitive
        ({"year": 2021}, {"castle-museum"}),
        ({"price": 18}, {"castle-museum"}),  # 18 == 18.0
        ({"open": True}, {"harbour-ferry", "old-town", "museum-night", "mountain-train"}),
        ({"open": False}, {"castle-museum", "bike-rental"}),
        ({"city": ["Bergen", "Utrecht"]}, {"harbour-ferry", "museum-night", "bike-rental"}),
        ({"year": {"gte": 2020, "lte": 2022}}, {"castle-museum", "old-town", "museum-night"}),
        ({"year": {"gt": 2020, "lt": 2022}}, {"castle-museum"}),
        ({"price": {"lt": 10}}, {"old-town", "bike-rental"}),
        ({"date": {"gte": "2024-01-01"}}, {"harbour-ferry", "castle-museum", "museum-night", "mountain-train"}),
        ({"date": {"lt": "2024-01-01"}}, {"old-town", "bike-rental"}),
        ({"tags": "harbour"}, {"harbour-ferry", "bike-rental"}),  # any element of a list field
        ({"tags": ["history", "art"]}, {"castle-museum", "old-town", "museum-night"}),
        ({"venue.kind": "museum"}, {"castle-museum", "museum-night"}),  # nested key
        ({"city": "Edinburgh", "year": {"gte": 2021}}, {"castle-museum"}),  # all must hold
        ({"city": "Nowhere"}, set()),
        ({"missing_field": "x"}, set()),
    ],
)
def test_filters(travel: SearchBackend, filters: dict, expected: set[str]):
    assert all_ids_matching(travel, filters) == expected
    assert travel.count("travel", filters) == len(expected)


def test_filters_apply_in_every_mode(travel: SearchBackend):
    edinburgh_2021 = {"city": "Edinburgh", "year": {"gte": 2021}}
    assert ids(travel.search("travel", text="castle", filters=edinburgh_2021)) == ["castle-museum"]
    assert ids(travel.search("travel", vector=QUERY_VECTOR, filters={"open": False})) == [
        "bike-rental",
        "castle-museum",
    ]
    hybrid = travel.search("travel", text="castle", vector=QUERY_VECTOR, filters={"open": True})
    assert ids(hybrid)[0] == "old-town" and "castle-museum" not in ids(hybrid)
    assert travel.count("travel") == 6


@pytest.mark.parametrize(
    "filters",
    [
        {"year": {"from": 2020}},  # unknown range operator
        {"year": {}},
        {"year": {"gte": 2020, "lte": "2022"}},  # mixed kinds
        {"city": None},
        {"city": {"gte": True}},
        {"": "x"},
        {"city": {"nested": "dict"}},
        {"price": float("nan")},
    ],
)
def test_bad_filters_are_data_errors(travel: SearchBackend, filters: dict):
    with pytest.raises(DataError):
        travel.search("travel", text="castle", filters=filters)


# -- writes ------------------------------------------------------------------------------------
def test_upsert_replaces_by_id(travel: SearchBackend):
    replaced = Document("old-town", "A harbour tour by boat.", [0.0, 0.0, 0.0, 1.0], {"city": "Oslo"})
    assert travel.upsert("travel", [replaced]) == 1
    assert travel.count("travel") == 6
    assert "old-town" not in ids(travel.search("travel", text="castle"))
    assert ids(travel.search("travel", text="tour")) == ["old-town"]
    assert "old-town" not in all_ids_matching(travel, {"city": "Edinburgh"})
    assert all_ids_matching(travel, {"city": "Oslo"}) == {"old-town"}
    assert travel.search("travel", vector=[0, 0, 0, 1], k=1)[0].id == "old-town"
    stored = travel.get("travel", "old-town")
    assert stored is not None and stored.text == replaced.text and stored.metadata == {"city": "Oslo"}
    assert np.allclose(stored.vector, [0, 0, 0, 1])


def test_same_id_twice_in_one_upsert_keeps_the_last(travel: SearchBackend):
    travel.upsert("travel", [Document("twin", "first version"), Document("twin", "second version")])
    assert travel.get("travel", "twin").text == "second version"
    assert travel.search("travel", text="first") == []
    assert travel.count("travel") == 7


def test_delete_removes(travel: SearchBackend):
    assert travel.delete("travel", ["old-town", "not-there"]) == 1
    assert travel.get("travel", "old-town") is None
    assert travel.count("travel") == 5
    assert ids(travel.search("travel", text="castle")) == ["castle-museum"]
    assert "old-town" not in ids(travel.search("travel", vector=QUERY_VECTOR, k=10))
    assert travel.delete("travel", ["old-town"]) == 0
    travel.upsert("travel", [Document("old-town", PASSAGES["old-town"], VECTORS["old-town"], {})])
    assert ids(travel.search("travel", text="castle")) == ["castle-museum", "old-town"]


def test_get_returns_what_was_stored(travel: SearchBackend):
    doc = travel.get("travel", "museum-night")
    assert doc is not None
    assert doc.text == PASSAGES["museum-night"] and doc.metadata == METADATA["museum-night"]
    assert np.allclose(doc.vector, VECTORS["museum-night"])  # as given, not normalised
    assert travel.get("travel", "nope") is None


def test_bulk_upsert_of_thousands(backend: SearchBackend):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(3000, 8)).astype(np.float32)
    documents = (
        Document(f"p{i}", f"passage number {i} word{i}", vectors[i], {"n": i, "parity": ["even", "odd"][i % 2]})
        for i in range(3000)
    )
    backend.ensure_index(IndexSpec("bulk", vector_dim=8))
    assert backend.upsert("bulk", documents, batch_size=500) == 3000
    assert backend.count("bulk") == 3000
    assert backend.count("bulk", {"parity": "even"}) == 1500
    assert backend.count("bulk", {"n": {"gte": 1000, "lt": 1100}}) == 100
    assert ids(backend.search("bulk", text="word1234", k=3)) == ["p1234"]
    assert backend.search("bulk", vector=vectors[2345], k=1)[0].id == "p2345"


# -- persistence and sharing -------------------------------------------------------------------
def snapshot_of_results(backend: SearchBackend) -> list[list[tuple[str, float]]]:
    queries = [
        {"text": "castle museum"},
        {"text": "harbour city", "filters": {"open": True}},
        {"vector": QUERY_VECTOR},
        {"text": "museum", "vector": QUERY_VECTOR, "filters": {"city": ["Bergen", "Edinburgh"]}},
    ]
    return [[(hit.id, round(hit.score, 5)) for hit in backend.search("travel", **query)] for query in queries]


def test_results_survive_close_and_reopen(travel: SearchBackend, open_backend):
    travel.delete("travel", ["bike-rental"])
    travel.upsert("travel", [Document("extra", "castle harbour", [0.5, 0.5, 0.5, 0.5], {"open": True})])
    before = snapshot_of_results(travel)
    travel.close()
    reopened = open_backend()
    assert snapshot_of_results(reopened) == before
    assert reopened.count("travel") == 6
    assert reopened.list_indexes() == ["travel"]


def test_two_instances_see_each_others_writes(travel: SearchBackend, open_backend):
    other = open_backend()
    assert ids(other.search("travel", text="castle")) == ["castle-museum", "old-town"]
    travel.upsert("travel", [Document("new-castle", "castle castle castle", [0, 1, 0, 0], {"city": "Oslo"})])
    assert ids(other.search("travel", text="castle"))[0] == "new-castle"
    assert other.count("travel", {"city": "Oslo"}) == 1
    other.delete("travel", ["new-castle", "castle-museum"])
    assert ids(travel.search("travel", text="castle")) == ["old-town"]
    other.drop_index("travel")
    with pytest.raises(NotFoundError):
        travel.search("travel", text="castle")


# -- indexes and errors ------------------------------------------------------------------------
def test_index_management(backend: SearchBackend):
    assert backend.list_indexes() == []
    backend.ensure_index(IndexSpec("alpha", vector_dim=4, description="first"))
    backend.ensure_index(IndexSpec("alpha", vector_dim=4, description="first"))  # idempotent
    backend.ensure_index(IndexSpec("beta", vector_dim=None))
    assert backend.list_indexes() == ["alpha", "beta"]
    info = backend.describe("alpha")
    assert (info.name, info.documents, info.vector_dim, info.description) == ("alpha", 0, 4, "first")
    with pytest.raises(DataError):
        backend.ensure_index(IndexSpec("alpha", vector_dim=8))
    with pytest.raises(DataError):
        backend.ensure_index(IndexSpec("Bad Name!", vector_dim=4))
    backend.drop_index("alpha")
    assert backend.list_indexes() == ["beta"]
    with pytest.raises(NotFoundError):
        backend.drop_index("alpha")


def test_unknown_index_is_not_found(backend: SearchBackend):
    for call in (
        lambda: backend.search("ghost", text="castle"),
        lambda: backend.upsert("ghost", [Document("a", "text")]),
        lambda: backend.delete("ghost", ["a"]),
        lambda: backend.get("ghost", "a"),
        lambda: backend.count("ghost"),
        lambda: backend.describe("ghost"),
    ):
        with pytest.raises(NotFoundError, match="ghost"):
            call()


def test_wrong_vectors_are_data_errors(travel: SearchBackend):
    for bad in ([1.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [float("nan"), 0, 0, 0], "abcd"):
        with pytest.raises(DataError):
            travel.search("travel", vector=bad)
        with pytest.raises(DataError):
            travel.upsert("travel", [Document("bad", "bad vector", bad)])
    assert travel.get("travel", "bad") is None
    for bad_document in (Document("", "no id"), Document("x", None), Document("x", "t", metadata={"o": object()})):
        with pytest.raises(DataError):
            travel.upsert("travel", [bad_document])


def test_text_only_index(backend: SearchBackend):
    backend.ensure_index(IndexSpec("notes", vector_dim=None))
    backend.upsert("notes", [Document("n1", "castle notes"), Document("n2", "harbour notes")])
    assert ids(backend.search("notes", text="castle")) == ["n1"]
    with pytest.raises(DataError):
        backend.search("notes", vector=[1.0, 0.0])
    with pytest.raises(DataError):
        backend.upsert("notes", [Document("n3", "with a vector", [1.0, 0.0])])
    assert backend.describe("notes").vector_dim is None
