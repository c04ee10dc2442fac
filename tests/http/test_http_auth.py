"""API-key authentication: when it is required, how keys are compared, what stays open."""

from __future__ import annotations

import hmac
import logging

import pytest
from http_support import KEY, OTHER_KEY, auth

from suite.app import create_app
from suite.config import HttpConfig
from suite.errors import ConfigError
from suite.http import auth as auth_module
from suite.http.auth import ApiKeyAuth, auth_required, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.10", False), ("api.example.org", False)],
)  # fmt: skip
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_auto_requires_a_key_unless_bound_to_loopback():
    assert not auth_required(HttpConfig(host="127.0.0.1", auth="auto"))
    assert auth_required(HttpConfig(host="0.0.0.0", auth="auto"))
    assert auth_required(HttpConfig(host="127.0.0.1", auth="on"))
    assert not auth_required(HttpConfig(host="0.0.0.0", auth="off"))


@pytest.mark.parametrize("http", [{"host": "0.0.0.0"}, {"auth": "on"}])
def test_refuses_to_start_when_a_key_is_required_but_none_is_configured(make_ctx, http):
    with pytest.raises(ConfigError) as caught:
        create_app(make_ctx(**http))
    message = str(caught.value)
    assert "\n" not in message and "http.api_keys is empty" in message


def test_an_empty_key_is_a_config_error(make_ctx):
    with pytest.raises(ConfigError, match="empty"):
        create_app(make_ctx(auth="on", api_keys=[KEY, "  "]))


def test_missing_or_wrong_key_is_401_with_www_authenticate(make_client):
    client = make_client(auth="on", api_keys=[KEY])
    for headers in (
        {},
        auth("wrong-key-0123456789abc"),
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": KEY},
    ):
        response = client.get("/api/demo/items/1", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["type"] == "unauthorized"
        assert KEY not in response.text


def test_any_configured_key_is_accepted(make_client):
    client = make_client(auth="on", api_keys=[KEY, OTHER_KEY])
    assert client.get("/api/demo/items/1", headers=auth(KEY)).status_code == 200
    assert client.get("/api/demo/items/1", headers=auth(OTHER_KEY)).status_code == 200
    assert client.get("/api/demo/items/1", headers={"Authorization": f"bearer {KEY}"}).status_code == 200


def test_probes_docs_and_public_routes_need_no_key(make_client):
    client = make_client(host="0.0.0.0", api_keys=[KEY])
    for path in ("/", "/health", "/docs", "/redoc", "/openapi.json", "/api/demo/page"):
        assert client.get(path).status_code == 200, path
    assert client.get("/ready").status_code in (200, 503)  # its own verdict, never 401
    assert client.get("/api/plugins").status_code == 401


def test_loopback_without_auth_needs_no_key_but_accepts_one(make_client):
    client = make_client(host="127.0.0.1", api_keys=[KEY])
    assert client.get("/api/demo/items/1").status_code == 200
    assert client.get("/api/demo/items/1", headers=auth()).status_code == 200


def test_every_key_is_compared_in_constant_time(monkeypatch):
    calls: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", spy)
    checker = ApiKeyAuth(HttpConfig(auth="on", api_keys=[KEY, OTHER_KEY, "third-key-0123456789abcdef"]))
    assert checker.match(KEY) == 0  # the first key matches, yet all three are compared
    assert len(calls) == 3
    assert all(len(a) == len(b) == 32 for a, b in calls)  # digests: the length of a key does not leak
    assert checker.match("nope") is None and len(calls) == 6


def test_keys_never_reach_the_logs(make_client, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(auth="on", api_keys=[KEY, "zq9x"])
    client.get("/api/demo/items/1", headers=auth())
    client.get("/api/demo/boom", headers=auth())
    client.get("/api/demo/items/1", headers=auth("wrong-key-0123456789abc"))
    assert caplog.records  # the short-key warning and the 500 were logged...
    assert KEY not in caplog.text and "zq9x" not in caplog.text  # ...without the keys
    assert "wrong-key" not in caplog.text
