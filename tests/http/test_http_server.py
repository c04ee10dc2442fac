"""A real uvicorn server on loopback: auth, error shape and limits over real sockets,
and ``suite serve`` as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from http_support import KEY, OTHER_KEY, auth, free_port
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from suite.app import create_app
from suite.plugins import ENTRY_POINT_GROUP


def test_live_server_auth_errors_and_limits(make_ctx, live_server, demo):
    ctx = make_ctx(auth="on", api_keys=[KEY], max_body_bytes=50_000, rate_limit_per_minute=6)
    server = live_server(create_app(ctx))
    assert demo.events == ["startup"]  # the lifespan ran inside uvicorn
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/health").json() == {"status": "ok"}

        missing = client.get("/api/demo/items/1")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["type"] == "unauthorized"

        assert client.get("/api/demo/items/1", headers=auth()).json() == {"id": 1}
        assert client.get("/api/demo/items/2", headers=auth()).json()["error"]["type"] == "not_found"

        crash = client.get("/api/demo/boom", headers=auth())
        assert crash.status_code == 500
        assert crash.json()["error"]["type"] == "internal"
        assert "Traceback" not in crash.text and "/home/" not in crash.text and "hunter2" not in crash.text

        declared = client.post("/api/demo/count", headers=auth(), content=b"x" * 2_000_000)
        assert declared.status_code == 413 and declared.json()["error"]["type"] == "too_large"

        def body():
            for _ in range(40):
                yield b" " * 4096

        streamed = client.post(
            "/api/demo/count", headers={**auth(), "content-type": "application/json"}, content=body()
        )
        assert streamed.status_code == 413 and streamed.json()["error"]["type"] == "too_large"

        # 3 requests of this key got through the guard so far (413s end before it); 3 tokens remain
        codes = [client.get("/api/demo/items/1", headers=auth()).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = client.get("/api/demo/items/1", headers=auth())
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["type"] == "rate_limited"


# -- `suite serve` ---------------------------------------------------------------------------
def quiet_config(tmp_path: Path, http: str = "rate_limit_per_minute = 1000") -> Path:
    """A config with every installed plugin switched off: this tests the server, not them.

    ``http``: the body of its ``[http]`` table.
    """
    names = sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})
    tables = "".join(f"[plugins.{name}]\nenabled = false\n" for name in names)
    path = tmp_path / "suite.toml"
    path.write_text(f'data_dir = "data"\n[http]\n{http}\n{tables}')
    return path


def suite_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from suite.cli import main; main()", *args]


def start_serve(tmp_path: Path, config: Path, port: int, workers: int) -> subprocess.Popen:
    """``suite serve`` as a user runs it, once it answers ``/health``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SUITE_")}
    process = subprocess.Popen(
        suite_command("--config", str(config), "serve", "--port", str(port), "--workers", str(workers)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise AssertionError(process.stdout.read())
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop_serve(process)
            raise AssertionError("suite serve did not answer /health in time")
        time.sleep(0.3)


def stop_serve(process: subprocess.Popen) -> str:
    """Stop it as Ctrl-C does; its output."""
    process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def test_suite_serve_refuses_an_open_public_server(tmp_path):
    result = subprocess.run(
        suite_command("--config", str(quiet_config(tmp_path)), "serve", "--host", "0.0.0.0"),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SUITE_DEBUG": "0"},
    )
    assert result.returncode != 0
    assert "error:" in result.stderr and "http.api_keys is empty" in result.stderr
    assert "Traceback" not in result.stderr and "Uvicorn running" not in result.stderr


@pytest.mark.slow  # three Python processes start: ~10 s on a busy 2-core machine
def test_suite_serve_with_two_workers(tmp_path):
    port = free_port()
    process = start_serve(tmp_path, quiet_config(tmp_path), port, workers=2)
    try:
        url = f"http://127.0.0.1:{port}"
        plugins = httpx.get(f"{url}/api/plugins", timeout=10).json()  # loopback: no key needed
        assert plugins and all(plugin["status"] == "disabled" for plugin in plugins)
        ready = httpx.get(f"{url}/ready", timeout=30).json()
        assert ready["checks"]["database"]["ok"] is True  # SQLite in the config's data dir
        assert (tmp_path / "data" / "suite.db").exists()
    finally:
        output = stop_serve(process)
    assert "Started parent process" in output or "worker" in output.lower(), output
    assert "Traceback" not in output, output
    assert json.dumps(KEY) not in output


@pytest.mark.slow
@pytest.mark.redis
def test_two_workers_share_the_rate_limit_through_redis_and_sum_their_metrics(tmp_path, redis_url):
    limit, port = 5, free_port()
    http = (
        f'auth = "on"\napi_keys = ["{KEY}", "{OTHER_KEY}"]\nrate_limit_per_minute = {limit}\n'
        f'rate_limit_storage = "{redis_url}"\nrate_limit_prefix = "test-{uuid.uuid4().hex}"'
    )
    process = start_serve(tmp_path, quiet_config(tmp_path, http), port, workers=2)
    url, metrics_dir = f"http://127.0.0.1:{port}", tmp_path / "data" / "metrics" / f"serve-{port}"
    codes: list[int] = []
    try:
        # Bursts of new connections, until both workers have answered some (each writes its own files).
        with ThreadPoolExecutor(4) as pool:
            while len(worker_request_counts(metrics_dir, "/api/plugins")) < 2 or len(codes) <= limit:
                assert len(codes) < 60, f"one worker answered all {len(codes)} requests"
                codes += pool.map(lambda _: httpx.get(f"{url}/api/plugins", headers=auth()).status_code, range(4))
        per_worker = worker_request_counts(metrics_dir, "/api/plugins")
        scraped = httpx.get(f"{url}/metrics", headers=auth(OTHER_KEY), timeout=10)
        assert httpx.get(f"{url}/metrics").status_code == 401  # behind the key, like /api
    finally:
        output = stop_serve(process)
    assert codes.count(200) == limit and codes.count(429) == len(codes) - limit, (codes, per_worker)
    assert len(per_worker) == 2 and all(count >= 1 for count in per_worker.values()), per_worker
    # Whichever worker answered the scrape, it counted the requests both served.
    totals = {
        status: sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
        if sample.name == "suite_http_requests_total" and sample.labels["route"] == "/api/plugins"
        for status in [sample.labels["status"]]
    }
    assert totals == {"200": limit, "429": len(codes) - limit}
    assert "Traceback" not in output, output


def worker_request_counts(metrics_dir: Path, route: str) -> dict[str, float]:
    """Requests to ``route`` each worker counted, by the worker's file (prometheus-client's own reader)."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        registry = CollectorRegistry()
        with tempfile.TemporaryDirectory() as one:
            shutil.copy(path, one)
            MultiProcessCollector(registry, path=one)
            counts[path.stem] = sum(
                sample.value
                for family in registry.collect()
                for sample in family.samples
                if sample.name == "suite_http_requests_total" and sample.labels.get("route") == route
            )
    return {worker: count for worker, count in counts.items() if count}
