"""Request limits: body size, text length, batch size and request rate (``[http]`` config).

For plugins, the public helpers are :func:`check_texts` and :func:`check_text`: call them
first thing in an endpoint that takes user text, e.g.::

    @router.post("/predict")
    def predict(request: PredictRequest) -> PredictResponse:
        texts = check_texts(request.texts)          # 413 / 422 with the standard error body
        ...

They read the limits of the app serving the current request (``http.max_text_chars``,
``http.max_batch``), or the configured defaults outside a request.

The rate limit allows each caller (API key, or client address when the caller has no key)
``http.rate_limit_per_minute`` requests in any 60 seconds (a moving window of the ``limits``
library). ``http.rate_limit_storage`` says where the counts live: ``memory://`` (the default)
in each worker process, so with N workers a caller may get up to N times the rate; a Redis
URL (``redis://127.0.0.1:6379/0``) in Redis, shared by every worker, so a caller gets the
configured rate however many workers serve it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Annotated
from urllib.parse import urlsplit

from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from pydantic import Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from suite.config import HttpConfig
from suite.errors import ConfigError, one_line
from suite.http.errors import ApiError, error_response

log = logging.getLogger(__name__)

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
class _MemoryStorage(MemoryStorage):
    """``limits``' in-process store, which keeps an (empty) entry for every caller it ever saw."""

    def forget_idle(self) -> None:
        """Drop callers whose every counted request has left the window, so memory stays bounded."""
        now = time.time()
        for key, events in list(self.events.items()):
            if events and events[0].expiry > now:  # events[0] is the newest
                continue
            with self.locks[key]:
                current = self.events.get(key)
                idle = not current or current[0].expiry <= now
                if idle:
                    self.events.pop(key, None)
            if idle:
                self.locks.pop(key, None)


class RateLimiter:
    """At most ``per_minute`` requests per caller identity in any 60 seconds.

    A moving window of the ``limits`` library, counted in ``storage``: ``memory://`` counts in
    this process; a Redis URL counts in Redis, so every worker (and every server) using the same
    URL and ``prefix`` shares one count per caller. Should Redis fail mid-flight, requests are
    counted in this process until it answers again (logged): the API stays up and the limit
    holds per worker meanwhile.
    """

    MAX_MEMORY_KEYS = 10_000
    SWEEP_EVERY_SECONDS = 10.0  # above MAX_MEMORY_KEYS callers, forget the idle ones this often
    RETRY_STORE_SECONDS = 5.0  # while Redis is down, try it again this often, not on every request
    REDIS_TIMEOUT_SECONDS = 1.0

    def __init__(self, per_minute: int, storage: str = "memory://", prefix: str = "suite") -> None:
        self.item = RateLimitItemPerMinute(per_minute)
        self.prefix = prefix
        self.where = _describe_store(storage)
        if storage.startswith("memory://"):
            self.storage: Storage = _MemoryStorage(wrap_exceptions=True)
        else:
            timeout = self.REDIS_TIMEOUT_SECONDS
            self.storage = storage_from_string(
                storage, wrap_exceptions=True, socket_connect_timeout=timeout, socket_timeout=timeout
            )
        self._window = MovingWindowRateLimiter(self.storage)
        self._fallback: MovingWindowRateLimiter | None = None
        self._retry_store_at = 0.0
        self._next_sweep = 0.0
        self._lock = threading.Lock()

    @property
    def per_minute(self) -> int:
        return self.item.amount

    def ping(self) -> None:
        """Check that the store answers.

        :raises ConfigError: one line naming the store (never its password) and why.
        """
        if isinstance(self.storage, MemoryStorage):
            return
        try:
            self.storage.get_connection().ping()
        except Exception as exc:
            raise ConfigError(
                f"http.rate_limit_storage: {self.where} does not answer ({one_line(exc)}); "
                "start it, or use 'memory://' to count per worker"
            ) from None

    def acquire(self, identity: str) -> float:
        """Count one request; return 0 if allowed, else the seconds until the window lets one in."""
        if self._fallback is not None and time.monotonic() < self._retry_store_at:
            return self._wait(self._fallback, identity)
        try:
            wait = self._wait(self._window, identity)
        except StorageError as exc:
            with self._lock:
                if self._fallback is None:
                    log.error(
                        "rate limit store %s failed (%s): counting in this process until it answers",
                        self.where,
                        one_line(exc.storage_error),
                    )
                    self._fallback = MovingWindowRateLimiter(_MemoryStorage(wrap_exceptions=True))
                self._retry_store_at = time.monotonic() + self.RETRY_STORE_SECONDS
                fallback = self._fallback
            return self._wait(fallback, identity)
        if self._fallback is not None:
            log.warning("rate limit store %s answers again", self.where)
            self._fallback = None
        return wait

    def check(self, identity: str) -> None:
        """Count one request or raise 429 with ``Retry-After`` (whole seconds, rounded up)."""
        wait = self.acquire(identity)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise ApiError(
                429,
                f"rate limit exceeded ({self.per_minute} requests per minute); retry in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )

    def _wait(self, window: MovingWindowRateLimiter, identity: str) -> float:
        if window.hit(self.item, self.prefix, identity):
            self._bound_memory(window.storage)
            return 0.0
        reset = window.get_window_stats(self.item, self.prefix, identity).reset_time
        return max(reset - time.time(), 0.001)

    def _bound_memory(self, storage: Storage) -> None:
        if not isinstance(storage, _MemoryStorage) or len(storage.events) <= self.MAX_MEMORY_KEYS:
            return
        now = time.time()
        with self._lock:
            if now >= self._next_sweep:  # not on every request: a crowd of active callers stays O(1) each
                self._next_sweep = now + self.SWEEP_EVERY_SECONDS
                storage.forget_idle()


def _describe_store(uri: str) -> str:
    """The store in words, without the password a Redis URL may hold."""
    if uri.startswith("memory://"):
        return "process memory"
    parts = urlsplit(uri)
    if parts.scheme == "redis+unix":
        return f"Redis at {parts.path}"
    return f"Redis at {parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"
