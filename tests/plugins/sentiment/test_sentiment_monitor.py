"""The monitoring cycle end to end with the real fine-tuned model, database, search and sinks."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from plugins.sentiment.model import score_texts
from plugins.sentiment.monitor import INDEX_NAME, Monitor
from plugins.sentiment.store import document_table, mention_table

pytestmark = pytest.mark.slow

NORTHWIND = "Northwind Bank"
QUIET = {"Contoso Motors", "Fabrikam Energy", "Litware Systems"}
SAMPLE_DOCUMENTS = 41  # 27 wire items + 14 feed entries
MOVES = ("rose after strong results", "plunged after a fine")


def news_file(path: Path, count: int, start: int = 0) -> Path:
    now = datetime.now(UTC)
    with path.open("w", encoding="utf-8") as handle:
        for n in range(start, start + count):
            handle.write(
                json.dumps(
                    {
                        "id": f"n{n}",
                        "title": f"Northwind Bank story {n}",
                        "text": f"Northwind Bank shares {MOVES[n % 2]} ({n}).",
                        "published_at": (now - timedelta(minutes=10 * n + 5)).isoformat(),
                    }
                )
                + "\n"
            )
    return path


def file_source(path: Path, name: str = "inbox") -> dict:
    return {"name": name, "kind": "file", "url_or_path": str(path)}


def test_sample_run_alerts_the_company_whose_tone_turns_and_nothing_twice(trained_context) -> None:
    ctx = trained_context()  # the shipped defaults: sample sources, watchlist and rules
    monitor = Monitor(ctx)
    record = monitor.run_once()
    assert record.status == "ok", record.messages
    assert record.counts["new"] == SAMPLE_DOCUMENTS == record.counts["scored"] == record.counts["indexed"]
    alerts = monitor.store.alerts()
    assert record.counts["alerts"] == len(alerts) >= 1
    assert {a.entity for a in alerts} == {NORTHWIND}, [a.title for a in alerts]
    # The threshold holds whatever the model's calibration; spike and flip depend on how sure it is.
    assert "negative-share" in {a.rule for a in alerts}
    threshold = next(a for a in alerts if a.rule == "negative-share")
    assert threshold.severity == "warning" and threshold.evidence
    assert all(item["label"] == "negative" and item["url"].startswith("https://") for item in threshold.evidence)
    # The run only queues the deliveries (one per alert and sink) with the alert; a worker sends them.
    [queued] = monitor.alert_dicts([threshold])[0]["deliveries"]
    assert (queued["sink"], queued["status"], queued["attempts"]) == ("log", "pending", 0)
    assert record.counts["queued"] == len(alerts)
    assert ctx.alert_outbox.deliver_due().sent == len(alerts)
    [sent] = monitor.alert_dicts([threshold])[0]["deliveries"]
    assert sent["status"] == "sent" and sent["ok"] and sent["attempts"] == 1

    stats = {c.subject.entity: c for c in monitor.comparisons()}
    assert stats[NORTHWIND].current.volume == 9 and stats[NORTHWIND].current.negative_share > 0.5
    assert all(stats[name].current.volume <= 1 for name in QUIET)
    assert ctx.search.count(INDEX_NAME) == SAMPLE_DOCUMENTS
    hits = ctx.search.search(INDEX_NAME, text="money laundering probe", k=3)
    assert hits and NORTHWIND in hits[0].metadata["entities"]

    again = monitor.run_once()
    assert again.status == "ok"
    assert again.counts.get("new", 0) == 0 and again.counts["duplicates"] == SAMPLE_DOCUMENTS
    assert again.counts.get("scored", 0) == 0 and again.counts.get("alerts", 0) == 0
    assert again.counts["suppressed"] == record.counts["alerts"]  # the cool-down holds them back
    assert len(monitor.store.alerts()) == len(alerts)
    with ctx.database.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(document_table)) == SAMPLE_DOCUMENTS
    assert [r.id for r in monitor.store.runs()] == [again.id, record.id]


def test_a_crash_mid_scoring_loses_nothing_and_scores_nothing_twice(trained_context, tmp_path: Path) -> None:
    path = news_file(tmp_path / "news.jsonl", 12)
    ctx = trained_context({"sources": [file_source(path)], "score_batch_size": 5})
    scored: Counter[str] = Counter()

    def crashing_scorer(texts):
        if scored:
            raise RuntimeError("scorer died")
        scored.update(texts)
        return score_texts(ctx, texts)

    with pytest.raises(RuntimeError, match="scorer died"):
        Monitor(ctx, scorer=crashing_scorer).run_once()
    monitor = Monitor(ctx)
    [failed] = monitor.store.runs()
    assert failed.status == "failed" and failed.counts["new"] == 12 and failed.counts["scored"] == 5
    assert failed.messages[-1]["message"] == "run failed: RuntimeError: scorer died"
    assert monitor.store.counts() == {"scored": 5, "pending": 7}
    with ctx.database.connect() as conn:
        query = select(document_table.c.id, document_table.c.scored_at).where(document_table.c.status == "scored")
        first_scores = dict(conn.execute(query).all())

    def counting_scorer(texts):
        scored.update(texts)
        return score_texts(ctx, texts)

    rerun = Monitor(ctx, scorer=counting_scorer).run_once()
    assert rerun.status == "ok" and rerun.counts["scored"] == 7 and rerun.counts["duplicates"] == 12
    assert len(scored) == 12 and set(scored.values()) == {1}  # every document scored exactly once
    assert monitor.store.counts() == {"scored": 12}
    with ctx.database.connect() as conn:
        all_scores = dict(conn.execute(select(document_table.c.id, document_table.c.scored_at)).all())
        mentions = conn.scalar(select(func.count()).select_from(mention_table))
    assert len(all_scores) == 12 and mentions == 12
    assert {i: all_scores[i] for i in first_scores} == first_scores  # the first batch was not touched again


def test_bad_inputs_are_recorded_and_the_rest_of_the_run_goes_on(trained_context, tmp_path: Path, dead_url) -> None:
    malformed = tmp_path / "broken.xml"
    malformed.write_text("<rss><channel><item><title>cut off", encoding="utf-8")
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes('{"id": "x", "text": "Caf\xe9 owner Northwind Bank"}\n'.encode("latin-1"))
    good = tmp_path / "good.jsonl"
    good.write_text(
        json.dumps({"id": "g1", "title": "Northwind Bank fined", "text": "Regulators fined Northwind Bank."})
        + "\n"
        + json.dumps({"id": "g2", "title": "", "text": "   "})
        + "\n",
        encoding="utf-8",
    )
    ctx = trained_context(
        {
            "sources": [
                {"name": "dead", "kind": "rss", "url_or_path": dead_url, "timeout": 2},
                {"name": "malformed", "kind": "rss", "url_or_path": str(malformed)},
                {"name": "latin", "kind": "file", "url_or_path": str(latin)},
                {"name": "good", "kind": "file", "url_or_path": str(good)},
            ],
            "rules": [
                {"name": "ghost", "kind": "threshold", "entity": "Umbrella Corp"},
                {"name": "real", "kind": "threshold", "entity": NORTHWIND},
            ],
        }
    )
    record = Monitor(ctx).run_once()
    assert record.status == "partial"
    by_source = {}
    for message in record.messages:
        by_source.setdefault(message["source"], []).append(f"{message['level']}: {message['message']}")
    assert by_source["dead"][0].startswith("error: feed unavailable: http://127.0.0.1:")
    assert "not a valid RSS/Atom feed" in by_source["malformed"][0]
    assert "error: latin1.jsonl: not UTF-8 text (byte 0xe9" in by_source["latin"][0]
    assert by_source["good"] == ["warning: good.jsonl:2: empty document skipped"]
    assert any("rule 'ghost': unknown entity 'Umbrella Corp'" in m for m in by_source[None])
    assert record.counts["new"] == 1 and record.counts["scored"] == 1 and record.counts["rejected"] == 1
    [doc] = Monitor(ctx).store.scored_documents(datetime.now(UTC) - timedelta(days=1), datetime.now(UTC))
    assert doc.entities == (NORTHWIND,)


def test_alerts_go_out_through_the_webhook_sink(trained_context, loopback) -> None:
    hook = loopback.json("/hook", {"ok": True})
    ctx = trained_context(alerts={"log": False, "webhooks": [{"url": hook, "retries": 0}]})
    record = Monitor(ctx).run_once()
    assert [method for method, _, _ in loopback.requests if method == "POST"] == []  # the run never sends
    assert ctx.alert_outbox.deliver_due().sent == record.counts["alerts"]
    posted = [json.loads(body) for method, path, body in loopback.requests if method == "POST"]
    assert len(posted) == record.counts["alerts"] >= 1
    assert len({body["idempotency_key"] for body in posted}) == len(posted)
    first = posted[0]
    assert first["source"] == "sentiment" and first["data"]["entity"] == NORTHWIND
    assert first["evidence"] and first["key"].startswith("sentiment:")


def test_backfill_replays_the_rules_over_past_windows_without_sending(trained_context) -> None:
    ctx = trained_context({"windows": {"current": "6h", "baseline": "7d", "bucket": "2h"}})
    monitor = Monitor(ctx)
    now = datetime.now(UTC)
    record = monitor.backfill(now - timedelta(days=2), now + timedelta(minutes=1))
    assert record.trigger == "backfill" and record.status == "ok", record.messages
    alerts = monitor.store.alerts()
    assert alerts and {a.entity for a in alerts} == {NORTHWIND}
    assert all(a.backfill and a.deliveries == [] for a in alerts)
    assert ctx.alert_outbox.deliveries() == []  # backfilled alerts are not sent without --dispatch
    assert len({a.key for a in alerts}) == len(alerts)  # the cool-down holds in simulated time
    assert all(now - timedelta(hours=7) < a.created_at <= now + timedelta(minutes=1) for a in alerts)
    with pytest.raises(Exception, match="must be before"):
        monitor.backfill(now, now - timedelta(days=1))


def test_without_a_model_the_run_says_what_to_do(context_factory) -> None:
    ctx = context_factory()
    with pytest.raises(Exception, match=r"no sentiment model yet: run `suite sentiment train`"):
        Monitor(ctx).run_once()
    [run] = Monitor(ctx).store.runs()
    assert run.status == "failed" and run.counts == {}


@pytest.mark.postgres
def test_sample_run_on_postgresql(trained_context, postgres_url: str) -> None:
    from services.database import create_database_engine

    schema = f"sentiment_run_{uuid.uuid4().hex[:10]}"
    admin = create_database_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        ctx = trained_context(database_url=f"{postgres_url}?options=-csearch_path%3D{schema}")
        monitor = Monitor(ctx)
        first, second = monitor.run_once(), monitor.run_once()
        assert first.counts["new"] == SAMPLE_DOCUMENTS == first.counts["scored"]
        assert second.counts.get("new", 0) == 0 and second.counts.get("alerts", 0) == 0
        assert {a.entity for a in monitor.store.alerts()} == {NORTHWIND}
        ctx.database.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_the_scheduled_job_runs_the_monitor(trained_context) -> None:

    ctx = trained_context({"schedule_minutes": 30})
    [job] = [job for job in ctx.jobs() if job.plugin == "sentiment"]
    assert (job.name, job.trigger, job.trigger_args) == ("sentiment.monitor", "interval", {"minutes": 30})
    scheduler = ctx.scheduler()
    try:
        run = scheduler.run_now("sentiment.monitor")
    finally:
        scheduler.close()
    assert run.status == "ok", run.error
    [record] = Monitor(ctx).store.runs()
    assert record.trigger == "schedule" and record.counts["new"] == SAMPLE_DOCUMENTS
    assert [j for j in trained_context({"schedule_minutes": 0}).jobs() if j.plugin == "sentiment"] == []


def test_the_saved_onnx_graph_scores_as_torch_does_and_serves_by_default_on_a_cpu(trained_context, monkeypatch) -> None:
    from plugins.sentiment.model import _cache, load_classifier
    from services.training import loading

    # As on a CPU without native bfloat16 (this test process has imported torch: see loading.py), with
    # no classifier an earlier test loaded under the real rule.
    monkeypatch.setattr(loading, "prefers_bfloat16", lambda precision: False)
    _cache.clear()

    texts = ["Profit fell sharply and the outlook was cut.", "Sales rose 12% on strong demand.", "The AGM is in May."]
    torch_ctx = trained_context(training={"inference_precision": "float32", "inference_runtime": "torch"})
    exact = score_texts(torch_ctx, texts)
    for runtime in ("onnx", "auto"):
        onnx_ctx = trained_context(training={"num_threads": 1, "device": "cpu", "inference_runtime": runtime})
        onnx = score_texts(onnx_ctx, texts)
        assert [b.label for b in onnx] == [a.label for a in exact]
        assert [b.score for b in onnx] == pytest.approx([a.score for a in exact], abs=1e-5)
        assert type(load_classifier(onnx_ctx)).__name__ == "OnnxClassifier"
    assert load_classifier(torch_ctx).runtime == "torch"


def test_bfloat16_scoring_gives_the_float32_labels(trained_context) -> None:
    from plugins.sentiment.data import load_labelled
    from plugins.sentiment.model import load_classifier

    texts = [row.text for row in load_labelled("sample:financial_sentences.csv")]
    exact_ctx = trained_context(training={"inference_precision": "float32"})
    fast_ctx = trained_context(training={"inference_precision": "bfloat16"})
    exact, fast = score_texts(exact_ctx, texts), score_texts(fast_ctx, texts)
    assert [b.label for b in fast] == [a.label for a in exact]
    assert [b.score for b in fast] == pytest.approx([a.score for a in exact], abs=5e-2)
    assert (load_classifier(exact_ctx).precision, load_classifier(fast_ctx).precision) == ("float32", "bfloat16")
