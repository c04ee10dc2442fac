"""The chatbot plugin's migrations: sessions and the exchange log (see :mod:`services.schema`)."""

from pathlib import Path

from services.schema import MigrationHistory

HISTORY = MigrationHistory(
    "chatbot",
    Path(__file__).parent,
    legacy_tables=("chatbot_sessions", "chatbot_exchanges"),
    metadata="plugins.chatbot.store:metadata",
)
