"""The previous release's tables, frozen, and rows to put in them.

The last release before migrations created these with ``metadata.create_all`` (the stores'
``Table`` definitions as they were then). Never update this file to follow the code: it is
what databases in the field look like.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

previous_release = MetaData()

Table(
    "job_runs",
    previous_release,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(191), nullable=False),
    Column("plugin", String(100), nullable=False, default=""),
    Column("trigger", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Index("ix_job_runs_job_id", "job", "id"),
)
Table(
    "chatbot_sessions",
    previous_release,
    Column("id", String(64), primary_key=True),
    Column("last_intent", String(200)),
    Column("slots", JSON, nullable=False, default=dict),
    Column("pending", JSON),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False, index=True),
)
Table(
    "chatbot_exchanges",
    previous_release,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(64), nullable=False, index=True),
    Column("message", Text, nullable=False),
    Column("intent", String(200)),
    Column("confidence", Float),
    Column("top2", JSON),
    Column("answer", Text, nullable=False),
    Column("source", String(16), nullable=False),
    Column("citations", JSON),
    Column("handoff_reason", Text),
    Column("model_version", String(200)),
    Column("rating", String(8)),
    Column("corrected_intent", String(200)),
    Column("created_at", DateTime, nullable=False, index=True),
    Column("rated_at", DateTime),
)
Table(
    "recommender_items",
    previous_release,
    Column("id", String(200), primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("popularity", Integer, nullable=False, default=0),
)
Table(
    "recommender_interactions",
    previous_release,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user", String(200), nullable=False, index=True),
    Column("item", String(200), ForeignKey("recommender_items.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("timestamp", DateTime, nullable=True),
    Column("event", String(64), nullable=True),
    Column("rating", Float, nullable=True),
    UniqueConstraint("user", "item", "timestamp", name="uq_recommender_interaction"),
)
Table(
    "recommender_state",
    previous_release,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)
Table(
    "sentiment_documents",
    previous_release,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("external_id", String(500)),
    Column("url", String(2000)),
    Column("content_hash", String(64), nullable=False, unique=True),
    Column("title", Text, nullable=False, default=""),
    Column("text", Text, nullable=False),
    Column("published_at", DateTime, nullable=False, index=True),
    Column("fetched_at", DateTime, nullable=False),
    Column("status", String(16), nullable=False, default="pending", index=True),
    Column("label", String(32)),
    Column("score", Float),
    Column("probabilities", JSON),
    Column("topic", String(64)),
    Column("topic_score", Float),
    Column("scored_at", DateTime),
    Column("indexed_at", DateTime),
    Column("run_id", Integer),
    UniqueConstraint("source", "external_id", name="uq_sentiment_documents_source_external_id"),
    UniqueConstraint("url", name="uq_sentiment_documents_url"),
)
Table(
    "sentiment_mentions",
    previous_release,
    Column("document_id", Integer, ForeignKey("sentiment_documents.id", ondelete="CASCADE"), primary_key=True),
    Column("entity", String(200), primary_key=True),
    Column("matched", String(200)),
    Index("ix_sentiment_mentions_entity", "entity"),
)
Table(
    "sentiment_runs",
    previous_release,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trigger", String(32), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("status", String(16), nullable=False),
    Column("counts", JSON, nullable=False, default=dict),
    Column("messages", JSON, nullable=False, default=list),
)
Table(
    "sentiment_alerts",
    previous_release,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("entity", String(200)),
    Column("topic", String(64)),
    Column("key", String(500), nullable=False, index=True),
    Column("severity", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("evidence", JSON, nullable=False, default=list),
    Column("data", JSON, nullable=False, default=dict),
    Column("created_at", DateTime, nullable=False, index=True),
    Column("acknowledged_at", DateTime),
    Column("acknowledged_by", String(200)),
    Column("run_id", Integer),
    Column("backfill", Boolean, nullable=False, default=False),
    Column("deliveries", JSON, nullable=False, default=list),
)

T0 = datetime(2026, 3, 14, 9, 30)
T1 = datetime(2026, 3, 14, 9, 45)

ROWS: dict[str, list[dict[str, Any]]] = {
    "job_runs": [
        {"id": 1, "job": "sentiment.monitor", "plugin": "sentiment", "trigger": "schedule", "status": "ok",
         "started_at": T0.replace(tzinfo=timezone.utc), "finished_at": T1.replace(tzinfo=timezone.utc), "error": None},
        {"id": 2, "job": "chatbot.purge", "plugin": "chatbot", "trigger": "manual", "status": "failed",
         "started_at": T1.replace(tzinfo=timezone.utc), "finished_at": None, "error": "interrupted: é ✓"},
    ],
    "chatbot_sessions": [
        {"id": "conv-1", "last_intent": "card_arrival", "slots": {"card": "visa"}, "pending": {"slot": "date"},
         "created_at": T0, "updated_at": T1, "expires_at": T1},
    ],
    "chatbot_exchanges": [
        {"id": 1, "session_id": "conv-1", "message": "where is my card?", "intent": "card_arrival",
         "confidence": 0.91, "top2": [["card_arrival", 0.91], ["lost_card", 0.05]], "answer": "It ships in 3 days.",
         "source": "template", "citations": [{"id": "kb-1"}], "handoff_reason": None, "model_version": "v0001",
         "rating": "up", "corrected_intent": None, "created_at": T0, "rated_at": T1},
    ],
    "recommender_items": [
        {"id": "a", "title": "Alpha", "description": "first", "tags": ["x"], "metadata": {"year": 2020},
         "created_at": T0, "popularity": 2},
        {"id": "b", "title": "Beta", "description": "", "tags": [], "metadata": {}, "created_at": T0, "popularity": 0},
    ],
    "recommender_interactions": [
        {"id": 1, "user": "u1", "item": "a", "timestamp": T0, "event": "click", "rating": 4.5},
        {"id": 2, "user": "u2", "item": "a", "timestamp": None, "event": None, "rating": None},
    ],
    "recommender_state": [{"key": "revision", "value": "7"}],
    "sentiment_documents": [
        {"id": 1, "source": "rss", "external_id": "n-1", "url": "https://example.test/1", "content_hash": "h" * 64,
         "title": "Acme plunges", "text": "Shares of Acme plunged.", "published_at": T0, "fetched_at": T1,
         "status": "scored", "label": "negative", "score": -0.8, "probabilities": {"negative": 0.9},
         "topic": "earnings", "topic_score": 0.7, "scored_at": T1, "indexed_at": None, "run_id": 1},
    ],
    "sentiment_mentions": [{"document_id": 1, "entity": "ACME", "matched": "Acme"}],
    "sentiment_runs": [
        {"id": 1, "trigger": "schedule", "started_at": T0, "finished_at": T1, "status": "ok",
         "counts": {"new": 1, "scored": 1}, "messages": []},
    ],
    "sentiment_alerts": [
        {"id": 1, "rule": "drop", "kind": "entity", "entity": "ACME", "topic": None, "key": "drop:ACME",
         "severity": "warning", "title": "ACME turned negative", "message": "-0.8 over 1 document",
         "evidence": [{"id": 1}], "data": {"mean": -0.8}, "created_at": T1, "acknowledged_at": None,
         "acknowledged_by": None, "run_id": 1, "backfill": False, "deliveries": [{"sink": "log", "ok": True}]},
    ],
}  # fmt: skip
