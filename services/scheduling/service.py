"""The scheduler process: persistent jobs, one active scheduler per store, every run recorded."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import inspect, select
from sqlalchemy.engine import make_url

from services import metrics
from services.database import create_database_engine
from services.errors import ConfigError, NotFoundError, SuiteError, one_line
from services.scheduling.jobs import JobSpec, build_trigger, job_options, schedule_fingerprint
from services.scheduling.locks import SchedulerLock, open_scheduler_lock
from services.scheduling.runlog import INTERRUPTED, JobRun, RunLog, RunTrigger
from services.settings import SchedulerConfig

log = logging.getLogger("services.scheduling")

# The textual reference stored with every job: the persistent store cannot hold a plugin's callable.
RUNNER_REF = "services.scheduling:run_registered_job"
DEFAULT_JOBS_TABLE = "apscheduler_jobs"
FailureHandler = Callable[[str, str, Exception], None]
CRASHED = f"{INTERRUPTED}: the scheduler stopped without finishing it"

# Job name -> how to run it, for the scheduler of this process that currently holds the lock.
_runners: dict[str, Callable[[], Any]] = {}
_runners_lock = threading.Lock()


def run_registered_job(name: str, fingerprint: str | None = None) -> None:
    """Run job ``name`` as declared in this process (the target of every persisted job).

    ``fingerprint`` describes the schedule the job was stored with; it is only read when
    the scheduler starts, to decide whether the stored job is still current.
    """
    with _runners_lock:
        runner = _runners.get(name)
    if runner is None:
        raise LookupError(f"job '{name}' is not declared by any plugin of this scheduler")
    runner()


class SchedulerBusyError(SuiteError):
    """Another scheduler holds the lock of this job store and standby was refused."""


class _JobThreadExecutor(BaseExecutor):
    """Runs each job in a daemon thread.

    Unlike a thread pool, a job still running when the process is told to stop cannot
    keep it alive: after a grace period the scheduler abandons it and records it as
    interrupted. At most ``max_instances`` threads exist per job.
    """

    def _do_submit_job(self, job, run_times) -> None:
        def target() -> None:
            try:
                events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
            except BaseException as exc:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, events)

        threading.Thread(target=target, name=f"job {job.id}", daemon=True).start()


def resolve_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"scheduler.timezone: unknown time zone {name!r}") from None


class SchedulerService:
    """Runs the jobs plugins declare, on APScheduler with a persistent SQLAlchemy store.

    Several processes may run it against one store: the one holding the lock is active,
    the others wait as standby and take over when it stops. Jobs run in daemon threads,
    one instance at a time unless a spec says otherwise.
    """

    def __init__(
        self,
        config: SchedulerConfig,
        jobstore_url: str,
        jobs: Sequence[JobSpec],
        lock_path: Path | None = None,
        on_failure: FailureHandler | None = None,
        *,
        tablename: str = DEFAULT_JOBS_TABLE,
        stop_grace_seconds: float = 10.0,
    ) -> None:
        self.config = config
        self.jobstore_url = jobstore_url
        self.timezone = resolve_timezone(config.timezone)
        self.on_failure = on_failure
        self.tablename = tablename
        self.stop_grace_seconds = stop_grace_seconds
        self.lock_path = lock_path
        self.specs: dict[str, JobSpec] = {}
        for spec in jobs:
            self._accept(spec)
        self.active = threading.Event()  # set while this instance holds the lock and runs jobs
        self._running: set[int] = set()
        self._idle = threading.Condition()

    def _accept(self, spec: object) -> None:
        """Keep a valid spec; report a broken one against its plugin and leave it out."""
        plugin = getattr(spec, "plugin", "") or "unknown"
        try:
            if not isinstance(spec, JobSpec):
                raise TypeError(f"suite_scheduled_jobs returned {type(spec).__name__}, not a JobSpec")
            if spec.name in self.specs:
                first = self.specs[spec.name].plugin or "?"
                raise ValueError(
                    f"job '{spec.name}' is declared twice (by {first} and {plugin}); "
                    "prefix job names with the plugin's name"
                )
            build_trigger(spec, self.timezone)
        except (TypeError, ValueError) as exc:
            log.error("plugin %s: job left out: %s", plugin, one_line(exc))
            self._report_failure(plugin, getattr(spec, "name", "suite_scheduled_jobs"), exc)
            return
        self.specs[spec.name] = spec

    # -- shared resources --------------------------------------------------------------
    @cached_property
    def engine(self):
        return create_database_engine(self.jobstore_url)

    @cached_property
    def run_log(self) -> RunLog:
        return RunLog(self.jobstore_url, engine=self.engine)

    @cached_property
    def lock(self) -> SchedulerLock:
        return open_scheduler_lock(self.jobstore_url, self.tablename, self.lock_path)

    @property
    def store_description(self) -> str:
        return make_url(self.jobstore_url).render_as_string(hide_password=True)

    def __enter__(self) -> SchedulerService:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the lock and the database connections."""
        if "lock" in self.__dict__:
            self.lock.release()
            getattr(self.lock, "close", lambda: None)()
        if "engine" in self.__dict__:
            self.engine.dispose()

    # -- queries -----------------------------------------------------------------------
    def list_jobs(self) -> list[dict[str, Any]]:
        """Every declared job with its persisted next run time and its last run."""
        next_runs = self.next_run_times()
        last = self.run_log.last_runs()
        rows = []
        for name, spec in self.specs.items():
            run = last.get(name)
            rows.append(
                {
                    "name": name,
                    "plugin": spec.plugin,
                    "description": spec.description,
                    "trigger": spec.describe_trigger(),
                    "next_run_time": next_runs.get(name),
                    "last_status": run.status if run else None,
                    "last_run_at": run.started_at if run else None,
                    "last_error": run.error if run else None,
                }
            )
        return rows

    def next_run_times(self) -> dict[str, datetime | None]:
        """Next run time of every job in the store, read without unpickling or changing anything."""
        if not inspect(self.engine).has_table(self.tablename):
            return {}
        table = SQLAlchemyJobStore(engine=self.engine, tablename=self.tablename).jobs_t
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.id, table.c.next_run_time)).all()
        return {
            row.id: datetime.fromtimestamp(row.next_run_time, timezone.utc).astimezone(self.timezone)
            if row.next_run_time is not None
            else None
            for row in rows
        }

    def lock_holder(self) -> str | None:
        """Who runs the scheduler for this store, in words; None if nobody does."""
        return self.lock.holder()

    # -- running jobs ------------------------------------------------------------------
    def run_now(self, name: str) -> JobRun:
        """Run one job in the foreground and record it as a manual run."""
        spec = self.specs.get(name)
        if spec is None:
            known = ", ".join(sorted(self.specs)) or "none"
            raise NotFoundError(f"unknown job '{name}' (known: {known})")
        return self._execute(spec, "manual")

    def _execute(self, spec: JobSpec, trigger: RunTrigger) -> JobRun:
        run_id = self.run_log.start(spec.name, spec.plugin, trigger)
        with self._idle:
            self._running.add(run_id)
        try:
            spec.func()
        except Exception as exc:
            error = one_line(exc)
            # A manual run's caller reports the error, and on_failure (the plugin host) logs it.
            if trigger == "schedule" and self.on_failure is None:
                log.error("job %s of plugin %s failed: %s", spec.name, spec.plugin, error)
            log.debug("job %s failed", spec.name, exc_info=exc)
            self.run_log.finish(run_id, "failed", error)
            metrics.record_job_run(spec.plugin, spec.name, "failed")
            self._report_failure(spec.plugin, spec.name, exc)
        except BaseException as exc:
            self.run_log.finish(run_id, "failed", f"{INTERRUPTED}: {one_line(exc)}")
            metrics.record_job_run(spec.plugin, spec.name, INTERRUPTED)
            raise
        else:
            self.run_log.finish(run_id, "ok")
            metrics.record_job_run(spec.plugin, spec.name, "ok")
        finally:
            with self._idle:
                self._running.discard(run_id)
                self._idle.notify_all()
        return self.run_log.get(run_id)

    def _report_failure(self, plugin: str, job: str, exc: Exception) -> None:
        if self.on_failure is None:
            return
        try:
            self.on_failure(plugin, job, exc)
        except Exception:
            log.exception("on_failure handler raised for job %s", job)

    # -- the scheduler loop ------------------------------------------------------------
    def run_forever(self, stop_event: threading.Event | None = None, *, standby: bool = True) -> None:
        """Run the scheduler in the foreground until ``stop_event`` is set or SIGINT/SIGTERM arrives.

        While another scheduler holds the lock, wait as standby (polling every
        ``standby_poll_seconds``) and take over when it is released; with
        ``standby=False`` raise :class:`SchedulerBusyError` instead. On stop, running
        jobs get ``stop_grace_seconds`` to finish, then are recorded as interrupted.
        """
        stop = stop_event or threading.Event()
        with _stop_on_signals(stop):
            waiting = False
            first_attempt = True
            while not stop.is_set():
                taken = self._try_lock(first_attempt)
                first_attempt = False
                if taken:
                    waiting = False
                    try:
                        self._serve(stop)
                    finally:
                        self.lock.release()
                    continue
                if not standby:
                    where = f"{self.store_description}{self._describe_holder()}"
                    raise SchedulerBusyError(f"another scheduler holds the lock of {where}")
                if not waiting:
                    log.info("standby: another scheduler holds the lock")
                    waiting = True
                stop.wait(self.config.standby_poll_seconds)
        log.info("scheduler stopped")

    def _describe_holder(self) -> str:
        try:
            holder = self.lock.holder()
        except Exception:
            return ""
        return f" ({holder})" if holder else ""

    def _try_lock(self, first_attempt: bool) -> bool:
        try:
            return self.lock.acquire()
        except SuiteError:
            raise
        except Exception as exc:
            if first_attempt:  # most likely a wrong URL or a server that is down: say so at once
                where = self.store_description
                raise SuiteError(f"cannot take the scheduler lock on {where}: {one_line(exc)}") from exc
            log.warning("cannot take the scheduler lock, retrying: %s", one_line(exc))
            return False

    def _serve(self, stop: threading.Event) -> None:
        """Run jobs while this process holds the lock; return when stopped or the lock is lost."""
        scheduler = self._build_scheduler()
        scheduler.start(paused=True)  # nothing fires before the store matches the declared jobs
        try:
            self._sync_jobs(scheduler)
            # Holding the lock means no other scheduler runs: its 'running' rows are leftovers of a crash.
            stale = self.run_log.mark_interrupted(trigger="schedule", error=CRASHED)
            if stale:
                log.warning("marked %d run(s) left running by a previous scheduler as failed", stale)
            self._register_runners()
            scheduler.resume()
            self.active.set()
            log.info("scheduler active: %d job(s), store %s", len(self.specs), self.store_description)
            while not stop.wait(self.config.standby_poll_seconds):
                if not self.lock.verify():
                    log.error("lost the scheduler lock; stopping jobs and going back to standby")
                    return
        finally:
            self.active.clear()
            scheduler.shutdown(wait=False)
            self._unregister_runners()
            self._abandon_running()

    def _build_scheduler(self) -> BackgroundScheduler:
        store = SQLAlchemyJobStore(engine=self.engine, tablename=self.tablename)
        return BackgroundScheduler(
            jobstores={"default": store},
            executors={"default": _JobThreadExecutor()},
            job_defaults={"misfire_grace_time": self.config.misfire_grace_time, "coalesce": self.config.coalesce},
            timezone=self.timezone,
        )

    def _sync_jobs(self, scheduler: BackgroundScheduler) -> None:
        """Make the store match the declared jobs, keeping unchanged jobs' next run times."""
        stored = {job.id: job for job in scheduler.get_jobs()}
        for name, spec in self.specs.items():
            fingerprint = schedule_fingerprint(spec, self.config)
            current = stored.get(name)
            if current is not None and current.kwargs.get("fingerprint") == fingerprint:
                continue
            scheduler.add_job(
                RUNNER_REF,
                trigger=build_trigger(spec, self.timezone),
                args=[name],
                kwargs={"fingerprint": fingerprint},
                id=name,
                name=name,
                replace_existing=True,
                **job_options(spec, self.config),
            )
            log.info("%s job %s: %s", "rescheduled" if current else "added", name, spec.describe_trigger())
        for name in stored.keys() - self.specs.keys():
            scheduler.remove_job(name)
            log.info("removed job %s: no enabled plugin declares it", name)

    def _register_runners(self) -> None:
        with _runners_lock:
            for name, spec in self.specs.items():
                _runners[name] = _Runner(self, spec)

    def _unregister_runners(self) -> None:
        with _runners_lock:
            for name in self.specs:
                runner = _runners.get(name)
                if isinstance(runner, _Runner) and runner.service is self:
                    del _runners[name]

    def _abandon_running(self) -> None:
        """Give running jobs a grace period, then record the rest as interrupted."""
        with self._idle:
            self._idle.wait_for(lambda: not self._running, timeout=self.stop_grace_seconds)
            left = list(self._running)
        if left:
            self.run_log.mark_interrupted(left, error=INTERRUPTED)
            log.warning("abandoned %d running job(s), recorded as interrupted", len(left))


class _Runner:
    """What the trampoline calls for one job: run it through its service, as a scheduled run."""

    def __init__(self, service: SchedulerService, spec: JobSpec) -> None:
        self.service, self.spec = service, spec

    def __call__(self) -> None:
        self.service._execute(self.spec, "schedule")


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into ``stop.set()`` (only the main thread may install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
