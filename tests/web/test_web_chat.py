"""The chat page in a real browser: a conversation, each answer's source, ratings in the feedback log."""

from __future__ import annotations

import re

import pytest
from web_support import PLAYWRIGHT_MISSING, UPDATE_SCREENSHOTS, screenshot

from plugins.chatbot.store import ConversationStore

expect = pytest.importorskip("playwright.sync_api", reason=PLAYWRIGHT_MISSING).expect
pytestmark = [pytest.mark.browser, pytest.mark.slow]

SOURCES = re.compile(r"^(template|retrieval|clarify|handoff|refusal)$")
FAQ_QUESTION = "What are your branch opening hours?"  # word for word in the sample FAQ


@pytest.fixture(scope="module")
def server(serve):
    # A few steps: the intent model is unsure, so questions go to the knowledge base or a person.
    overrides = {"progress": False} if UPDATE_SCREENSHOTS else {"progress": False, "max_steps": 4}
    return serve(lambda ctx: ctx.training_task("chatbot:intent").run(ctx, overrides))


def send(page, message: str):
    """Send ``message``; the bot's answer to it (a locator that stays on that answer)."""
    answers = page.locator(".turn.bot:not(.pending)")
    before = answers.count()
    page.get_by_role("textbox", name="Message").fill(message)
    page.get_by_role("button", name="Send").click()
    expect(answers).to_have_count(before + 1)
    answer = answers.nth(before)
    expect(answer).not_to_have_class(re.compile("error"))
    return answer


def test_chat_shows_the_answer_and_its_source_and_records_ratings(server, open_page):
    page = open_page(server, "/chatbot")
    expect(page.locator("#intent-list")).to_contain_text("balance", ignore_case=True)  # from /api/chatbot/intents
    if UPDATE_SCREENSHOTS:
        send(page, "what is my balance")

    answer = send(page, FAQ_QUESTION)
    expect(page.locator(".turn.user").last).to_have_text(FAQ_QUESTION)
    expect(answer.locator(".answer")).to_contain_text("Saturday")
    expect(answer.locator(".badge.source")).to_have_text("retrieval")
    citation = answer.get_by_role("list", name="Sources").locator("li").first
    expect(citation).to_contain_text(FAQ_QUESTION)
    expect(citation).to_contain_text("faq")

    exchange_id = int(answer.get_attribute("data-exchange-id"))
    store = ConversationStore(server.ctx.database)
    assert store.exchange(exchange_id)["rating"] is None
    helpful = answer.get_by_role("button", name="Helpful", exact=True)
    helpful.click()
    expect(helpful).to_have_attribute("aria-pressed", "true")
    expect(answer).to_contain_text("Thanks for the feedback")
    assert store.exchange(exchange_id)["rating"] == "up"

    not_helpful = answer.get_by_role("button", name="Not helpful")
    not_helpful.click()
    expect(not_helpful).to_have_attribute("aria-pressed", "true")
    expect(helpful).to_have_attribute("aria-pressed", "false")
    assert store.exchange(exchange_id)["rating"] == "down"

    # the conversation goes on: the next answer belongs to the same conversation
    handoff = send(page, "I want to talk to a person")
    expect(handoff.locator(".badge.source")).to_have_text(SOURCES)
    second_id = int(handoff.get_attribute("data-exchange-id"))
    assert second_id != exchange_id
    assert store.exchange(second_id)["session_id"] == store.exchange(exchange_id)["session_id"]
    if UPDATE_SCREENSHOTS:
        answer.get_by_role("button", name="Helpful", exact=True).click()
        expect(answer).to_contain_text("Thanks for the feedback")
    screenshot(page, "chat")

    page.get_by_role("button", name="New conversation").click()
    expect(page.locator(".turn")).to_have_count(1)
