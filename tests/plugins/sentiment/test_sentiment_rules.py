"""Aggregation and alert rules on hand-made numbers (pure functions, no model, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from plugins.sentiment.aggregation import ScoredDocument, Subject, bucket_series, compare, window_stats, zscore
from plugins.sentiment.options import RuleConfig, SentimentOptions
from plugins.sentiment.rules import (
    cooled_down,
    evaluate,
    evaluate_flip,
    evaluate_spike,
    format_duration,
    rule_subjects,
)

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
CURRENT, BASELINE = timedelta(hours=6), timedelta(days=7)
SCORES = {"negative": -0.8, "neutral": 0.0, "positive": 0.7}


class Docs:
    """Builds documents: ``add("Acme", hours_ago, "negative", topic=...)``."""

    def __init__(self) -> None:
        self.docs: list[ScoredDocument] = []

    def add(self, entity: str, hours_ago: float, label: str, topic: str | None = None, score: float | None = None):
        doc = ScoredDocument(
            id=len(self.docs) + 1,
            published_at=NOW - timedelta(hours=hours_ago),
            label=label,
            score=SCORES[label] if score is None else score,
            topic=topic,
            entities=(entity,),
            title=f"{entity} {label} {len(self.docs) + 1}",
        )
        self.docs.append(doc)
        return doc


@pytest.fixture
def market() -> Docs:
    """A week of quiet, mostly positive news for three companies; Acme turns sharply negative today."""
    docs = Docs()
    for day in range(7):
        for company in ("Acme", "Globex", "Initech"):
            docs.add(company, 12 + day * 24, "positive", topic="earnings")
            docs.add(company, 20 + day * 24, "neutral", topic="product")
    docs.add("Acme", 40, "negative", topic="legal")  # one bad day in the baseline
    for hours in (0.5, 1, 1.5, 2, 3, 4, 5):
        docs.add("Acme", hours, "negative", topic="legal")
    docs.add("Acme", 2.5, "neutral", topic="legal")
    docs.add("Globex", 1, "positive", topic="earnings")
    docs.add("Initech", 3, "negative", topic="product")  # one bad story is not a trend
    return docs


def comparisons(docs: Docs) -> dict[str, object]:
    return {name: compare(docs.docs, Subject(name), NOW, CURRENT, BASELINE) for name in ("Acme", "Globex", "Initech")}


def rule(kind: str, **params) -> RuleConfig:
    return RuleConfig(name=f"test-{kind}", kind=kind, params=params, severity="critical", cooldown_minutes=60)


# -- aggregation -----------------------------------------------------------------------------------
def test_window_stats_counts_only_the_half_open_window() -> None:
    docs = Docs()
    docs.add("A", 0, "negative")  # exactly now: inside
    docs.add("A", 6, "positive")  # exactly at the start: outside (belongs to the window before)
    docs.add("A", 3, "positive", score=0.5)
    stats = window_stats(docs.docs, NOW - CURRENT, NOW)
    assert stats.volume == 2
    assert stats.negative_share == pytest.approx(0.5)
    assert stats.positive_share == pytest.approx(0.5)
    assert stats.mean_score == pytest.approx((-0.8 + 0.5) / 2)
    empty = window_stats([], NOW - CURRENT, NOW)
    assert empty.volume == 0 and empty.mean_score is None and empty.negative_share is None


def test_bucket_series_covers_the_range_and_keeps_empty_buckets() -> None:
    docs = Docs()
    docs.add("A", 0.5, "negative")
    docs.add("A", 0.6, "positive")
    docs.add("A", 5.5, "neutral")
    series = bucket_series(docs.docs, NOW - timedelta(hours=6), NOW, timedelta(hours=1))
    assert len(series) == 6
    assert series[-1].end == NOW and series[0].start == NOW - timedelta(hours=6)
    assert [b.volume for b in series] == [1, 0, 0, 0, 0, 2]
    assert sum(b.volume for b in series) == 3
    assert series[1].mean_score is None


def test_compare_splits_current_and_baseline_and_cuts_the_baseline_into_windows(market: Docs) -> None:
    acme = comparisons(market)["Acme"]
    assert acme.current.volume == 8
    assert acme.current.negative_share == pytest.approx(7 / 8)
    assert acme.baseline.volume == 15
    assert len(acme.baseline_series) == 28  # 7 days of 6-hour windows
    assert sum(w.volume for w in acme.baseline_series) == acme.baseline.volume
    assert acme.score_delta < -0.5 and acme.negative_share_delta > 0.7
    by_topic = compare(market.docs, Subject("Acme", "legal"), NOW, CURRENT, BASELINE)
    assert by_topic.current.volume == 8 and by_topic.baseline.volume == 1


def test_zscore_floors_the_spread() -> None:
    assert zscore(5, [1, 1, 1, 1], min_std=1.0) == pytest.approx(4.0)
    assert zscore(3, [1, 3, 1, 3], min_std=0.1) == pytest.approx(1.0)


# -- rules -------------------------------------------------------------------------------------------
def test_threshold_fires_for_the_company_whose_negative_share_jumps_and_none_for_quiet_ones(market: Docs) -> None:
    threshold = rule("threshold", negative_share=0.5, min_documents=5)
    fired = {name: evaluate(threshold, c) for name, c in comparisons(market).items()}
    assert fired["Globex"] is None and fired["Initech"] is None  # Initech: 1 negative of 1, below min_documents
    alert = fired["Acme"]
    assert alert is not None
    assert alert.key == "sentiment:test-threshold:Acme/*"
    assert alert.severity == "critical"
    assert "88% negative" in alert.title and "7 of 8" in alert.message
    assert len(alert.evidence) == 5 and all(doc.label == "negative" for doc in alert.evidence)
    assert alert.data["comparison"]["current"]["volume"] == 8


def test_threshold_needs_enough_documents_and_a_share_strictly_above() -> None:
    docs = Docs()
    for hours in (1, 2, 3, 4):
        docs.add("Acme", hours, "negative")
    c = compare(docs.docs, Subject("Acme"), NOW, CURRENT, BASELINE)
    assert evaluate(rule("threshold", negative_share=0.5, min_documents=5), c) is None
    assert evaluate(rule("threshold", negative_share=0.5, min_documents=4), c) is not None
    assert evaluate(rule("threshold", negative_share=1.0, min_documents=1), c) is None  # 100% is not above 100%


def test_volume_and_negative_share_spikes(market: Docs) -> None:
    by_name = comparisons(market)
    volume = rule("spike", metric="volume", z=3.0, min_documents=5)
    negative = rule("spike", metric="negative_share", z=2.5, min_documents=5)
    spike = evaluate_spike(volume, volume.settings, by_name["Acme"])
    assert spike is not None and spike.data["z"] > 3
    assert spike.title.startswith("Acme: volume spike")
    assert evaluate_spike(negative, negative.settings, by_name["Acme"]) is not None
    for quiet in ("Globex", "Initech"):
        assert evaluate(volume, by_name[quiet]) is None
        assert evaluate(negative, by_name[quiet]) is None


def test_spike_needs_baseline_history() -> None:
    docs = Docs()
    docs.add("New", 30, "neutral")  # one baseline window with documents
    for hours in range(5):
        docs.add("New", hours + 0.5, "negative")
    c = compare(docs.docs, Subject("New"), NOW, CURRENT, BASELINE)
    assert evaluate(rule("spike", metric="negative_share", z=1.0, min_documents=5), c) is None
    assert evaluate(rule("spike", metric="negative_share", z=1.0, min_documents=5, min_baseline_windows=1), c)


def test_flip_needs_a_sign_change_with_magnitude_and_volume(market: Docs) -> None:
    by_name = comparisons(market)
    flip = rule("flip", direction="negative", min_magnitude=0.2, min_documents=4)
    alert = evaluate_flip(flip, flip.settings, by_name["Acme"])
    assert alert is not None and alert.data["direction"] == "negative"
    assert "turned negative" in alert.title
    assert evaluate(flip, by_name["Globex"]) is None  # still positive
    assert evaluate(flip, by_name["Initech"]) is None  # one document is too few
    positive_only = rule("flip", direction="positive", min_magnitude=0.2, min_documents=4)
    assert evaluate(positive_only, by_name["Acme"]) is None
    too_strict = rule("flip", direction="any", min_magnitude=0.9, min_documents=4)
    assert evaluate(too_strict, by_name["Acme"]) is None


def test_flip_to_positive() -> None:
    docs = Docs()
    for hours in (10, 30, 50, 70):
        docs.add("Acme", hours, "negative")
    for hours in (1, 2, 3, 4):
        docs.add("Acme", hours, "positive")
    c = compare(docs.docs, Subject("Acme"), NOW, CURRENT, BASELINE)
    alert = evaluate(rule("flip", direction="any", min_magnitude=0.2, min_documents=4), c)
    assert alert is not None and alert.data["direction"] == "positive"
    assert all(doc.label == "positive" for doc in alert.evidence)


def steady_company(docs: Docs, name: str, negative_every: int, hours: int = 7 * 24 + 6) -> None:
    """One document an hour for ``hours`` hours, every ``negative_every``-th one negative."""
    for hour in range(6, hours):
        label = "negative" if hour % negative_every == 0 else "neutral"
        docs.add(name, hour + 0.5, label)


def test_negative_share_spike_is_judged_by_the_window_size_not_only_the_share() -> None:
    """Half of 6 documents negative is ordinary noise for a 1-in-6 company; half of 30 is not."""
    docs = Docs()
    steady_company(docs, "Small", negative_every=6)
    for hour, label in enumerate(["negative", "negative", "negative", "neutral", "neutral", "neutral"]):
        docs.add("Small", hour + 0.5, label)
    steady_company(docs, "Busy", negative_every=6)
    for i in range(30):
        docs.add("Busy", (i % 6) + 0.1 + i / 100, "negative" if i % 2 else "neutral")
    spike = rule("spike", metric="negative_share", z=3.0, min_documents=5)
    small = compare(docs.docs, Subject("Small"), NOW, CURRENT, BASELINE)
    busy = compare(docs.docs, Subject("Busy"), NOW, CURRENT, BASELINE)
    assert small.current.negative_share == busy.current.negative_share == pytest.approx(0.5)
    assert evaluate(spike, small) is None
    alert = evaluate(spike, busy)
    assert alert is not None and alert.data["z"] > 3.0


def test_flip_needs_a_change_beyond_the_noise_of_few_documents() -> None:
    docs = Docs()
    for hours in range(7, 60, 3):
        docs.add("Acme", hours, "positive", score=0.6 if hours % 2 else 0.2)
    for hours, score in ((1, -0.9), (2, 0.4), (3, -0.6), (4, 0.2)):  # mean -0.225, wide spread
        docs.add("Acme", hours, "neutral", score=score)
    noisy = compare(docs.docs, Subject("Acme"), NOW, CURRENT, BASELINE)
    flip = rule("flip", direction="negative", min_magnitude=0.2, min_documents=4)
    assert noisy.current.mean_score < -0.2 < 0.2 < noisy.baseline.mean_score
    assert evaluate(flip, noisy) is None
    for hours in (0.5, 1.5, 2.5, 3.5, 4.5):
        docs.add("Acme", hours, "negative", score=-0.8)
    clear = compare(docs.docs, Subject("Acme"), NOW, CURRENT, BASELINE)
    alert = evaluate(flip, clear)
    assert alert is not None and alert.data["z"] >= 3.0


def test_windows_before_monitoring_began_are_not_an_empty_baseline() -> None:
    """A company written about steadily since monitoring began a day ago has no volume spike."""
    docs = Docs()
    steady_company(docs, "Acme", negative_every=50, hours=24)
    for hours in range(7):
        docs.add("Acme", hours * 0.8 + 0.2, "neutral")
    began = NOW - timedelta(hours=24)
    spike = rule("spike", metric="volume", z=3.0, min_documents=5)
    unaware = compare(docs.docs, Subject("Acme"), NOW, CURRENT, BASELINE)
    aware = compare(docs.docs, Subject("Acme"), NOW, CURRENT, BASELINE, observed_since=began)
    assert len(unaware.baseline_series) == 28 and len(aware.baseline_series) == 3
    assert all(window.start >= began for window in aware.baseline_series)
    assert evaluate(spike, unaware) is not None  # the bug this guards against
    assert evaluate(spike, aware) is None


def test_cool_down_suppresses_the_same_condition_until_it_expires(market: Docs) -> None:
    threshold = rule("threshold", negative_share=0.5, min_documents=5)
    candidate = evaluate(threshold, comparisons(market)["Acme"])
    cooldowns = {threshold.name: timedelta(minutes=60)}
    fire, suppressed = cooled_down([candidate], {}, cooldowns, NOW)
    assert fire == [candidate] and suppressed == []
    last = {candidate.key: NOW - timedelta(minutes=30)}
    fire, suppressed = cooled_down([candidate], last, cooldowns, NOW)
    assert fire == [] and suppressed == [candidate]
    last = {candidate.key: NOW - timedelta(minutes=61)}
    assert cooled_down([candidate], last, cooldowns, NOW)[0] == [candidate]
    other_key = {"sentiment:test-threshold:Globex/*": NOW}
    assert cooled_down([candidate], other_key, cooldowns, NOW)[0] == [candidate]


def test_rule_subjects_expand_entities_and_topics_and_skip_unknown_entities() -> None:
    entities, topics = ["Acme", "Globex"], ["earnings", "legal"]
    assert rule_subjects(RuleConfig(name="a", kind="flip"), entities, topics) == [Subject("Acme"), Subject("Globex")]
    assert rule_subjects(RuleConfig(name="b", kind="flip", entity=None, topic="*"), entities, topics) == [
        Subject(None, "earnings"),
        Subject(None, "legal"),
    ]
    assert rule_subjects(RuleConfig(name="c", kind="flip", entity="Acme", topic="legal"), entities, topics) == [
        Subject("Acme", "legal")
    ]
    assert rule_subjects(RuleConfig(name="d", kind="flip", entity="Umbrella"), entities, topics) == []


def test_options_report_unknown_rule_entities_and_validate_params() -> None:
    options = SentimentOptions.model_validate(
        {"rules": [{"name": "ghost", "kind": "threshold", "entity": "Umbrella Corp"}]}
    )
    [message] = options.unknown_rule_entities()
    assert "rule 'ghost': unknown entity 'Umbrella Corp'" in message and "Northwind Bank" in message
    with pytest.raises(ValueError, match="params.ratio"):
        RuleConfig(name="bad", kind="flip", params={"ratio": 3})
    with pytest.raises(ValueError, match="min_std applies to the volume metric only"):
        RuleConfig(name="bad", kind="spike", params={"metric": "negative_share", "min_std": 0.1})
    assert SentimentOptions.model_validate({"windows": {"current": "30m", "baseline": "2d"}}).windows.current == (
        timedelta(minutes=30)
    )
    with pytest.raises(ValueError, match="baseline"):
        SentimentOptions.model_validate({"windows": {"current": "2d", "baseline": "1d"}})


def test_format_duration() -> None:
    assert [format_duration(timedelta(minutes=m)) for m in (30, 360, 1440, 10080, 90)] == [
        "30m",
        "6h",
        "1d",
        "1w",
        "90m",
    ]
