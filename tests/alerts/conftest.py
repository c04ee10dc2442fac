"""Real servers on loopback for the alert sinks: an HTTP webhook receiver and an SMTP server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict


@dataclass
class WebhookServer:
    """Answers each POST with the next scripted (status, delay seconds); 200 once the script runs out."""

    url: str
    script: list[tuple[int, float]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    state = WebhookServer(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                state.received.append(Received(self.path, dict(self.headers), body))
                status, delay = state.script.pop(0) if state.script else (200, 0.0)
            time.sleep(delay)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-token"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on (free again once the probe closes)."""
    return free_port()


@dataclass
class SmtpServer:
    port: int
    messages: list = field(default_factory=list)  # aiosmtpd envelopes
    logins: list[str] = field(default_factory=list)


def _start_smtp(**server_options) -> tuple[SmtpServer, object]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    state = SmtpServer(port=free_port())

    class Handler:
        async def handle_DATA(self, server, session, envelope) -> str:
            state.messages.append(envelope)
            return "250 OK"

    def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (auth_data.login, auth_data.password) == (b"alerts", b"s3cret")
        if ok:
            state.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    controller = Controller(
        Handler(), hostname="127.0.0.1", port=state.port, authenticator=authenticate, **server_options
    )
    controller.start()
    return state, controller


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """Plain SMTP; AUTH allowed without TLS (loopback only)."""
    pytest.importorskip("aiosmtpd", reason="aiosmtpd (the test extra) is not installed: pip install -e '.[test]'")
    state, controller = _start_smtp(auth_require_tls=False)
    yield state
    controller.stop()


@pytest.fixture
def tls_smtp_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """SMTP that requires STARTTLS, with a self-signed certificate the client is told to trust."""
    pytest.importorskip("aiosmtpd", reason="aiosmtpd (the test extra) is not installed: pip install -e '.[test]'")
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # what ssl.create_default_context() trusts
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    state, controller = _start_smtp(tls_context=context, require_starttls=True)
    yield state
    controller.stop()
