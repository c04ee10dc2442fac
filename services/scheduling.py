"""Scheduling on APScheduler with a persistent SQLAlchemy job store.

CONTRACT:
    @dataclass class JobSpec:
        name: str                                   # unique, "<plugin>.<job>"
        func: Callable[[], Any]                     # called with no arguments
        trigger: Literal["interval", "cron"]
        trigger_args: dict                          # {"minutes": 15} or {"hour": "*/2", "minute": 0}
        description: str = ""; plugin: str = ""
        misfire_grace_time: int | None = None; coalesce: bool | None = None; max_instances: int = 1
    @dataclass class JobRun: id: int; job: str; plugin: str; started_at; finished_at; status ("running"|"ok"|"failed"); error: str | None; trigger ("schedule"|"manual")
    class RunLog:  # records every run in table job_runs of the job-store database
        def __init__(self, url: str); start(job, plugin, trigger) -> int; finish(id, status, error); recent(job=None, limit=20) -> list[JobRun]
    class SchedulerService:
        def __init__(self, config: SchedulerConfig, jobstore_url: str, jobs: Sequence[JobSpec],
                     lock_path: Path, on_failure: Callable[[str, str, Exception], None] | None = None)
        def run_forever(self, stop_event: threading.Event | None = None) -> None  # foreground; SIGINT/SIGTERM stop cleanly
        def run_now(self, name: str) -> JobRun
        def list_jobs(self) -> list[dict]   # name, plugin, trigger, next_run_time, last run status
    Lock: pg_try_advisory_lock for PostgreSQL job stores, a filelock beside SQLite ones;
    a second scheduler waits as standby (or exits with --no-standby) and never runs jobs twice.
"""
