"""Timestamps beyond what datetime holds are bad input (422 over HTTP), not an OverflowError (500);
found by bench.http_fuzz."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from plugins.recommender.data import parse_timestamp
from suite.app import create_app

OUT_OF_RANGE = [1e20, -1e20, 10**400, "9" * 30, "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"]


@pytest.mark.parametrize("value", OUT_OF_RANGE, ids=["1e20", "-1e20", "10**400", "30 nines", "10000 UTC", "0 UTC"])
def test_parse_timestamp_out_of_range_is_a_value_error(value) -> None:
    with pytest.raises(ValueError, match="out of range|invalid timestamp"):
        parse_timestamp(value)


def test_interactions_with_out_of_range_timestamps_are_rejected(ctx) -> None:
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        for timestamp in (1e20, "9" * 30, "9999-12-31T23:59:59-01:00"):
            body = {"interactions": [{"user": "maya", "item": "no-such-item", "timestamp": timestamp}]}
            response = client.post("/api/recommender/interactions", json=body)
            assert response.status_code == 422, response.text
            assert "out of range" in response.json()["error"]["message"]


def test_item_timestamps_come_back_as_rfc3339_with_their_offset(ctx) -> None:
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        body = {"id": "tz-item", "title": "Zones", "created_at": "2024-03-01T12:00:00+02:00"}
        created = client.post("/api/recommender/items", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["created_at"] == "2024-03-01T10:00:00Z"
        fetched = client.get("/api/recommender/items/tz-item")
        assert fetched.json()["created_at"] == "2024-03-01T10:00:00Z"
