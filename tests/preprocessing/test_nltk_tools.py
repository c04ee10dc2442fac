"""NLTK helpers work offline: no punkt, no corpora, never nltk.download."""

from __future__ import annotations

from pathlib import Path

import nltk
import pytest

from services.preprocessing import collocations, ngrams, nltk_tools, social_tokenize, stem


@pytest.fixture(autouse=True)
def no_nltk_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty data path and a download that fails: any helper needing data would raise."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("nltk.download must never be called")

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    monkeypatch.setattr(nltk, "download", refuse)
    nltk_tools._stemmer.cache_clear()
    nltk_tools._tweet_tokenizer.cache_clear()


def test_stemmers() -> None:
    words = ["running", "generously", "cats", "Connection"]
    assert stem(words) == ["run", "gener", "cat", "connect"]
    assert stem(words, "snowball") == ["run", "generous", "cat", "connect"]
    assert stem(words, "lancaster") == ["run", "gen", "cat", "connect"]
    assert stem(["corriendo"], "snowball", language="spanish") == ["corr"]
    with pytest.raises(ValueError, match="unknown stemming algorithm"):
        stem(words, "krovetz")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="klingon"):
        stem(words, "snowball", language="klingon")


def test_ngrams() -> None:
    tokens = ["i", "lost", "my", "card"]
    assert ngrams(tokens, 2) == [("i", "lost"), ("lost", "my"), ("my", "card")]
    assert ngrams(tokens, 4) == [tuple(tokens)]
    assert ngrams(tokens, 5) == []
    with pytest.raises(ValueError):
        ngrams(tokens, 0)


DOCS = [
    ["my", "credit", "card", "was", "declined", "at", "the", "shop"],
    ["why", "was", "my", "credit", "card", "declined"],
    ["the", "exchange", "rate", "looks", "wrong"],
    ["what", "exchange", "rate", "do", "you", "use", "for", "my", "credit", "card"],
    ["card", "declined", "again"],
    ["new", "york"],
    ["credit", "card", "limit"],
    ["credit", "card", "fees"],
]


def test_collocations_rank_repeated_pairs() -> None:
    # pmi favours the rarer fixed phrase, the likelihood ratio the frequent one
    assert collocations(DOCS, top=4, min_freq=2) == [
        ("exchange", "rate"),
        ("my", "credit"),
        ("credit", "card"),
        ("card", "declined"),
    ]
    assert collocations(DOCS, top=2, min_freq=2, measure="likelihood_ratio") == [
        ("credit", "card"),
        ("exchange", "rate"),
    ]
    assert ("new", "york") in collocations(DOCS, top=50, min_freq=1)
    assert ("my", "credit") not in collocations(DOCS, top=50, min_freq=2, stopwords={"my"})


def test_collocations_never_span_documents() -> None:
    assert collocations([["a", "b"], ["c", "d"]], top=10, min_freq=1) == [("a", "b"), ("c", "d")]
    with pytest.raises(TypeError, match="token lists"):
        collocations(["not", "nested"], top=1)
    with pytest.raises(ValueError, match="measure"):
        collocations(DOCS, measure="chi")  # type: ignore[arg-type]


def test_social_tokenize() -> None:
    tokens = social_tokenize("@Support my card is sooooo BROKEN :-( #fail https://t.co/abc")
    assert tokens == ["@support", "my", "card", "is", "sooo", "broken", ":-(", "#fail", "https://t.co/abc"]
