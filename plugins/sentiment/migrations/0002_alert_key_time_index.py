"""Index alerts by (key, created_at) instead of key alone.

The cool-down check before every new alert asks for the latest ``created_at`` of each
candidate key; with both columns in one index the database answers from the index
alone. The single-column index on ``key`` is then redundant and goes.
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_index("ix_sentiment_alerts_key_created_at", "sentiment_alerts", ["key", "created_at"])
    op.drop_index("ix_sentiment_alerts_key", table_name="sentiment_alerts")


def downgrade() -> None:
    op.create_index("ix_sentiment_alerts_key", "sentiment_alerts", ["key"])
    op.drop_index("ix_sentiment_alerts_key_created_at", table_name="sentiment_alerts")
