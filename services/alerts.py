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
"""
