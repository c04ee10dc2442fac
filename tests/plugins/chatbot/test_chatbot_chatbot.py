"""The answering engine on a really fine-tuned model: every route, sessions, feedback, bad input.

Routing tests pin the thresholds through the options where a route must be forced; the
calibrated ones are checked on their own.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from plugins.chatbot.calibration import Calibration
from plugins.chatbot.data import load_labeled_texts
from plugins.chatbot.engine import HANDOFF_REPLY, REPHRASE_REPLY, Chatbot
from suite.errors import DataError, ModelError, NotFoundError

pytestmark = pytest.mark.slow


def bot_with(ctx, **options) -> Chatbot:
    """A bot on ``ctx`` with some options changed (thresholds pinned, a short session life...)."""
    return Chatbot(ctx, ctx.plugin_options("chatbot").model_copy(update=options))


def test_training_registers_a_calibrated_model_and_indexes_the_knowledge_base(trained_ctx):
    version = trained_ctx.registry.active("chatbot", "intent")
    assert version is not None and version.ref == "chatbot/intent@v1"
    card = version.card
    assert len(card.labels) == 12 and card.kind == "classification"
    assert card.metrics["accuracy"] >= 0.7
    assert 0 < card.metrics["confidence_threshold"] < 1
    assert "thresholds: confidence" in card.notes
    calibration = Calibration.load(version.path)
    assert calibration.sources["confidence_threshold"] == "calibrated"
    assert calibration.details["confidence"]["out_of_scope_messages"] >= 15
    assert calibration.retrieval_threshold is not None
    assert trained_ctx.search.count("chatbot-kb") >= 20


def test_a_template_asks_for_missing_slots_over_several_turns(trained_ctx):
    bot = bot_with(trained_ctx, confidence_threshold=0.3, margin_threshold=0.0)
    first = bot.answer("I want to send money to my sister")
    assert (first.source, first.intent, first.awaiting_slot) == ("template", "transfer_money", "amount")
    assert first.answer == "How much would you like to send?"

    second = bot.answer("$250", first.conversation_id)
    assert (second.source, second.intent, second.awaiting_slot) == ("template", "transfer_money", "date")
    assert second.slots == {"amount": "$250"}

    third = bot.answer("next Friday", first.conversation_id)
    assert third.source == "template" and third.awaiting_slot is None
    assert "$250" in third.answer and "next Friday" in third.answer
    assert third.slots == {"amount": "$250", "date": "next Friday"}
    assert third.exchange_id > second.exchange_id > first.exchange_id


def test_slots_in_the_first_message_fill_the_template_at_once(trained_ctx):
    answer = bot_with(trained_ctx, confidence_threshold=0.3, margin_threshold=0.0).answer("my visa card was stolen")
    assert (answer.source, answer.intent) == ("template", "lost_or_stolen_card")
    assert "freeze your Visa card" in answer.answer
    assert answer.top2[0][0] == "lost_or_stolen_card" and answer.model_version == "chatbot/intent@v1"


def awaiting_an_amount(trained_ctx):
    """A bot that takes no reply for a confident new intent, and a conversation waiting for an amount."""
    conversation = bot_with(trained_ctx, confidence_threshold=0.3, margin_threshold=0.0).answer(
        "I want to send money to my sister"
    )
    return bot_with(trained_ctx, confidence_threshold=0.99, margin_threshold=0.0), conversation.conversation_id


def test_an_unanswered_slot_is_asked_again_once_then_dropped(trained_ctx):
    bot, conversation = awaiting_an_amount(trained_ctx)
    again = bot.answer("hmm I am not sure", conversation)
    assert again.awaiting_slot == "amount" and again.answer.startswith("Sorry, I didn't catch that.")
    moved_on = bot.answer("hmm I am still not sure", conversation)
    assert moved_on.awaiting_slot is None and moved_on.source in ("retrieval", "out_of_scope", "handoff")


def test_a_reply_naming_only_a_slot_the_template_lacks_is_asked_again(trained_ctx):
    bot, conversation = awaiting_an_amount(trained_ctx)
    # An account type fills no slot of transfer_money: the amount is still missing.
    again = bot.answer("from my savings account", conversation)
    assert again.awaiting_slot == "amount" and again.answer.startswith("Sorry, I didn't catch that.")
    assert again.slots == {}


def test_low_confidence_routes_to_the_knowledge_base_with_citations(trained_ctx):
    bot = bot_with(trained_ctx, confidence_threshold=1.0)  # no intent is ever confident enough
    answer = bot.answer("what are your branch opening hours?")
    assert answer.source == "retrieval" and answer.handoff_reason is None
    assert answer.answer.startswith("Our branches are open") and answer.answer.endswith("]")
    citation = answer.citations[0]
    assert citation.title == "What are your branch opening hours?" and citation.kind == "faq"
    assert citation.doc == "faq" and "/" not in str(citation.to_dict()) and citation.snippet and citation.score > 0.4


def test_weak_retrieval_hands_off_to_a_person_with_the_reason(trained_ctx):
    bot = bot_with(trained_ctx, confidence_threshold=1.0, out_of_scope_action="handoff")
    answer = bot.answer("what is the capital of Peru")
    assert (answer.source, answer.answer) == ("handoff", HANDOFF_REPLY)
    reason = answer.handoff_reason
    assert ("intent confidence" in reason or "out-of-scope score" in reason) and "knowledge-base match" in reason
    assert answer.citations == []


def test_calibrated_thresholds_answer_clear_requests_and_route_unknown_ones(trained_ctx):
    bot = Chatbot(trained_ctx)
    assert bot.answer("I forgot my PIN").intent == "change_pin"
    assert bot.answer("I forgot my PIN").source == "template"
    outside = bot.answer("can you write me a poem about the sea")
    assert outside.source == "out_of_scope", "neither an intent nor the knowledge base covers poems"


def test_close_intents_get_a_clarifying_question_and_the_reply_picks_one(trained_ctx):
    bot = bot_with(trained_ctx, confidence_threshold=0.0, margin_threshold=1.0, pair_threshold=0.0)  # never sure
    question = bot.answer("my card was declined")
    assert question.source == "clarify" and len(question.clarify) == 2
    first, second = question.clarify
    titles = bot.templates
    assert titles.title(first) in question.answer and titles.title(second) in question.answer

    chosen = bot.answer("the second one", question.conversation_id)
    assert chosen.intent == second and chosen.confidence == 1.0
    assert chosen.source in ("template", "handoff")

    again = bot.answer("my card was declined", question.conversation_id)
    assert bot.answer("neither of those", again.conversation_id).answer == REPHRASE_REPLY


def test_a_handoff_intent_passes_the_customer_to_a_person(trained_ctx):
    answer = bot_with(trained_ctx, confidence_threshold=0.3, margin_threshold=0.0).answer("I want to talk to a human")
    assert (answer.source, answer.intent) == ("handoff", "speak_to_agent")
    assert "speak_to_agent" in answer.handoff_reason


@pytest.mark.parametrize(
    ("message", "reply_start"),
    [
        ("", "I didn't catch"),
        ("\x00\x01\x02\x03 \x04", "That message looks like binary"),
        ("Je voudrais bloquer ma carte bancaire", "Sorry, I can only help in English"),
    ],
)
def test_bad_input_gets_a_polite_refusal_that_is_logged(trained_ctx, message, reply_start):
    bot = Chatbot(trained_ctx)
    answer = bot.answer(message)
    assert answer.source == "refusal" and answer.answer.startswith(reply_start)
    assert answer.intent is None and answer.exchange_id is not None
    logged = bot.store.exchange(answer.exchange_id)
    assert logged["source"] == "refusal" and "\x00" not in logged["message"]


def test_too_long_input_is_a_clear_error(trained_ctx):
    with pytest.raises(DataError, match="message too long: 1001 characters"):
        Chatbot(trained_ctx).answer("a" * 1001)


def test_sessions_persist_across_processes_and_expire(trained_ctx, context_factory, trained_dir):
    pinned = {"confidence_threshold": 0.3, "margin_threshold": 0.0}
    started = bot_with(trained_ctx, **pinned).answer("I want to send money to my sister", "persist-1")
    assert started.conversation_id == "persist-1"
    other_ctx = context_factory(data_dir=trained_dir)  # another process would build its own context
    resumed = bot_with(other_ctx, **pinned).answer("$40", "persist-1")
    assert resumed.awaiting_slot == "date" and resumed.slots == {"amount": "$40"}

    short = bot_with(trained_ctx, session_ttl_minutes=0.0005, **pinned)  # 30 ms
    waiting = short.answer("I want to send $250 to my sister", "expire-1")
    assert waiting.awaiting_slot == "date" and waiting.slots == {"amount": "$250"}
    time.sleep(0.1)
    assert short.store.load_session("expire-1").expired
    after = short.answer("next Friday", "expire-1")
    assert after.slots.get("amount") != "$250" and "$250" not in after.answer, "the expired session was forgotten"


def test_feedback_is_recorded_and_exported_as_training_data(trained_ctx, tmp_path):
    bot = Chatbot(trained_ctx)
    answer = bot.answer("a shop charged me twice")
    row = bot.feedback(answer.exchange_id, "down", "dispute_transaction")
    assert (row["rating"], row["corrected_intent"]) == ("down", "dispute_transaction")
    with pytest.raises(DataError, match="unknown intent 'nonsense'"):
        bot.feedback(answer.exchange_id, "up", "nonsense")
    with pytest.raises(NotFoundError):
        bot.feedback(10**9, "up")

    count = bot.export_feedback(tmp_path / "feedback.csv")
    rows = load_labeled_texts(tmp_path / "feedback.csv")
    assert count == len(rows) >= 1
    assert ("a shop charged me twice", "dispute_transaction") in {(r.text, r.label) for r in rows}


def test_intents_list_titles_and_slots(trained_ctx):
    intents = {item["name"]: item for item in Chatbot(trained_ctx).intents()}
    assert len(intents) == 12
    assert intents["transfer_money"]["slots"] == ["amount", "date"] and intents["transfer_money"]["has_template"]
    assert intents["speak_to_agent"]["handoff"]


def test_answers_are_fast_once_warm(trained_ctx):
    bot = Chatbot(trained_ctx)
    bot.warm_up()
    messages = ["I lost my card", "where is my refund", "what's my balance", "what is the contactless limit"]
    timings = [bot.answer(message).latency_ms for message in messages * 5]
    # 50 ms is the target on an idle CPU; this shared test machine only guards against regressions.
    assert np.percentile(timings, 95) < 400, timings


def test_without_a_trained_model_the_bot_says_how_to_train(context_factory):
    ctx = context_factory()
    with pytest.raises(ModelError, match="run `suite chatbot train`"):
        Chatbot(ctx).answer("hello")
    assert len(Chatbot(ctx).intents()) == 12, "the templates still list the intents"


@pytest.mark.postgres
def test_conversations_and_feedback_on_postgres(trained_dir, context_factory, postgres_schema_url):
    import uuid

    ctx = context_factory(
        {"confidence_threshold": 0.3, "margin_threshold": 0.0}, data_dir=trained_dir, database_url=postgres_schema_url
    )
    bot = Chatbot(ctx)
    conversation = f"pg-{uuid.uuid4().hex}"
    first = bot.answer("I want to send money to my sister", conversation)
    second = bot.answer("$75", conversation)
    assert (first.awaiting_slot, second.awaiting_slot, second.slots) == ("amount", "date", {"amount": "$75"})
    assert bot.feedback(second.exchange_id, "up")["rating"] == "up"
    assert [row["message"] for row in bot.store.conversation(conversation)] == [
        "I want to send money to my sister",
        "$75",
    ]
