"""Validated configuration: one TOML file plus ``SUITE_*`` environment variables.

Precedence, highest first: keyword arguments, environment variables
(``SUITE_SEARCH__BACKEND=elasticsearch``; ``__`` separates nested keys), the TOML
file, then the defaults below. Every default runs on one laptop with no server.
Each plugin's own options live under ``[plugins.<name>]`` and are validated by the
model the plugin returns from the ``suite_config_model`` hook.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from services.settings import (  # noqa: F401  (re-exported: plugins and tests import them from here)
    AlertsConfig,
    EmailSinkConfig,
    EmbeddingsConfig,
    PreprocessingConfig,
    SchedulerConfig,
    SearchConfig,
    Section,
    TrainingConfig,
    WebhookSinkConfig,
)
from suite.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_ENV = "SUITE_CONFIG"
DEFAULT_CONFIG_NAME = "suite.toml"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "suite"


RATE_LIMIT_SCHEMES = ("memory", "redis", "rediss", "redis+unix")


class HttpConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    auth: Literal["auto", "on", "off"] = Field("auto", description="'auto': required unless bound to loopback")
    api_keys: list[SecretStr] = Field(default_factory=list)
    max_body_bytes: int = Field(1_000_000, ge=1024)
    max_text_chars: int = Field(5_000, ge=1)
    max_batch: int = Field(256, ge=1)
    rate_limit_per_minute: int = Field(600, ge=1, description="requests per caller in any 60 seconds")
    rate_limit_storage: str = Field(
        "memory://",
        description="where the rate limit counts: 'memory://' (per worker) or 'redis://host:6379/0' (shared)",
    )
    rate_limit_prefix: str = Field(
        "suite", pattern=r"^[\w.-]+$", description="namespace of the counts: one per deployment sharing a Redis"
    )
    metrics: bool = Field(True, description="serve Prometheus metrics at /metrics (behind the API key like /api)")

    @field_validator("rate_limit_storage")
    @classmethod
    def _known_storage(cls, value: str) -> str:
        scheme, separator, rest = value.partition("://")
        if not separator or scheme not in RATE_LIMIT_SCHEMES or (scheme == "memory" and rest):
            # The URL may hold a password: name the scheme only.
            shown = f"scheme {scheme!r}" if separator else "no scheme"
            raise ValueError(f"expected 'memory://' or a Redis URL such as 'redis://127.0.0.1:6379/0' ({shown})")
        return value


class PluginSettings(BaseModel):
    """One ``[plugins.<name>]`` table: ``enabled`` plus the plugin's own options."""

    model_config = ConfigDict(extra="allow", defer_build=True)
    enabled: bool = True
    backbone: str | None = Field(None, description="overrides the suite backbone for this plugin")

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Settings(BaseSettings):
    """The suite's effective configuration."""

    model_config = SettingsConfigDict(
        env_prefix="SUITE_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    backbone: str = Field("default", description="'default' (all-MiniLM-L6-v2, packaged), a local path or hub id")
    allow_downloads: bool = Field(False, description="let transformers fetch hub ids not in the local cache")
    database_url: str | None = Field(None, description="SQLAlchemy URL for plugin stores; None: SQLite")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    plugins: dict[str, PluginSettings] = Field(default_factory=dict)
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    embeddings: EmbeddingsConfig = Field(default_factory=EmbeddingsConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file_values = _FILE_VALUES.get(id(settings_cls), {})
        return init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=file_values)

    # -- derived locations -------------------------------------------------------------
    def sqlite_url(self, name: str) -> str:
        return f"sqlite:///{self.data_dir / name}"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or self.sqlite_url("suite.db")

    @property
    def effective_jobstore_url(self) -> str:
        return self.scheduler.jobstore_url or self.sqlite_url("scheduler.db")

    def plugin(self, name: str) -> PluginSettings:
        return self.plugins.get(name) or PluginSettings()

    def is_enabled(self, name: str) -> bool:
        return self.plugin(name).enabled

    def redacted(self) -> dict[str, Any]:
        """The effective config as plain data, secrets shown as '**********'."""
        return self.model_dump(mode="json")


# The TOML values being loaded, keyed by class: pydantic-settings builds sources per class.
_FILE_VALUES: dict[int, dict[str, Any]] = {}


def find_config_file(explicit: str | Path | None = None) -> Path | None:
    """The config file in force: ``--config``, then ``$SUITE_CONFIG``, then ``./suite.toml``."""
    chosen = explicit or os.environ.get(CONFIG_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    # A relative data_dir in a config file means relative to that file, not to the cwd.
    if isinstance(data.get("data_dir"), str) and not Path(data["data_dir"]).expanduser().is_absolute():
        data["data_dir"] = str((path.parent / data["data_dir"]).resolve())
    return data


def describe_validation_error(exc: ValidationError, source: str) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{source}: invalid setting '{where}': {first['msg']}{more}"


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Load and validate the configuration; raise :class:`ConfigError` with one line on failure."""
    path = find_config_file(config_file)
    values = read_toml(path) if path else {}
    source = str(path) if path else "configuration"
    _FILE_VALUES[id(Settings)] = values
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source)) from None
    finally:
        _FILE_VALUES.pop(id(Settings), None)


def validate_plugin_options(name: str, settings: Settings, model: type[BaseModel]) -> BaseModel:
    """Validate ``[plugins.<name>]`` against the plugin's own model."""
    try:
        return model.model_validate(settings.plugin(name).options())
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, f"[plugins.{name}]")) from None
