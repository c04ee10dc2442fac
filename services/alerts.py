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

Additions for the outbox (services.outbox; nothing above changed):
    Alert.idempotency_key: str | None = None   # stable per (alert, sink) delivery; the outbox sets it
    Alert.from_dict(data) -> Alert
    DeliveryError(message, *, permanent=False, retry_after=0.0)  # permanent: sending again cannot help
    WebhookSink.send_once(alert)     # one POST, no sleeping; sends header Idempotency-Key when set
    EmailSink: Message-ID <idempotency_key@sender-domain> when set (stable across attempts)
    AlertDispatcher.sink_names -> list[str]; AlertDispatcher.send_once(sink_name, alert)
    sinks_from_config gives sinks unique names ("webhook https://host", "webhook https://host #2")
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
    idempotency_key: str | None = None  # the same on every attempt of one delivery: receivers drop repeats

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert severity must be one of {', '.join(SEVERITIES)}, not {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; datetimes as ISO 8601."""
        return json.loads(json.dumps(asdict(self), default=_jsonable))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        """The inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        if isinstance(known.get("created_at"), str):
            known["created_at"] = datetime.fromisoformat(known["created_at"])
        return cls(**known)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


@runtime_checkable
class AlertSink(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver one alert or raise; the dispatcher records the failure."""


class DeliveryError(Exception):
    """A sink gave up on an alert.

    ``permanent``: sending the same alert again cannot help (the receiver refused it);
    ``retry_after``: the least number of seconds the receiver asked us to wait.
    """

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


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
    is at least once: receivers should de-duplicate on the ``Idempotency-Key`` header
    (sent when the alert has one, as every outbox delivery does).
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
        with httpx.Client(timeout=self.timeout, headers=self._headers(alert)) as client:
            for attempt in range(self.retries + 1):
                if attempt:
                    time.sleep(max(wait, self.backoff * 2 ** (attempt - 1)))
                try:
                    failure = self._attempt(client, body)
                except DeliveryError as exc:
                    raise DeliveryError(f"{self.where} {exc}", permanent=True) from None
                if failure is None:
                    return
                error, wait = failure
        raise DeliveryError(f"{self.where}: gave up after {self.retries + 1} attempt(s): {error}", retry_after=wait)

    def send_once(self, alert: Alert) -> None:
        """One POST and no sleeping: the outbox worker owns retries and back-off.

        Errors do not repeat the host: the outbox records them under the sink's name.
        """
        body = json.dumps(alert.to_dict(), ensure_ascii=False).encode()
        with httpx.Client(timeout=self.timeout, headers=self._headers(alert)) as client:
            failure = self._attempt(client, body)
        if failure is not None:
            error, wait = failure
            raise DeliveryError(error, retry_after=wait)

    def _headers(self, alert: Alert) -> dict[str, str]:
        if alert.idempotency_key:
            return {**self.headers, "Idempotency-Key": alert.idempotency_key}
        return self.headers

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
            raise DeliveryError(f"refused the alert: {error}", permanent=True)
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
        domain = self.config.sender.rpartition("@")[2] or None
        # A stable Message-ID lets mail servers and clients drop a repeated delivery of the same alert.
        key = alert.idempotency_key
        message["Message-ID"] = f"<{key}@{domain or 'suite.invalid'}>" if key else make_msgid(domain=domain)
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

    @property
    def sink_names(self) -> list[str]:
        """The name of every sink, in order: what the outbox records per delivery."""
        return [_sink_name(sink) for sink in self.sinks]

    def send_once(self, sink_name: str, alert: Alert) -> None:
        """One attempt at one sink (``send_once`` where the sink has it); raises what the sink raised.

        A failure is also reported to ``on_failure`` under the sink's owner.
        """
        found = [(owner, sink) for owner, sink in self._owned if _sink_name(sink) == sink_name]
        if not found:
            raise DeliveryError(f"no sink named '{sink_name}' is configured now")
        owner, sink = found[0]
        try:
            getattr(sink, "send_once", sink.send)(alert)
        except Exception as exc:
            self._report(owner, exc)
            raise

    def dispatch(self, alert: Alert) -> list[Delivery]:
        """Deliver ``alert`` to each sink; one :class:`Delivery` per sink, in sink order."""
        deliveries = []
        for owner, sink in self._owned:
            name = _sink_name(sink)
            try:
                sink.send(alert)
            except Exception as exc:
                log.warning("alert %s: sink %s failed: %s", alert.key, name, one_line(exc))
                self._report(owner, exc)
                deliveries.append(Delivery(name, False, one_line(exc)))
            else:
                deliveries.append(Delivery(name, True))
            metrics.record_delivery(name, "sent" if deliveries[-1].ok else "failed")
        return deliveries

    def _report(self, owner: str, exc: Exception) -> None:
        if self.on_failure is None:
            return
        try:
            self.on_failure(owner, "send", exc)
        except Exception:
            log.exception("the alert failure handler raised")


def _sink_name(sink: AlertSink) -> str:
    return getattr(sink, "name", type(sink).__name__)


def sinks_from_config(config: AlertsConfig) -> list[AlertSink]:
    """The built-in sinks the ``[alerts]`` section asks for: log, webhooks, e-mail.

    Names are unique (the outbox finds a sink by name): a second webhook to the same
    host is ``webhook https://host #2``.
    """
    sinks: list[AlertSink] = [LogSink(format=config.log_format)] if config.log else []
    seen: dict[str, int] = {}
    for hook in config.webhooks:
        sink = WebhookSink(hook.url, hook.timeout, hook.retries, hook.backoff, hook.headers)
        seen[sink.name] = seen.get(sink.name, 0) + 1
        if seen[sink.name] > 1:
            sink.name = f"{sink.name} #{seen[sink.name]}"
        sinks.append(sink)
    if config.email is not None:
        sinks.append(EmailSink(config.email))
    return sinks


def _suite_version() -> str:
    try:
        return metadata.version("nlp-suite")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "dev"
