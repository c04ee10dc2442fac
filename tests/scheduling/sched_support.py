"""Helpers for the scheduler tests: a test plugin, a counting job, a scheduler in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from services.scheduling import JobSpec, SchedulerService
from suite.config import Settings
from suite.context import SuiteContext

POLL_SECONDS = 0.2


class JobsPlugin:
    """A plugin that declares the jobs it is given."""

    def __init__(self, jobs: list[JobSpec]) -> None:
        self.jobs = jobs

    def suite_scheduled_jobs(self, ctx: SuiteContext) -> list[JobSpec]:
        return self.jobs


def make_context(data_dir: Path, store_url: str, jobs: list[JobSpec], plugin: str = "tester") -> SuiteContext:
    settings = Settings(data_dir=data_dir, scheduler={"jobstore_url": store_url, "standby_poll_seconds": POLL_SECONDS})
    ctx = SuiteContext(settings)
    assert ctx.plugins.register(JobsPlugin(jobs), plugin)
    return ctx


def make_scheduler(data_dir: Path, store_url: str, jobs: list[JobSpec], **kwargs) -> SchedulerService:
    ctx = make_context(data_dir, store_url, jobs)
    return ctx.scheduler(stop_grace_seconds=2, **kwargs)


class Counter:
    """A job function that counts its calls, thread-safely."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls = 0
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.calls += 1
        if self.fail:
            raise RuntimeError(self.fail)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


@contextmanager
def running(service: SchedulerService, *, wait_active: bool = True, **kwargs) -> Iterator[threading.Thread]:
    """Run ``service.run_forever`` in a thread; stop it and check it returned cleanly on exit."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            service.run_forever(stop, **kwargs)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="scheduler under test", daemon=True)
    thread.start()
    try:
        if wait_active:
            started = wait_until(lambda: service.active.is_set() or bool(errors), timeout=10)
            assert started, "the scheduler never became active"
            if errors:
                raise errors[0]
        yield thread
    finally:
        stop.set()
        thread.join(timeout=10)
        service.close()
    assert not thread.is_alive(), "run_forever did not return after stop"
    if errors:
        raise errors[0]
