"""The object every hook receives: settings, plugins, and lazy handles to the services.

Services are built on first use, so a command that only lists plugins never loads
spaCy or torch, and each service is built once per process and shared by all plugins.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from suite.config import Settings, load_settings, validate_plugin_options
from suite.errors import ConfigError, NotFoundError, PluginError
from suite.plugins import PluginHost

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from services.alerts import AlertDispatcher
    from services.embeddings import Embedder
    from services.preprocessing import Preprocessor
    from services.registry import ModelRegistry
    from services.scheduling import JobSpec, SchedulerService
    from services.search import IndexSpec, SearchBackend
    from services.training import TrainingEngine
    from suite.training_tasks import TrainingTask

log = logging.getLogger(__name__)


class SuiteContext:
    """Settings, the plugin host and the shared services of one process."""

    def __init__(self, settings: Settings, host: PluginHost | None = None) -> None:
        self.settings = settings
        self.plugins = host or PluginHost(settings.is_enabled)
        self._options: dict[str, BaseModel] = {}
        self._embedders: dict[str, Embedder] = {}
        self._lock = threading.RLock()
        self._started = False

    # -- life cycle --------------------------------------------------------------------
    @classmethod
    def create(cls, config_file: str | Path | None = None, *, discover: bool = True, **overrides: Any) -> SuiteContext:
        """Load config, discover plugins and validate their options (no services yet)."""
        ctx = cls(load_settings(config_file, **overrides))
        if discover:
            ctx.plugins.load_entry_points()
        ctx.validate_plugin_config()
        return ctx

    def validate_plugin_config(self) -> None:
        """Validate every ``[plugins.<name>]`` table; unknown plugin names are errors."""
        known = set(self.plugins.infos)
        for name in self.settings.plugins:
            if name not in known:
                installed = ", ".join(sorted(known)) or "none"
                raise ConfigError(f"[plugins.{name}]: unknown plugin '{name}' (installed: {installed})")
        for name in self.plugins.names:
            model = self.plugins.call_one(name, "suite_config_model")
            if model is not None:
                self._options[name] = validate_plugin_options(name, self.settings, model)

    def startup(self) -> None:
        if not self._started:
            self._started = True
            self.plugins.call_each("suite_startup", ctx=self)

    def shutdown(self) -> None:
        if self._started:
            self._started = False
            self.plugins.call_each("suite_shutdown", reverse=True, ctx=self)
        if "database" in self.__dict__:
            self.database.dispose()

    # -- plugin helpers ----------------------------------------------------------------
    def plugin_options(self, name: str) -> Any:
        """The validated options of plugin ``name`` (its ``suite_config_model``)."""
        if name not in self._options:
            raise NotFoundError(f"plugin '{name}' declares no options")
        return self._options[name]

    def plugin_dir(self, name: str) -> Path:
        """A folder of the plugin's own under the data dir, created on demand."""
        path = self.settings.data_dir / "plugins" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def backbone(self, plugin: str | None = None) -> str:
        """The resolved backbone for ``plugin``: its own override, else the suite's."""
        from services.backbone import resolve_backbone

        override = self.settings.plugin(plugin).backbone if plugin else None
        return resolve_backbone(override or self.settings.backbone)

    def training_tasks(self) -> list[TrainingTask]:
        return [task for _, task in self.plugins.collect("suite_training_tasks", ctx=self)]

    def select_training_tasks(self, target: str) -> list[TrainingTask]:
        """Every task of plugin ``target``, or the one task ``plugin:task`` (or bare task name)."""
        tasks = self.training_tasks()
        chosen = [t for t in tasks if target == t.plugin] or [t for t in tasks if target in (t.qualified_name, t.name)]
        if not chosen:
            names = ", ".join(task.qualified_name for task in tasks) or "none"
            raise NotFoundError(f"unknown training task '{target}' (known: {names})")
        return chosen

    def training_task(self, qualified: str) -> TrainingTask:
        for task in self.training_tasks():
            if qualified in (task.qualified_name, task.plugin) or qualified == task.name:
                return task
        names = ", ".join(task.qualified_name for task in self.training_tasks()) or "none"
        raise NotFoundError(f"unknown training task '{qualified}' (known: {names})")

    def jobs(self) -> list[JobSpec]:
        """Every declared job, its ``plugin`` filled in from the plugin that declared it."""
        jobs = []
        for plugin, job in self.plugins.collect("suite_scheduled_jobs", ctx=self):
            if not getattr(job, "plugin", ""):
                job.plugin = plugin
            jobs.append(job)
        return jobs

    def scheduler(self, *, record_failures: bool = True, **kwargs: Any) -> SchedulerService:
        """The scheduler for the enabled plugins' jobs, with their failures recorded on :attr:`plugins`."""
        from services.scheduling import JobSpec, SchedulerService

        jobs = []
        for plugin, job in self.plugins.collect("suite_scheduled_jobs", ctx=self):
            if isinstance(job, JobSpec):
                jobs.append(replace(job, plugin=job.plugin or plugin))
            else:
                error = TypeError(f"suite_scheduled_jobs returned {type(job).__name__}, not a JobSpec")
                self.plugins.record_failure(plugin, "suite_scheduled_jobs", error)
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        on_failure = self.plugins.record_failure if record_failures else None
        return SchedulerService(
            self.settings.scheduler, self.settings.effective_jobstore_url, jobs, on_failure=on_failure, **kwargs
        )

    def search_indexes(self) -> list[IndexSpec]:
        return [spec for _, spec in self.plugins.collect("suite_search_indexes", ctx=self)]

    # -- shared services (built once, on first use) -------------------------------------
    @cached_property
    def database(self) -> Engine:
        from services.database import create_database_engine

        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        return create_database_engine(self.settings.effective_database_url)

    @cached_property
    def preprocessor(self) -> Preprocessor:
        from services.preprocessing import Preprocessor
        from services.preprocessing.pipeline import validate_pattern

        patterns: list[dict[str, Any]] = []
        counts: dict[str, int] = {}
        for plugin, pattern in self.plugins.collect("suite_entity_patterns", ctx=self):
            counts[plugin] = counts.get(plugin, 0) + 1
            try:
                patterns.append(validate_pattern(counts[plugin], pattern))
            except PluginError as exc:  # name the culprit: the message alone points at no plugin
                raise PluginError(f"plugin '{plugin}': {exc}") from None
        return Preprocessor(
            self.settings.preprocessing,
            patterns=patterns,
            configure=lambda nlp: self.plugins.call_each("suite_pipeline_components", nlp=nlp, ctx=self),
        )

    def embedder(self, model: str | None = None) -> Embedder:
        """A shared sentence embedder; ``model`` is a path or id, default the config's."""
        from services.backbone import resolve_backbone
        from services.embeddings import Embedder

        path = resolve_backbone(model or self.settings.embeddings.model)
        with self._lock:
            if path not in self._embedders:
                cfg = self.settings.embeddings
                self._embedders[path] = Embedder(
                    path,
                    batch_size=cfg.batch_size,
                    max_length=cfg.max_length,
                    cache_dir=self.settings.data_dir / "cache" / "embeddings" if cfg.cache else None,
                    device=self.settings.training.device,
                    local_files_only=not self.settings.allow_downloads,
                    precision=cfg.precision,
                )
            return self._embedders[path]

    @cached_property
    def search(self) -> SearchBackend:
        from services.search import open_search_backend

        backend = open_search_backend(self.settings.search, self.settings.data_dir)
        for _, spec in self.plugins.collect("suite_search_indexes", ctx=self):
            backend.ensure_index(spec)  # declared indexes exist before any plugin writes
        return backend

    @cached_property
    def trainer(self) -> TrainingEngine:
        from services.training import TrainingEngine

        return TrainingEngine(self.settings.training, allow_downloads=self.settings.allow_downloads)

    @cached_property
    def registry(self) -> ModelRegistry:
        from services.registry import ModelRegistry

        return ModelRegistry(self.settings.data_dir / "models")

    @cached_property
    def alerts(self) -> AlertDispatcher:
        from services.alerts import AlertDispatcher, sinks_from_config

        sinks = [(name, sink) for name, sink in self.plugins.collect("suite_alert_sinks", ctx=self)]
        return AlertDispatcher(
            [("suite", sink) for sink in sinks_from_config(self.settings.alerts)] + sinks,
            on_failure=lambda owner, hook, exc: self.plugins.record_failure(owner, hook, exc),
        )
