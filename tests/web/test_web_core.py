"""The core's pages in a real browser: the home page, offline API docs, the API-key prompt."""

from __future__ import annotations

import httpx
import pytest
from web_support import PLAYWRIGHT_MISSING, screenshot

expect = pytest.importorskip("playwright.sync_api", reason=PLAYWRIGHT_MISSING).expect
pytestmark = pytest.mark.browser

KEY = "web-test-key-0123456789"
PAGES = {"Chat": "/chatbot", "Monitoring": "/sentiment", "Recommendations": "/recommender"}


@pytest.fixture(scope="module")
def server(serve):
    return serve()  # nothing trained: the pages must still load and say what is missing


def test_home_page_lists_every_plugin_page_and_the_readiness(server, open_page):
    page = open_page(server, "/")
    nav = page.get_by_role("navigation", name="Pages")
    for title, path in PAGES.items():
        expect(nav.get_by_role("link", name=title, exact=True)).to_have_attribute("href", path)
        expect(page.locator(".cards").get_by_role("link", name=title)).to_be_visible()
    # /ready is open: with no model trained the page says so, and names the command to run
    expect(page.locator("#ready-summary")).to_contain_text("not ready")
    expect(page.locator("#ready-checks")).to_contain_text("suite train")
    screenshot(page, "home")

    # the same URL stays JSON for API clients
    assert httpx.get(server.url + "/").json()["docs"] == "/docs"
    assert httpx.get(server.url + "/", headers={"Accept": "application/json"}).json()["name"] == "suite"


def test_api_docs_render_without_leaving_the_server(server, open_page):
    page = open_page(server, "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("suite")
    expect(page.get_by_text("/api/chatbot/ask").first).to_be_visible()
    # ReDoc's bundle shows a logo from its CDN: the page's policy makes the browser refuse it
    with page.expect_console_message(lambda message: "cdn.redoc.ly" in message.text):
        page.goto(server.url + "/redoc")
    expect(page.get_by_role("heading", name="suite").first).to_be_visible()
    page.guard.errors[:] = [error for error in page.guard.errors if "Content Security Policy" not in error]
    # open_page fails the test if either page requested anything outside the server


def test_pages_ask_for_the_key_once_when_the_server_requires_one(serve, open_page):
    secured = serve(auth="on", api_keys=[KEY])
    assert httpx.get(secured.url + "/chatbot").status_code == 200  # the page itself is open
    assert httpx.get(secured.url + "/api/chatbot/intents").status_code == 401  # its data is not

    page = open_page(secured, "/chatbot")
    dialog = page.locator("#suite-key-dialog")
    expect(dialog).to_be_visible()
    page.get_by_role("textbox", name="Key").fill("wrong-key-0123456789")
    page.get_by_role("button", name="Use key").click()
    expect(dialog).to_be_visible()  # 401 again: asked again, the wrong key forgotten
    page.get_by_role("textbox", name="Key").fill(KEY)
    page.get_by_role("button", name="Use key").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#intent-list li").first).not_to_have_text("Loading…")
    expect(page.locator("#intent-list")).to_contain_text("balance", ignore_case=True)
    assert page.evaluate("sessionStorage.getItem('suite.apiKey')") == KEY

    # the key is kept for the tab: another page of the suite asks no more
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Recommendations").click()
    expect(page.locator("#user-select")).to_contain_text("No users with history yet")
    expect(dialog).to_be_hidden()
