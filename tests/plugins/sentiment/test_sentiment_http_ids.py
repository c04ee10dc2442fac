"""Ids beyond SQL's 64-bit integers are bad input (422), not a driver overflow (500); found by bench.http_fuzz."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from suite.app import create_app

HUGE = 2**63  # one past the largest SQL integer


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/sentiment/alerts/{id}"),
        ("POST", "/api/sentiment/alerts/{id}/ack"),
        ("GET", "/api/sentiment/documents/{id}"),
        ("GET", "/api/sentiment/runs/{id}"),
    ],
)
def test_ids_out_of_sql_range_are_rejected(context_factory, method: str, path: str) -> None:
    with TestClient(create_app(context_factory()), raise_server_exceptions=False) as client:
        for value in (HUGE, -HUGE - 1, 10**30):
            response = client.request(method, path.format(id=value))
            assert response.status_code == 422, response.text
            assert response.json()["error"]["status"] == 422
        assert client.request(method, path.format(id=HUGE - 1)).status_code == 404
