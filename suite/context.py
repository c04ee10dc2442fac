"""The object every hook receives: settings, plugins, and lazy handles to the services.

Services are built on first use, so a command that only lists plugins never loads
spaCy or torch, and each service is built once per process and shared by all plugins.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from suite import builtins
from suite.config import Settings, load_settings, validate_plugin_options
from suite.errors import ConfigError, NotFoundError, PluginError, SchemaError
from suite.plugins import PluginHost

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from services.alerts import AlertDispatcher
    from services.embeddings import Embedder
    from services.outbox import AlertOutbox
    from services.preprocessing import Preprocessor
    from services.registry import ModelRegistry
    from services.scheduling import JobSpec, SchedulerService
    from services.schema import DatabaseRole, HistoryStatus, MigrationHistory
    from services.search import IndexSpec, SearchBackend
    from services.training import TrainingEngine
    from suite.training_tasks import TrainingTask

log = logging.getLogger(__name__)

# The registry task under which ``suite pretrain`` keeps a plugin's pre-trained backbone versions.
BACKBONE_TASK = "backbone"


class SuiteContext:
    """Settings, the plugin host and the shared services of one process."""

    def __init__(self, settings: Settings, host: PluginHost | None = None) -> None:
        self.settings = settings
        self.plugins = host or PluginHost(settings.is_enabled)
        self.plugins.register_builtin(builtins, builtins.NAME)
        self._options: dict[str, BaseModel] = {}
        self._embedders: dict[str, Embedder] = {}
        self._lock = threading.RLock()
        self._started = False
        # One-shot commands bring an existing SQLite schema up to date; serve and the scheduler never do.
        self.schema_auto_upgrade = True
        self._schema_ready: set[str] = set()
        self._backbone_override: str | None = None

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
            self.plugins.call_each("suite_shutdown", ctx=self)
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
        """The resolved backbone for ``plugin``, the first of: the one-run override
        (:meth:`overriding_backbone`, ``suite train --backbone``), the plugin's active
        pre-trained backbone version in the registry (``suite pretrain``; ``suite models
        activate`` rolls it back), the plugin's configured backbone, the suite's."""
        from services.backbone import resolve_backbone

        if self._backbone_override:
            return self.resolve_model(self._backbone_override)
        if plugin:
            pretrained = self.registry.active(plugin, BACKBONE_TASK)
            if pretrained is not None:
                return str(pretrained.path)
        override = self.settings.plugin(plugin).backbone if plugin else None
        return resolve_backbone(override or self.settings.backbone)

    def backbone_name(self, plugin: str | None = None) -> str:
        """What a model card calls :meth:`backbone`: the override or registry reference, else the configured name."""
        if self._backbone_override:
            return self._backbone_override
        if plugin:
            pretrained = self.registry.active(plugin, BACKBONE_TASK)
            if pretrained is not None:
                return pretrained.ref
        return (self.settings.plugin(plugin).backbone if plugin else None) or self.settings.backbone

    def resolve_model(self, name: str) -> str:
        """A model folder or id from a registry reference (``sentiment/backbone@2``), a folder, a hub id or
        ``default``."""
        from services.backbone import resolve_backbone
        from services.registry import REF_PATTERN

        if REF_PATTERN.match(name) and not Path(name).expanduser().exists():
            return str(self.registry.resolve(name).path)
        return resolve_backbone(name)

    @contextmanager
    def overriding_backbone(self, name: str | None) -> Iterator[None]:
        """Within the block every plugin's :meth:`backbone` is ``name`` (``None``: no change)."""
        if name:
            self.resolve_model(name)  # fail now, in one line, rather than inside a plugin's task
        previous, self._backbone_override = self._backbone_override, name or self._backbone_override
        try:
            yield
        finally:
            self._backbone_override = previous

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
        self.prepare_schema("jobstore")
        on_failure = self.plugins.record_failure if record_failures else None
        return SchedulerService(
            self.settings.scheduler, self.settings.effective_jobstore_url, jobs, on_failure=on_failure, **kwargs
        )

    # -- database schema ---------------------------------------------------------------
    def migration_histories(self) -> list[MigrationHistory]:
        """The services' migration histories and every enabled plugin's (``suite_migrations``)."""
        from services.schema import MigrationHistory, service_histories

        histories = {history.name: ("services", history) for history in service_histories()}
        for plugin, history in self.plugins.collect("suite_migrations", ctx=self):
            if not isinstance(history, MigrationHistory):
                raise PluginError(f"plugin '{plugin}': suite_migrations returned {type(history).__name__}")
            if history.name in histories:
                raise PluginError(f"plugin '{plugin}': migration history '{history.name}' is declared twice")
            histories[history.name] = (plugin, history)
        return [history for _, history in histories.values()]

    def database_url(self, role: DatabaseRole) -> str:
        """The URL of the ``main`` database (``ctx.database``) or of the scheduler's ``jobstore``."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        return self.settings.effective_jobstore_url if role == "jobstore" else self.settings.effective_database_url

    def prepare_schema(self, role: DatabaseRole, engine: Engine | None = None) -> None:
        """Make the schema of one database usable by this code, once per process.

        Absent tables are created at once. An outdated schema is upgraded by one-shot
        commands on SQLite; anywhere else (PostgreSQL, ``suite serve``, ``suite scheduler
        run``) it stops the command with :class:`~suite.errors.SchemaError`, one line
        naming ``suite db upgrade``.
        """
        self._refuse_outdated(self._prepare(role, engine))

    def require_current_schema(self) -> None:
        """For long-running processes: create absent tables, refuse to start on an outdated schema."""
        self.schema_auto_upgrade = False
        self._refuse_outdated(self._prepare("main") + self._prepare("jobstore"))

    def _prepare(self, role: DatabaseRole, engine: Engine | None = None) -> list[HistoryStatus]:
        """Prepare one database (see :meth:`prepare_schema`); return the histories left outdated."""
        from services.database import create_database_engine
        from services.schema import prepare

        with self._lock:
            if role in self._schema_ready:
                return []
            histories = [h for h in self.migration_histories() if h.database == role]
            own = engine is None
            engine = engine or create_database_engine(self.database_url(role))
            try:
                upgrade = self.schema_auto_upgrade and engine.dialect.name == "sqlite"
                left = prepare(engine, histories, upgrade_existing=upgrade)
            finally:
                if own:
                    engine.dispose()
            if not left:
                self._schema_ready.add(role)
            return left

    @staticmethod
    def _refuse_outdated(left: list[HistoryStatus]) -> None:
        from services.schema import outdated_message

        if left:
            raise SchemaError(outdated_message(left, "suite db upgrade"))

    def search_indexes(self) -> list[IndexSpec]:
        return [spec for _, spec in self.plugins.collect("suite_search_indexes", ctx=self)]

    # -- shared services (built once, on first use) -------------------------------------
    @cached_property
    def database(self) -> Engine:
        from services.database import create_database_engine

        engine = create_database_engine(self.database_url("main"))
        try:
            self.prepare_schema("main", engine)
        except BaseException:
            engine.dispose()
            raise
        return engine

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
        adds_components = self.plugins.is_implemented("suite_pipeline_components")
        return Preprocessor(
            self.settings.preprocessing,
            patterns=patterns,
            configure=self._add_pipeline_components if adds_components else None,
        )

    def _add_pipeline_components(self, nlp: Any) -> None:
        self.plugins.call_each("suite_pipeline_components", nlp=nlp, ctx=self)

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

        return TrainingEngine(
            self.settings.training,
            allow_downloads=self.settings.allow_downloads,
            cache_dir=self.settings.data_dir / "cache" / "teacher-scores",
        )

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

    @cached_property
    def alert_outbox(self) -> AlertOutbox:
        """Alert deliveries, in :attr:`database` beside the plugins' stores: enqueue with the alert, send later."""
        from services.outbox import AlertOutbox

        return AlertOutbox(self.database, self.alerts, self.settings.alerts)
