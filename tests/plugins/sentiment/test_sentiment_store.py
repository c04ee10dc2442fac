"""The SQL store on SQLite and, when it answers, PostgreSQL (in a schema of its own)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from plugins.sentiment.migrations import HISTORY
from plugins.sentiment.sources import content_hash
from plugins.sentiment.store import NewDocument, ScoreUpdate, SentimentStore
from services.database import create_database_engine
from services.schema import upgrade
from suite.errors import NotFoundError

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SentimentStore]:
    if request.param == "sqlite":
        engine = create_database_engine(f"sqlite:///{tmp_path / 'store.db'}")
        upgrade(engine, HISTORY)
        yield SentimentStore(engine)
        engine.dispose()
        return
    url = request.getfixturevalue("postgres_url")
    schema = f"sentiment_test_{uuid.uuid4().hex[:10]}"
    admin = create_database_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_database_engine(f"{url}?options=-csearch_path%3D{schema}")
    try:
        upgrade(engine, HISTORY)
        yield SentimentStore(engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def doc(n: int, *, source: str = "wire", url: str | None = "auto", title: str | None = None, hours_ago: float = 1):
    title = title or f"Headline {n}"
    return NewDocument(
        source=source,
        external_id=f"id-{n}",
        url=f"https://news.example/{n}" if url == "auto" else url,
        content_hash=content_hash(title, f"body {n}"),
        title=title,
        text=f"body {n}",
        published_at=NOW - timedelta(hours=hours_ago),
        fetched_at=NOW,
    )


def test_insert_deduplicates_by_hash_url_and_external_id(store: SentimentStore) -> None:
    first = store.insert_documents([doc(1), doc(2), doc(1)])  # repeated inside the batch
    assert (first.inserted, first.duplicates) == (2, 1)
    same_url = NewDocument(**{**doc(3).__dict__, "url": "https://news.example/1"})
    same_id = NewDocument(**{**doc(4).__dict__, "external_id": "id-2", "url": None})
    same_text = NewDocument(**{**doc(1).__dict__, "external_id": "other", "url": None, "source": "feed"})
    other_source_same_id = NewDocument(**{**doc(5).__dict__, "external_id": "id-1", "source": "feed"})
    again = store.insert_documents([same_url, same_id, same_text, other_source_same_id, doc(6, url=None)])
    assert (again.inserted, again.duplicates) == (2, 3)
    assert store.count_pending() == 4
    assert store.insert_documents([]).inserted == 0


def test_scores_are_written_once_and_only_for_pending_documents(store: SentimentStore) -> None:
    store.insert_documents([doc(n, hours_ago=n) for n in range(1, 6)])
    assert store.first_published_at() is None  # nothing scored yet: no monitored history
    batch = store.pending(3)
    assert [d.title for d in batch] == ["Headline 1", "Headline 2", "Headline 3"]
    updates = [
        ScoreUpdate(
            d.id, "negative", -0.9, {"negative": 0.95, "neutral": 0.0, "positive": 0.05}, "legal", 0.8, {"Acme": "ACME"}
        )
        for d in batch
    ]
    assert store.save_scores(updates) == 3
    assert store.save_scores(updates) == 0  # replaying a saved batch changes nothing
    assert store.count_pending() == 2 and store.counts() == {"scored": 3, "pending": 2}
    scored = store.scored_documents(NOW - timedelta(days=1), NOW)
    assert [d.title for d in scored] == ["Headline 3", "Headline 2", "Headline 1"]  # oldest first
    assert scored[0].entities == ("Acme",) and scored[0].topic == "legal" and scored[0].label == "negative"
    assert scored[0].published_at == NOW - timedelta(hours=3)  # time zones survive the round trip
    assert store.first_published_at() == NOW - timedelta(hours=3)
    assert store.scored_documents(NOW - timedelta(days=1), NOW, entity="Globex") == []
    assert len(store.scored_documents(NOW - timedelta(hours=2, minutes=30), NOW, entity="Acme")) == 2
    detail = store.document(batch[0].id)
    assert detail["entities"] == ["Acme"] and detail["probabilities"]["negative"] == 0.95
    assert store.topics() == ["legal"]
    with pytest.raises(NotFoundError):
        store.document(9999)


def test_index_bookkeeping(store: SentimentStore) -> None:
    store.insert_documents([doc(1), doc(2)])
    assert store.unindexed(10) == []  # nothing scored yet
    ids = [d.id for d in store.pending(10)]
    store.save_scores([ScoreUpdate(i, "neutral", 0.0, {}, entities={"Acme": "Acme"}) for i in ids])
    rows = store.unindexed(10)
    assert [r["id"] for r in rows] == ids and rows[0]["entities"] == ["Acme"]
    store.mark_indexed(ids[:1])
    assert [r["id"] for r in store.unindexed(10)] == ids[1:]


def test_runs_and_stale_runs(store: SentimentStore) -> None:
    stale = store.start_run("schedule")
    assert store.interrupt_stale_runs() == 1
    assert store.run(stale).status == "interrupted"
    run_id = store.start_run("cli")
    store.finish_run(run_id, "partial", {"new": 3}, [{"level": "error", "source": "feed", "message": "dead"}])
    record = store.run(run_id)
    assert record.status == "partial" and record.counts == {"new": 3} and record.finished_at is not None
    assert [r.id for r in store.runs()] == [run_id, stale]
    assert record.to_dict()["messages"][0]["message"] == "dead"
    with pytest.raises(NotFoundError):
        store.run(12345)


def test_alerts_acknowledge_and_cool_down_lookup(store: SentimentStore) -> None:
    def add(key: str, created: datetime, entity: str = "Acme"):
        return store.add_alert(
            rule="neg",
            kind="threshold",
            entity=entity,
            topic=None,
            key=key,
            severity="warning",
            title="t",
            message="m",
            evidence=[{"id": 1, "url": "/api/sentiment/documents/1"}],
            data={"x": 1},
            created_at=created,
            run_id=None,
            backfill=False,
            deliveries=[],
        )

    older = add("k1", NOW - timedelta(hours=2))
    newer = add("k1", NOW - timedelta(hours=1))
    other = add("k2", NOW, entity="Globex")
    assert store.last_alert_times(["k1", "k2", "k3"]) == {"k1": newer.created_at, "k2": NOW}
    assert [a.id for a in store.alerts()] == [other.id, newer.id, older.id]
    acked = store.acknowledge(newer.id, "ana")
    assert acked.acknowledged and acked.acknowledged_by == "ana"
    again = store.acknowledge(newer.id, "bob")  # the first acknowledgement stays
    assert again.acknowledged_by == "ana" and again.acknowledged_at == acked.acknowledged_at
    assert [a.id for a in store.alerts()] == [other.id, older.id]
    assert [a.id for a in store.alerts(include_acknowledged=True, entity="Acme")] == [newer.id, older.id]
    store.set_deliveries(other.id, [{"sink": "log", "ok": True, "error": None}])
    assert store.alert(other.id).deliveries[0]["sink"] == "log"
    assert store.alert(other.id).to_dict()["acknowledged"] is False
    with pytest.raises(NotFoundError):
        store.acknowledge(999, None)
