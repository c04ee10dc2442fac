"""The router model: fine-tuning through the shared engine, and routing with the active version."""

from __future__ import annotations

import tempfile
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite.errors import DataError, NotFoundError
from suite_ticket_router.data import as_examples, load_history
from suite_ticket_router.options import PLUGIN, TASK, TicketOptions

if TYPE_CHECKING:
    from services.registry import ModelVersion
    from services.training import TextClassifier
    from suite.context import SuiteContext

# Options that are also training hyper-parameters (the sample-sized defaults).
OPTION_PARAMS = ("epochs", "batch_size", "learning_rate", "max_steps")


@dataclass(frozen=True)
class Routing:
    """Where one ticket goes: the queue, the model's confidence and every queue's probability."""

    queue: str
    confidence: float
    scores: dict[str, float]
    needs_review: bool
    model: str  # the registry reference of the version that decided, e.g. "tickets/router@v2"


def training_params(options: TicketOptions, overrides: dict[str, Any]) -> dict[str, Any]:
    """The options' defaults, overridden by the command line; keys the engine does not know are ignored."""
    from services.training import TrainParams

    params = {name: getattr(options, name) for name in OPTION_PARAMS if getattr(options, name) is not None}
    params.update({k: v for k, v in overrides.items() if k in TrainParams.model_fields and v is not None})
    return params


def train_router(ctx: SuiteContext, overrides: dict[str, Any]) -> ModelVersion:
    """Fine-tune the plugin's backbone on past tickets, register the model, index the tickets.

    What ``suite train tickets`` runs. ``overrides`` may hold ``data`` (another ticket
    file) and any training hyper-parameter (``epochs``, ``max_steps``...).
    """
    from services.training import split_train_validation

    options: TicketOptions = ctx.plugin_options(PLUGIN)
    data = Path(overrides.get("data") or options.data)
    tickets = load_history(data)
    examples = as_examples(tickets)
    train, validation = split_train_validation(examples, fraction=options.validation_fraction)
    backbone = ctx.backbone(PLUGIN)
    # The engine writes into a folder of ours; the registry then moves it in atomically.
    with tempfile.TemporaryDirectory(dir=ctx.plugin_dir(PLUGIN), prefix="train-") as work:
        result = ctx.trainer.train_classifier(
            backbone, train, validation or None, training_params(options, overrides), output_dir=Path(work) / "model"
        )
        version = ctx.registry.register_result(result, PLUGIN, TASK, notes=f"{len(tickets)} tickets from {data.name}")
    from suite_ticket_router.index import TicketIndex

    TicketIndex(ctx).add(tickets, source="history")
    return version


class Router:
    """The active router of one context, loaded once and again only when another version is activated."""

    def __init__(self, ctx: SuiteContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._loaded: tuple[Path, str, TextClassifier] | None = None

    def classifier(self) -> tuple[str, TextClassifier]:
        """(registry reference, classifier) of the active version."""
        from services.training import TextClassifier

        version = self.ctx.registry.active(PLUGIN, TASK)
        if version is None:
            raise NotFoundError(f"no ticket router trained yet: run 'suite train {PLUGIN}'")
        with self._lock:
            if self._loaded is None or self._loaded[0] != version.path:
                device = self.ctx.settings.training.device
                self._loaded = (version.path, version.ref, TextClassifier.from_pretrained(version.path, device=device))
            return self._loaded[1], self._loaded[2]

    def route(self, texts: Sequence[str]) -> list[Routing]:
        if any(not text.strip() for text in texts):
            raise DataError("a ticket text is empty")
        ref, classifier = self.classifier()
        threshold = self.ctx.plugin_options(PLUGIN).review_below
        return [
            Routing(p.label, round(p.score, 4), {k: round(v, 4) for k, v in p.scores.items()}, p.score < threshold, ref)
            for p in classifier.predict(list(texts))
        ]


_routers: weakref.WeakKeyDictionary[SuiteContext, Router] = weakref.WeakKeyDictionary()
_routers_lock = threading.Lock()


def router_for(ctx: SuiteContext) -> Router:
    """The shared :class:`Router` of ``ctx`` (one per process and context, as for the services)."""
    with _routers_lock:
        if ctx not in _routers:
            _routers[ctx] = Router(ctx)
        return _routers[ctx]
