"""Knowing, without spaCy, that a text holds no entity of some labels.

A one-shot command that only wants the labels of plugin phrase patterns (the chatbot's card
types) would otherwise import spaCy and load its model, most of a cold start, to learn that
"how do I activate my card?" names no card type. The gate answers that case exactly: where
every pattern of the wanted labels is a sequence of literal tokens and the statistical model
cannot predict those labels, a match needs every token's text inside the case-folded message
(a token's text is a slice of it), so a message lacking one word of each pattern has none.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

# Token attributes whose value is the token's own text, lower-cased or not.
LITERAL_KEYS = frozenset({"LOWER", "ORTH", "TEXT", "lower", "orth", "text"})


class PatternGate:
    """Which texts may hold an entity of given labels, decided from the patterns alone."""

    def __init__(self, patterns: Iterable[dict[str, Any]], model_labels: frozenset[str] | None) -> None:
        self._words: dict[str, list[tuple[str, ...]]] = {}
        opaque: set[str] = set()  # labels with a pattern the gate cannot read (regex, shape, a phrase string)
        for pattern in patterns:
            words = literal_words(pattern["pattern"])
            if words is None:
                opaque.add(pattern["label"])
            else:
                self._words.setdefault(pattern["label"], []).append(words)
        self._gated = (
            set() if model_labels is None else {label for label in self._words if label not in opaque | model_labels}
        )

    def covers(self, labels: Collection[str]) -> bool:
        """True where every label comes from literal patterns only, so :meth:`may_match` is exact."""
        return all(label in self._gated for label in labels)

    def may_match(self, text: str, labels: Collection[str]) -> bool:
        folded = text.casefold()  # context-free, unlike lower() (a final Greek sigma before an apostrophe)
        return any(all(word in folded for word in words) for label in labels for words in self._words.get(label, ()))


def literal_words(body: Any) -> tuple[str, ...] | None:
    """The case-folded token texts of a token-list pattern made of literal tokens only, else None."""
    if not isinstance(body, list):
        return None  # a phrase string is tokenized by spaCy: its tokens are unknown here
    words = []
    for token in body:
        if not isinstance(token, dict) or len(token) != 1:
            return None  # "OP", several attributes at once: no longer a plain sequence
        ((key, value),) = token.items()
        if key not in LITERAL_KEYS or not isinstance(value, str) or not value:
            return None
        words.append(value.casefold())
    return tuple(words)


def model_entity_labels(name: str) -> frozenset[str] | None:
    """The labels a spaCy model's NER predicts, read from its ``meta.json`` without importing spaCy;
    None where that cannot be told."""
    if name.startswith("blank:"):
        return frozenset()
    folder = Path(name).expanduser()
    if not folder.is_dir():
        spec = importlib.util.find_spec(name) if name.isidentifier() else None
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = Path(next(iter(spec.submodule_search_locations)))
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        # Every component's labels, not only the NER's: a model may ship an entity ruler of its own.
        return frozenset(label for labels in meta["labels"].values() for label in labels)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
