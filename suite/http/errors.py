"""One JSON error shape for every failure, and the handlers that produce it.

Every error response has the body ``{"error": {"type": ..., "message": ..., "status": ...}}``
(plus ``request_id`` on 500s and ``fields`` on validation errors). ``type`` is one of
:data:`ERROR_TYPES`. Messages never carry tracebacks, and absolute file-system paths in
them are shortened to their last component, so a response never reveals the server's
layout.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from suite.errors import DataError, NotFoundError, SchemaError, SuiteError, one_line

log = logging.getLogger(__name__)

ErrorType = Literal[
    "invalid_input",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "too_large",
    "rate_limited",
    "unavailable",
    "internal",
]
ERROR_TYPES: tuple[str, ...] = ErrorType.__args__
_TYPE_BY_STATUS: dict[int, ErrorType] = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    429: "rate_limited",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    type: ErrorType
    message: str
    status: int
    request_id: str | None = None
    fields: list[dict[str, str]] | None = None


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


# Documented on every API route, so clients see the shape in the OpenAPI schema.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        401: "Missing or invalid API key",
        413: "Request body, text or batch too large",
        422: "Invalid input",
        429: "Rate limit exceeded (see Retry-After)",
        500: "Internal error (the body carries a request id to quote)",
    }.items()
}


class ApiError(HTTPException):
    """An HTTP error with an explicit ``type``; raise it from routes, dependencies or helpers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: ErrorType | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.error_type = type or error_type_for(status)


def error_type_for(status: int) -> ErrorType:
    if status >= 500:
        return _TYPE_BY_STATUS.get(status, "internal")
    return _TYPE_BY_STATUS.get(status, "invalid_input")


# An absolute POSIX path of two or more components, or a Windows drive path; not part of a URL.
_PATH = re.compile(r"(?<![\w:/.~-])(?:/[^\s/'\"`:;,()]+){2,}/?|\b[A-Za-z]:\\[^\s'\"`]+")


def redact_paths(message: str) -> str:
    """Replace absolute paths with ``…/<last component>``."""

    def shorten(match: re.Match[str]) -> str:
        parts = [part for part in re.split(r"[\\/]", match.group(0)) if part]
        return f"…/{parts[-1]}" if parts else "…"

    return _PATH.sub(shorten, message)


def error_response(
    status: int,
    message: str,
    *,
    type: ErrorType | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    detail = {"type": type or error_type_for(status), "message": message, "status": status}
    detail.update({key: value for key, value in extra.items() if value is not None})
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


def suite_error_status(exc: SuiteError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, DataError):
        return 422
    if isinstance(exc, SchemaError):
        return 503  # the server's database needs 'suite db upgrade': not the client's fault
    return 400  # ConfigError, ModelError, PluginError and other SuiteErrors


async def _suite_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SuiteError)
    return error_response(suite_error_status(exc), redact_paths(one_line(exc)))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(
        exc.status_code,
        redact_paths(message),
        type=getattr(exc, "error_type", None),
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [_describe_field_error(error) for error in exc.errors()]
    message = f"{fields[0]['loc']}: {fields[0]['message']}" if fields else "invalid request"
    if len(fields) > 1:
        message += f" (and {len(fields) - 1} more)"
    return error_response(422, message, type="invalid_input", fields=fields)


def _describe_field_error(error: dict[str, Any]) -> dict[str, str]:
    if error.get("type") == "json_invalid":
        return {"loc": "body", "message": "request body is not valid JSON"}
    loc = [str(part) for part in error.get("loc", ())]
    if len(loc) > 1 and loc[0] == "body":
        loc = loc[1:]  # "texts", not "body.texts"; query and path parameters keep their prefix
    # The offending input is deliberately left out: it may be huge or secret.
    return {"loc": ".".join(loc) or "body", "message": str(error.get("msg", "invalid value"))}


def install_error_handlers(app: FastAPI) -> None:
    """Map suite errors, HTTP errors and validation errors onto :class:`ErrorBody`.

    Unexpected exceptions are turned into 500s by :class:`suite.http.middleware.RequestContext`,
    which knows the request id.
    """
    app.add_exception_handler(SuiteError, _suite_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
