"""Alert delivery.

CONTRACT:
    @dataclass class Alert:
        key: str                    # stable identity of the condition (for cool-downs)
        title: str; message: str
        severity: Literal["info", "warning", "critical"]
        source: str                 # plugin name
        evidence: list[dict] = []   # {"title":..., "url":..., "id":...}
        created_at: datetime = now(UTC); data: dict = {}
        def to_dict(self) -> dict
    class AlertSink(Protocol): name: str; def send(self, alert: Alert) -> None
    class LogSink, WebhookSink(url, timeout, retries, backoff, headers), EmailSink(EmailSinkConfig)
    @dataclass class Delivery: sink: str; ok: bool; error: str | None
    class AlertDispatcher:
        def __init__(self, sinks: list[tuple[str, AlertSink]],       # (owner plugin or "suite", sink)
                     on_failure: Callable[[str, str, Exception], None] | None = None)
        sinks: list[AlertSink]
        def dispatch(self, alert: Alert) -> list[Delivery]       # a failing sink never stops the others
    def sinks_from_config(config: AlertsConfig) -> list[AlertSink]

Additions (nothing above changed):
    LogSink(name="log", logger=None, format="text"|"json"); def summary_line(alert) -> str
    WebhookSink(..., *, name=None)  # delivery is at least once: a timed-out POST is retried
    EmailSink(config, *, name="email"); EmailSink.build_message(alert) -> EmailMessage
    class DeliveryError(Exception)  # what a sink raises when it gives up
    def render_text(alert) -> str   # the plain-text body used by e-mail
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from importlib import metadata
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx

from services import metrics
from services.errors import one_line
from services.settings import AlertsConfig, EmailSinkConfig

log = logging.getLogger(__name__)

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}
RETRY_STATUSES = frozenset({429}) | frozenset(range(500, 600))
MAX_RETRY_AFTER_SECONDS = 60.0


@dataclass
class Alert:
    """A condition worth telling someone about, with the evidence behind it."""

    key: str
    title: str
    message: str
    severity: Severity
    source: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert severity must be one of {', '.join(SEVERITIES)}, not {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; datetimes as ISO 8601."""
        return json.loads(json.dumps(asdict(self), default=_jsonable))


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


@runtime_checkable
class AlertSink(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver one alert or raise; the dispatcher records the failure."""


class DeliveryError(Exception):
    """A sink gave up on an alert."""


class LogSink:
    """Writes each alert as one line at a level matching its severity.

    ``format="text"`` (the default) is a line a person reads: severity, title (entity and key
    figure), rule and id; ``"json"`` is the whole alert as JSON. Either way the full alert is
    attached as ``record.alert`` for handlers that ship structured logs.
    """

    def __init__(
        self, name: str = "log", logger: logging.Logger | None = None, format: Literal["text", "json"] = "text"
    ) -> None:
        self.name = name
        self.logger = logger or logging.getLogger("suite.alerts")
        self.format = format

    def send(self, alert: Alert) -> None:
        data = alert.to_dict()
        line = json.dumps(data, ensure_ascii=False) if self.format == "json" else summary_line(alert)
        self.logger.log(LOG_LEVELS[alert.severity], "alert %s", line, extra={"alert": data})


def summary_line(alert: Alert) -> str:
    """``[warning] Northwind Bank: 89% negative in the last 6h (rule negative-share, id 1)``."""
    named = (("rule", "rule"), ("id", "alert_id"))
    details = [f"{name} {alert.data[key]}" for name, key in named if alert.data.get(key)]
    title = " ".join(alert.title.split())
    return f"[{alert.severity}] {title}" + (f" ({', '.join(details)})" if details else "")


class WebhookSink:
    """POSTs the alert as JSON; retries connection errors, timeouts, 429 and 5xx.

    Retries wait ``backoff * 2**attempt`` seconds (or the server's ``Retry-After``,
    capped at a minute); other 4xx answers fail at once, since sending the same body
    again cannot help. A request that timed out may have been received, so delivery
    is at least once: receivers should de-duplicate on ``key`` and ``created_at``.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        headers: dict[str, str] | None = None,
        *,
        name: str | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.headers = {"User-Agent": f"suite/{_suite_version()}", **(headers or {})}
        self.headers["Content-Type"] = "application/json"
        # The path of a webhook URL is often its secret (Slack, Teams): never show more than the host.
        parts = urlsplit(url)
        self.where = f"{parts.scheme}://{parts.netloc}"
        self.name = name or f"webhook {self.where}"

    def send(self, alert: Alert) -> None:
        body = json.dumps(alert.to_dict(), ensure_ascii=False).encode()
        error, wait = "", 0.0
        with httpx.Client(timeout=self.timeout, headers=self.headers) as client:
            for attempt in range(self.retries + 1):
                if attempt:
                    time.sleep(max(wait, self.backoff * 2 ** (attempt - 1)))
                failure = self._attempt(client, body)
                if failure is None:
                    return
                error, wait = failure
        raise DeliveryError(f"{self.where}: gave up after {self.retries + 1} attempt(s): {error}")

    def _attempt(self, client: httpx.Client, body: bytes) -> tuple[str, float] | None:
        """One POST: None if delivered, else (error, least wait before retrying); raise if hopeless."""
        try:
            response = client.post(self.url, content=body)
        except httpx.TransportError as exc:
            return one_line(exc), 0.0
        if response.is_success:
            return None
        error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        if response.status_code not in RETRY_STATUSES:
            raise DeliveryError(f"{self.where} refused the alert: {error}")
        return error, _retry_after(response)


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", 0)), 0.0), MAX_RETRY_AFTER_SECONDS)
    except ValueError:  # an HTTP date: rare enough to fall back on the back-off
        return 0.0


def render_text(alert: Alert) -> str:
    """The plain-text form of an alert: message, then the evidence, then the details."""
    lines = [
        alert.message,
        "",
        f"Severity: {alert.severity}",
        f"Source: {alert.source}",
        f"Raised at: {alert.created_at.isoformat(timespec='seconds')}",
        f"Key: {alert.key}",
    ]
    if alert.evidence:
        lines += ["", "Evidence:"]
        for number, item in enumerate(alert.evidence, 1):
            title = item.get("title") or item.get("text") or item.get("id") or "(untitled)"
            lines.append(f"{number}. {title}")
            if item.get("url"):
                lines.append(f"   {item['url']}")
    details = {key: value for key, value in alert.data.items() if value not in (None, "", [], {})}
    if details:
        lines += ["", "Details:"] + [f"  {key}: {value}" for key, value in details.items()]
    return "\n".join(lines) + "\n"


class EmailSink:
    """Sends a plain-text e-mail through SMTP, with optional STARTTLS and login."""

    def __init__(self, config: EmailSinkConfig, *, name: str = "email") -> None:
        self.config = config
        self.name = name

    def build_message(self, alert: Alert) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"[{alert.severity.upper()}] {alert.title}"
        message["From"] = self.config.sender
        message["To"] = ", ".join(self.config.recipients)
        created = alert.created_at
        message["Date"] = format_datetime(created if created.tzinfo else created.replace(tzinfo=timezone.utc))
        message["Message-ID"] = make_msgid(domain=self.config.sender.rpartition("@")[2] or None)
        message["X-Suite-Alert-Key"] = alert.key
        message.set_content(render_text(alert))
        return message

    def send(self, alert: Alert) -> None:
        config = self.config
        with smtplib.SMTP(config.host, config.port, timeout=config.timeout) as smtp:
            if config.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if config.username:
                password = config.password.get_secret_value() if config.password else ""
                smtp.login(config.username, password)
            smtp.send_message(self.build_message(alert))


@dataclass
class Delivery:
    """What became of one alert at one sink."""

    sink: str
    ok: bool
    error: str | None = None


FailureHandler = Callable[[str, str, Exception], None]


class AlertDispatcher:
    """Sends every alert to every sink, in order; one sink failing never stops the others."""

    def __init__(self, sinks: list[tuple[str, AlertSink]], on_failure: FailureHandler | None = None) -> None:
        self._owned = list(sinks)
        self.sinks: list[AlertSink] = [sink for _, sink in self._owned]
        self.on_failure = on_failure

    def dispatch(self, alert: Alert) -> list[Delivery]:
        """Deliver ``alert`` to each sink; one :class:`Delivery` per sink, in sink order."""
        deliveries = []
        for owner, sink in self._owned:
            name = getattr(sink, "name", type(sink).__name__)
            try:
                sink.send(alert)
            except Exception as exc:
                log.warning("alert %s: sink %s failed: %s", alert.key, name, one_line(exc))
                self._report(owner, exc)
                deliveries.append(Delivery(name, False, one_line(exc)))
            else:
                deliveries.append(Delivery(name, True))
            metrics.record_delivery(name, deliveries[-1].ok)
        return deliveries

    def _report(self, owner: str, exc: Exception) -> None:
        if self.on_failure is None:
            return
        try:
            self.on_failure(owner, "send", exc)
        except Exception:
            log.exception("the alert failure handler raised")


def sinks_from_config(config: AlertsConfig) -> list[AlertSink]:
    """The built-in sinks the ``[alerts]`` section asks for: log, webhooks, e-mail."""
    sinks: list[AlertSink] = [LogSink(format=config.log_format)] if config.log else []
    for hook in config.webhooks:
        sinks.append(WebhookSink(hook.url, hook.timeout, hook.retries, hook.backoff, hook.headers))
    if config.email is not None:
        sinks.append(EmailSink(config.email))
    return sinks


def _suite_version() -> str:
    try:
        return metadata.version("nlp-suite")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "dev"
