"""Batch evaluation of the bot as it answers: `suite chatbot evaluate FILE`.

Every labelled message is answered as the first message of a new conversation (nothing
is saved) and counted by where it went. Messages labelled ``oos_label`` (or a label the
model does not know) are out of scope: the right thing for them is retrieval, the
out-of-scope answer or a hand-off, never an intent's template.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from plugins.chatbot.data import is_out_of_scope_label
from plugins.chatbot.ood import auroc

if TYPE_CHECKING:
    from plugins.chatbot.engine import ChatAnswer, Chatbot
    from services.training import LabeledText

ROUTES = ("right intent", "wrong intent", "clarify", "retrieval", "out of scope", "handoff", "refusal")
CAUGHT = ("retrieval", "out of scope", "handoff")  # what an out-of-scope message should get


@dataclass
class Evaluation:
    """Accuracy and macro F1 of the intent classifier on in-scope messages; where the answers went."""

    in_scope: int
    out_of_scope: int
    accuracy: float | None
    macro_f1: float | None
    routes: dict[str, dict[str, int]]  # "in_scope" | "out_of_scope" -> route -> count
    auroc: float | None  # out-of-scope score, out-of-scope vs in-scope messages
    unknown_labels: list[str] = field(default_factory=list)  # labels the model lacks: counted out of scope
    latency_ms: dict[str, float] = field(default_factory=dict)

    def shares(self, scope: str) -> dict[str, float]:
        counts, total = self.routes.get(scope, {}), (self.in_scope if scope == "in_scope" else self.out_of_scope)
        return {route: counts.get(route, 0) / total if total else 0.0 for route in ROUTES}

    @property
    def caught(self) -> float | None:
        """Share of out-of-scope messages that got retrieval, the out-of-scope answer or a hand-off."""
        if not self.out_of_scope:
            return None
        return sum(self.shares("out_of_scope")[route] for route in CAUGHT)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shares"] = {scope: self.shares(scope) for scope in ("in_scope", "out_of_scope")}
        data["out_of_scope_caught"] = self.caught
        return data


def route_of(answer: ChatAnswer, truth: str | None) -> str:
    """The routing table's row for one answer (``truth`` None: out of scope)."""
    if answer.source == "template":
        return "right intent" if truth is not None and answer.intent == truth else "wrong intent"
    return "out of scope" if answer.source == "out_of_scope" else answer.source


def evaluate(bot: Chatbot, rows: list[LabeledText], *, oos_label: str = "out_of_scope") -> Evaluation:
    """Answer every message of ``rows`` and score the bot (see the module docstring)."""
    from services.training import classification_metrics

    bot.warm_up()  # the first answer would otherwise time the loading
    model = bot.model()
    labels = model.labels
    known = set(labels)
    truths = [
        row.label if row.label in known and not is_out_of_scope_label(row.label, oos_label) else None for row in rows
    ]
    predictions = model.predict_many([row.text for row in rows]) if rows else []
    inside = [i for i, truth in enumerate(truths) if truth is not None]
    metrics = None
    if inside:
        index = {label: i for i, label in enumerate(labels)}
        metrics = classification_metrics(
            [index[truths[i]] for i in inside], [index[predictions[i].intent] for i in inside], labels
        )
    routes: dict[str, Counter] = {"in_scope": Counter(), "out_of_scope": Counter()}
    latencies = []
    for row, truth in zip(rows, truths, strict=True):
        answer = bot.answer_once(row.text)
        routes["in_scope" if truth is not None else "out_of_scope"][route_of(answer, truth)] += 1
        latencies.append(answer.latency_ms)
    scores = np.array([p.out_of_scope_score if p.out_of_scope_score is not None else np.nan for p in predictions])
    mask = np.array([truth is not None for truth in truths], dtype=bool)
    separable = scores.size and not np.isnan(scores).any()
    return Evaluation(
        in_scope=int(mask.sum()),
        out_of_scope=int((~mask).sum()),
        accuracy=metrics["accuracy"] if metrics else None,
        macro_f1=metrics["macro_f1"] if metrics else None,
        routes={scope: dict(counts) for scope, counts in routes.items()},
        auroc=auroc(scores[mask], scores[~mask]) if separable else None,
        unknown_labels=sorted(
            {row.label for row in rows if row.label not in known and not is_out_of_scope_label(row.label, oos_label)}
        ),
        latency_ms=_latency(latencies),
    )


def _latency(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"median": statistics.median(values), "p95": float(np.percentile(values, 95))}
