"""The plugin's own migration history: Alembic revisions in this folder, version table ``alembic_version_tickets``."""

from pathlib import Path

from services.schema import MigrationHistory

HISTORY = MigrationHistory(
    "tickets", Path(__file__).parent, legacy_tables=("tickets_routed",), metadata="suite_ticket_router.store:metadata"
)
