"""The scheduler against real job stores: runs, failures, restarts, standby and stop."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest
from sched_support import Counter, make_context, make_scheduler, running, wait_until

from services.scheduling import JobSpec, RunLog, SchedulerBusyError
from suite.builtins import DELIVERY_JOB
from suite.errors import NotFoundError


def interval_job(name: str, func, **every) -> JobSpec:
    return JobSpec(name=f"tester.{name}", func=func, trigger="interval", trigger_args=every or {"seconds": 1})


def test_interval_job_runs_and_is_recorded(tmp_path):
    tick = Counter()
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    service = make_scheduler(tmp_path, url, [interval_job("tick", tick)])
    with running(service):
        assert wait_until(lambda: tick.calls >= 1), "the interval job never ran"
        listed = {row["name"]: row for row in service.list_jobs()}
    run = RunLog(url).recent("tester.tick")[-1]
    assert (run.plugin, run.trigger, run.status, run.error) == ("tester", "schedule", "ok", None)
    assert run.finished_at >= run.started_at
    assert listed["tester.tick"]["plugin"] == "tester"
    assert listed["tester.tick"]["next_run_time"] is not None


def test_failing_job_is_recorded_with_its_plugin_and_others_go_on(tmp_path):
    boom, tick = Counter(fail="disk\nfull"), Counter()
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    ctx = make_context(tmp_path, url, [interval_job("boom", boom), interval_job("tick", tick)])
    service = ctx.scheduler()
    with running(service):
        went_on = wait_until(lambda: boom.calls >= 2 and tick.calls >= 2)
        assert went_on, "the scheduler stopped after a failure"
    failed = [run for run in service.run_log.recent("tester.boom") if run.status == "failed"]
    assert len(failed) >= 2
    assert failed[0].error == "RuntimeError: disk full"
    assert failed[0].plugin == "tester"
    assert all(run.status == "ok" for run in service.run_log.recent("tester.tick"))
    assert ("tester", "tester.boom") in {(f.plugin, f.hook) for f in ctx.plugins.failures}


def test_job_survives_a_restart(tmp_path, store_url):
    def declared(hourly_hours: int = 1, with_nightly: bool = True) -> list[JobSpec]:
        jobs = [interval_job("hourly", hourly, hours=hourly_hours)]
        if with_nightly:
            jobs.append(JobSpec("tester.nightly", hourly, "cron", {"hour": 3, "minute": 0}))
        return jobs

    hourly = Counter()
    first = make_scheduler(tmp_path, store_url, declared())
    with running(first):
        before = first.next_run_times()
    assert set(before) == {"tester.hourly", "tester.nightly", DELIVERY_JOB}  # the core's job is always there
    time.sleep(1.1)  # a rescheduled interval job would now get a later next run time

    second = make_scheduler(tmp_path, store_url, declared())
    with running(second):
        after = second.next_run_times()
        time.sleep(0.5)
    assert after == before
    assert hourly.calls == 0
    assert second.run_log.recent() == []

    # A changed schedule is rescheduled; a job no plugin declares any more is dropped.
    third = make_scheduler(tmp_path, store_url, declared(hourly_hours=2, with_nightly=False))
    with running(third):
        changed = third.next_run_times()
    assert set(changed) == {"tester.hourly", DELIVERY_JOB}
    assert changed["tester.hourly"] - before["tester.hourly"] > timedelta(minutes=59)


def test_a_job_due_while_down_fires_once_on_restart(tmp_path):
    calls = Counter()
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    with running(make_scheduler(tmp_path, url, [interval_job("every2", calls, seconds=2)])):
        pass
    time.sleep(4.3)  # two run times (t+2, t+4) pass with no scheduler
    service = make_scheduler(tmp_path, url, [interval_job("every2", calls, seconds=2)])
    with running(service):
        assert wait_until(lambda: calls.calls >= 1, timeout=2)
        time.sleep(0.8)
        assert calls.calls == 1, "missed runs must coalesce into one"


def test_second_scheduler_stands_by_then_takes_over(tmp_path, store_url, caplog):
    caplog.set_level(logging.INFO, logger="services.scheduling")
    first_calls, second_calls = Counter(), Counter()
    first = make_scheduler(tmp_path / "a", store_url, [interval_job("tick", first_calls)])
    second = make_scheduler(tmp_path / "b", store_url, [interval_job("tick", second_calls)])

    stop_first = threading.Event()
    first_thread = threading.Thread(target=first.run_forever, args=(stop_first,), daemon=True)
    first_thread.start()
    assert first.active.wait(10)
    with running(second, wait_active=False):
        assert wait_until(lambda: first_calls.calls >= 2, timeout=5)
        assert second_calls.calls == 0 and not second.active.is_set()
        assert second.lock_holder() is not None
        standby = [r for r in caplog.records if "standby: another scheduler holds the lock" in r.getMessage()]
        assert len(standby) == 1

        stop_first.set()
        first_thread.join(10)
        first.close()
        assert not first_thread.is_alive()
        assert wait_until(second.active.is_set, timeout=5), "the standby never took over"
        assert wait_until(lambda: second_calls.calls >= 1, timeout=5), "the new active scheduler runs no jobs"
    assert second.lock_holder() is None


def test_no_standby_refuses_while_the_lock_is_held(tmp_path):
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    first = make_scheduler(tmp_path, url, [])
    second = make_scheduler(tmp_path, url, [])
    with running(first):
        started = time.monotonic()
        with pytest.raises(SchedulerBusyError, match="another scheduler holds the lock"):
            second.run_forever(threading.Event(), standby=False)
        assert time.monotonic() - started < 2
    second.close()


def test_stop_abandons_a_running_job_and_records_it_interrupted(tmp_path):
    release = threading.Event()
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    service = make_scheduler(tmp_path, url, [interval_job("slow", lambda: release.wait(30))])
    service.stop_grace_seconds = 0.3
    with running(service):
        assert wait_until(lambda: any(r.status == "running" for r in service.run_log.recent()), timeout=5)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 3
    run = service.run_log.recent("tester.slow")[0]
    assert (run.status, run.error) == ("failed", "interrupted")
    release.set()


def test_run_now_records_manual_runs(tmp_path):
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    jobs = [interval_job("tick", Counter()), interval_job("boom", Counter(fail="no feed"))]
    with make_scheduler(tmp_path, url, jobs) as service:
        ok = service.run_now("tester.tick")
        failed = service.run_now("tester.boom")
        with pytest.raises(NotFoundError, match="unknown job 'nope'"):
            service.run_now("nope")
        listed = {row["name"]: row for row in service.list_jobs()}
    assert (ok.status, ok.trigger, ok.plugin) == ("ok", "manual", "tester")
    assert (failed.status, failed.error) == ("failed", "RuntimeError: no feed")
    assert listed["tester.boom"]["last_status"] == "failed"
    assert listed["tester.tick"]["next_run_time"] is None  # no scheduler has run yet


def test_a_broken_job_spec_is_left_out_and_reported(tmp_path):
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    jobs = [
        JobSpec("tester.bad", Counter(), "cron", {"hour": "twenty-five"}),
        interval_job("good", Counter()),
        interval_job("good", Counter()),
    ]
    ctx = make_context(tmp_path, url, jobs)
    with ctx.scheduler() as service:
        assert [name for name in service.specs if name != DELIVERY_JOB] == ["tester.good"]
    reasons = {f.hook: f.error for f in ctx.plugins.failures}
    assert "invalid cron trigger" in reasons["tester.bad"]
    assert "declared twice" in reasons["tester.good"]
    with pytest.raises(ValueError, match="trigger must be"):
        JobSpec("tester.x", Counter(), "weekly", {})
