"""The alert outbox's migrations: ``alert_deliveries`` and ``alert_delivery_attempts`` (see :mod:`services.schema`).

They live in the main database (``ctx.database``) beside the plugins' stores, so a plugin
queues an alert's deliveries in the transaction that stores the alert.
"""

from pathlib import Path

from services.outbox import outbox_metadata
from services.schema import MigrationHistory

HISTORY = MigrationHistory("alert_outbox", Path(__file__).parent, metadata=outbox_metadata)
