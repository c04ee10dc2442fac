"""Plugin discovery, validation and isolated hook calls.

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
    def _impls(self, hook: str) -> list[pluggy.HookImpl]:
        return getattr(self.pm.hook, hook).get_hookimpls()

    def implements(self, name: str, hook: str) -> bool:
        return any(impl.plugin_name == name for impl in self._impls(hook))

    def call_one(self, name: str, hook: str, **kwargs: Any) -> Any:
        """Call one plugin's implementation of ``hook``; None if it has none."""
        for impl in self._impls(hook):
            if impl.plugin_name == name:
                return impl.function(*[kwargs[arg] for arg in impl.argnames])
        return None

    def call_each(self, hook: str, *, reverse: bool = False, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every plugin's ``hook`` in registration order (or reversed), isolating failures.

        A plugin that raises is logged and recorded in :attr:`failures`; the others run.
        """
        results = []
        impls = self._impls(hook)  # in registration order (pluggy itself calls them LIFO)
        for impl in reversed(impls) if reverse else impls:
            try:
                results.append((impl.plugin_name, impl.function(*[kwargs[a] for a in impl.argnames])))
            except Exception as exc:
                self.record_failure(impl.plugin_name, hook, exc)
        return results

    def collect(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Flatten list-returning hooks into (plugin, item) pairs, skipping ``None``."""
        items: list[tuple[str, Any]] = []
        for name, result in self.call_each(hook, **kwargs):
            if result is None:
                continue
            for item in result if isinstance(result, list | tuple) else [result]:
                items.append((name, item))
        return items

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
