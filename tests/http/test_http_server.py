"""A real uvicorn server on loopback: auth, error shape and limits over real sockets,
and ``suite serve`` as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from http_support import KEY, auth, free_port

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
def quiet_config(tmp_path: Path) -> Path:
    """A config with every installed plugin switched off: this tests the server, not them."""
    names = sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})
    tables = "".join(f"[plugins.{name}]\nenabled = false\n" for name in names)
    path = tmp_path / "suite.toml"
    path.write_text(f'data_dir = "data"\n[http]\nrate_limit_per_minute = 1000\n{tables}')
    return path


def suite_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from suite.cli import main; main()", *args]


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
    env = {key: value for key, value in os.environ.items() if not key.startswith("SUITE_")}
    process = subprocess.Popen(
        suite_command("--config", str(quiet_config(tmp_path)), "serve", "--port", str(port), "--workers", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "suite serve did not answer /health in time"
            time.sleep(0.3)
        plugins = httpx.get(f"{url}/api/plugins", timeout=10).json()  # loopback: no key needed
        assert plugins and all(plugin["status"] == "disabled" for plugin in plugins)
        ready = httpx.get(f"{url}/ready", timeout=30).json()
        assert ready["checks"]["database"]["ok"] is True  # SQLite in the config's data dir
        assert (tmp_path / "data" / "suite.db").exists()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert "Started parent process" in output or "worker" in output.lower(), output
    assert "Traceback" not in output, output
    assert json.dumps(KEY) not in output
