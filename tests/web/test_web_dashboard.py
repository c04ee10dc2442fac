"""The monitoring dashboard in a real browser: watchlist, chart, alerts with evidence, acknowledgement."""

from __future__ import annotations

import re

import pytest
from web_support import PLAYWRIGHT_MISSING, UPDATE_SCREENSHOTS, screenshot

from plugins.sentiment.monitor import monitor_for

expect = pytest.importorskip("playwright.sync_api", reason=PLAYWRIGHT_MISSING).expect
pytestmark = [pytest.mark.browser, pytest.mark.slow]

NORTHWIND = "Northwind Bank"  # the sample's company whose tone turns: the monitor alerts on it
WATCHLIST = ("Northwind Bank", "Contoso Motors", "Fabrikam Energy", "Litware Systems")
SMALL_TRAINING = {"max_steps": 8, "batch_size": 16, "learning_rate": 5e-4, "max_length": 48}


def train_and_run(ctx) -> None:
    overrides = {} if UPDATE_SCREENSHOTS else SMALL_TRAINING
    ctx.training_task("sentiment:sentiment").run(ctx, overrides)
    record = monitor_for(ctx).run_once()  # the shipped sample sources, watchlist and rules
    assert record.status == "ok", record.messages
    assert record.counts["alerts"] >= 1
    assert ctx.alert_outbox.deliver_due().sent == record.counts["alerts"]  # the log sink's deliveries


@pytest.fixture(scope="module")
def server(serve):
    return serve(train_and_run)


def test_dashboard_shows_the_watchlist_a_chart_and_acknowledges_an_alert(server, open_page):
    store = monitor_for(server.ctx).store
    page = open_page(server, "/sentiment")

    rows = page.locator("#watchlist tbody tr")
    expect(rows).to_have_count(len(WATCHLIST))
    for name in WATCHLIST:
        expect(page.locator("#watchlist")).to_contain_text(name)
    northwind = rows.filter(has_text=NORTHWIND)
    expect(northwind).to_have_attribute("aria-selected", "true")  # the entity with open alerts comes first
    expect(northwind.locator("td").nth(4)).not_to_have_text("0")

    chart = page.get_by_role("img", name=re.compile(f"^{NORTHWIND}: mean sentiment"))
    expect(chart).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())
    expect(page.locator("#last-run")).to_contain_text("ok")

    alert = page.locator(".alert.open").filter(has_text=NORTHWIND).first
    expect(alert).to_be_visible()
    alert_id = int(alert.get_attribute("data-alert-id"))
    assert not store.alert(alert_id).acknowledged
    expect(alert.locator(".delivery")).to_have_text("log: sent")  # each sink's delivery state

    # evidence: the documents behind the alert, their text fetched from the API
    alert.locator("summary").click()
    evidence = alert.locator(".evidence li").first
    evidence.get_by_role("button").click()
    expect(evidence.locator(".doc-text")).to_be_visible()
    expect(evidence.locator(".doc-text")).not_to_be_empty()
    expect(evidence.get_by_role("link", name="source ↗")).to_have_attribute("href", re.compile("^https://"))

    page.get_by_role("textbox", name="Acknowledge as").fill("ops-test")
    alert.get_by_role("button", name="Acknowledge").click()
    acknowledged = page.locator(f'.alert[data-alert-id="{alert_id}"]')
    expect(acknowledged.locator(".alert-state")).to_have_text("Acknowledged by ops-test")
    expect(acknowledged).to_have_class(re.compile(r"\backnowledged\b"))
    expect(acknowledged.get_by_role("button", name="Acknowledge")).to_have_count(0)
    record = store.alert(alert_id)
    assert record.acknowledged and record.acknowledged_by == "ops-test"
    screenshot(page, "dashboard")

    # after a reload the acknowledged alert is out of the open list, and back with "show acknowledged"
    page.reload()
    expect(page.locator("#alerts")).not_to_contain_text("Loading")
    expect(page.locator(f'.alert[data-alert-id="{alert_id}"]')).to_have_count(0)
    page.get_by_role("checkbox", name="show acknowledged").check()
    expect(page.locator(f'.alert[data-alert-id="{alert_id}"] .alert-state')).to_have_text("Acknowledged by ops-test")
