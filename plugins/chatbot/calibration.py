"""Thresholds that decide how a message is answered, calibrated on held-out data.

* ``confidence_threshold``: the lowest top-1 probability answered from a template. The
  smallest threshold whose answered validation messages (out-of-scope ones count as
  wrong) reach ``target_precision``; if none does, the one with the best accuracy with
  abstention. Placed half-way to the next lower confidence, so it is not tuned to one example.
* ``margin_threshold``: below this gap between the two best intents the bot asks which
  one was meant. The low-margin band where clarifying prevents the most errors net of the
  right answers it delays (one for one: only a band with more errors than right answers
  is worth a question), limited to ``max_clarify_rate`` of the in-scope messages the
  out-of-scope detector lets through. Needs a few validation errors to learn from.
* ``pair_threshold``: a clarifying question is only asked when the two best intents
  together are this likely; calibrated like the confidence threshold, a message counting
  as right when its intent is one of the two (out-of-scope ones never are). Without it,
  a message about nothing the bot knows would be asked to pick between two random intents.
* ``retrieval_threshold``: the lowest cosine between a question and the best passage
  that counts as an answer, separating known in-KB from out-of-KB queries (balanced accuracy).

Where the data cannot calibrate a threshold, a documented fallback from the options is
used and ``sources`` says so; a threshold set in the options overrides both.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_FILE = "chatbot_calibration.json"
MIN_VALIDATION = 20  # fewer validation messages cannot calibrate the confidence threshold
MIN_ERRORS = 3  # fewer validation mistakes cannot say where the margin gets risky
MIN_RETRIEVAL_EACH = 3  # in-KB and out-of-KB queries needed for the retrieval threshold


@dataclass
class Calibration:
    confidence_threshold: float
    margin_threshold: float
    retrieval_threshold: float | None = None
    pair_threshold: float | None = None
    sources: dict[str, str] = field(default_factory=dict)  # name -> calibrated | fallback | configured
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})

    def save(self, folder: Path) -> Path:
        path = Path(folder) / CALIBRATION_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: Path) -> Calibration | None:
        path = Path(folder) / CALIBRATION_FILE
        if not path.is_file():
            return None
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _midpoint_below(values: np.ndarray, threshold: float) -> float:
    """Half-way between ``threshold`` and the largest value under it (or the threshold itself)."""
    lower = values[values < threshold]
    return float((threshold + lower.max()) / 2) if lower.size else float(threshold)


def calibrate_confidence(
    confidences: np.ndarray,
    correct: np.ndarray,
    *,
    target_precision: float,
    fallback: float,
    in_scope: np.ndarray | None = None,
    max_rejection: float = 1.0,
) -> tuple[float, str, dict[str, Any]]:
    """(threshold, source, details); ``correct`` is False for out-of-scope messages.

    The lowest threshold whose answers reach ``target_precision``, never one that turns away more
    than ``max_rejection`` of the ``in_scope`` messages: out-of-scope examples count as mistakes,
    and with few examples per intent the precision target alone could refuse most customers.
    """
    confidences, correct = np.asarray(confidences, float), np.asarray(correct, bool)
    if confidences.size < MIN_VALIDATION:
        return fallback, "fallback", {"reason": f"only {confidences.size} validation messages"}
    in_scope = np.ones_like(correct) if in_scope is None else np.asarray(in_scope, bool)
    customers = max(int(in_scope.sum()), 1)
    candidates = np.unique(confidences)
    answered = confidences[None, :] >= candidates[:, None]  # (candidates, messages)
    n_answered = answered.sum(axis=1)
    precision = (answered & correct[None, :]).sum(axis=1) / np.maximum(n_answered, 1)
    turned_away = (~answered & in_scope[None, :]).sum(axis=1) / customers
    allowed = turned_away <= max_rejection  # the lowest candidate answers everything: always allowed
    feasible = np.flatnonzero((precision >= target_precision) & (n_answered > 0) & allowed)
    if feasible.size:
        best, reached = int(feasible[0]), True
    else:  # accuracy with abstention: answered correctly, or rightly not answered
        accuracy = ((answered & correct) | (~answered & ~correct)).mean(axis=1)
        best, reached = int(np.argmax(np.where(allowed, accuracy, -1.0))), False
    threshold = _midpoint_below(confidences, candidates[best])
    chosen = confidences >= threshold
    return (
        threshold,
        "calibrated",
        {
            "validation_messages": int(confidences.size),
            "out_of_scope_messages": int((~correct).sum()),
            "target_precision": target_precision,
            "target_reached": reached,
            "precision_at_threshold": float(correct[chosen].mean()) if chosen.any() else 0.0,
            "coverage_at_threshold": float(chosen.mean()),
            "in_scope_turned_away": float((~chosen & in_scope).sum() / customers),
            "max_rejection": max_rejection,
        },
    )


def calibrate_margin(
    margins: np.ndarray,
    correct: np.ndarray,
    *,
    target_precision: float,
    max_clarify_rate: float,
    fallback: float,
) -> tuple[float, str, dict[str, Any]]:
    """(threshold, source, details) from in-scope validation messages only."""
    margins, correct = np.asarray(margins, float), np.asarray(correct, bool)
    errors = int((~correct).sum())
    if margins.size < MIN_VALIDATION or errors < MIN_ERRORS:
        return fallback, "fallback", {"reason": f"{errors} validation errors in {margins.size} messages"}
    # A question prevents an error where the top intent was wrong and delays a right answer
    # where it was right: the band is worth clarifying while it prevents more than it delays.
    order = np.argsort(margins, kind="stable")
    sorted_margins, sorted_correct = margins[order], correct[order]
    gain = np.concatenate([[0.0], np.cumsum(np.where(sorted_correct, -1.0, 1.0))])
    allowed = int(np.floor(max_clarify_rate * margins.size))
    k = int(np.argmax(gain[: allowed + 1]))
    if k == 0:
        return (
            0.0,
            "calibrated",
            {"reason": "clarifying would not prevent more errors than it costs", "errors": errors},
        )
    upper = sorted_margins[k] if k < margins.size else sorted_margins[k - 1]
    threshold = float((sorted_margins[k - 1] + upper) / 2)
    below = margins < threshold
    return (
        threshold,
        "calibrated",
        {
            "errors": errors,
            "clarify_rate": float(below.mean()),
            "errors_clarified": int((below & ~correct).sum()),
        },
    )


def calibrate_retrieval(
    in_scores: np.ndarray, out_scores: np.ndarray, *, fallback: float
) -> tuple[float, str, dict[str, Any]]:
    """(threshold, source, details): best balanced accuracy between in-KB and out-of-KB scores."""
    in_scores, out_scores = np.asarray(in_scores, float), np.asarray(out_scores, float)
    if in_scores.size < MIN_RETRIEVAL_EACH or out_scores.size < MIN_RETRIEVAL_EACH:
        return (
            fallback,
            "fallback",
            {
                "reason": f"{in_scores.size} in-KB and {out_scores.size} out-of-KB queries",
            },
        )
    values = np.unique(np.concatenate([in_scores, out_scores]))
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    balanced = (
        (in_scores[None, :] >= candidates[:, None]).mean(axis=1)
        + (out_scores[None, :] < candidates[:, None]).mean(axis=1)
    ) / 2
    best = np.flatnonzero(balanced == balanced.max())
    threshold = float(candidates[best[len(best) // 2]])  # the middle of the best band
    return (
        threshold,
        "calibrated",
        {
            "in_kb_queries": int(in_scores.size),
            "out_of_kb_queries": int(out_scores.size),
            "balanced_accuracy": float(balanced.max()),
        },
    )
