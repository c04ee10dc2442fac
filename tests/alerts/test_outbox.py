"""The alert outbox against a real webhook receiver on loopback: retries, give-up, crashes, two workers."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from services.alerts import Alert, AlertDispatcher, EmailSink, LogSink, WebhookSink
from services.database import create_database_engine
from services.errors import DataError, NotFoundError
from services.outbox import (
    FAILED,
    GIVEN_UP,
    PENDING,
    SENT,
    AlertOutbox,
    attempt_table,
    backoff_delay,
    delivery_table,
)
from services.outbox.migrations import HISTORY as OUTBOX_HISTORY
from services.schema import prepare
from services.settings import AlertsConfig, EmailSinkConfig

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def make_alert(number: int = 1) -> Alert:
    return Alert(
        key=f"test:acme:{number}",
        title=f"ACME alert {number}",
        message="ACME sentiment fell.",
        severity="warning",
        source="tests",
        created_at=T0,
    )


def make_outbox(engine, url: str, *, seed: int = 7, lease: timedelta = timedelta(minutes=5), **config) -> AlertOutbox:
    settings = AlertsConfig(
        **{"delivery_backoff": "10s", "delivery_max_backoff": "5m", "delivery_max_age": "1h", **config}
    )
    dispatcher = AlertDispatcher([("suite", WebhookSink(url, timeout=2, retries=5, backoff=30))])
    return AlertOutbox(engine, dispatcher, settings, lease=lease, rng=random.Random(seed))


def enqueue(outbox: AlertOutbox, *alerts: Alert) -> list[int]:
    ids = []
    with outbox.engine.begin() as conn:
        for number, alert in enumerate(alerts, 1):
            ids += outbox.enqueue(conn, alert, ref=number)
    return ids


def keys_received(server) -> list[str]:
    return [request.headers["Idempotency-Key"] for request in server.received]


def migrated_engine(url: str):
    """An engine on ``url`` with the outbox's tables made by its migrations, as the core makes them."""
    engine = create_database_engine(url)
    assert prepare(engine, [OUTBOX_HISTORY], upgrade_existing=False) == []
    return engine


@pytest.fixture
def engine(tmp_path: Path):
    engine = migrated_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    yield engine
    engine.dispose()


# -- back-off -----------------------------------------------------------------------------------------
def test_backoff_is_exponential_with_full_jitter_and_capped():
    rng = random.Random(1)
    base, cap = timedelta(seconds=10), timedelta(seconds=60)
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (4, 60), (9, 60)]:
        delays = [backoff_delay(attempt, base, cap, rng).total_seconds() for _ in range(300)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling and min(delays) < 0.2 * ceiling  # spread over the whole range


# -- the worker against a real receiver -----------------------------------------------------------------
def test_failing_receiver_is_retried_with_backoff_then_gets_it_once_with_one_key(engine, webhook_server):
    webhook_server.script = [(503, 0), (503, 0), (500, 0)]
    outbox = make_outbox(engine, webhook_server.url)
    [delivery_id] = enqueue(outbox, make_alert())
    assert webhook_server.received == []  # enqueueing sends nothing

    now, passes = datetime.now(UTC) + timedelta(seconds=1), 0
    while outbox.delivery(delivery_id).status != SENT:
        passes += 1
        assert passes <= 4, outbox.delivery(delivery_id)
        result = outbox.deliver_due(now=now)
        assert result.sent + result.failed == 1
        record = outbox.delivery(delivery_id)
        if record.status == FAILED:
            wait = record.next_attempt_at - now
            assert timedelta(0) <= wait <= timedelta(seconds=10 * 2 ** (record.attempts - 1))
            before = record.next_attempt_at - timedelta(microseconds=1)
            assert wait == timedelta(0) or outbox.deliver_due(now=before).failed == 0  # not due: not sent
            now = record.next_attempt_at

    record = outbox.delivery(delivery_id)
    assert (record.status, record.attempts, record.last_error) == (SENT, 4, None)
    assert keys_received(webhook_server) == [record.idempotency_key] * 4
    assert webhook_server.received[-1].body["title"] == "ACME alert 1"
    assert webhook_server.received[-1].body["idempotency_key"] == record.idempotency_key
    attempts = outbox.attempts(delivery_id)
    assert [a.outcome for a in attempts] == ["failed", "failed", "failed", "sent"]
    assert "HTTP 503" in attempts[0].error and "HTTP 500" in attempts[2].error
    assert "secret-token" not in attempts[0].error  # the URL path may be a credential
    assert outbox.deliver_due(now=now + timedelta(days=1)).sent == 0  # delivered exactly once


def test_a_delivery_failing_past_the_max_age_is_given_up_with_the_reason(engine, webhook_server):
    webhook_server.script = [(503, 0)] * 50
    outbox = make_outbox(engine, webhook_server.url, delivery_max_age="2m")
    [delivery_id] = enqueue(outbox, make_alert())
    now = datetime.now(UTC)
    while (record := outbox.delivery(delivery_id)).status != GIVEN_UP:
        assert record.attempts < 30
        outbox.deliver_due(now=now)
        now = outbox.delivery(delivery_id).next_attempt_at or now
    assert record.last_error.startswith(f"gave up after {record.attempts} attempt(s) over")
    assert "HTTP 503" in record.last_error
    assert len(webhook_server.received) == record.attempts >= 2
    assert outbox.deliver_due(now=now + timedelta(days=2)).failed == 0  # given up: never tried again

    webhook_server.script = []  # the receiver is back: an operator re-queues it
    again = outbox.redeliver(delivery_id)
    assert (again.status, again.next_attempt_at is not None) == (PENDING, True)
    assert outbox.deliver_due().sent == 1
    assert set(keys_received(webhook_server)) == {record.idempotency_key}
    with pytest.raises(DataError, match="nothing to redeliver"):
        outbox.redeliver(delivery_id)
    with pytest.raises(NotFoundError, match="no alert delivery with id 999"):
        outbox.redeliver(999)


def test_a_refusal_is_given_up_at_once_and_other_sinks_still_deliver(engine, webhook_server):
    webhook_server.script = [(400, 0)]
    outbox = make_outbox(engine, webhook_server.url)
    outbox.dispatcher = AlertDispatcher(
        [("suite", LogSink()), ("suite", WebhookSink(webhook_server.url, retries=3, backoff=30))]
    )
    log_id, hook_id = enqueue(outbox, make_alert())
    result = outbox.deliver_due()
    assert (result.sent, result.given_up) == (1, 1)
    assert outbox.delivery(log_id).status == SENT
    refused = outbox.delivery(hook_id)
    assert refused.status == GIVEN_UP and refused.last_error.startswith("given up at once: refused the alert:")
    assert "HTTP 400" in refused.last_error


def test_a_sink_removed_from_the_config_is_retried_not_lost(engine, webhook_server):
    outbox = make_outbox(engine, webhook_server.url)
    [delivery_id] = enqueue(outbox, make_alert())
    outbox.dispatcher = AlertDispatcher([("suite", LogSink())])  # the webhook was taken out of the config
    assert outbox.deliver_due().failed == 1
    record = outbox.delivery(delivery_id)
    assert record.status == FAILED and "is configured now" in record.last_error


def test_enqueue_commits_or_rolls_back_with_the_callers_transaction(engine, webhook_server):
    outbox = make_outbox(engine, webhook_server.url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE my_alerts (id INTEGER PRIMARY KEY, title TEXT)"))
    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.execute(text("INSERT INTO my_alerts (title) VALUES ('lost')"))
        outbox.enqueue(conn, make_alert(), ref=1)
        raise RuntimeError("the plugin failed after queueing")
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM my_alerts")) == 0
        assert conn.scalar(select(func.count()).select_from(delivery_table)) == 0


def test_an_expired_claim_of_a_dead_worker_is_taken_over(engine, webhook_server):
    dead = make_outbox(engine, webhook_server.url, lease=timedelta(minutes=1))
    [delivery_id] = enqueue(dead, make_alert())
    now = datetime.now(UTC)
    assert dead._claim(now) is not None  # claimed, then the worker died mid-send
    alive = make_outbox(engine, webhook_server.url)
    assert alive.deliver_due(now=now + timedelta(seconds=30)).sent == 0  # the claim still holds
    assert alive.deliver_due(now=now + timedelta(minutes=2)).sent == 1
    assert outbox_status(engine, delivery_id) == SENT and len(webhook_server.received) == 1


def outbox_status(engine, delivery_id: int) -> str:
    with engine.connect() as conn:
        return conn.scalar(select(delivery_table.c.status).where(delivery_table.c.id == delivery_id))


def test_email_deliveries_carry_a_stable_message_id():
    sink = EmailSink(EmailSinkConfig(sender="suite@example.org", recipients=["ops@example.org"]))
    alert = make_alert()
    alert.idempotency_key = "6f1c0b1e-5d7a-4a53-9b8e-2f1d8c3a7e10"
    assert sink.build_message(alert)["Message-ID"] == f"<{alert.idempotency_key}@example.org>"
    assert sink.build_message(alert)["Message-ID"] == sink.build_message(alert)["Message-ID"]


# -- a process killed between storing the alert and sending it ----------------------------------------------
WRITER = """
import os, signal, sys
from datetime import UTC, datetime
from plugins.sentiment.store import SentimentStore
from services.alerts import Alert
from suite.context import SuiteContext

ctx = SuiteContext.create(None)
store, outbox = SentimentStore(ctx.database), ctx.alert_outbox

def enqueue(conn, record):
    alert = Alert(key=record.key, title=record.title, message=record.message, severity=record.severity,
                  source="sentiment", created_at=record.created_at, data={"alert_id": record.id})
    outbox.enqueue(conn, alert, ref=record.id)

record = store.add_alert(
    enqueue=enqueue, rule="r", kind="threshold", key="sentiment:ACME:r", severity="warning",
    title="ACME turned negative", message="m", evidence=[], data={}, created_at=datetime.now(UTC),
)
print(record.id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # dies before any delivery pass
"""


def test_a_process_killed_after_storing_an_alert_delivers_it_after_restart(tmp_path: Path, webhook_server):
    data_dir = tmp_path / "data"
    config = tmp_path / "suite.toml"
    config.write_text(
        f'data_dir = "{data_dir}"\n[alerts]\nlog = false\n[[alerts.webhooks]]\nurl = "{webhook_server.url}"\n'
    )
    env = {**os.environ, "SUITE_CONFIG": str(config), "PYTHONPATH": str(REPO)}
    env.pop("SUITE_DATA_DIR", None)
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WRITER)], env=env, capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == -9, killed.stderr
    alert_id = int(killed.stdout.split()[0])
    assert webhook_server.received == []

    restarted = subprocess.run(
        [sys.executable, "-m", "suite", "jobs", "run", "suite.deliver_alerts"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restarted.returncode == 0, restarted.stderr
    [request] = webhook_server.received
    assert request.body["title"] == "ACME turned negative" and request.body["data"]["alert_id"] == alert_id
    engine = create_engine(f"sqlite:///{data_dir / 'suite.db'}")
    with engine.connect() as conn:
        row = conn.execute(select(delivery_table)).mappings().one()
    engine.dispose()
    assert (row["status"], row["alert_ref"]) == (SENT, str(alert_id))
    assert request.headers["Idempotency-Key"] == row["idempotency_key"]


# -- two workers on one database ------------------------------------------------------------------------
ROWS = 24


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_database_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return request.getfixturevalue("postgres_schema_url")  # a schema of this test alone


def test_two_workers_on_one_database_never_send_a_row_twice(shared_database_url: str, webhook_server):
    webhook_server.script = [(200, 0.01)] * ROWS  # slow enough for the workers to overlap
    engines = [migrated_engine(shared_database_url) for _ in range(2)]
    workers = [make_outbox(engine, webhook_server.url, seed=n) for n, engine in enumerate(engines)]
    ids = enqueue(workers[0], *[make_alert(n) for n in range(ROWS)])
    start = threading.Barrier(2)
    results = {}

    def work(outbox: AlertOutbox) -> None:
        start.wait()
        results[outbox.worker_id] = outbox.deliver_due(limit=ROWS * 2)

    threads = [threading.Thread(target=work, args=(outbox,)) for outbox in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    received = Counter(keys_received(webhook_server))
    assert len(received) == ROWS and set(received.values()) == {1}, received.most_common(3)
    assert sum(result.sent for result in results.values()) == ROWS
    with engines[0].connect() as conn:
        assert conn.scalar(select(func.count()).select_from(attempt_table)) == ROWS
        statuses = conn.execute(select(delivery_table.c.status).where(delivery_table.c.id.in_(ids))).scalars()
        assert set(statuses) == {SENT}
    for engine in engines:
        engine.dispose()


def test_the_receiver_gets_the_alert_as_it_was_raised(engine, webhook_server):
    """The payload JSON is the alert as raised: the worker rebuilds it exactly, adding only the key."""
    outbox = make_outbox(engine, webhook_server.url)
    alert = make_alert()
    alert.evidence = [{"title": "ACME recalls", "url": "https://news.example/a", "id": 3}]
    enqueue(outbox, alert)
    outbox.deliver_due()
    body = webhook_server.received[0].body
    assert {key: body[key] for key in ("key", "title", "evidence", "created_at")} == {
        "key": alert.key,
        "title": alert.title,
        "evidence": alert.evidence,
        "created_at": alert.created_at.isoformat(),
    }
    with engine.connect() as conn:
        payload = conn.scalar(select(delivery_table.c.payload))
    assert json.loads(json.dumps(payload))["idempotency_key"] is None


def test_delivery_settings_read_short_durations_and_refuse_nonsense():
    config = AlertsConfig(delivery_max_age="36h", delivery_backoff=5, delivery_interval="PT30S")
    assert config.delivery_max_age == timedelta(hours=36) and config.delivery_backoff == timedelta(seconds=5)
    assert config.model_dump(mode="json")["delivery_interval"] == "30s"
    for bad in ("soon", "0s", -1):
        with pytest.raises(ValueError, match="duration"):
            AlertsConfig(delivery_max_age=bad)


def test_each_attempt_outcome_is_counted_for_prometheus(engine, webhook_server):
    registry = pytest.importorskip("prometheus_client", reason="prometheus-client is optional").REGISTRY
    webhook_server.script = [(503, 0)]
    outbox = make_outbox(engine, webhook_server.url)
    [sink] = outbox.dispatcher.sink_names
    enqueue(outbox, make_alert())
    now = datetime.now(UTC)
    outbox.deliver_due(now=now)
    outbox.deliver_due(now=now + timedelta(hours=1))

    def count(outcome: str) -> float | None:
        return registry.get_sample_value("suite_alert_deliveries_total", {"sink": sink, "outcome": outcome})

    assert (count("failed"), count("sent"), count("given_up")) == (1.0, 1.0, None)


def test_one_pass_tries_a_delivery_once_however_short_its_backoff(engine, webhook_server):
    webhook_server.script = [(503, 0)] * 10
    outbox = make_outbox(engine, webhook_server.url, delivery_backoff="0.001s", delivery_max_backoff="0.001s")
    [delivery_id] = enqueue(outbox, make_alert())
    assert outbox.deliver_due().failed == 1
    assert len(webhook_server.received) == 1 and outbox.delivery(delivery_id).attempts == 1


def test_two_webhooks_to_one_host_get_distinct_sink_names():
    from services.alerts import sinks_from_config

    config = AlertsConfig(log=False, webhooks=[{"url": "https://hooks.example/a"}, {"url": "https://hooks.example/b"}])
    assert [sink.name for sink in sinks_from_config(config)] == [
        "webhook https://hooks.example",
        "webhook https://hooks.example #2",
    ]
