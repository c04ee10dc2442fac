"""Fixtures of the sentiment plugin tests: contexts, one shared trained model, loopback servers."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from suite.context import SuiteContext

# Only this plugin runs in these tests, whatever else is installed.
OTHER_PLUGINS = sorted({ep.name for ep in entry_points(group="suite.plugins")} - {"sentiment"})
OTHER_PLUGINS_OFF = {name: {"enabled": False} for name in OTHER_PLUGINS}
SMALL_TRAINING = {"max_steps": 20, "batch_size": 16, "learning_rate": 3e-4, "max_length": 48}


def make_context(data_dir: Path, options: dict[str, Any] | None = None, **settings: Any) -> SuiteContext:
    """A context with only this plugin enabled, one torch thread, and the given plugin options."""
    plugins = {**OTHER_PLUGINS_OFF, "sentiment": options or {}}
    training = {"num_threads": 1, "device": "cpu", **settings.pop("training", {})}
    return SuiteContext.create(None, data_dir=data_dir, plugins=plugins, training=training, **settings)


@pytest.fixture(scope="session")
def other_plugins() -> list[str]:
    return OTHER_PLUGINS


@pytest.fixture
def context_factory(tmp_path: Path, started_contexts: Callable[..., SuiteContext]) -> Callable[..., SuiteContext]:
    def factory(options: dict[str, Any] | None = None, data_dir: Path | None = None, **settings: Any) -> SuiteContext:
        return started_contexts(make_context(data_dir or tmp_path / "data", options, **settings))

    return factory


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sentiment and topic models fine-tuned once per session on the shipped sample; the models folder."""
    from plugins.sentiment.data import load_labelled
    from plugins.sentiment.model import train_sentiment_model, train_topic_model

    data_dir = tmp_path_factory.mktemp("sentiment-models")
    ctx = make_context(data_dir)
    try:
        rows = load_labelled("sample:financial_sentences.csv")
        train_sentiment_model(ctx, rows, params=SMALL_TRAINING)
        train_topic_model(ctx, rows, params={**SMALL_TRAINING, "max_steps": 8})
    finally:
        ctx.shutdown()
    return data_dir / "models"


@pytest.fixture
def trained_context(
    trained_models: Path, tmp_path: Path, context_factory: Callable[..., SuiteContext]
) -> Callable[..., SuiteContext]:
    """Like ``context_factory``, with the session's trained models (linked, read-only use)."""

    def factory(options: dict[str, Any] | None = None, **settings: Any) -> SuiteContext:
        data_dir = tmp_path / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        if not (data_dir / "models").exists():
            os.symlink(trained_models, data_dir / "models")
        return context_factory(options, data_dir=data_dir, **settings)

    return factory


# -- loopback HTTP ------------------------------------------------------------------------------
class LoopbackServer:
    """A real HTTP server on 127.0.0.1: serves ``routes`` (path -> (status, content type, body)),
    records every request (method, path, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.requests: list[tuple[str, str, bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                server.requests.append((self.command, self.path, self.rfile.read(length) if length else b""))
                status, content_type, body = server.routes.get(self.path.split("?")[0], (404, "text/plain", b"nope"))
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def json(self, path: str, payload: Any, status: int = 200) -> str:
        self.routes[path] = (status, "application/json", json.dumps(payload).encode())
        return self.base + path

    def raw(self, path: str, body: bytes, content_type: str = "text/plain", status: int = 200) -> str:
        self.routes[path] = (status, content_type, body)
        return self.base + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    yield server
    server.close()


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens (a port bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/feed.xml"
