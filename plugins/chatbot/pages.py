"""The chat page (``/chatbot``): a conversation with the bot through ``/api/chatbot``.

Each answer shows where it came from (a template, knowledge-base passages with links, a
clarifying question, a hand-off) and has thumbs up/down buttons that write the rating to
the feedback log (``POST /api/chatbot/feedback``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from plugins.chatbot.options import PLUGIN
from suite.web import PageSet

if TYPE_CHECKING:
    from suite.context import SuiteContext

pages = PageSet(PLUGIN, Path(__file__).parent / "web")


@pages.page("", title="Chat", description="Talk to the customer-service bot; see each answer's source and rate it")
def chat(request: Request) -> HTMLResponse:
    return pages.render(request, "chat.html", title="Chat", script="chat.js")


def build_router(ctx: SuiteContext) -> APIRouter:
    return pages.router
