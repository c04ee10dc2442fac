"""An offset beyond SQL's 64-bit integers is bad input (422), not a driver overflow (500); found by bench.http_fuzz."""

from __future__ import annotations

from fastapi.testclient import TestClient

from suite.app import create_app


def test_users_offset_out_of_sql_range_is_rejected(ctx) -> None:
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        for offset in (2**63, 10**30):
            response = client.get("/api/recommender/users", params={"offset": offset})
            assert response.status_code == 422, response.text
            assert response.json()["error"]["status"] == 422
        assert client.get("/api/recommender/users", params={"offset": 2**63 - 1}).json() == []
        assert client.get("/api/recommender/users", params={"offset": -1}).status_code == 422
