"""Errors that reach a user as one line: defined by the services, re-exported for the core and plugins."""

from services.errors import (
    ConfigError,
    DataError,
    ModelError,
    NotFoundError,
    PluginError,
    SchemaError,
    SuiteError,
    one_line,
)

__all__ = [
    "ConfigError",
    "DataError",
    "ModelError",
    "NotFoundError",
    "PluginError",
    "SchemaError",
    "SuiteError",
    "one_line",
]
