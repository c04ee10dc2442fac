"""The outermost middleware: a request id for every request, and a JSON 500 for any crash."""

from __future__ import annotations

import logging
import re
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from suite.config import HttpConfig
from suite.http.errors import error_response, error_type_for, redact_paths
from suite.http.limits import current_limits

log = logging.getLogger("suite.http")

REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContext:
    """Tags each request with an id (``X-Request-ID``, taken from the client when sane).

    An exception that escapes the app is logged here with its traceback and the request
    id, and the client gets a generic 500 naming that id: the traceback stays server-side.
    Also makes the app's limits visible to :func:`suite.http.limits.check_texts`.
    """

    def __init__(self, app: ASGIApp, limits: HttpConfig) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        token = current_limits.set(self.limits)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if response_started:  # too late for an error body; the server closes the connection
                log.exception("request %s %s %s failed mid-response", request_id, scope["method"], scope["path"])
                return
            if isinstance(exc, HTTPException):  # raised outside the exception handlers' reach
                response = error_response(
                    exc.status_code,
                    redact_paths(str(exc.detail)),
                    type=getattr(exc, "error_type", None) or error_type_for(exc.status_code),
                    headers=dict(exc.headers) if exc.headers else None,
                )
            else:
                log.exception("request %s %s %s failed", request_id, scope["method"], scope["path"])
                response = error_response(
                    500, f"internal error (request id {request_id})", type="internal", request_id=request_id
                )
            await response(scope, receive, send_with_id)
        finally:
            current_limits.reset(token)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            if _SAFE_REQUEST_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex[:16]
