"""The training-task contract between plugins (which declare) and the CLI (which runs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from suite.errors import DataError

if TYPE_CHECKING:
    from services.registry import ModelVersion
    from suite.context import SuiteContext

TaskKind = Literal["classification", "biencoder"]


class TrainingSkipped(DataError):
    """Raised by a task's ``run`` before any training when the user's data cannot support it
    (a column it needs is absent); the message says why and how to enable it.

    Runners that train several tasks print it as one line and go on; a task the user named
    on its own (``suite train sentiment:topic``) still fails with it.
    """


@dataclass(frozen=True)
class TrainingTask:
    """One model a plugin fine-tunes.

    ``run(ctx, overrides)`` loads the plugin's data, fine-tunes through ``ctx.trainer``,
    registers the result in ``ctx.registry`` and returns the new version, or raises
    :class:`TrainingSkipped` when the data lacks what the task needs. ``overrides``
    holds hyper-parameters given on the command line (``--epochs 2``, ``--data FILE``...),
    already parsed; a task ignores the ones it does not know.
    """

    plugin: str
    name: str
    kind: TaskKind
    description: str
    run: Callable[[SuiteContext, dict[str, Any]], ModelVersion]

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"
