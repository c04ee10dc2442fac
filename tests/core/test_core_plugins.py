"""Plugin discovery and validation, with real entry points from a dist-info on sys.path."""

import sys
import textwrap
from pathlib import Path

import pytest

from suite import hookimpl
from suite.config import Settings
from suite.context import SuiteContext
from suite.errors import ConfigError, NotFoundError
from suite.plugins import PluginHost, PluginInfo


def make_distribution(root: Path, name: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """Write an installed-looking distribution (dist-info + modules) under ``root``."""
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{name}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[suite.plugins]\n{lines}\n")


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    make_distribution(
        root,
        "suite-extras",
        {
            "good_plugin": """
                from suite import hookimpl
                from suite.plugins import PluginInfo

                @hookimpl
                def suite_plugin_info():
                    return PluginInfo(name="good", description="a good plugin")

                @hookimpl
                def suite_startup(ctx):
                    ctx.settings.__dict__.setdefault("_started_by", []).append("good")
            """,
            "broken_import": "raise RuntimeError('boom at import')\n",
            "unknown_hook": "def suite_make_coffee(ctx):\n    return 'coffee'\n",
            "bad_signature": ("from suite import hookimpl\n\n@hookimpl\ndef suite_startup(ctx, extra):\n    pass\n"),
        },
        {
            "good": "good_plugin",
            "broken": "broken_import",
            "coffee": "unknown_hook",
            "wrongsig": "bad_signature",
        },
    )
    monkeypatch.syspath_prepend(str(root))
    yield root
    for module in ("good_plugin", "broken_import", "unknown_hook", "bad_signature"):
        sys.modules.pop(module, None)


def test_entry_point_discovery_reports_each_failure_and_loads_the_rest(third_party: Path) -> None:
    host = PluginHost()
    host.load_entry_points()
    infos = {info.name: info for info in host.describe()}
    assert infos["good"].status == "enabled"
    assert infos["good"].version == "1.2.3"
    assert infos["good"].description == "a good plugin"
    assert "suite_startup" in infos["good"].hooks
    assert "boom at import" in infos["broken"].error
    assert "unknown hook 'suite_make_coffee'" in infos["coffee"].error
    assert "coffee" in infos["coffee"].error
    assert "suite_startup" in infos["wrongsig"].error and "extra" in infos["wrongsig"].error
    assert "good" in host.names
    assert not {"broken", "coffee", "wrongsig"} & set(host.names)
    # built-ins are discovered through the same group
    assert {"chatbot", "sentiment", "recommender"} <= set(host.names)


def test_disabled_plugin_is_listed_but_not_registered(third_party: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, plugins={"good": {"enabled": False}})
    ctx = SuiteContext(settings)
    ctx.plugins.load_entry_points()
    assert ctx.plugins.infos["good"].status == "disabled"
    assert "good" not in ctx.plugins.names


def test_startup_hooks_run_once(third_party: Path, tmp_path: Path) -> None:
    ctx = SuiteContext(Settings(data_dir=tmp_path))
    ctx.plugins.load_entry_points()
    ctx.startup()
    ctx.startup()
    assert ctx.settings.__dict__["_started_by"] == ["good"]


class Options:
    """A plugin object with its own options model."""

    from pydantic import BaseModel

    class Model(BaseModel):
        threshold: float = 0.5

    @hookimpl
    def suite_config_model(self):
        return self.Model


def test_plugin_options_validated(tmp_path: Path) -> None:
    ok = SuiteContext(Settings(data_dir=tmp_path, plugins={"opt": {"threshold": 0.9}}))
    ok.plugins.register(Options(), "opt")
    ok.validate_plugin_config()
    assert ok.plugin_options("opt").threshold == 0.9

    bad = SuiteContext(Settings(data_dir=tmp_path, plugins={"opt": {"threshold": "high"}}))
    bad.plugins.register(Options(), "opt")
    with pytest.raises(ConfigError, match=r"\[plugins.opt\]: invalid setting 'threshold'"):
        bad.validate_plugin_config()


def test_unknown_plugin_table_is_a_config_error(tmp_path: Path) -> None:
    ctx = SuiteContext(Settings(data_dir=tmp_path, plugins={"nosuch": {"enabled": True}}))
    with pytest.raises(ConfigError, match="unknown plugin 'nosuch'"):
        ctx.validate_plugin_config()


class Exploding:
    @hookimpl
    def suite_startup(self, ctx):
        raise ValueError("cannot start")


class Counting:
    calls = 0

    @hookimpl
    def suite_startup(self, ctx):
        Counting.calls += 1


def test_a_raising_hook_is_isolated_and_attributed(tmp_path: Path) -> None:
    ctx = SuiteContext(Settings(data_dir=tmp_path))
    ctx.plugins.register(Exploding(), "exploding")
    ctx.plugins.register(Counting(), "counting")
    ctx.startup()
    assert Counting.calls == 1
    [failure] = ctx.plugins.failures
    assert (failure.plugin, failure.hook) == ("exploding", "suite_startup")
    assert "cannot start" in failure.error


def test_plugin_info_defaults() -> None:
    assert PluginInfo("x").status == "enabled"
    assert PluginInfo("x", error="e").status == "failed"


class BadInfo:
    @hookimpl
    def suite_plugin_info(self):
        raise RuntimeError("no description today")


def test_a_failing_description_is_reported_not_raised(tmp_path: Path) -> None:
    ctx = SuiteContext(Settings(data_dir=tmp_path))
    ctx.plugins.register(BadInfo(), "badinfo")
    [info] = ctx.plugins.describe()
    assert info.status == "failed" and "no description today" in info.error


class TwoTasks:
    @hookimpl
    def suite_training_tasks(self, ctx):
        from suite.training_tasks import TrainingTask

        return [
            TrainingTask("two", name, "classification", name, lambda ctx, overrides: None)
            for name in ("first", "second")
        ]


def test_a_plugin_name_selects_all_its_training_tasks(tmp_path: Path) -> None:
    ctx = SuiteContext(Settings(data_dir=tmp_path))
    ctx.plugins.register(TwoTasks(), "two")
    assert [t.name for t in ctx.select_training_tasks("two")] == ["first", "second"]
    assert [t.name for t in ctx.select_training_tasks("two:second")] == ["second"]
    with pytest.raises(NotFoundError, match="unknown training task 'nope'"):
        ctx.select_training_tasks("nope")
