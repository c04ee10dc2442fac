"""Input checks, answer templates, slot extraction and the data files (no model needed)."""

from __future__ import annotations

import json

import pytest

from plugins.chatbot.data import load_labeled_texts, load_retrieval_eval
from plugins.chatbot.guard import check_message, looks_english
from plugins.chatbot.options import SAMPLE_DIR
from plugins.chatbot.slots import entity_patterns, slots_from_entities
from plugins.chatbot.templates import load_templates, parse_templates
from services.preprocessing import Entity
from suite.errors import DataError


# -- input checks --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("\x00\x01\x02binary\x03", "binary"),
        (b"\xff\xfe\x00\x81", "binary"),
        ("Hola, quiero bloquear mi tarjeta de crédito", "language"),
        ("Je voudrais bloquer ma carte bancaire", "language"),
        ("Ich möchte meine Karte sperren", "language"),
        ("hola quiero bloquear mi tarjeta", "language"),
        ("我的银行卡丢了", "language"),
        ("Моя карта потеряна", "language"),
    ],
)
def test_unanswerable_messages_get_a_polite_reason(message, reason):
    check = check_message(message, max_chars=1000)
    assert check.reason == reason and not check.ok
    assert check.reply and check.reply[0].isupper()


@pytest.mark.parametrize(
    "message",
    [
        "my card was declined",
        "ATM withdrawal fee charged twice",
        "Café in Málaga refused my Visa",
        "12345",
        "?!",
    ],
)
def test_english_and_symbol_only_messages_pass(message):
    assert check_message(message, max_chars=1000).ok


def test_every_sample_utterance_counts_as_english():
    rows = load_labeled_texts(SAMPLE_DIR / "intents.csv")
    assert all(looks_english(row.text) for row in rows)


def test_too_long_message_is_a_clear_error():
    with pytest.raises(DataError, match="too long: 1001 characters"):
        check_message("a" * 1001, max_chars=1000)


def test_non_text_message_is_a_clear_error():
    with pytest.raises(DataError, match="must be text"):
        check_message(42, max_chars=100)


def test_whitespace_is_collapsed():
    assert check_message("  my   card\n\nwas declined ", max_chars=100).text == "my card was declined"


# -- templates -----------------------------------------------------------------------------
def test_sample_templates_load_with_slots_prompts_and_defaults():
    book = load_templates(SAMPLE_DIR / "templates.json")
    transfer = book.get("transfer_money")
    assert transfer.slots == ["amount", "date"]
    assert transfer.missing({}) == ["amount", "date"]
    assert transfer.missing({"amount": "$20"}) == ["date"]
    assert book.prompt("transfer_money", "amount") == "How much would you like to send?"
    assert book.prompt("dispute_transaction", "card_type").startswith("Which card")  # the global prompt
    lost = book.get("lost_or_stolen_card")
    assert lost.missing({}) == []  # card_type has a default
    assert "freeze your Visa card" in lost.render({"card_type": "Visa card"})
    assert "freeze your card" in lost.render({})
    assert book.get("speak_to_agent").handoff
    assert book.title("foreign_fees") == "learn about fees abroad"
    assert book.title("no_such_intent") == "no such intent"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected an object"),
        ({"intents": {"x": {"template": "pay {amount.real}"}}}, "plain name"),
        ({"intents": {"x": {"template": "pay {0}"}}}, "plain name"),
        ({"intents": {"x": {"template": "pay {amount"}}}, "template"),
        ({"intents": {"x": {"tempate": "typo"}}}, "unknown key"),
        ({"intents": {"x": {"template": "ok", "prompts": []}}}, "'prompts' must be an object"),
        ({"entity_slots": {"MONEY": 3}, "intents": {}}, "entity_slots"),
    ],
)
def test_invalid_templates_are_one_line_errors(data, message):
    with pytest.raises(DataError, match=message):
        parse_templates(data)


def test_templates_file_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_templates(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON"):
        load_templates(bad)


def test_templates_are_reread_when_the_file_changes(tmp_path):
    import os

    path = tmp_path / "t.json"
    path.write_text(json.dumps({"intents": {"a": {"template": "one"}}}), encoding="utf-8")
    assert load_templates(path).get("a").template == "one"
    path.write_text(json.dumps({"intents": {"a": {"template": "two"}}}), encoding="utf-8")
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
    assert load_templates(path).get("a").template == "two"


# -- slots ---------------------------------------------------------------------------------
def test_slots_follow_the_label_order_and_canonical_ids():
    entities = [
        Entity("50", "CARDINAL", 0, 2),
        Entity("$20", "MONEY", 5, 8),
        Entity("tomorrow", "DATE", 9, 17),
        Entity("visa", "CARD_TYPE", 20, 24, id="Visa card"),
    ]
    mapping = {"MONEY": "amount", "DATE": "date", "CARD_TYPE": "card_type"}
    assert slots_from_entities(entities, mapping) == {
        "amount": "$20",
        "date": "tomorrow",
        "card_type": "Visa card",
    }


def test_money_keeps_the_currency_symbol_spacy_leaves_out():
    message = "send £45 and 20 more"
    entities = [Entity("45", "MONEY", 6, 8), Entity("20", "CARDINAL", 13, 15)]
    assert slots_from_entities(entities, {"MONEY": "amount"}, text=message) == {"amount": "£45"}
    assert slots_from_entities([Entity("$5", "MONEY", 0, 2)], {"MONEY": "amount"}, text="$5") == {"amount": "$5"}


def test_a_bare_number_answers_an_amount_only_when_asked():
    entities = [Entity("50", "CARDINAL", 0, 2)]
    mapping = {"MONEY": "amount"}
    assert slots_from_entities(entities, mapping) == {}
    assert slots_from_entities(entities, mapping, awaiting="amount") == {"amount": "50"}


def test_entity_patterns_find_card_types_in_the_shared_pipeline(context_factory):
    ctx = context_factory()
    assert {
        "label": "CARD_TYPE",
        "pattern": [{"LOWER": "mastercard"}],
        "id": "Mastercard",
    } in entity_patterns()
    entities = ctx.preprocessor.entities(["My MasterCard and my debit card were stolen, send $200 tomorrow"])[0]
    found = {(e.label, e.id or e.text) for e in entities}
    assert ("CARD_TYPE", "Mastercard") in found
    assert ("CARD_TYPE", "debit card") in found
    assert ("MONEY", "200") in found or ("MONEY", "$200") in found
    assert any(label == "DATE" for label, _ in found)


# -- data files ----------------------------------------------------------------------------
def test_sample_intents_have_twelve_balanced_intents():
    rows = load_labeled_texts(SAMPLE_DIR / "intents.csv")
    labels = {row.label for row in rows}
    assert len(labels) == 12
    assert all(sum(row.label == label for row in rows) >= 15 for label in labels)
    assert set(labels) == set(load_templates(SAMPLE_DIR / "templates.json").intents)


def test_retrieval_eval_marks_out_of_kb_queries():
    queries = load_retrieval_eval(SAMPLE_DIR / "retrieval_eval.csv")
    assert sum(doc is None for _, doc in queries) >= 5
    assert sum(doc is not None for _, doc in queries) >= 10


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"text,intent\nhello,greet\n", "missing field 'label'"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
        (b"", "empty"),
    ],
)
def test_bad_training_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "intents.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_labeled_texts(path)
