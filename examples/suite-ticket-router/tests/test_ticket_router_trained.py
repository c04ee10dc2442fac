"""The plugin with a (briefly) fine-tuned router: training task, CLI, HTTP, job and store."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from suite_ticket_router.routing import process_inbox
from suite_ticket_router.store import RoutedStore
from ticket_router_support import PLUGIN, QUEUES, TINY_TRAINING, make_context
from typer.testing import CliRunner

from suite.app import create_app
from suite.cli import build_app

pytestmark = pytest.mark.slow

PAST_TICKET = ("T-0003", "Printer on the third floor jams every time I print double sided")


def test_training_registers_an_active_version_with_a_card(trained_ctx):
    version = trained_ctx.registry.active(PLUGIN, "router")
    assert version is not None and version.ref == "tickets/router@v1"
    card = version.card
    assert (card.plugin, card.task, card.kind, card.labels) == (PLUGIN, "router", "classification", QUEUES)
    assert card.train_examples == 70  # 80 sample tickets less the stratified validation split
    assert card.hyperparameters["max_steps"] == TINY_TRAINING["max_steps"]
    assert card.hyperparameters["batch_size"] == TINY_TRAINING["batch_size"]
    assert card.metrics["accuracy"] > 0.2  # better than chance over five queues, after only 10 steps
    trained_ctx.registry.verify(version)
    # The past tickets were indexed for similarity search.
    assert trained_ctx.search.count("tickets", {"source": "history"}) == 80


def test_cli_routes_a_ticket_with_similar_past_tickets(trained_ctx):
    text = f"{PAST_TICKET[1]} on PRN-2201"
    result = CliRunner().invoke(build_app(trained_ctx), ["tickets", "route", text, "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["queue"] in QUEUES and answer["model"] == "tickets/router@v1"
    assert sorted(answer["scores"]) == QUEUES
    assert sum(answer["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    assert answer["confidence"] == max(answer["scores"].values())
    assert answer["needs_review"] == (answer["confidence"] < 0.5)
    assert len(answer["similar"]) == 3
    assert answer["similar"][0]["id"] == PAST_TICKET[0]  # the nearly identical past ticket comes first
    assert answer["similar"][0]["queue"] == "hardware"
    scores = [ticket["score"] for ticket in answer["similar"]]
    assert scores == sorted(scores, reverse=True)
    assert answer["entities"] == [{"label": "ASSET_TAG", "text": "PRN-2201"}]
    result = CliRunner().invoke(build_app(trained_ctx), ["tickets", "route", "The VPN drops", "-k", "0"])
    assert result.exit_code == 0, result.output
    assert "queue:" in result.output and "similar ticket" not in result.output


def test_http_route_and_its_errors(trained_ctx):
    with TestClient(create_app(trained_ctx)) as client:
        response = client.post("/api/tickets/route", json={"text": PAST_TICKET[1], "similar": 2})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["queue"] in QUEUES and [t["id"] for t in body["similar"]][0] == PAST_TICKET[0]
        assert len(body["similar"]) == 2
        empty = client.post("/api/tickets/route", json={"text": "   "})
        assert empty.status_code == 422 and empty.json()["error"]["type"] == "invalid_input"
        long = client.post("/api/tickets/route", json={"text": "x" * 6000})
        assert long.status_code == 413 and long.json()["error"]["type"] == "too_large"
        assert client.post("/api/tickets/route", json={"similar": 2}).status_code == 422
        assert client.get("/api/tickets/routed").json() == []
        assert "/api/tickets/route" in client.get("/openapi.json").json()["paths"]


def test_scheduled_job_routes_the_inbox_once(trained_ctx, inbox):
    store = RoutedStore(trained_ctx.database)
    with trained_ctx.scheduler() as scheduler:
        first = scheduler.run_now("tickets.process-inbox")
        assert (first.status, first.plugin, first.error) == ("ok", PLUGIN, None)
        assert store.count() == 10
        assert scheduler.run_now("tickets.process-inbox").status == "ok"
        assert store.count() == 10  # idempotent by ticket id
        with inbox.open("a") as handle:
            handle.write('{"id": "T-2001", "text": "The badge reader LT-0001 is broken"}\nnot json\n')
        assert scheduler.run_now("tickets.process-inbox").status == "ok"
        runs = scheduler.run_log.recent("tickets.process-inbox")
    assert [run.status for run in runs] == ["ok", "ok", "ok"]
    assert store.count() == 11
    stored = {ticket.ticket_id: ticket for ticket in store.recent(limit=100)}
    assert set(stored) == {f"T-10{n:02d}" for n in range(1, 11)} | {"T-2001"}
    assert all(t.queue in QUEUES and t.model == "tickets/router@v1" for t in stored.values())
    # Routed tickets join the index, so they show up as similar tickets from now on.
    assert trained_ctx.search.count("tickets", {"source": "inbox"}) == 11
    assert trained_ctx.search.get("tickets", "T-2001").metadata["queue"] == stored["T-2001"].queue


@pytest.mark.postgres
def test_inbox_job_stores_in_postgresql(trained_copy, inbox, postgres_url):
    """The same store on PostgreSQL: ``database_url`` is all it takes."""
    schema = f"tickets_test_{uuid.uuid4().hex[:10]}"  # a schema of its own on a shared test database
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = f"{postgres_url}?options=-csearch_path%3D{schema}"
        ctx = make_context(trained_copy, {"inbox": str(inbox)}, database_url=url)
        ctx.startup()
        assert (process_inbox(ctx).routed, process_inbox(ctx).routed) == (10, 0)
        stored = RoutedStore(ctx.database).recent(limit=100)
        assert len(stored) == 10 and all(t.routed_at.tzinfo is not None for t in stored)
        ctx.shutdown()
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def test_cli_process_inbox_and_routed_list(trained_ctx):
    app = build_app(trained_ctx)
    result = CliRunner().invoke(app, ["tickets", "process-inbox", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["read"], report["routed"], report["already_routed"]) == (10, 10, 0)
    again = json.loads(CliRunner().invoke(app, ["tickets", "process-inbox", "--json"]).output)
    assert (again["routed"], again["already_routed"]) == (0, 10)
    listed = CliRunner().invoke(app, ["tickets", "routed", "--limit", "3"])
    assert listed.exit_code == 0 and listed.output.count("T-10") == 3


class AlertCollector:
    """A plugin contributing two alert sinks: one that keeps alerts, one that always fails."""

    def __init__(self) -> None:
        self.received: list = []

    def suite_alert_sinks(self, ctx):
        collector = self

        class Broken:
            name = "broken"

            def send(self, alert):
                raise ConnectionError("sink down")

        class Keep:
            name = "keep"

            def send(self, alert):
                collector.received.append(alert)

        return [Broken(), Keep()]


def test_low_confidence_tickets_raise_one_alert(trained_copy, inbox):
    """With a threshold no ticket reaches, every ticket is flagged and one alert names them all."""
    ctx = make_context(trained_copy, {"inbox": str(inbox), "review_below": 1.0})
    collector = AlertCollector()
    assert ctx.plugins.register(collector, "collector")
    ctx.startup()
    report = process_inbox(ctx)
    assert len(report.needs_review) == 10
    assert collector.received == []  # queued with the tickets; the core's delivery job sends it
    delivered = ctx.alert_outbox.deliver_due()
    assert (delivered.sent, delivered.failed) == (2, 1)  # log and keep; broken will be retried
    [alert] = collector.received  # delivered although the sink before it failed
    assert (alert.key, alert.source, alert.severity) == ("tickets.needs-review", PLUGIN, "warning")
    assert {item["id"] for item in alert.evidence} == set(report.needs_review)
    failure = ctx.plugins.failures[-1]
    assert (failure.plugin, failure.hook, failure.error) == ("collector", "send", "ConnectionError: sink down")
    ctx.shutdown()
