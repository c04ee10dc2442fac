"""An answer composed from retrieved passages, quoting them and citing each one.

Extractive on purpose: the bot only says what the knowledge base says. The best passage
is quoted (its most relevant sentences when it is long); a second passage from another
section adds its most relevant sentence when it is nearly as good.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from plugins.chatbot.knowledge import SENTENCE_END, RetrievedPassage

WORD = re.compile(r"[a-z0-9]+")
SECOND_PASSAGE_RATIO = 0.85  # a second passage is quoted when its similarity is this close to the best
SNIPPET_CHARS = 200


@dataclass(frozen=True)
class Citation:
    """A quoted passage: its id, title and document id (``doc``, the file's stem); never a server path."""

    id: str
    title: str
    doc: str
    kind: str
    url: str | None
    snippet: str
    score: float  # cosine similarity of the question and the passage

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@lru_cache(maxsize=4096)
def _stem(word: str) -> str:
    from services.preprocessing.nltk_tools import stem

    return stem([word])[0]


def content_stems(text: str) -> set[str]:
    from plugins.chatbot.guard import stop_words

    english, _ = stop_words()
    return {_stem(word) for word in WORD.findall(text.lower()) if word not in english}


def relevant_sentences(question: str, text: str, max_chars: int, limit: int | None = None) -> str:
    """Up to ``limit`` sentences of ``text`` sharing most words with ``question``, in their original order."""
    if len(text) <= max_chars and limit is None:
        return text
    sentences = [s.strip() for s in SENTENCE_END.split(text.replace("\n", " ")) if s.strip()]
    wanted = content_stems(question)
    ranked = sorted(range(len(sentences)), key=lambda i: (-len(wanted & content_stems(sentences[i])), i))
    chosen: list[int] = []
    used = 0
    for index in ranked[:limit]:
        if used + len(sentences[index]) > max_chars and chosen:
            continue
        chosen.append(index)
        used += len(sentences[index]) + 1
    return snippet(" ".join(sentences[i] for i in sorted(chosen)), max_chars)


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def compose_answer(
    question: str, passages: Sequence[RetrievedPassage], *, max_chars: int = 600, max_citations: int = 2
) -> tuple[str, list[Citation]]:
    """The answer text (with [n] markers) and its citations, from passages already judged relevant."""
    if not passages:
        return "", []
    best = passages[0]
    chosen = [best]
    for other in passages[1:]:
        if len(chosen) >= max_citations:
            break
        distinct = all(other.passage.title != seen.passage.title for seen in chosen)
        if distinct and other.similarity >= SECOND_PASSAGE_RATIO * best.similarity:
            chosen.append(other)
    parts = []
    budget = max_chars
    for number, item in enumerate(chosen, start=1):
        # The best passage gets most of the room; a later one adds its single best sentence.
        quoted = (
            relevant_sentences(question, item.passage.body, budget)
            if number == 1
            else relevant_sentences(question, item.passage.body, min(budget, max_chars // 3), limit=1)
        )
        if number > 1 and len(quoted) < 20:
            chosen = chosen[: number - 1]
            break
        parts.append(f"{quoted} [{number}]")
        budget -= len(quoted)
    citations = [
        Citation(
            id=item.passage.id,
            title=item.passage.title,
            doc=item.passage.doc,
            kind=item.passage.kind,
            url=item.passage.url,
            snippet=snippet(item.passage.body),
            score=round(item.similarity, 4),
        )
        for item in chosen
    ]
    return " ".join(parts), citations
