"""Alert rules: threshold, spike and flip, as pure functions of a :class:`Comparison`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any

from plugins.sentiment.aggregation import NEGATIVE, Comparison, ScoredDocument, Subject, WindowStats, zscore
from plugins.sentiment.options import FlipParams, RuleConfig, SpikeParams, ThresholdParams

_NORMAL = NormalDist()


@dataclass(frozen=True)
class AlertCandidate:
    """A rule that fired: what an alert is made of, before cool-down and storage."""

    rule: str
    kind: str
    subject: Subject
    severity: str
    title: str
    message: str
    evidence: tuple[ScoredDocument, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Stable identity of the condition: one cool-down per rule and subject."""
        return f"sentiment:{self.rule}:{self.subject.key}"


def format_duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    for unit, size in (("w", 10080), ("d", 1440), ("h", 60)):
        if minutes and minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _most_negative(docs: Sequence[ScoredDocument], limit: int) -> tuple[ScoredDocument, ...]:
    return tuple(sorted(docs, key=lambda d: (d.score, d.id))[:limit])


def _most_positive(docs: Sequence[ScoredDocument], limit: int) -> tuple[ScoredDocument, ...]:
    return tuple(sorted(docs, key=lambda d: (-d.score, d.id))[:limit])


def _latest(docs: Sequence[ScoredDocument], limit: int) -> tuple[ScoredDocument, ...]:
    return tuple(sorted(docs, key=lambda d: (d.published_at, d.id), reverse=True)[:limit])


def negative_surprise(current: WindowStats, baseline: WindowStats) -> float:
    """How surprising the current window's negatives are, as the z-score of the same upper tail.

    The negative rate is uncertain too when the baseline is short: a Beta posterior from the
    baseline's counts (uniform prior) makes the tail beta-binomial rather than binomial.
    """
    if not current.volume:
        return 0.0
    from scipy.stats import betabinom  # scipy.stats takes a second to import: only where a rule runs

    tail = betabinom.sf(
        current.negatives - 1,
        current.volume,
        baseline.negatives + 1,
        baseline.volume - baseline.negatives + 1,
    )
    return _tail_to_z(float(tail))


def welch_z(current: WindowStats, baseline: WindowStats) -> float:
    """Welch's t for the two windows' mean scores, as the z-score of the same one-sided tail.

    A handful of documents estimates its own spread badly, so the t distribution (with the
    Welch-Satterthwaite degrees of freedom) rather than the normal judges the difference.
    """
    if current.mean_score is None or baseline.mean_score is None or min(current.volume, baseline.volume) < 2:
        return 0.0
    windows = (current, baseline)
    parts = [_sample_variance(w) / w.volume for w in windows]
    difference = abs(current.mean_score - baseline.mean_score)
    if sum(parts) <= 0:
        return math.inf if difference > 0 else 0.0
    freedom = sum(parts) ** 2 / sum(part**2 / (w.volume - 1) for part, w in zip(parts, windows, strict=True))
    from scipy.stats import t as student_t

    return _tail_to_z(float(student_t.sf(difference / math.sqrt(sum(parts)), freedom)))


def _sample_variance(window: WindowStats) -> float:
    return (window.score_std or 0.0) ** 2 * window.volume / (window.volume - 1)


def _tail_to_z(tail: float) -> float:
    return _NORMAL.inv_cdf(1.0 - min(max(tail, 1e-15), 0.5))


def evaluate_threshold(
    rule: RuleConfig, params: ThresholdParams, comparison: Comparison, evidence: int = 5
) -> AlertCandidate | None:
    """Negative share of the current window above ``negative_share`` with enough documents."""
    current = comparison.current
    if current.volume < params.min_documents or current.negative_share is None:
        return None
    if current.negative_share <= params.negative_share:
        return None
    window = format_duration(current.end - current.start)
    negatives = round(current.negative_share * current.volume)
    subject = comparison.subject
    return AlertCandidate(
        rule=rule.name,
        kind=rule.kind,
        subject=subject,
        severity=rule.severity,
        title=f"{subject.label}: {_percent(current.negative_share)} negative in the last {window}",
        message=(
            f"{negatives} of {current.volume} documents about {subject.label} were negative "
            f"in the last {window} (threshold {_percent(params.negative_share)}; "
            f"baseline {_percent(comparison.baseline.negative_share)})."
        ),
        evidence=_most_negative([d for d in comparison.documents if d.label == NEGATIVE], evidence),
        data={"comparison": comparison.to_dict(), "params": params.model_dump()},
    )


def evaluate_spike(
    rule: RuleConfig, params: SpikeParams, comparison: Comparison, evidence: int = 5
) -> AlertCandidate | None:
    """Volume or negative share far above the baseline's per-window series (a z-score)."""
    current = comparison.current
    if current.volume < params.min_documents:
        return None
    if params.metric == "volume":
        series = [float(w.volume) for w in comparison.baseline_series]
        history = sum(1 for w in comparison.baseline_series if w.volume)
    else:
        series = [w.negative_share for w in comparison.baseline_series if w.negative_share is not None]
        history = len(series)
    if history < params.min_baseline_windows or not series:
        return None
    if params.metric == "volume":
        z = zscore(float(current.volume), series, params.min_std or 1.0)
    else:
        z = negative_surprise(current, comparison.baseline)
    if z < params.z:
        return None
    subject = comparison.subject
    window = format_duration(current.end - current.start)
    baseline_mean = sum(series) / len(series)
    if params.metric == "volume":
        what = f"{current.volume} documents in the last {window} against {baseline_mean:.1f} usually"
        chosen = _latest(comparison.documents, evidence)
    else:
        what = (
            f"{_percent(current.negative_share)} negative in the last {window} "
            f"against {_percent(baseline_mean)} usually"
        )
        chosen = _most_negative([d for d in comparison.documents if d.label == NEGATIVE], evidence)
    metric = params.metric.replace("_", " ")
    return AlertCandidate(
        rule=rule.name,
        kind=rule.kind,
        subject=subject,
        severity=rule.severity,
        title=f"{subject.label}: {metric} spike (z={z:.1f})",
        message=f"{subject.label}: {what} (z-score {z:.1f}, threshold {params.z:g}).",
        evidence=chosen,
        data={
            "comparison": comparison.to_dict(),
            "params": params.model_dump(),
            "z": z,
            "baseline_mean": baseline_mean,
        },
    )


def evaluate_flip(
    rule: RuleConfig, params: FlipParams, comparison: Comparison, evidence: int = 5
) -> AlertCandidate | None:
    """Mean score changed sign between the baseline and the current window, clearly on both sides."""
    current, baseline = comparison.current, comparison.baseline
    if min(current.volume, baseline.volume) < params.min_documents:
        return None
    before, after = baseline.mean_score, current.mean_score
    if before is None or after is None or min(abs(before), abs(after)) < params.min_magnitude:
        return None
    if (before > 0) == (after > 0):
        return None
    z = welch_z(current, baseline)
    if z < params.z:
        return None
    direction = "negative" if after < 0 else "positive"
    if params.direction not in ("any", direction):
        return None
    subject = comparison.subject
    window = format_duration(current.end - current.start)
    chosen = (_most_negative if direction == "negative" else _most_positive)(comparison.documents, evidence)
    return AlertCandidate(
        rule=rule.name,
        kind=rule.kind,
        subject=subject,
        severity=rule.severity,
        title=f"{subject.label}: sentiment turned {direction}",
        message=(
            f"Mean sentiment of {subject.label} went from {before:+.2f} "
            f"({baseline.volume} documents, baseline) "
            f"to {after:+.2f} ({current.volume} documents, last {window}; z-score {z:.1f})."
        ),
        evidence=chosen,
        data={"comparison": comparison.to_dict(), "params": params.model_dump(), "direction": direction, "z": z},
    )


_EVALUATORS = {"threshold": evaluate_threshold, "spike": evaluate_spike, "flip": evaluate_flip}


def evaluate(rule: RuleConfig, comparison: Comparison, evidence: int = 5) -> AlertCandidate | None:
    return _EVALUATORS[rule.kind](rule, rule.settings, comparison, evidence)


def rule_subjects(rule: RuleConfig, entities: Sequence[str], topics: Sequence[str]) -> list[Subject]:
    """The subjects a rule watches: ``"*"`` expands over the watchlist (or topics).

    An entity that is not on the watchlist yields nothing; callers report it.
    """
    if rule.entity == "*":
        chosen_entities: list[str | None] = list(entities)
    elif rule.entity is None:
        chosen_entities = [None]
    else:
        chosen_entities = [rule.entity] if rule.entity in entities else []
    chosen_topics: list[str | None] = list(topics) if rule.topic == "*" else [rule.topic]
    return [Subject(entity, topic) for entity in chosen_entities for topic in chosen_topics]


def cooled_down(
    candidates: Sequence[AlertCandidate],
    last_fired: Mapping[str, datetime],
    cooldowns: Mapping[str, timedelta],
    now: datetime,
) -> tuple[list[AlertCandidate], list[AlertCandidate]]:
    """Split candidates into (to raise, suppressed): a key that fired within its rule's cool-down waits."""
    fire, suppressed = [], []
    for candidate in candidates:
        last = last_fired.get(candidate.key)
        # abs(): a backfill evaluates the past, where a later live alert also counts as recent
        cooling = last is not None and abs(now - last) < cooldowns.get(candidate.rule, timedelta(0))
        (suppressed if cooling else fire).append(candidate)
    return fire, suppressed
