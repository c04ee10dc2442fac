"""Errors that reach a user as one line, never as a traceback."""


class SuiteError(Exception):
    """Base of every error the suite reports to a user: the message is the whole story."""

    exit_code = 1


class ConfigError(SuiteError):
    """The configuration file or environment is missing, malformed or invalid."""

    exit_code = 2


class DataError(SuiteError):
    """An input data file is missing, empty, malformed or mislabelled."""

    exit_code = 2


class ModelError(SuiteError):
    """A model folder is missing, corrupt or of the wrong kind."""


class NotFoundError(SuiteError):
    """A named thing (plugin, model version, job, user, item...) does not exist."""

    exit_code = 2


class PluginError(SuiteError):
    """A plugin failed to import, register or run one of its hooks."""


class SchemaError(SuiteError):
    """The database schema does not match the code: out of date (``suite db upgrade``) or newer."""

    exit_code = 3


def one_line(exc: BaseException) -> str:
    """Collapse an exception message to one line for the terminal or a run record."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, SuiteError) else f"{type(exc).__name__}: {text}"
