"""The recommendations page in a real browser: pick a user, see what each item matched, open similar items."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from web_support import PLAYWRIGHT_MISSING, UPDATE_SCREENSHOTS, screenshot

import plugins.recommender

expect = pytest.importorskip("playwright.sync_api", reason=PLAYWRIGHT_MISSING).expect
pytestmark = [pytest.mark.browser, pytest.mark.slow]

SAMPLE = Path(plugins.recommender.__file__).parent / "data"
USER = "kira"


def history_titles(user: str) -> set[str]:
    titles = {}
    with (SAMPLE / "items.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            item = json.loads(line)
            titles[item["id"]] = item["title"]
    with (SAMPLE / "interactions.csv").open(encoding="utf-8") as rows:
        return {titles[row["item"]] for row in csv.DictReader(rows) if row["user"] == user}


@pytest.fixture(scope="module")
def server(serve):
    overrides = {"progress": False} if UPDATE_SCREENSHOTS else {"max_steps": 2, "batch_size": 8, "max_pairs": 16}
    return serve(lambda ctx: ctx.training_task("recommender").run(ctx, overrides))


def test_pick_a_user_see_matched_history_and_similar_items(server, open_page):
    page = open_page(server, "/recommender")
    picker = page.get_by_role("combobox", name="User")
    expect(picker.locator("option", has_text=f"{USER} (")).to_have_count(1)
    picker.select_option(USER)

    expect(page.get_by_role("heading", name=f"Recommended for {USER}")).to_be_visible()
    recs = page.locator("#results .rec")
    expect(recs).to_have_count(10)
    history = history_titles(USER)
    recommended = recs.locator("header strong").all_inner_texts()
    assert not set(recommended) & history, "a recommendation the user has already seen"
    matched = page.locator("#results .matched")
    expect(matched.first).to_be_visible()
    for text in matched.all_inner_texts():
        title = re.sub(r" \([0-9.]+\)$", "", text)
        assert title in history, f"'{title}' is not in {USER}'s history"
    expect(page).to_have_url(re.compile(f"[?&]user={USER}"))

    first = recs.first
    first_title = first.locator("header strong").inner_text()
    first.get_by_role("button", name="Similar items").click()
    panel = page.locator("#similar-panel")
    expect(panel.get_by_role("heading")).to_have_text(f"Similar to {first_title}")
    similar = panel.locator(".rec")
    expect(similar.first).to_be_visible()
    expect(panel.locator("#item-detail")).not_to_be_empty()
    assert first_title not in similar.locator("header strong").all_inner_texts()
    expect(first).to_have_class(re.compile(r"\bselected\b"))
    screenshot(page, "recommendations", full_page=False)  # the first screenful

    # someone without history: described interests
    page.get_by_role("textbox", name="Interests").fill("hiking trips and camping gear")
    page.get_by_role("textbox", name="Interests").press("Enter")
    expect(page.get_by_role("heading", name=re.compile("Recommended for .hiking trips"))).to_be_visible()
    expect(recs.first).to_be_visible()
    expect(page.locator("#results .matched")).to_have_count(0)  # no history to match

    page.goto(f"{server.url}/recommender?user={USER}")  # the URL keeps the choice
    expect(page.get_by_role("heading", name=f"Recommended for {USER}")).to_be_visible()
    expect(recs).to_have_count(10)
