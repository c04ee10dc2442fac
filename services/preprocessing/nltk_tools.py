"""NLTK helpers that need no downloaded data (no punkt, no corpora): safe offline."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from functools import cache, lru_cache
from typing import Any, Literal

StemAlgorithm = Literal["porter", "snowball", "lancaster"]
AssocMeasure = Literal["pmi", "likelihood_ratio"]


@cache
def _stemmer(algorithm: str, language: str) -> Any:
    from nltk.stem import LancasterStemmer, PorterStemmer, SnowballStemmer

    if algorithm == "porter":
        return PorterStemmer()
    if algorithm == "snowball":
        if language not in SnowballStemmer.languages:
            raise ValueError(f"snowball has no '{language}' stemmer (known: {', '.join(SnowballStemmer.languages)})")
        return SnowballStemmer(language)
    if algorithm == "lancaster":
        return LancasterStemmer()
    raise ValueError(f"unknown stemming algorithm {algorithm!r} (porter, snowball, lancaster)")


def stem(tokens: Iterable[str], algorithm: StemAlgorithm = "porter", *, language: str = "english") -> list[str]:
    """Stem each token; ``language`` applies to snowball only. Stems are lowercase."""
    stemmer = _stemmer(algorithm, language)
    return [stemmer.stem(token) for token in tokens]


def ngrams(tokens: Iterable[str], n: int) -> list[tuple[str, ...]]:
    """Contiguous n-grams of a token sequence (empty when it is shorter than ``n``)."""
    from nltk.util import ngrams as nltk_ngrams

    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    return list(nltk_ngrams(tokens, n))


def collocations(
    token_lists: Sequence[Sequence[str]],
    top: int = 20,
    min_freq: int = 2,
    measure: AssocMeasure = "pmi",
    *,
    stopwords: Collection[str] = (),
) -> list[tuple[str, str]]:
    """The ``top`` bigrams that co-occur more than chance across documents.

    Bigrams never span two documents. Those seen fewer than ``min_freq`` times or
    containing a word of ``stopwords`` are dropped before ranking by ``measure``
    (``pmi`` favours rare fixed phrases, ``likelihood_ratio`` frequent ones).
    """
    from nltk.collocations import BigramAssocMeasures, BigramCollocationFinder

    if token_lists and isinstance(token_lists[0], str):
        raise TypeError("collocations() takes a list of token lists, one per document")
    if measure not in ("pmi", "likelihood_ratio"):
        raise ValueError(f"unknown association measure {measure!r} (pmi, likelihood_ratio)")
    finder = BigramCollocationFinder.from_documents(token_lists)
    finder.apply_freq_filter(min_freq)
    if stopwords:
        stop = frozenset(stopwords)
        finder.apply_word_filter(lambda word: word in stop)
    return finder.nbest(getattr(BigramAssocMeasures, measure), top)


@lru_cache(maxsize=1)
def _tweet_tokenizer() -> Any:
    from nltk.tokenize import TweetTokenizer

    return TweetTokenizer(preserve_case=False, reduce_len=True, strip_handles=False)


def social_tokenize(text: str) -> list[str]:
    """Tokens of social-media text: lowercased, emoticons/hashtags/@handles kept, 'soooo' -> 'sooo'."""
    return _tweet_tokenizer().tokenize(text)
