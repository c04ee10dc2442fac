"""``suite_warm_up``: the server loads what requests need before it answers any, ``/ready`` included."""

from __future__ import annotations

from fastapi.testclient import TestClient

from suite.app import create_app


class Warm:
    def __init__(self) -> None:
        self.events: list[str] = []

    def suite_startup(self, ctx) -> None:
        self.events.append("startup")

    def suite_warm_up(self, ctx) -> None:
        self.events.append("warm_up")


class ColdForever:
    def suite_warm_up(self, ctx) -> None:
        raise RuntimeError("model folder unreadable")


def test_plugins_warm_up_after_startup_and_before_the_first_request(make_ctx):
    warm = Warm()
    with TestClient(create_app(make_ctx(extra_plugins={"warm": warm}))) as client:
        assert warm.events == ["startup", "warm_up"]  # nothing has been requested yet
        assert client.get("/health").status_code == 200
    assert warm.events == ["startup", "warm_up"]  # once per process, never per request


def test_a_failing_warm_up_is_reported_by_ready_and_the_server_still_answers(make_ctx):
    with TestClient(create_app(make_ctx(extra_plugins={"cold": ColdForever()}))) as client:
        assert client.get("/health").status_code == 200
        plugins = client.get("/ready").json()["checks"]["plugins"]
    assert "cold failed in suite_warm_up: RuntimeError: model folder unreadable" in plugins["detail"]
