"""The recommender plugin's migrations: items, interactions and state (see :mod:`services.schema`)."""

from pathlib import Path

from services.schema import MigrationHistory

HISTORY = MigrationHistory(
    "recommender",
    Path(__file__).parent,
    legacy_tables=("recommender_items", "recommender_interactions", "recommender_state"),
    metadata="plugins.recommender.store:metadata",
)
