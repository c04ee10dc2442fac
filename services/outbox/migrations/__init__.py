"""The alert outbox's migrations: ``alert_deliveries`` and ``alert_delivery_attempts`` (see :mod:`services.schema`).

They live in the main database (``ctx.database``) beside the plugins' stores, so a plugin
queues an alert's deliveries in the transaction that stores the alert.
"""

from services.schema import service_history

HISTORY = service_history("alert_outbox")  # declared in services.schema, so reading it imports nothing heavy
