"""Fixtures for the HTTP tests: contexts with the demo plugin, test clients, live servers.

The built-in plugins are deliberately not used: the app core must work with any plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from http_support import DemoPlugin, LiveServer

from suite.app import create_app
from suite.config import HttpConfig, Settings
from suite.context import SuiteContext


@pytest.fixture
def demo() -> DemoPlugin:
    return DemoPlugin()


@pytest.fixture
def make_ctx(tmp_path: Path, demo: DemoPlugin) -> Callable[..., SuiteContext]:
    """A context in a temp data dir with the demo plugin; keyword arguments go to ``[http]``."""

    def make(database_url: str | None = None, extra_plugins: dict[str, object] | None = None, **http: Any):
        settings = Settings(data_dir=tmp_path / "data", database_url=database_url, http=HttpConfig(**http))
        ctx = SuiteContext(settings)
        ctx.plugins.register(demo, "demo")
        for name, plugin in (extra_plugins or {}).items():
            ctx.plugins.register(plugin, name)
        return ctx

    return make


@pytest.fixture
def make_client(make_ctx: Callable[..., SuiteContext]) -> Iterator[Callable[..., TestClient]]:
    """A TestClient (lifespan running) on an app built from ``make_ctx(**kwargs)``."""
    clients: list[TestClient] = []

    def make(**kwargs: Any) -> TestClient:
        client = TestClient(create_app(make_ctx(**kwargs)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def live_server() -> Iterator[Callable[[FastAPI], LiveServer]]:
    servers: list[LiveServer] = []

    def start(app: FastAPI) -> LiveServer:
        server = LiveServer(app).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)
