"""Request limits: body size, text length, batch size and request rate (``[http]`` config).

For plugins, the public helpers are :func:`check_texts` and :func:`check_text`: call them
first thing in an endpoint that takes user text, e.g.::

    @router.post("/predict")
    def predict(request: PredictRequest) -> PredictResponse:
        texts = check_texts(request.texts)          # 413 / 422 with the standard error body
        ...

They read the limits of the app serving the current request (``http.max_text_chars``,
``http.max_batch``), or the configured defaults outside a request.

The rate limit is a token bucket per caller (API key, or client address when the caller
has no key) holding ``http.rate_limit_per_minute`` tokens and refilled continuously. The
buckets live in the memory of one worker process: with N workers a caller may get up to N
times the rate. Put a shared limiter in the reverse proxy if that matters.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Annotated

from pydantic import Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from suite.config import HttpConfig
from suite.http.errors import ApiError, error_response

current_limits: ContextVar[HttpConfig | None] = ContextVar("suite_http_limits", default=None)


def active_limits() -> HttpConfig:
    return current_limits.get() or HttpConfig()


# -- text and batch ----------------------------------------------------------------------
def check_text(text: str, *, allow_empty: bool = False, limits: HttpConfig | None = None) -> str:
    """Validate one user text; return it unchanged.

    :raises ApiError: 413 (``too_large``) above ``http.max_text_chars``; 422
        (``invalid_input``) when not a string, or empty/blank unless ``allow_empty``.
    """
    return _check_one(text, "text", allow_empty, limits or active_limits())


def check_texts(
    texts: str | Sequence[str], *, allow_empty: bool = False, limits: HttpConfig | None = None
) -> list[str]:
    """Validate a batch of user texts (a lone string counts as a batch of one); return a list.

    :raises ApiError: 413 (``too_large``) when the batch exceeds ``http.max_batch`` or a
        text exceeds ``http.max_text_chars``; 422 (``invalid_input``) when the batch is
        empty, an item is not a string, or an item is blank unless ``allow_empty``.
    """
    limits = limits or active_limits()
    batch = [texts] if isinstance(texts, str) else list(texts)
    if not batch:
        raise ApiError(422, "no texts given: send at least one")
    if len(batch) > limits.max_batch:
        raise ApiError(413, f"too many texts: {len(batch)} (at most {limits.max_batch} per request)")
    return [_check_one(text, f"text {index}", allow_empty, limits) for index, text in enumerate(batch)]


def _check_one(text: object, name: str, allow_empty: bool, limits: HttpConfig) -> str:
    if not isinstance(text, str):
        raise ApiError(422, f"{name} is not a string")
    if not allow_empty and not text.strip():
        raise ApiError(422, f"{name} is empty")
    if len(text) > limits.max_text_chars:
        raise ApiError(413, f"{name} is too long: {len(text)} characters (at most {limits.max_text_chars})")
    return text


# -- integers that reach the database ---------------------------------------------------
SqlInt = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
"""An id or offset that goes into a SQL query. SQL integers are signed 64-bit: a larger
number is bad input (422, and documented in the OpenAPI schema), not an overflow in the
database driver (500). Narrow it further where needed: ``Annotated[SqlInt, Query(ge=0)]``."""


# -- body size ---------------------------------------------------------------------------
class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large (at most {limit} bytes)")


class BodySizeLimit:
    """ASGI middleware: 413 for bodies above ``max_bytes``.

    A declared ``Content-Length`` above the limit is refused before the app runs; a body
    without one (chunked) is counted as it is read, and reading fails once it passes the
    limit, so an oversized body is never held in memory.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await error_response(413, BodyTooLarge(self.max_bytes).detail)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# -- request rate ------------------------------------------------------------------------
class RateLimiter:
    """Token buckets keyed by caller identity, ``per_minute`` tokens each."""

    MAX_BUCKETS = 10_000

    def __init__(self, per_minute: int, clock=time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # identity -> (tokens, last update)
        self._lock = threading.Lock()

    def acquire(self, identity: str) -> float:
        """Take one token; return 0 if allowed, else the seconds until one is available."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(identity, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.refill_per_second)
            if tokens >= 1:
                self._buckets[identity] = (tokens - 1, now)
                self._prune(now)
                return 0.0
            self._buckets[identity] = (tokens, now)
            return (1 - tokens) / self.refill_per_second

    def check(self, identity: str) -> None:
        """Take one token or raise 429 with ``Retry-After`` (whole seconds, rounded up)."""
        wait = self.acquire(identity)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise ApiError(
                429,
                f"rate limit exceeded ({int(self.capacity)} requests per minute); retry in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled completely, so memory stays bounded."""
        if len(self._buckets) <= self.MAX_BUCKETS:
            return
        full_after = self.capacity / self.refill_per_second
        self._buckets = {key: value for key, value in self._buckets.items() if now - value[1] < full_after}
