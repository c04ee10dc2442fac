"""Each built-in plugin offers its own unlabelled texts for pre-training and distillation."""

from __future__ import annotations

import pytest

from suite.context import SuiteContext
from suite.training_tasks import plugin_texts


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return SuiteContext.create(data_dir=tmp_path_factory.mktemp("data"))


def test_the_sentiment_plugin_offers_its_stored_documents_and_training_texts(ctx):
    from datetime import UTC, datetime

    from plugins.sentiment.store import NewDocument, SentimentStore

    assert len(plugin_texts(ctx, "sentiment")) > 20  # the sample training sentences
    now = datetime.now(UTC)
    stored = NewDocument("test", "1", None, "c0ffee", "Acme beats", "Profit rose 20%.", now, now)
    SentimentStore(ctx.database).insert_documents([stored])
    assert "Acme beats. Profit rose 20%." in plugin_texts(ctx, "sentiment")


def test_the_chatbot_plugin_offers_logged_messages_and_knowledge_passages(ctx):
    from plugins.chatbot.store import ConversationStore, Exchange

    texts = plugin_texts(ctx, "chatbot")
    assert len(texts) > 20 and any(len(text) > 100 for text in texts)  # utterances and passages
    store = ConversationStore(ctx.database)
    state = store.load_session(None)
    store.record_turn(state, Exchange(state.id, "my card never arrived, where is it", "Sorry!", "intent"))
    assert "my card never arrived, where is it" in plugin_texts(ctx, "chatbot")


def test_the_recommender_plugin_offers_its_item_texts(ctx):
    texts = plugin_texts(ctx, "recommender")
    assert len(texts) >= 10 and len(set(texts)) == len(texts)
