"""``suite jobs`` and ``suite scheduler``: in-process for the tables, a subprocess for signals."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path

import pytest
from sched_support import Counter, make_context
from typer.testing import CliRunner

from services.scheduling import FileSchedulerLock, JobSpec, RunLog
from suite.commands import jobs as jobs_commands
from suite.commands import scheduler as scheduler_commands
from suite.errors import SuiteError

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch):
    for module in (jobs_commands, scheduler_commands):
        monkeypatch.setattr(module.console, "width", 200)


@pytest.fixture
def ctx(tmp_path):
    jobs = [
        JobSpec("tester.tick", Counter(), "interval", {"minutes": 15}, description="counts"),
        JobSpec("tester.boom", Counter(fail="feed\nunreachable"), "cron", {"hour": 3, "minute": 0}),
    ]
    return make_context(tmp_path, f"sqlite:///{tmp_path / 'scheduler.db'}", jobs)


def test_jobs_list_run_and_history(ctx):
    app = jobs_commands.build(ctx)
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0, listed.output
    assert "tester.tick" in listed.output and "every 15 minutes" in listed.output
    assert "cron hour=3 minute=0" in listed.output

    ok = runner.invoke(app, ["run", "tester.tick"])
    assert ok.exit_code == 0, ok.output
    assert "tester.tick: ok" in ok.output

    failed = runner.invoke(app, ["run", "tester.boom"])
    assert failed.exit_code == 1
    assert isinstance(failed.exception, SuiteError)
    assert str(failed.exception) == "job 'tester.boom' failed: RuntimeError: feed unreachable"

    history = runner.invoke(app, ["history", "--json"])
    assert history.exit_code == 0, history.output
    assert '"status": "failed"' in history.output and '"trigger": "manual"' in history.output
    one = runner.invoke(app, ["history", "tester.tick", "--limit", "5"])
    assert "tester.tick" in one.output and "tester.boom" not in one.output

    listed = runner.invoke(app, ["list", "--json"])
    assert '"last_status": "failed"' in listed.output


def test_scheduler_status_names_the_lock_holder(ctx, tmp_path):
    app = scheduler_commands.build(ctx)
    idle = runner.invoke(app, ["status"])
    assert idle.exit_code == 0, idle.output
    assert "scheduler: not running" in idle.output and "tester.tick" in idle.output

    lock = FileSchedulerLock(Path(f"{tmp_path / 'scheduler.db'}.scheduler.lock"))
    assert lock.acquire()
    try:
        busy = runner.invoke(app, ["status", "--json"])
    finally:
        lock.release()
    assert f"{os.getpid()}" in busy.output


def cli_env(data_dir: Path) -> dict[str, str]:
    """Environment for a ``suite`` subprocess: a temp data dir, core only (every entry-point plugin off)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SUITE_")}
    env.update(SUITE_DATA_DIR=str(data_dir), SUITE_SCHEDULER__STANDBY_POLL_SECONDS="0.2")
    for entry_point in metadata.entry_points(group="suite.plugins"):
        env[f"SUITE_PLUGINS__{entry_point.name.upper()}__ENABLED"] = "false"
    return env


class Process:
    """A ``suite`` subprocess whose stderr lines can be awaited."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "suite.cli", *args], cwd=cwd, env=env, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.popen.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30) -> None:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                self.popen.kill()
                raise AssertionError(f"never printed {text!r}; stderr so far: {self.seen}") from None
            self.seen.append(line)
            if text in line:
                return

    def finish(self, timeout: float = 20) -> int:
        code = self.popen.wait(timeout)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code


def test_scheduler_run_stands_by_takes_over_and_stops_on_sigterm(tmp_path):
    env = cli_env(tmp_path / "data")
    lock = FileSchedulerLock(tmp_path / "data" / "scheduler.db.scheduler.lock")
    assert lock.acquire()
    try:
        busy = subprocess.run(
            [sys.executable, "-m", "suite.cli", "scheduler", "run", "--no-standby"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert busy.returncode == 1, busy.stderr
        assert busy.stderr.strip().startswith("error: another scheduler holds the lock")
        assert len(busy.stderr.strip().splitlines()) == 1

        process = Process(["scheduler", "run"], tmp_path, env)
        process.wait_for("standby: another scheduler holds the lock")
    finally:
        lock.release()
    process.wait_for("scheduler active")
    process.popen.send_signal(signal.SIGTERM)
    assert process.finish() == 0, process.seen
    assert any("scheduler stopped" in line for line in process.seen)
    assert lock.holder() is None
    assert RunLog(f"sqlite:///{tmp_path / 'data' / 'scheduler.db'}").recent() == []
