"""Baseline: the tables as the last release without migrations created them."""

import sqlalchemy as sa
from alembic import op

from services.schema import table_missing

revision = "0001"
down_revision = None


def upgrade() -> None:
    if table_missing("chatbot_sessions"):
        op.create_table(
            "chatbot_sessions",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("last_intent", sa.String(200)),
            sa.Column("slots", sa.JSON, nullable=False),
            sa.Column("pending", sa.JSON),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("updated_at", sa.DateTime, nullable=False),
            sa.Column("expires_at", sa.DateTime, nullable=False),
        )
        op.create_index("ix_chatbot_sessions_expires_at", "chatbot_sessions", ["expires_at"])
    if table_missing("chatbot_exchanges"):
        op.create_table(
            "chatbot_exchanges",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("session_id", sa.String(64), nullable=False),
            sa.Column("message", sa.Text, nullable=False),
            sa.Column("intent", sa.String(200)),
            sa.Column("confidence", sa.Float),
            sa.Column("top2", sa.JSON),
            sa.Column("answer", sa.Text, nullable=False),
            sa.Column("source", sa.String(16), nullable=False),
            sa.Column("citations", sa.JSON),
            sa.Column("handoff_reason", sa.Text),
            sa.Column("model_version", sa.String(200)),
            sa.Column("rating", sa.String(8)),
            sa.Column("corrected_intent", sa.String(200)),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("rated_at", sa.DateTime),
        )
        op.create_index("ix_chatbot_exchanges_session_id", "chatbot_exchanges", ["session_id"])
        op.create_index("ix_chatbot_exchanges_created_at", "chatbot_exchanges", ["created_at"])


def downgrade() -> None:
    op.drop_table("chatbot_exchanges")
    op.drop_table("chatbot_sessions")
