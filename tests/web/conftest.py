"""Fixtures of the browser tests: Debian's chromium through Playwright, a real uvicorn server per module.

Each module starts one server on a free loopback port with its own data dir and trains
only the model its page needs (few steps). Every page opened here records the requests it
tries to send outside the server (they are blocked) and the errors its scripts raise;
the test fails if there are any.

``SUITE_UPDATE_SCREENSHOTS=1`` writes the screenshots of ``docs/screenshots/`` (and trains
with the plugins' default settings, so the pictures show a well-trained model).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from web_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PLAYWRIGHT_MISSING,
    TIMEOUT_MS,
    VIEWPORT,
    LiveServer,
    PageGuard,
    make_context,
)

from suite.context import SuiteContext


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(PLAYWRIGHT_MISSING)
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium, or set SUITE_TEST_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """``open_page(server, path)``: a fresh browser tab on the server's page, guarded (``page.guard``)."""
    opened: list[tuple[Any, PageGuard]] = []

    def open_(server: LiveServer, path: str, **context_options: Any) -> Any:
        context = browser.new_context(viewport=VIEWPORT, **context_options)
        context.set_default_timeout(TIMEOUT_MS)
        guard = PageGuard(server.url)
        context.route("**/*", guard.route)
        page = context.new_page()
        page.on("console", guard.console)
        page.on("pageerror", lambda error: guard.errors.append(str(error)))
        page.guard = guard
        opened.append((context, guard))
        page.goto(server.url + path)
        return page

    yield open_
    for context, guard in opened:
        context.close()
        guard.check()


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Callable[..., LiveServer]]:
    """``serve(train, plugins=..., **http)``: a context on a fresh data dir, ``train(ctx)`` run, a live server.

    Asks for the browser first, so a machine without one skips before training anything.
    The server's lifespan shuts the context down when the module's tests are done.
    """
    started: list[LiveServer] = []

    def start(train: Callable[[SuiteContext], Any] | None = None, plugins: dict | None = None, **http: Any):
        ctx = make_context(tmp_path_factory.mktemp("web"), **(plugins or {}))
        ctx.startup()
        try:
            if train:
                train(ctx)
            server = LiveServer(ctx, **http).__enter__()
        except BaseException:
            ctx.shutdown()
            raise
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)
