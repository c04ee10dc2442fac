"""Plugin discovery, validation and hook calls through pluggy.

Plugins are found through the ``suite.plugins`` entry-point group, built-ins and
third-party packages alike. One that fails to import, implements an unknown hook or a
hook with a wrong signature is reported by name with the reason and left out; the
rest still load.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from suite import hookspecs
from suite.errors import NotFoundError, PluginError, one_line

ENTRY_POINT_GROUP = "suite.plugins"
HOOK_PREFIX = "suite_"
log = logging.getLogger(__name__)


@dataclass
class PluginInfo:
    """What ``suite plugins`` shows for one plugin."""

    name: str
    version: str = "unknown"
    description: str = ""
    enabled: bool = True
    hooks: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def status(self) -> str:
        if self.error:
            return "failed"
        return "enabled" if self.enabled else "disabled"


@dataclass
class HookFailure:
    """A hook call that raised, attributed to its plugin."""

    plugin: str
    hook: str
    error: str


class _SuitePluginManager(pluggy.PluginManager):
    """Treats every ``suite_*`` attribute as a hook implementation, decorated or not.

    That way a misspelt hook is an error at start-up (as in pytest), not a silently
    ignored function.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(HOOK_PREFIX) and callable(getattr(plugin, name, None)):
            return {}
        return opts


class PluginHost:
    """Owns the pluggy manager and what is known about each plugin."""

    def __init__(self, enabled: Callable[[str], bool] = lambda name: True) -> None:
        self._enabled = enabled
        self.pm = _SuitePluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.builtins: set[str] = set()  # the core's own hook implementations (suite.builtins)
        # Bounded: a long-running scheduler records every failed run here.
        self.failures: deque[HookFailure] = deque(maxlen=1000)

    # -- discovery ---------------------------------------------------------------------
    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        for entry_point in sorted(metadata.entry_points(group=group), key=lambda ep: ep.name):
            if entry_point.name in self.infos:
                continue
            version = entry_point.dist.version if entry_point.dist else "unknown"
            if not self._enabled(entry_point.name):
                self.infos[entry_point.name] = PluginInfo(entry_point.name, version, enabled=False)
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:  # an import error must not stop the other plugins
                self._record_broken(entry_point.name, version, f"failed to import: {one_line(exc)}")
                continue
            self.register(plugin, entry_point.name, version)

    def register(self, plugin: object, name: str, version: str = "unknown") -> bool:
        """Register and validate one plugin; on failure record why and return False."""
        if not self._enabled(name):
            self.infos[name] = PluginInfo(name, version, enabled=False)
            return False
        try:
            self.pm.register(plugin, name=name)
            self._check_known_hooks(plugin, name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._record_broken(name, version, f"rejected: {one_line(exc)}")
            return False
        hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
        self.infos[name] = PluginInfo(name, version, hooks=hooks)
        return True

    def _check_known_hooks(self, plugin: object, name: str) -> None:
        for caller in self.pm.get_hookcallers(plugin) or []:
            if caller.spec is None:
                impls = [impl for impl in caller.get_hookimpls() if impl.plugin is plugin]
                if not all(impl.optionalhook for impl in impls):
                    raise pluggy.PluginValidationError(
                        plugin, f"plugin '{name}' implements unknown hook '{caller.name}'"
                    )

    def _record_broken(self, name: str, version: str, reason: str) -> None:
        log.warning("plugin %s %s", name, reason)
        self.infos[name] = PluginInfo(name, version, error=reason)

    def register_builtin(self, plugin: object, name: str) -> None:
        """Register the core's own hook implementations: always enabled, never listed as a plugin."""
        if self.pm.get_plugin(name) is None:
            self.pm.register(plugin, name=name)
            self.builtins.add(name)

    # -- queries -----------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Names of the plugins that are registered (enabled and valid), in load order; built-ins excluded."""
        return [name for name, _ in self.pm.list_name_plugin() if name not in self.builtins]

    def get(self, name: str) -> object:
        plugin = self.pm.get_plugin(name)
        if plugin is None:
            known = ", ".join(sorted(self.infos)) or "none"
            raise NotFoundError(f"unknown or disabled plugin '{name}' (known: {known})")
        return plugin

    def broken(self) -> list[PluginInfo]:
        return [info for info in self.infos.values() if info.error]

    def describe(self) -> list[PluginInfo]:
        """Every plugin seen, with its description filled in from ``suite_plugin_info``."""
        for name in self.names:
            info = self.infos[name]
            try:
                described = self.call_one(name, "suite_plugin_info")
            except Exception as exc:  # a broken description must not hide the other plugins
                info.error = f"suite_plugin_info failed: {one_line(exc)}"
                continue
            if described is not None:
                info.description = described.description or info.description
                info.version = described.version if described.version != "unknown" else info.version
        return sorted(self.infos.values(), key=lambda info: info.name)

    # -- calls -------------------------------------------------------------------------
    # Every call is a pluggy hook call, so pluggy's order (last registered first, tryfirst/trylast), wrappers
    # (new- and old-style) and firstresult hold. To call one plugin at a time, the hook's caller is narrowed with
    # ``pm.subset_hook_caller`` to that plugin's implementations plus every plugin's wrappers.
    def dispatch(self, hook: str) -> hookspecs.Dispatch:
        """How ``hook`` is called (:data:`suite.hookspecs.DISPATCH`); ``STRICT`` for a hook not listed there."""
        return hookspecs.DISPATCH.get(hook, hookspecs.Dispatch.STRICT)

    def _caller(self, hook: str) -> pluggy.HookCaller:
        return getattr(self.pm.hook, hook)

    def _implementers(self, hook: str) -> list[tuple[str, object]]:
        """The plugins with a plain (non-wrapper) implementation of ``hook``, in pluggy's call order."""
        seen: dict[str, object] = {}
        for impl in reversed(self._caller(hook).get_hookimpls()):  # pluggy calls the list from its end
            if not (impl.wrapper or impl.hookwrapper):
                seen.setdefault(impl.plugin_name, impl.plugin)
        return list(seen.items())

    def _only(self, hook: str, plugin: object) -> pluggy.HookCaller:
        """``hook``'s caller narrowed to ``plugin``'s implementations, inside every plugin's wrappers.

        pluggy narrows by plugin: a plugin that both wraps and implements one hook (``specname``) wraps only its own.
        """
        others = {other for _, other in self._implementers(hook) if other is not plugin}
        return self.pm.subset_hook_caller(hook, others)

    def implements(self, name: str, hook: str) -> bool:
        return any(impl.plugin_name == name for impl in self._caller(hook).get_hookimpls())

    def is_implemented(self, hook: str) -> bool:
        """True where any plugin implements or wraps ``hook``."""
        return bool(self._caller(hook).get_hookimpls())

    def call_one(self, name: str, hook: str, **kwargs: Any) -> Any:
        """Call plugin ``name``'s implementation(s) of ``hook``, inside every wrapper; None if it has none.

        For a ``firstresult`` hook that is the plugin's first non-None answer, else the list of its answers.
        """
        plugin = self.pm.get_plugin(name)
        if plugin is None or all(other is not plugin for _, other in self._implementers(hook)):
            return None
        return self._only(hook, plugin)(**kwargs)

    def call_each(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call ``hook`` once per implementing plugin, in pluggy's order; ``(plugin, result)`` per non-None result.

        A plugin that raises in an ``ISOLATED`` hook is logged and recorded in :attr:`failures` and the others
        run; in any other hook it stops the call with a :class:`PluginError` naming it.
        """
        isolated = self.dispatch(hook) is hookspecs.Dispatch.ISOLATED
        spec = self._caller(hook).spec
        firstresult = bool(spec and spec.opts.get("firstresult"))
        results: list[tuple[str, Any]] = []
        for name, plugin in self._implementers(hook):
            try:
                outcome = self._only(hook, plugin)(**kwargs)
            except Exception as exc:
                culprit = self._culprit(hook, exc, name)
                if not isolated:
                    raise PluginError(f"plugin '{culprit}' failed in {hook}: {one_line(exc)}") from exc
                self.record_failure(culprit, hook, exc)
                continue
            if firstresult:
                outcome = [] if outcome is None else [outcome]
            results.extend((name, result) for result in outcome or [])
        return results

    def collect(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """:meth:`call_each`, list results flattened into ``(plugin, item)`` pairs."""
        items: list[tuple[str, Any]] = []
        for name, result in self.call_each(hook, **kwargs):
            for item in result if isinstance(result, list | tuple) else [result]:
                items.append((name, item))
        return items

    def _culprit(self, hook: str, exc: BaseException, called: str) -> str:
        """The plugin whose code raised ``exc``: the innermost hook function in its traceback, else ``called``.

        A wrapper that raises is then blamed, not the plugin it was wrapping.
        """
        owners: dict[object, set[str]] = {}
        for impl in self._caller(hook).get_hookimpls():
            owners.setdefault(getattr(impl.function, "__code__", None), set()).add(impl.plugin_name)
        culprit, frame = called, exc.__traceback__
        while frame is not None:
            names = owners.get(frame.tb_frame.f_code, set())
            if names:  # one class registered under two names shares its code: prefer the plugin called
                culprit = called if called in names else min(names)
            frame = frame.tb_next
        return culprit

    def record_failure(self, plugin: str, hook: str, exc: BaseException) -> HookFailure:
        failure = HookFailure(plugin, hook, one_line(exc))
        log.error("plugin %s failed in %s: %s", plugin, hook, failure.error)
        self.failures.append(failure)
        return failure


def require_no_failures(failures: Iterable[HookFailure]) -> None:
    failures = list(failures)
    if failures:
        first = failures[0]
        raise PluginError(f"plugin '{first.plugin}' failed in {first.hook}: {first.error}")
