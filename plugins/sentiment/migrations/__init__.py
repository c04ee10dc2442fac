"""The sentiment plugin's migrations: documents, mentions, runs and alerts (see :mod:`services.schema`)."""

from pathlib import Path

from services.schema import MigrationHistory

HISTORY = MigrationHistory(
    "sentiment",
    Path(__file__).parent,
    legacy_tables=("sentiment_documents", "sentiment_mentions", "sentiment_runs", "sentiment_alerts"),
    metadata="plugins.sentiment.store:metadata",
)
