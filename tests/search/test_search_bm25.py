"""BM25 scores against a plain reference computation, and the tokeniser behind them."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from services.search import bm25 as bm25_module
from services.search.bm25 import BM25Params
from services.search.memory import MemoryIndex
from services.search.text import Tokenizer, english_stop_words

CORPUS = [
    "Transformers changed natural language processing in 2017.",
    "BM25 is a bag-of-words ranking function used by search engines.",
    "Search engines rank documents by relevance to a query.",
    "The Okapi BM25 weighting scheme extends TF-IDF with length normalisation.",
    "Dense retrieval embeds queries and documents into vectors.",
    "Hybrid search fuses lexical BM25 ranks with dense vector ranks.",
    "Reciprocal rank fusion adds one over k plus rank for every list.",
    "Language models can also rank documents for a query.",
    "Stop words such as the and of are removed before ranking.",
    "Length normalisation keeps long documents from dominating the ranking ranking ranking.",
    "Vectors are compared by cosine similarity after normalisation.",
    "A search index stores documents, vectors and metadata on disk.",
]
QUERIES = ["bm25 ranking", "search documents query", "rank rank fusion", "vectors normalisation cosine", "zebra"]


def reference_bm25(corpus: list[list[str]], query: list[str], k1=1.5, b=0.75, idf="lucene") -> list[float]:
    """Okapi BM25 written out term by term, as in the textbook."""
    n = len(corpus)
    avgdl = sum(len(doc) for doc in corpus) / n
    scores = []
    for doc in corpus:
        tf = Counter(doc)
        score = 0.0
        for term in query:
            df = sum(1 for other in corpus if term in other)
            if df == 0 or tf[term] == 0:
                continue
            ratio = (n - df + 0.5) / (df + 0.5)
            weight = math.log(1 + ratio) if idf == "lucene" else math.log(ratio)
            score += weight * tf[term] * (k1 + 1) / (tf[term] + k1 * (1 - b + b * len(doc) / avgdl))
        scores.append(score)
    return scores


def scores_by_id(memory: MemoryIndex, query: str) -> dict[str, float]:
    return dict(memory.bm25(query, k=1000))


def expected_by_id(ids: list[str], texts: list[str], query: str, tokenizer: Tokenizer, **kw) -> dict[str, float]:
    tokens = tokenizer.tokenize_many(texts)
    scores = reference_bm25(tokens, tokenizer(query), **kw)
    matching = set(tokenizer(query))
    return {doc_id: score for doc_id, score, doc in zip(ids, scores, tokens, strict=True) if set(doc) & matching}


@pytest.mark.parametrize("idf", ["lucene", "robertson"])
@pytest.mark.parametrize("query", QUERIES)
def test_scores_equal_the_reference(query: str, idf: str):
    tokenizer = Tokenizer()
    memory = MemoryIndex(None, tokenizer=tokenizer, bm25=BM25Params(idf=idf))
    ids = [f"d{i}" for i in range(len(CORPUS))]
    memory.add_many((doc_id, text, None, None) for doc_id, text in zip(ids, CORPUS, strict=True))
    expected = expected_by_id(ids, CORPUS, query, tokenizer, idf=idf)
    got = scores_by_id(memory, query)
    assert got.keys() == expected.keys()
    for doc_id, score in expected.items():
        assert got[doc_id] == pytest.approx(score, rel=1e-9)
    ranked = [doc_id for doc_id, _ in memory.bm25(query, k=3)]
    assert ranked == sorted(expected, key=lambda d: (-expected[d], d))[:3]


def test_other_k1_b_and_repeated_query_terms():
    tokenizer = Tokenizer()
    params = BM25Params(k1=0.9, b=0.4)
    memory = MemoryIndex(None, tokenizer=tokenizer, bm25=params)
    ids = [f"d{i}" for i in range(len(CORPUS))]
    memory.add_many((doc_id, text, None, None) for doc_id, text in zip(ids, CORPUS, strict=True))
    query = "ranking ranking documents"  # a repeated query token counts twice, as in rank_bm25
    expected = expected_by_id(ids, CORPUS, query, tokenizer, k1=0.9, b=0.4)
    got = scores_by_id(memory, query)
    assert got == pytest.approx(expected, rel=1e-9)


def test_statistics_follow_deletes_replacements_merges_and_compaction(monkeypatch: pytest.MonkeyPatch):
    """N, df and avgdl must count live documents only, whichever internal layout holds them."""
    monkeypatch.setattr(bm25_module, "TAIL_ROWS", 3)  # many parts and merges
    monkeypatch.setattr("services.search.memory.COMPACT_MIN_DEAD", 2)
    monkeypatch.setattr("services.search.memory.ADD_CHUNK", 4)
    tokenizer = Tokenizer()
    memory = MemoryIndex(None, tokenizer=tokenizer)
    live: dict[str, str] = {}
    rng = np.random.default_rng(1)
    for step in range(12):
        pairs = zip(rng.integers(0, 15, 5), rng.integers(0, 12, 5), strict=True)
        batch = {f"d{int(i)}": CORPUS[int(j)] for i, j in pairs}
        memory.add_many((doc_id, text, None, None) for doc_id, text in batch.items())
        live.update(batch)
        gone = [f"d{int(i)}" for i in rng.integers(0, 15, 2)]
        memory.remove_many(gone)
        for doc_id in gone:
            live.pop(doc_id, None)
        assert len(memory) == len(live)
        ids = sorted(live)
        for query in QUERIES[:4]:
            expected = expected_by_id(ids, [live[i] for i in ids], query, tokenizer)
            assert scores_by_id(memory, query) == pytest.approx(expected, rel=1e-9), (step, query)


def test_rank_bm25_agrees_when_installed():
    """With the same tokens and robertson idf without flooring, rank_bm25's BM25Okapi ranks alike."""
    rank_bm25 = pytest.importorskip(
        "rank_bm25", reason="rank_bm25 (the bench extra) is not installed: pip install -e '.[bench]'"
    )
    tokenizer = Tokenizer()
    tokens = tokenizer.tokenize_many(CORPUS)
    reference = rank_bm25.BM25Okapi(tokens, k1=1.5, b=0.75, epsilon=0.25)
    memory = MemoryIndex(None, tokenizer=tokenizer, bm25=BM25Params(idf="robertson"))
    memory.add_many((f"d{i}", text, None, None) for i, text in enumerate(CORPUS))
    for query in QUERIES[:4]:
        theirs = reference.get_scores(tokenizer(query))
        ours = scores_by_id(memory, query)
        for doc_id, score in ours.items():  # where no idf was floored, the scores are the same
            if score > 0:
                assert score == pytest.approx(theirs[int(doc_id[1:])], rel=1e-6)


# -- tokeniser -------------------------------------------------------------------------------------
def test_default_tokenizer_lowercases_and_drops_english_stop_words():
    assert Tokenizer()("The Quick brown fox, and THE lazy dog's 2 bones!") == [
        "quick", "brown", "fox", "lazy", "dog", "s", "2", "bones",
    ]  # fmt: skip
    assert "the" in english_stop_words() and len(english_stop_words()) > 300


def test_tokenizer_options():
    text = "The runners were running quickly to the 2 finishing lines"
    assert Tokenizer(token_pattern=r"(?u)\b\w\w+\b")(text) == ["runners", "running", "quickly", "finishing", "lines"]
    assert Tokenizer(stopwords=None)(text)[:2] == ["the", "runners"]
    assert Tokenizer(stopwords={"runners", "the"})(text)[:2] == ["were", "running"]
    assert Tokenizer(stemmer="porter")(text) == ["runner", "run", "quickli", "2", "finish", "line"]
    assert Tokenizer(lowercase=False, stopwords=None)("The THE")[:2] == ["The", "THE"]
    fingerprints = {
        Tokenizer().fingerprint,
        Tokenizer(stemmer="porter").fingerprint,
        Tokenizer(stopwords=None).fingerprint,
    }
    assert len(fingerprints) == 3 and Tokenizer().fingerprint == Tokenizer().fingerprint
