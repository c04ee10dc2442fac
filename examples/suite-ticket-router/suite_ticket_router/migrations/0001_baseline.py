"""Baseline: ``tickets_routed`` as the plugin's first release created it (kept if it already exists)."""

import sqlalchemy as sa
from alembic import op

from services.schema import table_missing

revision = "0001"
down_revision = None


def upgrade() -> None:
    if table_missing("tickets_routed"):
        op.create_table(
            "tickets_routed",
            sa.Column("ticket_id", sa.String(200), primary_key=True),
            sa.Column("text", sa.Text, nullable=False),
            sa.Column("queue", sa.String(100), nullable=False),
            sa.Column("confidence", sa.Float, nullable=False),
            sa.Column("needs_review", sa.Boolean, nullable=False),
            sa.Column("model", sa.String(200), nullable=False),
            sa.Column("routed_at", sa.DateTime(timezone=True), nullable=False),
        )


def downgrade() -> None:
    op.drop_table("tickets_routed")
