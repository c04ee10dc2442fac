"""An exchange id beyond SQL's 64-bit integers is bad input (422), not a driver overflow (500); found by
bench.http_fuzz."""

from __future__ import annotations

from fastapi.testclient import TestClient

from suite.app import create_app


def test_feedback_exchange_id_out_of_sql_range_is_rejected(context_factory) -> None:
    with TestClient(create_app(context_factory()), raise_server_exceptions=False) as client:
        for exchange_id in (2**63, -(2**63) - 1, 10**30):
            response = client.post("/api/chatbot/feedback", json={"exchange_id": exchange_id, "rating": "up"})
            assert response.status_code == 422, response.text
            assert response.json()["error"]["status"] == 422
        in_range = client.post("/api/chatbot/feedback", json={"exchange_id": 2**63 - 1, "rating": "up"})
        assert in_range.status_code == 404, in_range.text
