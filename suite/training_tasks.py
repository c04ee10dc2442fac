"""The training-task contract between plugins (which declare) and the CLI (which runs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from services.registry import ModelVersion
    from suite.context import SuiteContext

TaskKind = Literal["classification", "biencoder"]


@dataclass(frozen=True)
class TrainingTask:
    """One model a plugin fine-tunes.

    ``run(ctx, overrides)`` loads the plugin's data, fine-tunes through ``ctx.trainer``,
    registers the result in ``ctx.registry`` and returns the new version. ``overrides``
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
