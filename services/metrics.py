"""Prometheus metrics of the suite: the metric objects, and their exposition.

Every process records into prometheus-client's default registry. A server with several worker
processes sets ``PROMETHEUS_MULTIPROC_DIR`` (``suite serve --workers N`` does) before any of
them starts: each worker then writes its figures to files there, and :func:`exposition` adds up
every worker's, whichever worker answers the scrape.

Names and labels (label values come from configuration or route templates, never from
request data, so the number of series stays bounded):

- ``suite_http_requests_total{method,route,status}`` and
  ``suite_http_request_duration_seconds{method,route}``: ``route`` is the route's template
  (``/api/sentiment/alerts/{alert_id}``), ``unmatched`` when no route ran.
- ``suite_inference_batch_size`` and ``suite_inference_batch_seconds``: each forward pass of a
  :class:`services.training.inference.TextClassifier`.
- ``suite_job_runs_total{plugin,job,outcome}``: scheduled and manual job runs,
  ``outcome`` one of ``ok``, ``failed``, ``interrupted``.
- ``suite_alert_deliveries_total{sink,outcome}``: one per delivery attempt, ``outcome`` one of
  ``sent``, ``failed`` (retried later) or ``given_up``.

The API serves them at ``/metrics``. Job runs and alert deliveries mostly happen in the
scheduler process, which serves its own on ``127.0.0.1:<scheduler.metrics_port>``.
"""

from __future__ import annotations

import os
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)

from services.errors import ConfigError

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "suite_http_requests_total", "HTTP requests answered, by route template and status", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "suite_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
INFERENCE_BATCH_SIZE = Histogram(
    "suite_inference_batch_size",
    "Texts per forward pass of a fine-tuned classifier",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
INFERENCE_SECONDS = Histogram(
    "suite_inference_batch_seconds",
    "Time of one forward pass of a fine-tuned classifier (padding to probabilities)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
JOB_RUNS = Counter("suite_job_runs_total", "Job runs, by outcome", ["plugin", "job", "outcome"])
ALERT_DELIVERIES = Counter(
    "suite_alert_deliveries_total", "Alert deliveries, one per alert and sink, by outcome", ["sink", "outcome"]
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


def observe_inference(batch_size: int, seconds: float) -> None:
    INFERENCE_BATCH_SIZE.observe(batch_size)
    INFERENCE_SECONDS.observe(seconds)


def record_job_run(plugin: str, job: str, outcome: str) -> None:
    JOB_RUNS.labels(plugin, job, outcome).inc()


def record_delivery(sink: str, outcome: str) -> None:
    """Count one delivery attempt: ``outcome`` is ``sent``, ``failed`` or ``given_up``."""
    ALERT_DELIVERIES.labels(sink, outcome).inc()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_ENV) or None


def exposition() -> tuple[bytes, str]:
    """The current figures in Prometheus text format, and their content type.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, the figures of every process writing there, summed.
    """
    registry = REGISTRY
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve_metrics(port: int, host: str = "127.0.0.1") -> WSGIServer:
    """Serve this process's figures at ``http://host:port/metrics`` from a daemon thread, for a
    process without an HTTP app of its own (the scheduler). No API key: keep it on loopback.

    :raises ConfigError: the port cannot be bound (one line). Stop it with ``shutdown()``.
    """
    try:
        server, _thread = start_http_server(port, addr=host)
    except OSError as exc:
        raise ConfigError(f"metrics port {host}:{port}: {exc.strerror or exc}") from None
    return server
