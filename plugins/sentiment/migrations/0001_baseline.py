"""Baseline: the tables as the last release without migrations created them."""

import sqlalchemy as sa
from alembic import op

from services.schema import table_missing

revision = "0001"
down_revision = None


def upgrade() -> None:
    if table_missing("sentiment_documents"):
        op.create_table(
            "sentiment_documents",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("source", sa.String(200), nullable=False),
            sa.Column("external_id", sa.String(500)),
            sa.Column("url", sa.String(2000)),
            sa.Column("content_hash", sa.String(64), nullable=False, unique=True),
            sa.Column("title", sa.Text, nullable=False),
            sa.Column("text", sa.Text, nullable=False),
            sa.Column("published_at", sa.DateTime, nullable=False),
            sa.Column("fetched_at", sa.DateTime, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("label", sa.String(32)),
            sa.Column("score", sa.Float),
            sa.Column("probabilities", sa.JSON),
            sa.Column("topic", sa.String(64)),
            sa.Column("topic_score", sa.Float),
            sa.Column("scored_at", sa.DateTime),
            sa.Column("indexed_at", sa.DateTime),
            sa.Column("run_id", sa.Integer),
            sa.UniqueConstraint("source", "external_id", name="uq_sentiment_documents_source_external_id"),
            sa.UniqueConstraint("url", name="uq_sentiment_documents_url"),
        )
        op.create_index("ix_sentiment_documents_published_at", "sentiment_documents", ["published_at"])
        op.create_index("ix_sentiment_documents_status", "sentiment_documents", ["status"])
    if table_missing("sentiment_mentions"):
        op.create_table(
            "sentiment_mentions",
            sa.Column(
                "document_id",
                sa.Integer,
                sa.ForeignKey("sentiment_documents.id", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("entity", sa.String(200), primary_key=True),
            sa.Column("matched", sa.String(200)),
        )
        op.create_index("ix_sentiment_mentions_entity", "sentiment_mentions", ["entity"])
    if table_missing("sentiment_runs"):
        op.create_table(
            "sentiment_runs",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("trigger", sa.String(32), nullable=False),
            sa.Column("started_at", sa.DateTime, nullable=False),
            sa.Column("finished_at", sa.DateTime),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("counts", sa.JSON, nullable=False),
            sa.Column("messages", sa.JSON, nullable=False),
        )
    if table_missing("sentiment_alerts"):
        op.create_table(
            "sentiment_alerts",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("rule", sa.String(200), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("entity", sa.String(200)),
            sa.Column("topic", sa.String(64)),
            sa.Column("key", sa.String(500), nullable=False),
            sa.Column("severity", sa.String(16), nullable=False),
            sa.Column("title", sa.Text, nullable=False),
            sa.Column("message", sa.Text, nullable=False),
            sa.Column("evidence", sa.JSON, nullable=False),
            sa.Column("data", sa.JSON, nullable=False),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("acknowledged_at", sa.DateTime),
            sa.Column("acknowledged_by", sa.String(200)),
            sa.Column("run_id", sa.Integer),
            sa.Column("backfill", sa.Boolean, nullable=False),
            sa.Column("deliveries", sa.JSON, nullable=False),
        )
        op.create_index("ix_sentiment_alerts_key", "sentiment_alerts", ["key"])
        op.create_index("ix_sentiment_alerts_created_at", "sentiment_alerts", ["created_at"])


def downgrade() -> None:
    for table in ("sentiment_alerts", "sentiment_runs", "sentiment_mentions", "sentiment_documents"):
        op.drop_table(table)
