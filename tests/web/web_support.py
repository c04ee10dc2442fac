"""Helpers of the browser tests: settings, a guard on what pages do, screenshots, a live uvicorn server."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from live_server import LiveServer as BaseLiveServer

from suite.context import SuiteContext

CHROMIUM = Path(os.environ.get("SUITE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PLAYWRIGHT_MISSING = "playwright (the test extra) is not installed: pip install -e '.[test]' (no `playwright install`)"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
UPDATE_SCREENSHOTS = os.environ.get("SUITE_UPDATE_SCREENSHOTS") == "1"
VIEWPORT = {"width": 1280, "height": 860}
TIMEOUT_MS = 30_000  # a model call on a loaded 2-core machine can take seconds


@dataclass
class PageGuard:
    """What a page tried that it must not: requests off the server, script errors."""

    origin: str
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def route(self, route: Any) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" == self.origin:
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def console(self, message: Any) -> None:
        # HTTP error statuses are the API's answers (401, 503...), which the pages handle;
        # anything else logged as an error (a CSP refusal, an uncaught rejection) is a bug.
        if message.type == "error" and "the server responded with a status of" not in message.text:
            self.errors.append(message.text)

    def check(self) -> None:
        assert not self.outside, f"the page requested outside the suite: {self.outside}"
        assert not self.errors, f"script errors on the page: {self.errors}"


def screenshot(page: Any, name: str, full_page: bool = True) -> Path | None:
    """Save ``docs/screenshots/<name>.png`` when SUITE_UPDATE_SCREENSHOTS=1."""
    if not UPDATE_SCREENSHOTS:
        return None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=full_page)
    return path


class LiveServer(BaseLiveServer):
    """The suite's app for ``ctx`` on a free loopback port, in a thread of this process."""

    def __init__(self, ctx: SuiteContext, **http: Any) -> None:
        from suite.app import create_app
        from suite.config import HttpConfig

        self.ctx = ctx
        settings = {**ctx.settings.http.model_dump(), "host": "127.0.0.1", **http}
        super().__init__(create_app(ctx, HttpConfig.model_validate(settings)))


def make_context(data_dir: Path, **plugins: dict[str, Any]) -> SuiteContext:
    """All built-in plugins enabled (the nav bar shows every page), one torch thread."""
    import torch

    torch.set_num_threads(1)
    return SuiteContext.create(None, data_dir=data_dir, plugins=plugins, training={"num_threads": 1, "device": "cpu"})
