"""Rolling-window statistics over scored documents: pure functions on small dataclasses.

Windows are half-open on the left, ``start < published_at <= end``, so a document
published exactly at ``now`` belongs to the current window and never to two windows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

NEGATIVE, NEUTRAL, POSITIVE = "negative", "neutral", "positive"


@dataclass(frozen=True)
class ScoredDocument:
    """What aggregation needs of a stored document."""

    id: int
    published_at: datetime
    label: str
    score: float  # P(positive) - P(negative), in [-1, 1]
    topic: str | None = None
    entities: tuple[str, ...] = ()
    title: str = ""
    url: str | None = None


@dataclass(frozen=True)
class WindowStats:
    start: datetime
    end: datetime
    volume: int = 0
    mean_score: float | None = None
    negative_share: float | None = None
    positive_share: float | None = None
    score_std: float | None = None  # spread of the documents' scores, for significance tests

    @property
    def negatives(self) -> int:
        return round((self.negative_share or 0.0) * self.volume)

    def to_dict(self) -> dict:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "volume": self.volume,
            "mean_score": self.mean_score,
            "score_std": self.score_std,
            "negative_share": self.negative_share,
            "positive_share": self.positive_share,
        }


@dataclass(frozen=True)
class Subject:
    """What a statistic is about: one entity, one topic, both, or (None, None) for everything."""

    entity: str | None = None
    topic: str | None = None

    @property
    def label(self) -> str:
        parts = [self.entity or "all documents"]
        if self.topic:
            parts.append(f"topic {self.topic}")
        return ", ".join(parts)

    @property
    def key(self) -> str:
        return f"{self.entity or '*'}/{self.topic or '*'}"

    def matches(self, doc: ScoredDocument) -> bool:
        return (self.entity is None or self.entity in doc.entities) and (self.topic is None or doc.topic == self.topic)


@dataclass(frozen=True)
class Comparison:
    """The current window of a subject against the baseline window just before it."""

    subject: Subject
    now: datetime
    current: WindowStats
    baseline: WindowStats
    baseline_series: tuple[WindowStats, ...]  # the baseline cut into windows as long as the current one
    documents: tuple[ScoredDocument, ...] = field(default=(), repr=False)  # those of the current window

    @property
    def score_delta(self) -> float | None:
        if self.current.mean_score is None or self.baseline.mean_score is None:
            return None
        return self.current.mean_score - self.baseline.mean_score

    @property
    def negative_share_delta(self) -> float | None:
        if self.current.negative_share is None or self.baseline.negative_share is None:
            return None
        return self.current.negative_share - self.baseline.negative_share

    def to_dict(self) -> dict:
        return {
            "entity": self.subject.entity,
            "topic": self.subject.topic,
            "current": self.current.to_dict(),
            "baseline": self.baseline.to_dict(),
            "score_delta": self.score_delta,
            "negative_share_delta": self.negative_share_delta,
        }


def in_window(doc: ScoredDocument, start: datetime, end: datetime) -> bool:
    return start < doc.published_at <= end


def window_stats(docs: Iterable[ScoredDocument], start: datetime, end: datetime) -> WindowStats:
    """Volume, mean score and label shares of the documents in ``(start, end]``."""
    volume = negatives = positives = 0
    total = squares = 0.0
    for doc in docs:
        if start < doc.published_at <= end:
            volume += 1
            total += doc.score
            squares += doc.score * doc.score
            negatives += doc.label == NEGATIVE
            positives += doc.label == POSITIVE
    if not volume:
        return WindowStats(start, end)
    mean = total / volume
    std = math.sqrt(max(0.0, squares / volume - mean * mean))
    return WindowStats(start, end, volume, mean, negatives / volume, positives / volume, std)


def bucket_series(
    docs: Iterable[ScoredDocument], start: datetime, end: datetime, bucket: timedelta
) -> list[WindowStats]:
    """``(start, end]`` cut into consecutive buckets ending at ``end``; empty buckets included."""
    count = max(1, math.ceil((end - start) / bucket))
    first = end - count * bucket
    groups: list[list[ScoredDocument]] = [[] for _ in range(count)]
    for doc in docs:
        if first < doc.published_at <= end:
            index = math.ceil((doc.published_at - first) / bucket) - 1
            groups[max(0, index)].append(doc)
    return [window_stats(group, first + i * bucket, first + (i + 1) * bucket) for i, group in enumerate(groups)]


def compare(
    docs: Sequence[ScoredDocument],
    subject: Subject,
    now: datetime,
    current: timedelta,
    baseline: timedelta,
    observed_since: datetime | None = None,
) -> Comparison:
    """``subject`` in ``(now - current, now]`` against ``(now - current - baseline, now - current]``.

    The baseline is also cut into windows as long as the current one, for z-scores. Windows
    that start before ``observed_since`` (when monitoring began) are left out of that series:
    they are empty because nobody was looking, not because nothing was said, and counting them
    would make every subject's volume "spike" during the first baseline period.
    """
    mine = [doc for doc in docs if subject.matches(doc)]
    current_start = now - current
    baseline_start = current_start - baseline
    in_current = tuple(doc for doc in mine if in_window(doc, current_start, now))
    return Comparison(
        subject=subject,
        now=now,
        current=window_stats(in_current, current_start, now),
        baseline=window_stats(mine, baseline_start, current_start),
        baseline_series=tuple(
            window
            for window in bucket_series(mine, baseline_start, current_start, current)
            if observed_since is None or window.start >= observed_since
        ),
        documents=in_current,
    )


def zscore(value: float, series: Sequence[float], min_std: float) -> float:
    """How many (floored) standard deviations ``value`` lies above the series mean."""
    mean = sum(series) / len(series)
    variance = sum((x - mean) ** 2 for x in series) / len(series)
    return (value - mean) / max(math.sqrt(variance), min_std)
