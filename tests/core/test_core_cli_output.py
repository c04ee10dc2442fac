"""What a new user meets first: a fast ``--help``, ``config show --all``, tasks their data cannot
support skipped with one line, ``-v``/``-q`` anywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from suite.cli import build_app, hoist_verbosity_flags
from suite.context import SuiteContext
from suite.training_tasks import TrainingSkipped, TrainingTask

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["torch", "transformers", "spacy", "numpy", "scipy", "sqlalchemy", "apscheduler", "sklearn", "nltk"]
runner = CliRunner()


@pytest.mark.parametrize("argv", [["--help"], ["chatbot", "--help"], ["monitor", "--help"], ["recommend", "--help"]])
def test_help_imports_nothing_heavy(argv: list[str]):
    probe = (
        "import sys\nfrom suite.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "Usage" in done.stdout
    assert "HEAVY []" in done.stderr, done.stderr


class SkippingPlugin:
    """Declares a task that trains and one whose data is absent."""

    @staticmethod
    def suite_training_tasks(ctx):
        def trained(ctx, overrides):
            return SimpleNamespace(ref="demo/good@v1", card=SimpleNamespace(metrics={"accuracy": 0.5}))

        def skipped(ctx, overrides):
            raise TrainingSkipped("the data has no 'topic' column: add one")

        return [
            TrainingTask("demo", "good", "classification", "trains", trained),
            TrainingTask("demo", "topic", "classification", "needs topics", skipped),
        ]


@pytest.fixture
def demo_app(tmp_path: Path):
    ctx = SuiteContext.create(None, discover=False, data_dir=tmp_path)
    ctx.plugins.register(SkippingPlugin(), "demo")
    yield build_app(ctx)
    ctx.shutdown()


def test_a_task_without_its_data_is_skipped_with_one_line(demo_app):
    everything = runner.invoke(demo_app, ["train"])
    assert everything.exit_code == 0, everything.output
    assert "registered demo/good@v1" in everything.output
    assert "skipped demo:topic: the data has no 'topic' column: add one\n" in everything.output
    plugin = runner.invoke(demo_app, ["train", "demo"])
    assert plugin.exit_code == 0 and "skipped demo:topic" in plugin.output
    named = runner.invoke(demo_app, ["train", "demo:topic"])  # asked for by name: its absence is the answer
    assert isinstance(named.exception, TrainingSkipped) and named.exception.exit_code == 2  # main() exits with it


def test_config_show_all_lists_every_setting_with_default_and_source(tmp_path: Path, monkeypatch):
    config = tmp_path / "suite.toml"
    config.write_text("[training]\nepochs = 2.0\n[plugins.sentiment.training]\nmax_steps = 5\n")
    monkeypatch.setenv("SUITE_SEARCH__RRF_K", "30")
    ctx = SuiteContext.create(config)
    try:
        app = build_app(ctx)
        listed = runner.invoke(app, ["--config", str(config), "config", "show", "--all", "--json"])
        text = runner.invoke(app, ["--config", str(config), "config", "show", "--all"])
    finally:
        ctx.shutdown()
    assert listed.exit_code == 0, listed.output
    rows = {row["key"]: row for row in json.loads(listed.output)}
    assert rows["training.epochs"] | {"description": ""} == {
        "key": "training.epochs",
        "value": 2.0,
        "default": 4.0,
        "source": "file",
        "description": "",
    }
    assert (rows["search.rrf_k"]["value"], rows["search.rrf_k"]["source"]) == (30, "env")
    assert rows["search.backend"]["source"] == "default"
    assert rows["plugins.sentiment.training.max_steps"]["source"] == "file"
    assert rows["plugins.chatbot.epochs"]["source"] == "default"  # plugin options, unset ones included
    assert rows["http.api_keys"]["value"] == []
    assert "training.epochs = 2.0  # file; default 4.0" in text.output.splitlines()


def test_verbosity_flags_work_after_any_command():
    assert hoist_verbosity_flags(["chatbot", "ask", "hi", "-q"]) == ["-q", "chatbot", "ask", "hi"]
    assert hoist_verbosity_flags(["-c", "x.toml", "train", "-vv"]) == ["-vv", "-c", "x.toml", "train"]
    assert hoist_verbosity_flags(["chatbot", "ask", "--", "-q"]) == ["chatbot", "ask", "--", "-q"]


def test_progress_bars_show_on_a_terminal_only_and_never_when_quiet(monkeypatch):
    import io

    from services import progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress.progress_bar(10, "piped", file=io.StringIO()).disable  # piped: nothing printed
    shown = progress.progress_bar(10, "work", "doc", file=Terminal())
    assert not shown.disable and "doc" in str(shown)  # rate and ETA on a terminal
    shown.close()
    monkeypatch.setattr(progress, "_quiet", True)
    assert progress.progress_bar(10, "quiet", file=Terminal()).disable
