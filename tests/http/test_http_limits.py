"""Body size, text length, batch size and request-rate limits."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from http_support import KEY, OTHER_KEY, auth, free_port

from suite.app import create_app
from suite.config import HttpConfig, load_settings
from suite.errors import ConfigError
from suite.http.errors import ApiError
from suite.http.limits import RateLimiter, check_text, check_texts


def chunks(total: int, size: int = 64 * 1024):
    """A body without Content-Length (sent chunked), so only the streaming guard can stop it."""
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


# -- body size -------------------------------------------------------------------------------
def test_a_2mb_body_is_413(make_client):
    response = make_client().post("/api/demo/count", content=b"x" * 2_000_000)
    assert response.status_code == 413
    assert response.json()["error"] == {
        "type": "too_large",
        "message": "request body too large (at most 1000000 bytes)",
        "status": 413,
    }


def test_a_chunked_body_is_stopped_once_past_the_limit(make_client):
    client = make_client(max_body_bytes=100_000)
    response = client.post("/api/demo/count", content=chunks(2_000_000), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "too_large"


def test_a_body_under_the_limit_passes(make_client):
    client = make_client(max_body_bytes=100_000)
    assert client.post("/api/demo/count", json={"texts": ["a" * 1000] * 4}).json() == {"count": 4}


# -- texts and batches -----------------------------------------------------------------------
def test_text_and_batch_limits_use_the_app_config(make_client):
    client = make_client(max_text_chars=10, max_batch=3)
    assert client.post("/api/demo/count", json={"texts": ["0123456789"] * 3}).json() == {"count": 3}
    too_long = client.post("/api/demo/count", json={"texts": ["ok", "01234567890"]})
    assert too_long.status_code == 413
    assert too_long.json()["error"]["message"] == "text 1 is too long: 11 characters (at most 10)"
    too_many = client.post("/api/demo/count", json={"texts": ["a"] * 4})
    assert too_many.status_code == 413
    assert too_many.json()["error"]["message"] == "too many texts: 4 (at most 3 per request)"
    empty = client.post("/api/demo/count", json={"texts": []})
    assert empty.status_code == 422 and empty.json()["error"]["type"] == "invalid_input"
    blank = client.post("/api/demo/count", json={"texts": ["fine", "   "]})
    assert blank.status_code == 422 and blank.json()["error"]["message"] == "text 1 is empty"


def test_check_texts_outside_a_request_uses_the_defaults():
    defaults = HttpConfig()
    assert check_texts("one") == ["one"]
    assert check_texts(("a", "b")) == ["a", "b"]
    assert check_texts(["", "b"], allow_empty=True) == ["", "b"]
    assert check_text("x" * defaults.max_text_chars) == "x" * defaults.max_text_chars
    with pytest.raises(ApiError) as caught:
        check_text("x" * (defaults.max_text_chars + 1))
    assert caught.value.status_code == 413 and caught.value.error_type == "too_large"
    with pytest.raises(ApiError) as caught:
        check_texts(["a", 3])  # type: ignore[list-item]
    assert caught.value.status_code == 422 and caught.value.detail == "text 1 is not a string"
    with pytest.raises(ApiError):
        check_texts(["a", "b"], limits=HttpConfig(max_batch=1))


# -- request rate ----------------------------------------------------------------------------
def test_rate_limit_is_429_with_retry_after_per_key(make_client):
    client = make_client(auth="on", api_keys=[KEY, OTHER_KEY], rate_limit_per_minute=3)
    for _ in range(3):
        assert client.get("/api/demo/items/1", headers=auth()).status_code == 200
    limited = client.get("/api/demo/items/1", headers=auth())
    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "rate_limited"
    assert 55 <= int(limited.headers["retry-after"]) <= 60  # when the first of the 3 leaves the 60 s window
    # another key has its own bucket; probes are never limited
    assert client.get("/api/demo/items/1", headers=auth(OTHER_KEY)).status_code == 200
    assert client.get("/health").status_code == 200


def test_rate_limit_without_auth_is_per_client_address(make_client):
    client = make_client(rate_limit_per_minute=2)
    assert [client.get("/api/demo/items/1").status_code for _ in range(3)] == [200, 200, 429]


def test_failed_key_attempts_are_rate_limited_too(make_client):
    client = make_client(auth="on", api_keys=[KEY], rate_limit_per_minute=2)
    codes = [client.get("/api/plugins", headers=auth("guess-0123456789abcdef")).status_code for _ in range(3)]
    assert codes == [401, 401, 429]


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """Wall-clock time as the test sets it (``limits`` stamps requests with ``time.time``)."""
    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


def test_the_window_lets_requests_in_as_old_ones_leave_it(clock):
    limiter = RateLimiter(60)
    assert [limiter.acquire("a") for _ in range(30)] == [0.0] * 30
    clock[0] += 30
    assert [limiter.acquire("a") for _ in range(30)] == [0.0] * 30
    assert limiter.acquire("a") == pytest.approx(30.0)  # until the first 30 are 60 s old
    clock[0] += 20
    assert limiter.acquire("a") == pytest.approx(10.0)  # refused requests are not counted
    clock[0] += 10.5
    assert [limiter.acquire("a") == 0 for _ in range(31)] == [True] * 30 + [False]
    assert limiter.acquire("b") == 0.0  # counts are per identity


def test_the_memory_store_forgets_idle_callers(clock):
    limiter = RateLimiter(60)
    limiter.MAX_MEMORY_KEYS = 100
    for index in range(150):
        limiter.acquire(f"ip:{index}")
    clock[0] += 120  # every request has left the window: no caller needs remembering
    limiter.acquire("late")
    assert len(limiter.storage.events) == 1


def test_the_store_setting_is_validated_in_one_line():
    assert HttpConfig(rate_limit_storage="redis://:secret@cache:6380/2").rate_limit_storage.startswith("redis://")
    for bad in ("memcached://cache:11211", "redis-cache:6379", "memory://elsewhere", "redsi://:hunter2@cache"):
        with pytest.raises(ConfigError) as caught:
            load_settings(http={"rate_limit_storage": bad})
        message = str(caught.value)
        assert "\n" not in message and "http.rate_limit_storage" in message and "redis://127.0.0.1:6379/0" in message
        assert "hunter2" not in message


def test_a_redis_store_that_does_not_answer_is_one_line_at_start(make_ctx):
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(ConfigError) as caught:
        create_app(make_ctx(rate_limit_storage=url))
    message = str(caught.value)
    assert message.startswith("http.rate_limit_storage: Redis at 127.0.0.1:") and "does not answer" in message
    assert "hunter2" not in message and "\n" not in message


def test_if_redis_fails_mid_flight_requests_are_counted_in_process(caplog):
    limiter = RateLimiter(2, f"redis://127.0.0.1:{free_port()}/0")  # never pinged: as if it died after start
    with caplog.at_level(logging.ERROR, "suite.http.limits"):
        assert [limiter.acquire("a") > 0 for _ in range(3)] == [False, False, True]
    assert "counting in this process" in caplog.text and caplog.text.count("failed") == 1


# -- a shared store: Redis -------------------------------------------------------------------------
@pytest.mark.redis
def test_limiters_sharing_redis_share_the_count(redis_url: str):
    prefix = f"test-{uuid.uuid4().hex}"
    first, second = (RateLimiter(4, redis_url, prefix) for _ in range(2))  # as two workers would
    first.ping()
    allowed = [limiter.acquire("key#0") == 0 for limiter in (first, second) * 3]
    assert allowed == [True] * 4 + [False] * 2
    assert 55 <= second.acquire("key#0") <= 60
    assert RateLimiter(4, redis_url, f"{prefix}-other").acquire("key#0") == 0  # prefixes keep deployments apart
