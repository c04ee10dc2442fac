"""Hook calls behave as pluggy documents: call order, wrappers, firstresult, and the suite's isolation.

Real plugin objects on a real PluginHost; each records what ran in a shared log.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from suite import hookimpl, hookspecs
from suite.config import Settings
from suite.context import SuiteContext
from suite.errors import PluginError
from suite.hookspecs import Dispatch
from suite.plugins import PluginInfo


@pytest.fixture
def ctx(tmp_path: Path) -> SuiteContext:
    return SuiteContext(Settings(data_dir=tmp_path))


class Starter:
    """A plain ``suite_startup`` and ``suite_shutdown``, optionally ordered with tryfirst/trylast."""

    def __init__(self, log: list[str], name: str, fail: bool = False) -> None:
        self.log, self.name, self.fail = log, name, fail

    @hookimpl
    def suite_startup(self, ctx):
        self.log.append(f"start {self.name}")
        if self.fail:
            raise RuntimeError(f"{self.name} cannot start")

    @hookimpl
    def suite_shutdown(self, ctx):
        self.log.append(f"stop {self.name}")


class EarlyStarter(Starter):
    @hookimpl(tryfirst=True)
    def suite_startup(self, ctx):
        self.log.append(f"start {self.name}")


class LateStarter(Starter):
    @hookimpl(trylast=True)
    def suite_startup(self, ctx):
        self.log.append(f"start {self.name}")


class StartupWrapper:
    """A new-style wrapper around every ``suite_startup`` call."""

    def __init__(self, log: list[str], fail_after: bool = False) -> None:
        self.log, self.fail_after = log, fail_after

    @hookimpl(wrapper=True)
    def suite_startup(self, ctx):
        self.log.append("wrap in")
        try:
            return (yield)
        finally:
            self.log.append("wrap out")
            if self.fail_after:
                raise ValueError("the wrapper itself broke")


def test_tryfirst_runs_first_trylast_last_the_rest_last_registered_first(ctx: SuiteContext) -> None:
    log: list[str] = []
    ctx.plugins.register(LateStarter(log, "late"), "late")
    ctx.plugins.register(Starter(log, "a"), "a")
    ctx.plugins.register(EarlyStarter(log, "early"), "early")
    ctx.plugins.register(Starter(log, "b"), "b")
    ctx.startup()
    assert log == ["start early", "start b", "start a", "start late"]


def test_shutdown_runs_in_pluggy_order_too(ctx: SuiteContext) -> None:
    log: list[str] = []
    ctx.plugins.register(Starter(log, "a"), "a")
    ctx.plugins.register(Starter(log, "b"), "b")
    ctx.startup()
    ctx.shutdown()
    assert log == ["start b", "start a", "stop b", "stop a"]


def test_an_isolated_failure_is_recorded_and_the_others_run_in_order_inside_the_wrapper(ctx: SuiteContext) -> None:
    log: list[str] = []
    ctx.plugins.register(Starter(log, "a"), "a")
    ctx.plugins.register(Starter(log, "bad", fail=True), "bad")
    ctx.plugins.register(StartupWrapper(log), "wrapper")
    ctx.plugins.register(Starter(log, "b"), "b")
    ctx.startup()
    assert log == [
        *["wrap in", "start b", "wrap out"],
        *["wrap in", "start bad", "wrap out"],
        *["wrap in", "start a", "wrap out"],
    ]
    [failure] = ctx.plugins.failures
    assert (failure.plugin, failure.hook) == ("bad", "suite_startup")
    assert failure.error == "RuntimeError: bad cannot start"


def test_a_wrapper_that_raises_is_blamed_not_the_plugin_it_wraps(ctx: SuiteContext) -> None:
    log: list[str] = []
    ctx.plugins.register(Starter(log, "a"), "a")
    ctx.plugins.register(StartupWrapper(log, fail_after=True), "wrapper")
    ctx.startup()
    assert log == ["wrap in", "start a", "wrap out"]
    assert [(f.plugin, f.error) for f in ctx.plugins.failures] == [("wrapper", "ValueError: the wrapper itself broke")]


class Examples:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    @hookimpl
    def suite_cli_examples(self, ctx):
        self.log.append(self.name)
        return [[self.name, "run"]]


class NewStyleExamplesWrapper:
    """Sees each plugin's result and adds an example to it."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @hookimpl(wrapper=True)
    def suite_cli_examples(self, ctx):
        self.log.append("new in")
        results = yield
        self.log.append(f"new saw {results}")
        return [[*examples, ["--help"]] for examples in results]


class OldStyleExamplesWrapper:
    """The pre-1.1 ``hookwrapper=True`` form: the outcome object, replaced with ``force_result``."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @hookimpl(hookwrapper=True, tryfirst=True)
    def suite_cli_examples(self, ctx):
        self.log.append("old in")
        outcome = yield
        results = outcome.get_result()
        self.log.append(f"old saw {results}")
        outcome.force_result([[["version"], *examples] for examples in results])


def test_new_and_old_style_wrappers_wrap_each_isolated_call_and_change_its_result(ctx: SuiteContext) -> None:
    log: list[str] = []
    ctx.plugins.register(Examples(log, "a"), "a")
    ctx.plugins.register(NewStyleExamplesWrapper(log), "new")
    ctx.plugins.register(OldStyleExamplesWrapper(log), "old")  # tryfirst: outermost, although registered last
    ctx.plugins.register(Examples(log, "b"), "b")
    examples = ctx.plugins.collect("suite_cli_examples", ctx=ctx)
    assert examples == [
        *[("b", ["version"]), ("b", ["b", "run"]), ("b", ["--help"])],
        *[("a", ["version"]), ("a", ["a", "run"]), ("a", ["--help"])],
    ]
    assert log == [
        *["old in", "new in", "b", "new saw [[['b', 'run']]]", "old saw [[['b', 'run'], ['--help']]]"],
        *["old in", "new in", "a", "new saw [[['a', 'run']]]", "old saw [[['a', 'run'], ['--help']]]"],
    ]


class TwoAnswers:
    """Two implementations of one firstresult hook (``specname``): the tryfirst one answers first."""

    def __init__(self, log: list[str], first: str | None) -> None:
        self.log, self.first = log, first

    @hookimpl(specname="suite_plugin_info", tryfirst=True)
    def preferred_info(self):
        self.log.append("preferred")
        return PluginInfo("two", description=self.first) if self.first else None

    @hookimpl
    def suite_plugin_info(self):
        self.log.append("fallback")
        return PluginInfo("two", description="the fallback")


def test_firstresult_stops_at_the_first_non_none_answer(ctx: SuiteContext) -> None:
    log: list[str] = []
    ctx.plugins.register(TwoAnswers(log, first="the preferred answer"), "two")
    [info] = ctx.plugins.describe()
    assert info.description == "the preferred answer"
    assert log == ["preferred"]  # the later implementation is not called


def test_firstresult_goes_on_past_none(ctx: SuiteContext) -> None:
    log: list[str] = []
    ctx.plugins.register(TwoAnswers(log, first=None), "two")
    [info] = ctx.plugins.describe()
    assert info.description == "the fallback"
    assert log == ["preferred", "fallback"]


class Described:
    def __init__(self, description: str) -> None:
        self.description = description

    @hookimpl
    def suite_plugin_info(self):
        return PluginInfo("x", description=self.description)


class Auditor:
    """Wraps every plugin's description; has no description of its own."""

    @hookimpl(wrapper=True)
    def suite_plugin_info(self):
        info = yield
        info.description += " (audited)"
        return info


def test_a_per_plugin_call_runs_that_plugin_only_inside_every_wrapper(ctx: SuiteContext) -> None:
    ctx.plugins.register(Described("first plugin"), "first")
    ctx.plugins.register(Auditor(), "auditor")
    ctx.plugins.register(Described("second plugin"), "second")
    infos = {info.name: info for info in ctx.plugins.describe()}
    assert infos["first"].description == "first plugin (audited)"
    assert infos["second"].description == "second plugin (audited)"
    assert infos["auditor"].description == "" and infos["auditor"].error is None


class Options:
    from pydantic import BaseModel

    class Model(BaseModel):
        threshold: float = 0.5

    class Stricter(BaseModel):
        threshold: float = 0.5
        strict: bool = True

    @hookimpl(trylast=True)
    def suite_config_model(self):
        return self.Model

    @hookimpl(specname="suite_config_model")
    def stricter_model(self):
        return self.Stricter


def test_config_model_takes_the_first_answer_in_pluggy_order(tmp_path: Path) -> None:
    ctx = SuiteContext(Settings(data_dir=tmp_path, plugins={"opt": {"strict": False}}))
    ctx.plugins.register(Options(), "opt")
    ctx.validate_plugin_config()
    assert ctx.plugin_options("opt").strict is False


class Tasks:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    @hookimpl
    def suite_training_tasks(self, ctx):
        if self.fail:
            raise RuntimeError("no tasks today")
        return []


def test_a_hook_that_is_not_isolated_stops_at_the_first_failure(
    ctx: SuiteContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(hookspecs.DISPATCH, "suite_training_tasks", Dispatch.STRICT)
    ctx.plugins.register(Tasks(fail=False), "fine")
    ctx.plugins.register(Tasks(fail=True), "broken")
    with pytest.raises(PluginError, match="plugin 'broken' failed in suite_training_tasks: RuntimeError: no tasks"):
        ctx.training_tasks()
    assert not ctx.plugins.failures


def test_every_hook_has_a_dispatch_mode(ctx: SuiteContext) -> None:
    specs = {name for name in dir(hookspecs) if name.startswith("suite_")}
    assert specs == set(hookspecs.DISPATCH)
    assert hookspecs.DISPATCH["suite_startup"] is Dispatch.ISOLATED
    assert ctx.plugins.dispatch("suite_not_declared") is Dispatch.STRICT
