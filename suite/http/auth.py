"""API-key authentication (``Authorization: Bearer <key>``).

``http.auth`` is ``on``, ``off`` or ``auto``; ``auto`` requires a key unless the server
binds a loopback address, so a laptop needs no set-up and a server cannot be exposed
open by mistake. Keys come from ``http.api_keys`` (``SUITE_HTTP__API_KEYS='["..."]'``);
several may be valid at once, which is how keys are rotated without downtime.

Each presented key is compared with *every* configured key through
:func:`hmac.compare_digest` on SHA-256 digests, so neither the time taken nor an early
exit reveals which key, or how much of one, matched. Keys are never logged: requests are
identified in logs and rate-limit buckets by the key's position (``key#0``).

Not behind a key: ``/``, ``/health``, ``/ready`` (probes), ``/docs``, ``/redoc`` and
``/openapi.json`` (the schema describes routes, not data), mounted static files, and any
route declared with ``openapi_extra=PUBLIC`` (HTML pages a browser opens directly; the
JSON APIs they call still need the key).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from dataclasses import dataclass

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from suite.config import HttpConfig
from suite.errors import ConfigError
from suite.http.errors import ApiError

log = logging.getLogger(__name__)

PUBLIC_FLAG = "x-suite-public"
PUBLIC: dict[str, bool] = {PUBLIC_FLAG: True}
"""Pass as ``openapi_extra=PUBLIC`` to a route that must be reachable without a key."""

MIN_KEY_LENGTH = 16
bearer_scheme = HTTPBearer(auto_error=False, description="An API key from the suite's http.api_keys")


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: assume it is reachable from outside


def auth_required(http: HttpConfig) -> bool:
    if http.auth == "auto":
        return not is_loopback(http.host)
    return http.auth == "on"


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


@dataclass(frozen=True)
class Caller:
    """Who made a request: ``key#N`` for an API key, ``ip:<address>`` otherwise."""

    identity: str
    authenticated: bool


class ApiKeyAuth:
    """Checks bearer tokens against the configured keys."""

    def __init__(self, http: HttpConfig) -> None:
        self.required = auth_required(http)
        self._digests = [_digest(key.get_secret_value()) for key in http.api_keys]
        if any(not key.get_secret_value().strip() for key in http.api_keys):
            raise ConfigError("http.api_keys: an API key is empty")
        if self.required and not self._digests:
            why = "http.auth is 'on'" if http.auth == "on" else f"http.host {http.host} is not a loopback address"
            raise ConfigError(
                f"authentication is required ({why}) but http.api_keys is empty: "
                'set SUITE_HTTP__API_KEYS=\'["<key>"]\' or http.auth = "off"'
            )
        short = [index for index, key in enumerate(http.api_keys) if len(key.get_secret_value()) < MIN_KEY_LENGTH]
        if short:
            log.warning("API key(s) %s are shorter than %d characters", short, MIN_KEY_LENGTH)

    def match(self, token: str | None) -> int | None:
        """The position of the configured key equal to ``token``, or None."""
        if not token:
            return None
        presented = _digest(token)
        found = None
        for index, expected in enumerate(self._digests):  # no early exit: constant work per request
            if hmac.compare_digest(presented, expected) and found is None:
                found = index
        return found

    def identify(self, request: Request, credentials: HTTPAuthorizationCredentials | None) -> Caller:
        """The caller of ``request``; 401 when a key is required and missing or wrong."""
        index = self.match(credentials.credentials if credentials else None)
        if index is not None:
            return Caller(f"key#{index}", True)
        if not self.required or _is_public(request):
            return Caller(self.client_identity(request), False)
        message = "invalid API key" if credentials else "missing API key (send 'Authorization: Bearer <key>')"
        raise ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})

    @staticmethod
    def client_identity(request: Request) -> str:
        return f"ip:{request.client.host if request.client else 'unknown'}"


def _is_public(request: Request) -> bool:
    route = request.scope.get("route")
    return bool((getattr(route, "openapi_extra", None) or {}).get(PUBLIC_FLAG))
