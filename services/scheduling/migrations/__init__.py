"""The scheduling service's migrations: the ``job_runs`` table, in the job-store database.

APScheduler's own ``apscheduler_jobs`` table is not here: APScheduler creates and owns it.
"""

from pathlib import Path

from services.scheduling.runlog import metadata
from services.schema import MigrationHistory

HISTORY = MigrationHistory(
    "scheduling", Path(__file__).parent, database="jobstore", legacy_tables=("job_runs",), metadata=metadata
)
