"""The training-task contract between plugins (which declare) and the CLI (which runs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def training_overrides(
    ctx: SuiteContext,
    task: TrainingTask,
    *,
    backbone: str | None = None,
    teacher: str | None = None,
    transfer: str | None = None,
    temperature: float | None = None,
    alpha: float | None = None,
) -> Iterator[None]:
    """What ``suite train --backbone/--teacher/--transfer`` change for one run of ``task``.

    ``backbone`` and ``teacher`` are registry references (``sentiment/sentiment@3``,
    ``sentiment/backbone@2``), model folders or hub ids; ``transfer`` is a text file
    (see :func:`services.training.load_text_file`) or ``plugin`` for the plugin's own
    texts (``suite_pretraining_texts``). The plugin's task runs unchanged: its backbone
    comes from ``ctx.backbone`` and its classifier runs through ``ctx.trainer``.
    """
    from suite.errors import ConfigError

    if transfer and not teacher:
        raise ConfigError("--transfer needs --teacher: transfer texts are scored by the teacher")
    if teacher and task.kind != "classification":
        raise ConfigError(f"--teacher distils classifiers; {task.qualified_name} trains a {task.kind}")
    params: dict[str, Any] = {"distill_temperature": temperature, "distill_alpha": alpha}
    texts: list[str] = []
    if teacher:
        params["teacher"] = ctx.resolve_model(teacher)
        if transfer:
            texts = transfer_texts(ctx, task.plugin, transfer)
    elif temperature is not None or alpha is not None:
        raise ConfigError("--temperature and --alpha need --teacher")
    given = {key: value for key, value in params.items() if value is not None}
    with ctx.overriding_backbone(backbone), ctx.trainer.overriding(given, transfer_texts=texts, teacher_name=teacher):
        yield


def transfer_texts(ctx: SuiteContext, plugin: str, source: str) -> list[str]:
    """Unlabelled texts from a file, or from ``plugin``'s ``suite_pretraining_texts`` when ``source`` is "plugin"."""
    from services.training import load_text_file

    if source == "plugin":
        return plugin_texts(ctx, plugin)
    return list(dict.fromkeys(load_text_file(source)))


def plugin_texts(ctx: SuiteContext, plugin: str) -> list[str]:
    """The unlabelled texts ``plugin`` offers through ``suite_pretraining_texts``, without duplicates or blanks."""
    from suite.errors import DataError, NotFoundError, PluginError, SuiteError, one_line

    if plugin not in ctx.plugins.names:
        raise NotFoundError(f"unknown plugin '{plugin}' (enabled: {', '.join(ctx.plugins.names) or 'none'})")
    try:
        answers = ctx.plugins.call_one(plugin, "suite_pretraining_texts", ctx=ctx)  # one list per implementation
    except SuiteError as exc:
        raise type(exc)(f"plugin '{plugin}': {one_line(exc)}") from None
    except Exception as exc:  # a plugin's bug: name it, in one line
        raise PluginError(f"plugin '{plugin}': suite_pretraining_texts failed: {one_line(exc)}") from None
    if answers is None:
        raise DataError(f"plugin '{plugin}' offers no texts of its own; give a file with --texts")
    texts = (text for answer in answers for text in answer or [])
    cleaned = list(dict.fromkeys(text.strip() for text in texts if isinstance(text, str) and text.strip()))
    if not cleaned:
        raise DataError(f"plugin '{plugin}' holds no texts yet; give a file with --texts")
    return cleaned
