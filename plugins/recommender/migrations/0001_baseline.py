"""Baseline: the tables as the last release without migrations created them."""

import sqlalchemy as sa
from alembic import op

from services.schema import table_missing

revision = "0001"
down_revision = None

ID_CHARS = 200  # plugins.recommender.data.MAX_ID_CHARS when this revision was written


def upgrade() -> None:
    if table_missing("recommender_items"):
        op.create_table(
            "recommender_items",
            sa.Column("id", sa.String(ID_CHARS), primary_key=True),
            sa.Column("title", sa.Text, nullable=False),
            sa.Column("description", sa.Text, nullable=False),
            sa.Column("tags", sa.JSON, nullable=False),
            sa.Column("metadata", sa.JSON, nullable=False),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("popularity", sa.Integer, nullable=False),
        )
    if table_missing("recommender_interactions"):
        op.create_table(
            "recommender_interactions",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("user", sa.String(ID_CHARS), nullable=False),
            sa.Column(
                "item",
                sa.String(ID_CHARS),
                sa.ForeignKey("recommender_items.id", ondelete="CASCADE"),
                nullable=False,
            ),
            sa.Column("timestamp", sa.DateTime, nullable=True),
            sa.Column("event", sa.String(64), nullable=True),
            sa.Column("rating", sa.Float, nullable=True),
            sa.UniqueConstraint("user", "item", "timestamp", name="uq_recommender_interaction"),
        )
        op.create_index("ix_recommender_interactions_user", "recommender_interactions", ["user"])
        op.create_index("ix_recommender_interactions_item", "recommender_interactions", ["item"])
    if table_missing("recommender_state"):
        op.create_table(
            "recommender_state",
            sa.Column("key", sa.String(100), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )


def downgrade() -> None:
    for table in ("recommender_state", "recommender_interactions", "recommender_items"):
        op.drop_table(table)
