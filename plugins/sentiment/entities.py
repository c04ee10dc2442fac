"""Linking mentions to the watchlist: entity-ruler patterns plus ORG names from spaCy.

Tickers are matched case-sensitively and, bare, only for watchlist tickers (``IT`` or
``ALL`` in running text must not become companies); cash-tags (``$XYZ``) are always
tickers. Multi-word aliases match in any case, one-word aliases as written.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from plugins.sentiment.options import WatchEntity

TICKER_LABEL = "TICKER"
ORG_LABEL = "ORG"
_TICKER_TEXT = re.compile(r"^\$?[A-Z][A-Z0-9.]{0,9}$")
_CASHTAG = r"^[A-Z][A-Z0-9]{0,5}$"
# Legal-form suffixes dropped before comparing an ORG name with the aliases.
_SUFFIXES = {
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "company",
    "plc",
    "ltd",
    "limited",
    "llc",
    "lp",
    "ag",
    "sa",
    "se",
    "nv",
    "bv",
    "gmbh",
    "group",
    "holding",
    "holdings",
}
_NON_WORD = re.compile(r"[^\w&]+")


class EntityLike(Protocol):
    text: str
    label: str
    id: str | None


def normalise_name(name: str) -> str:
    """``"The Apple Inc.'s"`` -> ``"apple"``: lower case, no punctuation, no legal form, no article."""
    words = _NON_WORD.sub(" ", name.lower().replace("'s", " ").replace("\u2019s", " ")).split()
    if words and words[0] == "the":
        words = words[1:]
    while len(words) > 1 and words[-1] in _SUFFIXES:
        words.pop()
    return " ".join(words)


def is_ticker_alias(alias: str) -> bool:
    return alias.startswith("$") or (bool(_TICKER_TEXT.match(alias)) and len(alias) <= 6 and alias.isupper())


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from services.preprocessing.spacy_import import import_spacy

    spacy = import_spacy()

    return spacy.blank("en").tokenizer


def alias_tokens(alias: str) -> list[str]:
    """Split an alias the way the shared pipeline's English tokenizer will split the text."""
    return [token.text for token in _tokenizer()(alias)]


def cached_alias_tokens(aliases: Sequence[str], cache_dir: Path | None) -> dict[str, list[str]]:
    """:func:`alias_tokens` of each alias, kept in ``cache_dir`` per watchlist and spaCy version: building
    spaCy's English tokenizer takes a third of a second that a one-shot command need not pay again."""
    aliases = sorted(set(aliases))
    if cache_dir is None:
        return {alias: alias_tokens(alias) for alias in aliases}
    key = hashlib.sha256(json.dumps([importlib.metadata.version("spacy"), aliases]).encode()).hexdigest()[:24]
    path = Path(cache_dir) / "entity-patterns" / f"{key}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    tokens = {alias: alias_tokens(alias) for alias in aliases}
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:  # atomically: another process may read it at any time; failing only costs speed
        path.parent.mkdir(parents=True, exist_ok=True)
        temp.write_text(json.dumps(tokens), encoding="utf-8")
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)
    return tokens


def alias_pattern(alias: str, tokens: Sequence[str] | None = None) -> list[dict[str, str]]:
    """Token patterns for an alias (``tokens``: its :func:`alias_tokens`, if known): multi-word ones
    ignore case, one-word ones keep it.

    ``northwind bank`` is unambiguous in any case; ``Apple`` must not match the fruit.
    """
    tokens = alias_tokens(alias) if tokens is None else tokens
    if len(tokens) == 1:
        return [{"ORTH": tokens[0]}]
    return [{"LOWER": token.lower()} for token in tokens]


class EntityLinker:
    """Knows the watchlist: produces entity-ruler patterns and links found entities to names."""

    def __init__(self, watchlist: Sequence[WatchEntity]) -> None:
        self.watchlist = list(watchlist)
        self.names = [entity.name for entity in self.watchlist]
        self._known = set(self.names)
        self.by_ticker: dict[str, str] = {}
        self.by_alias: dict[str, str] = {}
        for entity in self.watchlist:
            if entity.ticker:
                self.by_ticker[entity.ticker] = entity.name
            for alias in [entity.name, *entity.aliases]:
                if is_ticker_alias(alias):
                    self.by_ticker[alias.lstrip("$").upper()] = entity.name
                else:
                    self.by_alias[normalise_name(alias)] = entity.name

    def patterns(self, cache_dir: Path | None = None) -> list[dict[str, Any]]:
        """Patterns for the shared entity ruler (``suite_entity_patterns``); ``cache_dir`` keeps the
        aliases' tokens (see :func:`cached_alias_tokens`)."""
        aliases = [a for entity in self.watchlist for a in [entity.name, *entity.aliases] if not is_ticker_alias(a)]
        tokens = cached_alias_tokens(aliases, cache_dir)
        patterns: list[dict[str, Any]] = [
            {"label": TICKER_LABEL, "pattern": [{"ORTH": "$"}, {"TEXT": {"REGEX": _CASHTAG}}]}
        ]
        for ticker, name in sorted(self.by_ticker.items()):
            patterns.append({"label": TICKER_LABEL, "pattern": [{"ORTH": ticker}], "id": name})
        for entity in self.watchlist:
            for alias in dict.fromkeys([entity.name, *entity.aliases]):
                if not is_ticker_alias(alias):
                    pattern = alias_pattern(alias, tokens[alias])
                    patterns.append({"label": ORG_LABEL, "pattern": pattern, "id": entity.name})
        return patterns

    def resolve(self, text: str) -> str | None:
        """The watchlist name a free-text mention (name, alias, ticker or cash-tag) stands for."""
        stripped = text.strip()
        if stripped.startswith("$") or stripped in self.by_ticker:
            return self.by_ticker.get(stripped.lstrip("$").upper())
        if stripped.upper() in self.by_ticker and len(stripped) <= 6:
            return self.by_ticker[stripped.upper()]
        if stripped in self._known:
            return stripped
        return self.by_alias.get(normalise_name(stripped))

    def link(self, entities: Iterable[EntityLike]) -> dict[str, str]:
        """Watchlist name -> the first text that mentioned it, for one document's entities."""
        found: dict[str, str] = {}
        for entity in entities:
            name = self._link_one(entity)
            if name and name not in found:
                found[name] = entity.text
        return found

    def _link_one(self, entity: EntityLike) -> str | None:
        if entity.id and entity.id in self._known:
            return entity.id
        if entity.label == TICKER_LABEL:
            return self.by_ticker.get(entity.text.replace(" ", "").lstrip("$"))
        if entity.label == ORG_LABEL:
            return self.by_alias.get(normalise_name(entity.text)) or self.by_ticker.get(entity.text.strip())
        return None
