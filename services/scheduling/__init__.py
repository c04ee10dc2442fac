"""Scheduling on APScheduler with a persistent SQLAlchemy job store.

The scheduler is a process of its own, ``suite scheduler run``: nothing in the suite
starts it implicitly, and it must never run inside HTTP server workers (each worker
would be one more scheduler). Any number of scheduler processes may point at one job
store; the lock below makes exactly one of them run jobs while the others stand by.

Jobs come from plugins (``suite_scheduled_jobs``) as :class:`JobSpec` objects whose
``func`` is any callable. The persistent store keeps a textual reference instead,
``services.scheduling:run_registered_job`` with the job's name, which looks the job
up among those declared in the running process. On start the store is synced with
the declared jobs: new or changed jobs are (re)added, unchanged ones keep their
persisted next run time (a restart neither resets nor double-fires them), and jobs no
enabled plugin declares any more are removed.

CONTRACT:
    @dataclass class JobSpec:
        name: str                                   # unique, "<plugin>.<job>"
        func: Callable[[], Any]                     # called with no arguments
        trigger: Literal["interval", "cron"]
        trigger_args: dict                          # {"minutes": 15} or {"hour": "*/2", "minute": 0}
        description: str = ""; plugin: str = ""
        misfire_grace_time: int | None = None; coalesce: bool | None = None; max_instances: int = 1
    @dataclass class JobRun: id: int; job: str; plugin: str; started_at; finished_at;
        status ("running"|"ok"|"failed"); error: str | None; trigger ("schedule"|"manual")
    class RunLog:  # records every run in table job_runs of the job-store database
        def __init__(self, url: str); start(job, plugin, trigger) -> int; finish(id, status, error);
        recent(job=None, limit=20) -> list[JobRun]
    class SchedulerService:
        def __init__(self, config: SchedulerConfig, jobstore_url: str, jobs: Sequence[JobSpec],
                     lock_path: Path, on_failure: Callable[[str, str, Exception], None] | None = None)
        def run_forever(self, stop_event: threading.Event | None = None) -> None
            # foreground; SIGINT/SIGTERM stop cleanly
        def run_now(self, name: str) -> JobRun
        def list_jobs(self) -> list[dict]   # name, plugin, trigger, next_run_time, last run status
    Lock: pg_try_advisory_lock for PostgreSQL job stores, a filelock beside SQLite ones;
    a second scheduler waits as standby (or exits with --no-standby) and never runs jobs twice.

Additions to the contract (all optional, nothing above changed):
    JobSpec.describe_trigger() -> str
    JobRun.duration_seconds
    RunLog(url, *, engine=None); get(id); last_runs() -> dict[str, JobRun];  # table: scheduling/migrations
        mark_interrupted(run_ids=None, *, trigger=None, error="interrupted") -> int; close()
    SchedulerService(..., lock_path: Path | None = None (None: ``<db>.scheduler.lock`` beside a SQLite store),
                     *, tablename="apscheduler_jobs", stop_grace_seconds=10.0)
        (the core builds one for the enabled plugins' jobs: SuiteContext.scheduler())
        run_forever(stop_event=None, *, standby=True)  # standby=False: SchedulerBusyError if the lock is held
        active: threading.Event  # set while this instance holds the lock and runs jobs
        next_run_times() -> dict[str, datetime | None]; lock_holder() -> str | None; close()
    class SchedulerBusyError(SuiteError)
    def run_registered_job(name, fingerprint=None)  # the persisted jobs' target
"""

from services.scheduling.jobs import JobSpec
from services.scheduling.locks import AdvisoryLock, FileSchedulerLock, SchedulerLock, open_scheduler_lock
from services.scheduling.runlog import JobRun, RunLog
from services.scheduling.service import SchedulerBusyError, SchedulerService, run_registered_job

__all__ = [
    "AdvisoryLock",
    "FileSchedulerLock",
    "JobRun",
    "JobSpec",
    "RunLog",
    "SchedulerBusyError",
    "SchedulerLock",
    "SchedulerService",
    "open_scheduler_lock",
    "run_registered_job",
]
