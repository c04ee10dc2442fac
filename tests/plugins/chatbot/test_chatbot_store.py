"""Sessions and the exchange log on real SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from plugins.chatbot.migrations import HISTORY
from plugins.chatbot.store import ConversationStore, Exchange, SessionState, utcnow
from services.database import create_database_engine
from services.schema import upgrade
from suite.errors import DataError, NotFoundError


@pytest.fixture
def sqlite_store(tmp_path):
    engine = create_database_engine(f"sqlite:///{tmp_path / 'suite.db'}")
    upgrade(engine, HISTORY)
    yield ConversationStore(engine, ttl_minutes=30)
    engine.dispose()


def exchange(session_id: str, message: str = "hi", **extra) -> Exchange:
    return Exchange(session_id=session_id, message=message, answer="hello", source="template", **extra)


def exercise_store(store: ConversationStore) -> None:
    conversation = f"c-{uuid.uuid4().hex[:8]}"
    state = store.load_session(conversation)
    assert state.is_new and state.slots == {}

    state.last_intent, state.slots, state.pending = "transfer_money", {"amount": "$20"}, {"slot": "date"}
    first = store.record_turn(state, exchange(conversation, "send $20", intent="transfer_money", top2=[["a", 0.9]]))
    loaded = store.load_session(conversation)
    assert (loaded.last_intent, loaded.slots, loaded.pending) == ("transfer_money", {"amount": "$20"}, {"slot": "date"})
    assert not loaded.is_new

    loaded.slots["date"] = "tomorrow"
    loaded.pending = None
    second = store.record_turn(loaded, exchange(conversation, "tomorrow"))
    assert second > first
    assert store.load_session(conversation).slots == {"amount": "$20", "date": "tomorrow"}
    assert [row["message"] for row in store.conversation(conversation)] == ["send $20", "tomorrow"]

    # Expired: the state is forgotten, the log is kept.
    later = utcnow() + timedelta(minutes=31)
    expired = store.load_session(conversation, now=later)
    assert expired.expired and expired.slots == {} and expired.last_intent is None
    assert store.purge_expired(now=later) >= 1
    assert store.load_session(conversation).is_new
    assert len(store.conversation(conversation)) == 2

    # Feedback and the training rows it makes.
    row = store.record_feedback(first, "down", "dispute_transaction")
    assert (row["rating"], row["corrected_intent"]) == ("down", "dispute_transaction")
    store.record_feedback(second, "up")
    assert ("send $20", "dispute_transaction") in store.training_rows()
    assert ("tomorrow", None) not in store.training_rows(include_confirmed=True)
    with pytest.raises(NotFoundError, match="no chatbot exchange with id 999999"):
        store.record_feedback(999_999, "up")
    with pytest.raises(DataError, match="rating must be"):
        store.record_feedback(first, "meh")
    with pytest.raises(DataError, match="needs a rating"):
        store.record_feedback(first, None, None)


def test_sessions_and_exchanges_on_sqlite(sqlite_store):
    exercise_store(sqlite_store)
    stats = sqlite_store.stats()
    assert stats["exchanges"] == 2 and stats["corrections"] == 1 and stats["ratings"] == {"down": 1, "up": 1}


@pytest.mark.postgres
def test_sessions_and_exchanges_on_postgres(postgres_url):
    schema = f"chatbot_test_{uuid.uuid4().hex[:10]}"  # tables and version table of this test only
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_database_engine(f"{postgres_url}?options=-csearch_path%3D{schema}")
    try:
        upgrade(engine, HISTORY)
        exercise_store(ConversationStore(engine))
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_a_new_conversation_gets_an_id_and_bad_ids_are_refused(sqlite_store):
    state = sqlite_store.load_session(None)
    assert isinstance(state, SessionState) and len(state.id) == 32
    for bad in ("", "has space", "x" * 65, "semi;colon"):
        with pytest.raises(DataError, match="conversation_id"):
            sqlite_store.load_session(bad)


def test_a_failed_turn_writes_nothing(sqlite_store):
    state = SessionState("atomic-1", last_intent="check_balance")
    broken = Exchange(session_id="atomic-1", message="x", answer=None, source="template")  # answer is NOT NULL
    with pytest.raises(Exception):  # noqa: B017 - the database's own integrity error
        sqlite_store.record_turn(state, broken)
    assert sqlite_store.load_session("atomic-1").is_new, "the session update was rolled back with the exchange"


def test_tables_are_named_after_the_plugin(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    upgrade(engine, HISTORY)
    with engine.connect() as conn:
        names = {row[0] for row in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    assert {"chatbot_sessions", "chatbot_exchanges"} <= names
    engine.dispose()
