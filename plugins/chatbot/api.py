"""HTTP routes: ``POST /api/chatbot/ask``, ``POST /api/chatbot/feedback``, ``GET /api/chatbot/intents``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from plugins.chatbot.engine import Chatbot
from suite.http.limits import SqlInt

if TYPE_CHECKING:
    from suite.context import SuiteContext


class AskRequest(BaseModel):
    message: str = Field(..., description="the customer's message")
    conversation_id: str | None = Field(None, description="continue this conversation; omit to start one")


class CitationOut(BaseModel):
    id: str
    title: str
    doc: str
    kind: str
    url: str | None = None
    snippet: str
    score: float


class AskResponse(BaseModel):
    answer: str
    source: Literal["template", "retrieval", "clarify", "out_of_scope", "handoff", "refusal"]
    conversation_id: str
    exchange_id: int | None
    intent: str | None
    confidence: float | None
    top2: list[tuple[str, float]]
    citations: list[CitationOut]
    handoff_reason: str | None
    out_of_scope_reason: str | None
    awaiting_slot: str | None
    clarify: list[str]
    slots: dict[str, str]
    model_version: str | None
    latency_ms: float


class FeedbackRequest(BaseModel):
    exchange_id: SqlInt
    rating: Literal["up", "down"] | None = None
    corrected_intent: str | None = Field(None, description="the intent the message really had")


class FeedbackResponse(BaseModel):
    exchange_id: int
    rating: str | None
    corrected_intent: str | None


class IntentOut(BaseModel):
    name: str
    title: str
    slots: list[str]
    has_template: bool
    handoff: bool


def build_router(ctx: SuiteContext) -> APIRouter:
    from suite.http.limits import check_text

    router = APIRouter(prefix="/api/chatbot", tags=["chatbot"])
    bot = Chatbot(ctx)

    @router.post("/ask", response_model=AskResponse)
    def ask(request: AskRequest) -> dict:
        """Answer one message: template, clarifying question, knowledge-base answer, out-of-scope reply or hand-off."""
        check_text(request.message, allow_empty=True)  # the server's own length limit (413)
        return bot.answer(request.message, request.conversation_id).to_dict()

    @router.post("/feedback", response_model=FeedbackResponse)
    def feedback(request: FeedbackRequest) -> dict:
        """Rate an answer (up/down) and/or give the intent the message really had."""
        row = bot.feedback(request.exchange_id, request.rating, request.corrected_intent)
        return {
            "exchange_id": row["id"],
            "rating": row["rating"],
            "corrected_intent": row["corrected_intent"],
        }

    @router.get("/intents", response_model=list[IntentOut])
    def intents() -> list[dict]:
        """The intents the bot recognises, with their titles and slots."""
        return bot.intents()

    return router
