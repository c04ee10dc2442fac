"""``/api/tickets``: route a ticket over HTTP, list routed tickets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from suite.http import check_text
from suite_ticket_router.options import PLUGIN
from suite_ticket_router.routing import route_ticket
from suite_ticket_router.store import RoutedStore

if TYPE_CHECKING:
    from suite.context import SuiteContext


class RouteRequest(BaseModel):
    text: str = Field(..., description="the ticket's text", examples=["The VPN drops every hour"])
    similar: int | None = Field(None, ge=0, le=20, description="similar past tickets; default the 'similar_k' option")


class SimilarTicketOut(BaseModel):
    id: str
    text: str
    queue: str | None
    score: float


class EntityOut(BaseModel):
    label: str
    text: str


class RouteResponse(BaseModel):
    queue: str
    confidence: float
    needs_review: bool
    scores: dict[str, float]
    model: str = Field(..., description="the model version that decided, e.g. tickets/router@v1")
    similar: list[SimilarTicketOut]
    entities: list[EntityOut]


class RoutedOut(BaseModel):
    ticket_id: str
    text: str
    queue: str
    confidence: float
    needs_review: bool
    model: str
    routed_at: str


def build_router(ctx: SuiteContext) -> APIRouter:
    router = APIRouter(prefix=f"/api/{PLUGIN}", tags=[PLUGIN])

    # Plain ``def``: inference is CPU-bound, so FastAPI runs it in the thread pool.
    @router.post("/route", response_model=RouteResponse)
    def route(request: RouteRequest) -> RouteResponse:
        """Route one ticket to a queue and show the most similar past tickets."""
        text = check_text(request.text)
        return RouteResponse.model_validate(route_ticket(ctx, text, request.similar).to_dict())

    @router.get("/routed", response_model=list[RoutedOut])
    def routed(limit: int = Query(20, ge=1, le=1000), queue: str | None = None) -> list[RoutedOut]:
        """The most recently routed tickets (newest first)."""
        return [RoutedOut.model_validate(t.to_dict()) for t in RoutedStore(ctx.database).recent(limit, queue)]

    return router
