"""Prometheus metrics over HTTP: a middleware that counts and times every request, and ``/metrics``.

``/metrics`` sits behind the same guard as ``/api`` (API key when authentication is on, the
rate limit) and is left out when ``http.metrics`` is false. The metric objects live in
:mod:`services.metrics`, with the other figures (inference, job runs, alert deliveries).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services import metrics

UNMATCHED = "unmatched"  # no route ran: an unknown path, or a body refused before routing


class RequestMetrics:
    """ASGI middleware: ``suite_http_requests_total`` and ``suite_http_request_duration_seconds``.

    Add it outermost, so it also counts what the inner middleware answer (413s, the 500 guard).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app dies before it answers, the server sends a 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            metrics.observe_request(scope["method"], route_template(scope), status, time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The path pattern of the route that ran (``/api/items/{item_id}``), never the raw path."""
    return getattr(scope.get("route"), "path", None) or UNMATCHED


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["core"])
    router.add_api_route(
        "/metrics",
        metrics_endpoint,
        methods=["GET"],
        summary="Prometheus metrics: requests, latency, inference, job runs, alert deliveries",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    return router


def metrics_endpoint() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
