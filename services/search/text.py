"""The BM25 tokeniser: lowercase word tokens minus English stop words, optionally stemmed.

It is a small value object, so a benchmark can hand the very same tokens to
``rank_bm25`` or ``bm25s`` (``Tokenizer(token_pattern=r"(?u)\\b\\w\\w+\\b")`` is bm25s's
pattern) and compare rankings when the scoring is the same.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import runpy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Literal

DEFAULT_TOKEN_PATTERN = r"\w+"


@cache
def english_stop_words() -> frozenset[str]:
    """spaCy's English stop words (326), read from their module without importing spaCy.

    ``import spacy.lang.en.stop_words`` first imports all of spaCy (3-5 s here); the module
    itself is plain Python with no imports, so it is run on its own.
    """
    spec = importlib.util.find_spec("spacy")
    source = Path(spec.origin).parent / "lang" / "en" / "stop_words.py" if spec and spec.origin else None
    if source is not None and source.is_file():
        return frozenset(runpy.run_path(str(source))["STOP_WORDS"])
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


@dataclass(frozen=True)
class Tokenizer:
    """Split text into BM25 terms.

    :param token_pattern: regex of one token, matched after lowercasing (default ``\\w+``:
        runs of Unicode letters, digits and underscores, so "don't" gives "don", "t").
    :param lowercase: lowercase before matching.
    :param stopwords: ``"english"`` (spaCy's list), ``None`` for none, or your own words.
    :param stemmer: ``None``, ``"porter"`` or ``"snowball"`` (NLTK's English stemmers, no data needed).
    """

    token_pattern: str = DEFAULT_TOKEN_PATTERN
    lowercase: bool = True
    stopwords: Literal["english"] | frozenset[str] | None = "english"
    stemmer: Literal["porter", "snowball"] | None = None
    _compiled: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", re.compile(self.token_pattern))
        if self.stopwords not in ("english", None) and not isinstance(self.stopwords, frozenset):
            object.__setattr__(self, "stopwords", frozenset(self.stopwords))

    @cached_property
    def stop_words(self) -> frozenset[str]:
        if self.stopwords == "english":
            return english_stop_words()
        return self.stopwords or frozenset()

    @cached_property
    def _stem(self) -> Callable[[str], str] | None:
        if self.stemmer is None:
            return None
        if self.stemmer == "porter":
            from nltk.stem.porter import PorterStemmer

            return cache(PorterStemmer().stem)
        from nltk.stem.snowball import SnowballStemmer

        return cache(SnowballStemmer("english").stem)

    def __call__(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        stop = self.stop_words
        tokens = [token for token in self._compiled.findall(text) if token not in stop]
        stem = self._stem
        return [stem(token) for token in tokens] if stem else tokens

    def tokenize_many(self, texts: Iterable[str]) -> list[list[str]]:
        return [self(text) for text in texts]

    @cached_property
    def fingerprint(self) -> str:
        """Changes whenever the tokens would: used to invalidate cached term matrices."""
        stop = "english" if self.stopwords == "english" else ",".join(sorted(self.stop_words))
        key = "\x1f".join([self.token_pattern, str(self.lowercase), stop, str(self.stemmer)])
        return hashlib.sha256(key.encode()).hexdigest()[:16]
