"""The one spaCy pipeline every plugin shares: model, plugin entity patterns, plugin components."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.errors import ConfigError, ModelError, PluginError
from services.preprocessing.pattern_gate import PatternGate, model_entity_labels
from services.preprocessing.spacy_import import import_spacy

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

    from services.settings import PreprocessingConfig

log = logging.getLogger(__name__)

# Components that set sentence boundaries; without one of them ``doc.sents`` raises.
SENTENCE_COMPONENTS = ("parser", "senter", "sentencizer")
_warned_missing: set[str] = set()  # model names already warned about, so the warning shows once


@dataclass(frozen=True)
class Entity:
    """A named entity; ``start``/``end`` are character offsets, ``id`` the matching pattern's id."""

    text: str
    label: str
    start: int
    end: int
    id: str | None = None


class Preprocessor:
    """The shared spaCy pipeline, loaded on first use and once per process.

    ``config.spacy_model`` is loaded when installed, else a blank pipeline of the same
    language with a sentencizer and a lookup lemmatizer. Entity ``patterns`` (spaCy
    ``EntityRuler`` format) go into one ruler placed before the statistical NER so they
    win overlaps; then ``configure(nlp)`` lets plugins add components; finally the
    components named in ``config.disable`` are switched off. ``configure`` is None where no
    plugin adds components: only then can :meth:`entities` answer some texts without spaCy.
    """

    def __init__(
        self,
        config: PreprocessingConfig,
        patterns: Sequence[dict[str, Any]] = (),
        configure: Callable[[Language], Any] | None = None,
    ) -> None:
        self.config = config
        self._patterns = [validate_pattern(index, pattern) for index, pattern in enumerate(patterns)]
        self._configure = configure
        self._nlp: Language | None = None
        self._model_name = ""
        self._lock = threading.RLock()
        self._building = False

    # -- the pipeline --------------------------------------------------------------------
    @property
    def nlp(self) -> Language:
        if self._nlp is None:
            with self._lock:
                if self._building:
                    raise RuntimeError("the shared pipeline is being built: use the `nlp` passed to the hook")
                if self._nlp is None:
                    self._building = True
                    try:
                        self._nlp = self._build()
                    finally:
                        self._building = False
        return self._nlp

    @property
    def model_name(self) -> str:
        """The pipeline actually loaded: the configured model, or ``blank:<lang>``."""
        self.nlp  # noqa: B018 - loads the pipeline
        return self._model_name

    @property
    def is_fallback(self) -> bool:
        return self.model_name.startswith("blank:")

    @property
    def entity_patterns(self) -> list[dict[str, Any]]:
        return list(self._patterns)

    def describe(self) -> dict[str, Any]:
        """What is loaded, for ``suite preprocess info`` and status pages."""
        nlp = self.nlp
        return {
            "model": self.model_name,
            "version": nlp.meta.get("version", ""),
            "fallback": self.is_fallback,
            "components": list(nlp.pipe_names),
            "disabled": list(nlp.disabled),
            "entity_patterns": len(self._patterns),
        }

    def _build(self) -> Language:
        nlp, self._model_name = load_pipeline(self.config.spacy_model)
        if self._patterns:
            add_entity_ruler(nlp, self._patterns)
        if self._configure is not None:
            self._configure(nlp)
        apply_disable(nlp, self.config.disable, strict=not self._model_name.startswith("blank:"))
        ensure_sentence_boundaries(nlp, keep_off=self.config.disable)
        log.info("spaCy pipeline %s: %s", self._model_name, ", ".join(nlp.pipe_names))
        return nlp

    # -- processing ----------------------------------------------------------------------
    def pipe(self, texts: Iterable[str], batch_size: int | None = None) -> Iterator[Doc]:
        """Process texts in batches (``nlp.pipe``), in order."""
        return self.nlp.pipe(texts, batch_size=batch_size or self.config.batch_size, n_process=self.config.n_process)

    def entities(self, texts: Sequence[str], labels: Collection[str] | None = None) -> list[list[Entity]]:
        """The entities of each text, with character offsets; only those of ``labels`` when given.

        Asked only for labels of literal plugin patterns, a text that lacks their words is answered
        without the pipeline, so a cold process that needs no entity never loads spaCy.
        """
        _require_sequence_of_texts(texts)
        wanted = None if labels is None else frozenset(labels)
        parsed = self._texts_to_parse(texts, wanted)
        found: list[list[Entity]] = [[] for _ in texts]
        docs = self.pipe(texts[index] for index in parsed) if parsed else ()
        for index, doc in zip(parsed, docs, strict=True):
            found[index] = [
                Entity(ent.text, ent.label_, ent.start_char, ent.end_char, ent.ent_id_ or None)
                for ent in doc.ents
                if wanted is None or ent.label_ in wanted
            ]
        return found

    def _texts_to_parse(self, texts: Sequence[str], wanted: frozenset[str] | None) -> list[int]:
        """Indexes of the texts the pipeline must see: all, unless the gate can rule some out (it cannot once
        plugins add components, which may set entities of any label)."""
        if wanted is not None and not wanted:
            return []
        if wanted is None or self._nlp is not None or self._configure is not None or not self._gate.covers(wanted):
            return list(range(len(texts)))
        return [index for index, text in enumerate(texts) if self._gate.may_match(text, wanted)]

    @cached_property
    def _gate(self) -> PatternGate:
        return PatternGate(self._patterns, model_entity_labels(self.config.spacy_model))

    def sentences(self, text: str) -> list[str]:
        return [sent.text.strip() for sent in self.nlp(text).sents if not sent.text.isspace()]

    def lemmas(self, text: str) -> list[str]:
        """One lemma per non-space token (the token itself where no lemmatizer ran)."""
        return [token.lemma_ or token.text for token in self.nlp(text) if not token.is_space]


# -- building blocks ---------------------------------------------------------------------
def load_pipeline(name: str) -> tuple[Language, str]:
    """Load an installed spaCy package or path; fall back to a blank pipeline if absent."""
    spacy = import_spacy()

    path = Path(name).expanduser()
    if path.exists() or spacy.util.is_package(name):
        try:
            return spacy.load(path if path.exists() else name), name
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"spaCy model '{name}' is installed but cannot be loaded: {exc}") from None
    lang = _language_of(name)
    if name not in _warned_missing:
        _warned_missing.add(name)
        log.warning("spaCy model '%s' is not installed: using a blank '%s' pipeline (no NER, no parser)", name, lang)
    return blank_pipeline(lang), f"blank:{lang}"


def blank_pipeline(lang: str = "en") -> Language:
    """A blank pipeline with rule-based sentences and, where lookup tables exist, lemmas."""
    spacy = import_spacy()

    nlp = spacy.blank(lang)
    nlp.add_pipe("sentencizer")
    lemmatizer = nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    try:
        lemmatizer.initialize()  # loads the lookup tables from spacy-lookups-data
    except (ValueError, OSError, ImportError) as exc:
        log.info("no lookup lemmatizer for '%s': %s", lang, exc)
        nlp.remove_pipe("lemmatizer")
    return nlp


def _language_of(name: str) -> str:
    """``de_core_news_sm`` -> ``de``; anything spaCy does not know -> ``en``."""
    spacy = import_spacy()

    prefix = Path(name).name.split("_", 1)[0].lower()
    try:
        spacy.util.get_lang_class(prefix)
    except Exception:  # noqa: BLE001 - spaCy raises ImportError or its own errors here
        return "en"
    return prefix


def validate_pattern(index: int, pattern: Any) -> dict[str, Any]:
    """Check the shape of one ``EntityRuler`` pattern so a bad plugin fails with one line."""
    if not isinstance(pattern, dict):
        raise PluginError(f"entity pattern #{index} is not a dict: {pattern!r}")
    label, body = pattern.get("label"), pattern.get("pattern")
    if not isinstance(label, str) or not label:
        raise PluginError(f"entity pattern #{index} has no 'label': {pattern!r}")
    if not (isinstance(body, str) and body) and not (
        isinstance(body, list) and body and all(isinstance(token, dict) for token in body)
    ):
        raise PluginError(f"entity pattern #{index} needs 'pattern' (a phrase or a list of token dicts): {pattern!r}")
    return dict(pattern)


def add_entity_ruler(nlp: Language, patterns: list[dict[str, Any]]) -> None:
    """One ruler for all plugin patterns, before ``ner`` so the statistical model keeps their spans."""
    name = "entity_ruler" if "entity_ruler" not in nlp.component_names else "suite_entity_ruler"
    placement = {"before": "ner"} if "ner" in nlp.component_names else {}
    ruler = nlp.add_pipe("entity_ruler", name=name, config={"overwrite_ents": True, "validate": True}, **placement)
    try:
        # Phrase patterns only need the tokenizer: without this every earlier component runs on each one.
        with nlp.select_pipes(enable=[name]):
            ruler.add_patterns(patterns)
    except (ValueError, KeyError, TypeError) as exc:
        nlp.remove_pipe(name)
        raise PluginError(f"invalid entity pattern: {' '.join(str(exc).split())}") from None


def apply_disable(nlp: Language, names: Iterable[str], *, strict: bool) -> None:
    """Switch off configured components; an unknown name is a config error for a real model."""
    for name in names:
        if name in nlp.pipe_names:
            nlp.disable_pipe(name)
        elif name not in nlp.component_names and strict:
            raise ConfigError(
                f"preprocessing.disable: no component '{name}' (components: {', '.join(nlp.component_names)})"
            )


def ensure_sentence_boundaries(nlp: Language, keep_off: Iterable[str] = ()) -> None:
    """Keep ``doc.sents`` working when the parser is disabled: enable senter, else add a sentencizer."""
    if any(name in nlp.pipe_names for name in SENTENCE_COMPONENTS):
        return
    if "senter" in nlp.disabled and "senter" not in keep_off:
        nlp.enable_pipe("senter")
    else:
        nlp.add_pipe("sentencizer", first=True)


def _require_sequence_of_texts(texts: Any) -> None:
    if isinstance(texts, str):
        raise TypeError("expected a sequence of texts, got one str: wrap it in a list")
