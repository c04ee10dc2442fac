"""Baseline: the run log as the last release without migrations created it."""

import sqlalchemy as sa
from alembic import op

from services.schema import table_missing

revision = "0001"
down_revision = None


def upgrade() -> None:
    if table_missing("job_runs"):
        op.create_table(
            "job_runs",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("job", sa.String(191), nullable=False),
            sa.Column("plugin", sa.String(100), nullable=False),
            sa.Column("trigger", sa.String(16), nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("finished_at", sa.DateTime(timezone=True)),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("error", sa.Text),
        )
        op.create_index("ix_job_runs_job_id", "job_runs", ["job", "id"])


def downgrade() -> None:
    op.drop_table("job_runs")
