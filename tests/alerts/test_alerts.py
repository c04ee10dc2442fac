"""Alert sinks against real servers on loopback, and the dispatcher's isolation of failures."""

from __future__ import annotations

import json
import logging
import smtplib
import time
from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from pydantic import SecretStr

from services.alerts import (
    Alert,
    AlertDispatcher,
    DeliveryError,
    EmailSink,
    LogSink,
    WebhookSink,
    render_text,
    sinks_from_config,
)
from suite.config import AlertsConfig, EmailSinkConfig, Settings
from suite.context import SuiteContext


def make_alert(**changes) -> Alert:
    values = dict(
        key="sentiment:ACME:drop",
        title="ACME sentiment dropped",
        message="Mean sentiment for ACME fell from 0.41 to -0.32 in the last 6 hours.",
        severity="warning",
        source="sentiment",
        evidence=[
            {"title": "ACME recalls 2 million units", "url": "https://news.example/acme-recall", "id": "d1"},
            {"title": "Analysts cut ACME to sell", "url": "https://news.example/acme-sell", "id": "d2"},
        ],
        created_at=datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc),
        data={"entity": "ACME", "window_hours": 6, "seen": datetime(2024, 5, 1, tzinfo=timezone.utc)},
    )
    return Alert(**{**values, **changes})


def email_config(port: int, **changes) -> EmailSinkConfig:
    return EmailSinkConfig(
        **{
            "host": "127.0.0.1",
            "port": port,
            "sender": "suite@example.org",
            "recipients": ["ops@example.org", "desk@example.org"],
            "timeout": 5,
            **changes,
        }
    )


# -- Alert ------------------------------------------------------------------------------------------
def test_alert_to_dict_is_json_ready():
    data = make_alert().to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["created_at"] == "2024-05-01T12:30:00+00:00"
    assert data["data"]["seen"] == "2024-05-01T00:00:00+00:00"
    with pytest.raises(ValueError, match="severity"):
        make_alert(severity="urgent")


# -- webhook ----------------------------------------------------------------------------------------
def test_webhook_posts_the_alert_as_json_with_configured_headers(webhook_server):
    WebhookSink(webhook_server.url, headers={"Authorization": "Bearer abc"}).send(make_alert())
    [request] = webhook_server.received
    assert request.path == "/hooks/secret-token"
    assert request.headers["Authorization"] == "Bearer abc"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == make_alert().to_dict()


def test_webhook_retries_503_with_backoff_then_succeeds(webhook_server):
    webhook_server.script = [(503, 0), (503, 0)]
    started = time.monotonic()
    WebhookSink(webhook_server.url, retries=3, backoff=0.1).send(make_alert())
    assert len(webhook_server.received) == 3
    assert time.monotonic() - started >= 0.1 + 0.2  # waited backoff, then twice backoff


def test_webhook_gives_up_after_its_retries(webhook_server):
    webhook_server.script = [(500, 0)] * 5
    sink = WebhookSink(webhook_server.url, retries=2, backoff=0.01)
    with pytest.raises(DeliveryError, match=r"gave up after 3 attempt\(s\): HTTP 500") as raised:
        sink.send(make_alert())
    assert len(webhook_server.received) == 3
    assert "secret-token" not in str(raised.value)  # the URL path may be a credential


def test_webhook_does_not_retry_a_400(webhook_server):
    webhook_server.script = [(400, 0), (200, 0)]
    with pytest.raises(DeliveryError, match="refused the alert: HTTP 400"):
        WebhookSink(webhook_server.url, retries=3, backoff=0.01).send(make_alert())
    assert len(webhook_server.received) == 1


def test_webhook_times_out_and_retries(webhook_server):
    webhook_server.script = [(200, 1.0), (200, 1.0)]
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="ReadTimeout"):
        WebhookSink(webhook_server.url, timeout=0.2, retries=1, backoff=0.01).send(make_alert())
    assert time.monotonic() - started < 1.0
    assert len(webhook_server.received) == 2


def test_webhook_retries_connection_errors(closed_port):
    sink = WebhookSink(f"http://127.0.0.1:{closed_port}/hook", retries=2, backoff=0.01)
    with pytest.raises(DeliveryError, match=r"3 attempt\(s\): ConnectError"):
        sink.send(make_alert())


# -- e-mail -----------------------------------------------------------------------------------------
def test_email_is_sent_with_the_evidence_in_plain_text(smtp_server):
    EmailSink(email_config(smtp_server.port)).send(make_alert())
    [envelope] = smtp_server.messages
    assert envelope.mail_from == "suite@example.org"
    assert envelope.rcpt_tos == ["ops@example.org", "desk@example.org"]
    message = message_from_bytes(envelope.content, policy=default_policy)
    assert message["Subject"] == "[WARNING] ACME sentiment dropped"
    assert message.get_content_type() == "text/plain"
    body = message.get_content().replace("\r\n", "\n")
    assert "fell from 0.41 to -0.32" in body
    assert "1. ACME recalls 2 million units\n   https://news.example/acme-recall" in body
    assert "2. Analysts cut ACME to sell" in body
    assert "entity: ACME" in body


def test_email_logs_in_and_rejects_a_wrong_password(smtp_server):
    good = email_config(smtp_server.port, username="alerts", password=SecretStr("s3cret"))
    EmailSink(good).send(make_alert())
    assert smtp_server.logins == ["alerts"] and len(smtp_server.messages) == 1
    bad = email_config(smtp_server.port, username="alerts", password=SecretStr("wrong"))
    with pytest.raises(smtplib.SMTPAuthenticationError):
        EmailSink(bad).send(make_alert())
    assert len(smtp_server.messages) == 1


def test_email_uses_starttls_when_configured(tls_smtp_server):
    plain = email_config(tls_smtp_server.port)
    with pytest.raises(smtplib.SMTPException):  # the server insists on STARTTLS
        EmailSink(plain).send(make_alert())
    EmailSink(email_config(tls_smtp_server.port, starttls=True)).send(make_alert())
    assert len(tls_smtp_server.messages) == 1


def test_render_text_without_evidence():
    text = render_text(make_alert(evidence=[], data={}))
    assert "Evidence" not in text and "Details" not in text
    assert text.startswith("Mean sentiment for ACME")


# -- dispatcher -------------------------------------------------------------------------------------
def test_a_failing_sink_does_not_stop_the_log_and_webhook_sinks(webhook_server, closed_port, caplog):
    caplog.set_level(logging.INFO, logger="suite.alerts")
    failures = []
    dispatcher = AlertDispatcher(
        [
            ("suite", LogSink(format="json")),
            ("suite", EmailSink(email_config(closed_port, timeout=2))),
            ("suite", WebhookSink(webhook_server.url, retries=0)),
        ],
        on_failure=lambda owner, hook, exc: failures.append((owner, hook, exc)),
    )
    deliveries = dispatcher.dispatch(make_alert())
    assert [(d.sink, d.ok) for d in deliveries] == [
        ("log", True),
        ("email", False),
        (f"webhook {webhook_server.url.split('/hooks')[0]}", True),
    ]
    assert "ConnectionRefusedError" in deliveries[1].error
    assert [(owner, hook) for owner, hook, _ in failures] == [("suite", "send")]
    assert len(webhook_server.received) == 1
    [logged] = [r for r in caplog.records if r.name == "suite.alerts"]
    assert logged.levelno == logging.WARNING
    assert json.loads(logged.getMessage().removeprefix("alert ")) == make_alert().to_dict()
    assert "\n" not in logged.getMessage()


def test_the_log_sink_writes_one_readable_line_by_default(caplog):
    caplog.set_level(logging.INFO, logger="suite.alerts")
    alert = make_alert(data={"rule": "negative-share", "alert_id": 7})
    LogSink().send(alert)
    [logged] = caplog.records
    assert logged.getMessage() == f"alert [{alert.severity}] {alert.title} (rule negative-share, id 7)"
    assert logged.alert == alert.to_dict()  # the whole alert stays on the record for structured handlers


class BrokenSinkPlugin:
    class Sink:
        name = "pager"

        def send(self, alert: Alert) -> None:
            raise ConnectionError("pager service down")

    def suite_alert_sinks(self, ctx):
        return [self.Sink()]


def test_plugin_sinks_fail_under_their_plugin_name(tmp_path, webhook_server):
    settings = Settings(data_dir=tmp_path, alerts={"log": False, "webhooks": [{"url": webhook_server.url}]})
    ctx = SuiteContext(settings)
    assert ctx.plugins.register(BrokenSinkPlugin(), "pagerduty")
    deliveries = ctx.alerts.dispatch(make_alert())
    assert [d.ok for d in deliveries] == [True, False]
    assert deliveries[1].error == "ConnectionError: pager service down"
    assert [(f.plugin, f.hook) for f in ctx.plugins.failures] == [("pagerduty", "send")]


def test_sinks_from_config():
    config = AlertsConfig(
        log=True,
        webhooks=[{"url": "https://hooks.example/a", "retries": 1, "headers": {"X-Token": "t"}}],
        email={"sender": "suite@example.org", "recipients": ["ops@example.org"]},
    )
    log_sink, webhook, email = sinks_from_config(config)
    assert isinstance(log_sink, LogSink) and isinstance(email, EmailSink)
    assert (webhook.url, webhook.retries, webhook.headers["X-Token"]) == ("https://hooks.example/a", 1, "t")
    assert sinks_from_config(AlertsConfig(log=False)) == []
