"""Checks a message before any model sees it: empty, too long, binary, not English.

Cheap on purpose (a character n-gram language identifier, ~30 µs): it runs on every message.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import runpy
import unicodedata
from array import array
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from suite.errors import DataError

EMPTY_REPLY = "I didn't catch a question there. What can I help you with?"
BINARY_REPLY = "That message looks like binary data rather than text. Please type your question in plain words."
LANGUAGE_REPLY = (
    "Sorry, I can only help in English for now. Please write your question in English, or ask to speak to an adviser."
)
DEFAULT_LANGUAGE_CONFIDENCE = 0.7
# The languages customers write in most. Over all 97 of py3langid's, a short message's
# probability spreads thin ("Je voudrais bloquer ma carte bancaire": French at 0.68) and
# English-based ones take English messages (BANKING77's "how do i get a pin for my card":
# Nigerian Pidgin at 0.76); over these, BANKING77's 13,083 messages have no refusal at 0.7.
CANDIDATE_LANGUAGES = (
    *("en", "es", "fr", "de", "it", "pt", "nl", "pl", "ru", "uk", "tr", "ar", "zh", "ja"),
    *("ko", "hi", "sv", "da", "no", "ro", "cs", "el", "he", "id", "vi", "th", "fa"),
)
ENGLISH_LIKE = frozenset({"en"})
# Other languages' stop words (spaCy ships the lists, no model needed), for callers that want them.
OTHER_LANGUAGES = ("es", "fr", "de", "it", "pt", "nl")
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


@dataclass(frozen=True)
class InputCheck:
    """``text`` is the cleaned message; when ``reason`` is set, ``reply`` is the polite answer."""

    text: str
    reason: str | None = None  # "empty" | "binary" | "language"
    reply: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def check_message(
    message: object,
    *,
    max_chars: int,
    check_language: bool = True,
    language_confidence: float = DEFAULT_LANGUAGE_CONFIDENCE,
    cache_dir: Path | None = None,
) -> InputCheck:
    """Clean ``message`` and say whether it can be answered; raise DataError only when too long.

    ``cache_dir`` keeps the language identifier's model uncompressed (see :func:`language_identifier`)."""
    if isinstance(message, bytes | bytearray):
        try:
            message = bytes(message).decode("utf-8")
        except UnicodeDecodeError:
            return InputCheck("", "binary", BINARY_REPLY)
    if not isinstance(message, str):
        raise DataError(f"message must be text, got {type(message).__name__}")
    if len(message) > max_chars:
        raise DataError(f"message too long: {len(message)} characters (the limit is {max_chars})")
    if looks_binary(message):
        return InputCheck("", "binary", BINARY_REPLY)
    text = " ".join(unicodedata.normalize("NFC", message).split())
    if not text:
        return InputCheck("", "empty", EMPTY_REPLY)
    if check_language and not looks_english(text, confidence=language_confidence, cache_dir=cache_dir):
        return InputCheck(text, "language", LANGUAGE_REPLY)
    return InputCheck(text)


def looks_binary(text: str) -> bool:
    """Control characters (other than whitespace), NULs or many decoding replacement marks."""
    if not text:
        return False
    suspicious = sum(
        1
        for char in text
        if (unicodedata.category(char) in ("Cc", "Cs", "Co") and char not in "\t\n\r") or char == "\ufffd"
    )
    return suspicious > 0 and (suspicious >= 3 or suspicious / len(text) > 0.05 or "\x00" in text)


def looks_english(text: str, *, confidence: float = DEFAULT_LANGUAGE_CONFIDENCE, cache_dir: Path | None = None) -> bool:
    """False only when a language identifier (py3langid, its model ships with the package) is at
    least ``confidence`` sure the text is another language.

    Short English requests often look like nothing in particular ("who plays han solo":
    English at 0.14), so an unsure identifier lets the message through.
    """
    letters = [char for char in text if char.isalpha()]
    if not letters:
        return True  # digits or symbols only: let the classifier and retrieval decide
    latin = sum(1 for char in letters if unicodedata.normalize("NFD", char)[0].isascii())
    if latin / len(letters) < 0.6:
        return False  # mostly another script: no doubt
    language, probability = language_identifier(cache_dir).classify(text)
    return language in ENGLISH_LIKE or probability < confidence


@cache
def language_identifier(cache_dir: Path | None = None):
    """py3langid's identifier over ``CANDIDATE_LANGUAGES``, probabilities normalised.

    Its model ships xz-compressed: decompressing it takes most of a second, every process.
    With ``cache_dir`` the model, cut to the candidate languages, is kept there uncompressed
    after the first load and read back in a few hundredths of a second.
    """
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    cached = _cached_model_file(cache_dir, MODEL_DIR / MODEL_FILE) if cache_dir is not None else None
    if cached is not None and cached.is_file():
        try:
            return _identifier_from_cache(cached)
        except (OSError, ValueError, KeyError, TypeError, StopIteration):
            cached.unlink(missing_ok=True)  # unreadable: rebuilt below
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(CANDIDATE_LANGUAGES))
    if cached is not None:
        _write_cache(identifier, cached)
    return identifier


_CACHE_ARRAYS = ("nb_ptc", "nb_pc", "nb_classes", "tk_nextmove", "tk_row", "tk_output")


def _cached_model_file(cache_dir: Path, model_file: Path) -> Path:
    """A cache file name that changes with the shipped model and with the candidate languages."""
    stat = model_file.stat()
    key = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}:{','.join(CANDIDATE_LANGUAGES)}".encode()).hexdigest()
    return Path(cache_dir) / "language-identifier" / f"py3langid-{key[:16]}.npz"


def _identifier_from_cache(path: Path):
    import numpy as np
    from py3langid.langid import LanguageIdentifier

    with np.load(path, allow_pickle=False) as data:
        return LanguageIdentifier(
            data["nb_ptc"],
            data["nb_pc"],
            data["nb_classes"].tolist(),
            _unsigned_array(data["tk_nextmove"]),
            data["tk_output"].tolist(),
            norm_probs=True,
            tk_row=_unsigned_array(data["tk_row"]),
        )


def _unsigned_array(values) -> array:
    """A numpy array of unsigned ints as the stdlib ``array`` py3langid walks its automaton with."""
    typecode = next(code for code in "HIL" if array(code).itemsize == values.dtype.itemsize)
    out = array(typecode)
    out.frombytes(values.tobytes())
    return out


def _write_cache(identifier, path: Path) -> None:
    """Write atomically (a second process may read it at any time); a failure only costs speed."""
    import numpy as np

    arrays = {name: np.asarray(getattr(identifier, name)) for name in _CACHE_ARRAYS}
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with temp.open("wb") as out:
            np.savez(out, **arrays)
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)


@cache
def stop_words() -> tuple[frozenset[str], list[frozenset[str]]]:
    """English stop words, and each other language's stop words minus those English shares."""
    from services.search.text import english_stop_words

    english = english_stop_words()
    others = [
        frozenset(w for w in spacy_stop_words(code) if w not in english and len(w) > 1) for code in OTHER_LANGUAGES
    ]
    return english, [words for words in others if words]


def spacy_stop_words(code: str) -> frozenset[str]:
    """spaCy's stop words of one language, read from their module alone.

    Importing ``spacy.lang.<code>`` loads all of spaCy and that language's tokenizer
    exceptions (seconds); ``stop_words.py`` is plain Python, so it is run on its own.
    """
    spec = importlib.util.find_spec("spacy")
    source = Path(spec.origin).parent / "lang" / code / "stop_words.py" if spec and spec.origin else None
    if source is None or not source.is_file():  # a trimmed spaCy install: one language fewer
        return frozenset()
    return frozenset(runpy.run_path(str(source)).get("STOP_WORDS", ()))
