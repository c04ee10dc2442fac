"""``/metrics``: requests by route template and status, latency, inference, job runs, alert deliveries.

The figures live in the process-wide Prometheus registry, so each test compares them before and after.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from http_support import KEY, auth, free_port
from prometheus_client.parser import text_string_to_metric_families

from services.alerts import Alert, AlertDispatcher, LogSink
from suite.errors import ConfigError

ITEM_ROUTE = "/api/demo/items/{item_id}"


def scrape(client, **headers: str) -> Callable[..., float]:
    """GET /metrics; return a lookup ``value(sample_name, **labels)`` (0 when absent)."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = [sample for family in text_string_to_metric_families(response.text) for sample in family.samples]

    def value(name: str, **labels: str) -> float:
        found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
        return sum(found)

    return value


def test_requests_are_counted_by_route_template_and_status_and_timed(make_client):
    client = make_client()
    before = scrape(client)
    for _ in range(3):
        assert client.get("/api/demo/items/1").status_code == 200
    assert client.get("/api/demo/items/2").status_code == 404
    assert client.get("/no/such/path").status_code == 404
    assert client.post("/api/demo/count", content=b"x" * 2_000_000).status_code == 413  # refused before routing
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return after(name, **labels) - before(name, **labels)

    requests = "suite_http_requests_total"
    assert delta(requests, method="GET", route=ITEM_ROUTE, status="200") == 3
    assert delta(requests, method="GET", route=ITEM_ROUTE, status="404") == 1
    assert delta(requests, route="unmatched", status="404") == 1
    assert delta(requests, route="unmatched", status="413") == 1
    assert delta(requests, route="/metrics", status="200") == 1  # the first scrape
    assert after(requests, route="/api/demo/items/2") == 0  # never the raw path
    latency = "suite_http_request_duration_seconds"
    assert delta(f"{latency}_count", method="GET", route=ITEM_ROUTE) == 4
    assert delta(f"{latency}_bucket", method="GET", route=ITEM_ROUTE, le="+Inf") == 4
    assert 0 < delta(f"{latency}_sum", method="GET", route=ITEM_ROUTE) < 10


def test_metrics_need_the_key_like_the_api_and_can_be_switched_off(make_client):
    guarded = make_client(auth="on", api_keys=[KEY])
    refused = guarded.get("/metrics")
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "unauthorized"
    assert scrape(guarded, **auth())("suite_http_requests_total", status="401") >= 1
    assert make_client(metrics=False).get("/metrics").status_code == 404


def test_alert_deliveries_and_job_runs_are_counted(make_client, tmp_path):
    from sqlalchemy import create_engine

    from services.scheduling import JobSpec, SchedulerService
    from services.scheduling.migrations import HISTORY as JOBSTORE_HISTORY
    from services.schema import prepare
    from suite.config import SchedulerConfig

    client = make_client()
    before = scrape(client)

    class Broken:
        name = "broken"

        def send(self, alert: Alert) -> None:
            raise RuntimeError("down")

    dispatcher = AlertDispatcher([("suite", LogSink()), ("suite", Broken())])
    for _ in range(2):
        dispatcher.dispatch(Alert(key="k", title="t", message="m", severity="info", source="demo"))

    def fail() -> None:
        raise ValueError("no")

    jobs = [
        JobSpec("demo-ok", lambda: None, "interval", {"minutes": 5}, plugin="demo"),
        JobSpec("demo-fails", fail, "interval", {"minutes": 5}, plugin="demo"),
    ]
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    prepare(create_engine(url), [JOBSTORE_HISTORY], upgrade_existing=True)  # the run log's table
    with SchedulerService(SchedulerConfig(), url, jobs) as service:
        service.run_now("demo-ok")
        service.run_now("demo-ok")
        service.run_now("demo-fails")
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return after(name, **labels) - before(name, **labels)

    deliveries = "suite_alert_deliveries_total"
    assert delta(deliveries, sink="log", outcome="sent") == 2
    assert delta(deliveries, sink="broken", outcome="failed") == 2
    assert delta(deliveries, sink="log", outcome="failed") == 0
    runs = "suite_job_runs_total"
    assert delta(runs, plugin="demo", job="demo-ok", outcome="ok") == 2
    assert delta(runs, plugin="demo", job="demo-fails", outcome="failed") == 1


@pytest.fixture(scope="module")
def tiny_classifier():
    """A randomly initialised two-layer BERT with the packaged backbone's tokenizer: real forward passes, fast."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from services.backbone import resolve_backbone
    from services.training import TextClassifier

    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("default"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=2,
    )
    return TextClassifier(BertForSequenceClassification(config), tokenizer, device=torch.device("cpu"))


def test_inference_batches_are_measured(make_client, tiny_classifier):
    client = make_client()
    before = scrape(client)
    tiny_classifier.predict([f"text number {n}" for n in range(10)], batch_size=4)  # batches of 4, 4 and 2
    after = scrape(client)
    sizes, seconds = "suite_inference_batch_size", "suite_inference_batch_seconds"
    assert after(f"{sizes}_count") - before(f"{sizes}_count") == 3
    assert after(f"{sizes}_sum") - before(f"{sizes}_sum") == 10
    assert after(f"{sizes}_bucket", le="2.0") - before(f"{sizes}_bucket", le="2.0") == 1
    assert after(f"{seconds}_count") - before(f"{seconds}_count") == 3
    assert after(f"{seconds}_sum") > before(f"{seconds}_sum")


def test_a_process_without_the_api_serves_its_own_metrics_on_loopback():
    from services.metrics import record_job_run, serve_metrics

    port = free_port()
    server = serve_metrics(port)
    try:
        record_job_run("demo", "demo-served", "ok")
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert 'suite_job_runs_total{job="demo-served",outcome="ok",plugin="demo"} 1.0' in response.text
        with pytest.raises(ConfigError) as caught:
            serve_metrics(port)  # taken
        assert str(caught.value).startswith(f"metrics port 127.0.0.1:{port}: ")
    finally:
        server.shutdown()
        server.server_close()
