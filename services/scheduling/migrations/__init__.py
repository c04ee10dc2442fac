"""The scheduling service's migrations: the ``job_runs`` table, in the job-store database.

APScheduler's own ``apscheduler_jobs`` table is not here: APScheduler creates and owns it.
"""

from services.schema import service_history

HISTORY = service_history("scheduling")  # declared in services.schema, so reading it imports nothing heavy
