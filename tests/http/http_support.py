"""Helpers for the HTTP tests: a demo plugin, API keys, a live uvicorn server."""

from __future__ import annotations

import socket

from fastapi import APIRouter
from live_server import LiveServer  # noqa: F401  (re-exported for the HTTP tests)
from pydantic import BaseModel

from suite import hookimpl
from suite.context import SuiteContext
from suite.errors import ConfigError, DataError, NotFoundError
from suite.http import PUBLIC, check_texts

KEY = "test-key-0123456789abcdef"
OTHER_KEY = "other-key-0123456789abcdef"
SECRET_PATH = "/home/someone/secret-project/suite/plugins/demo/model.py"


class TextsIn(BaseModel):
    texts: list[str]


class DemoPlugin:
    """Contributes ``/api/demo/...`` and records its life cycle."""

    def __init__(self) -> None:
        self.events: list[str] = []

    @hookimpl
    def suite_startup(self, ctx: SuiteContext) -> None:
        self.events.append("startup")

    @hookimpl
    def suite_shutdown(self, ctx: SuiteContext) -> None:
        self.events.append("shutdown")

    @hookimpl
    def suite_http_routers(self, ctx: SuiteContext) -> APIRouter:
        router = APIRouter(prefix="/api/demo", tags=["demo"])

        @router.get("/items/{item_id}")
        def item(item_id: int) -> dict[str, int]:
            if item_id != 1:
                raise NotFoundError(f"no item {item_id}")
            return {"id": 1}

        @router.get("/boom")
        def boom() -> None:
            raise RuntimeError(f"database password hunter2 in {SECRET_PATH}")

        @router.post("/bad-data")
        def bad_data() -> None:
            raise DataError(f"column 'text' missing in {SECRET_PATH}")

        @router.post("/bad-config")
        def bad_config() -> None:
            raise ConfigError("plugins.demo.threshold must be below 1")

        @router.post("/count")
        def count(body: TextsIn) -> dict[str, int]:
            return {"count": len(check_texts(body.texts))}

        @router.get("/page", openapi_extra=PUBLIC)
        def page() -> dict[str, str]:
            return {"page": "public"}

        return router


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
