"""The app core through TestClient: mounting, error shapes, core routes, readiness."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from http_support import KEY, SECRET_PATH, auth

from suite.app import create_app
from suite.http.errors import ERROR_TYPES, redact_paths
from suite.training_tasks import TrainingTask


def assert_error(response, status: int, error_type: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"type", "message", "status"} <= set(error)
    assert error["type"] == error_type and error["type"] in ERROR_TYPES
    assert error["status"] == status
    assert isinstance(error["message"], str) and error["message"]
    return error


# -- mounting and documentation --------------------------------------------------------------
def test_plugin_routes_are_mounted_and_documented(make_client):
    client = make_client()
    assert client.get("/api/demo/items/1").json() == {"id": 1}
    schema = client.get("/openapi.json").json()
    assert {"/health", "/ready", "/api/plugins", "/api/models", "/api/demo/count"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    # the error shape is part of the documented contract of every API route
    assert "ErrorBody" in schema["components"]["schemas"]
    assert "429" in schema["paths"]["/api/demo/count"]["post"]["responses"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_lifespan_starts_and_stops_the_plugins(make_ctx, demo):
    from fastapi.testclient import TestClient

    with TestClient(create_app(make_ctx())) as client:
        assert demo.events == ["startup"]
        client.get("/health")
    assert demo.events == ["startup", "shutdown"]


def test_a_failing_plugin_hook_is_recorded_and_the_app_still_starts(make_client):
    class Raises:
        def suite_http_routers(self, ctx):
            raise RuntimeError("cannot build routes")

    class NotARouter:
        def suite_http_routers(self, ctx):
            return {"routes": []}

    class BrokenSchema:
        def suite_http_routers(self, ctx):
            router = APIRouter(prefix="/api/broken")

            @router.get("/x")
            def x() -> dict:
                return {}

            router.routes[0].response_model = object()  # makes the OpenAPI schema fail to build
            return router

    client = make_client(extra_plugins={"raises": Raises(), "notarouter": NotARouter(), "broken": BrokenSchema()})
    assert client.get("/api/demo/items/1").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/api/broken/x").status_code == 404
    failures = {(f.plugin, f.hook) for f in client.app.state.ctx.plugins.failures}
    assert {("raises", "suite_http_routers"), ("notarouter", "suite_http_routers")} <= failures
    assert ("broken", "suite_http_routers") in failures
    plugins_check = client.get("/ready").json()["checks"]["plugins"]
    assert plugins_check["ok"] is False and plugins_check["required"] is False
    assert "cannot build routes" in plugins_check["detail"]


# -- error shapes ----------------------------------------------------------------------------
def test_not_found_error_is_404(make_client):
    error = assert_error(make_client().get("/api/demo/items/7"), 404, "not_found")
    assert error["message"] == "no item 7"


def test_data_error_is_422_and_paths_are_shortened(make_client):
    error = assert_error(make_client().post("/api/demo/bad-data"), 422, "invalid_input")
    assert "column 'text' missing" in error["message"]
    assert "/home/someone" not in error["message"] and "model.py" in error["message"]


def test_other_suite_errors_are_400(make_client):
    error = assert_error(make_client().post("/api/demo/bad-config"), 400, "invalid_input")
    assert error["message"] == "plugins.demo.threshold must be below 1"


def test_validation_errors_name_the_field(make_client):
    client = make_client()
    error = assert_error(client.post("/api/demo/count", json={"text": ["a"]}), 422, "invalid_input")
    assert error["message"].startswith("texts:")
    assert error["fields"][0]["loc"] == "texts"
    error = assert_error(client.get("/api/demo/items/abc"), 422, "invalid_input")
    assert "item_id" in error["message"]


def test_malformed_json_is_422(make_client):
    response = make_client().post(
        "/api/demo/count", content=b'{"texts": [', headers={"content-type": "application/json"}
    )
    assert assert_error(response, 422, "invalid_input")["message"] == "body: request body is not valid JSON"


def test_unknown_route_and_method_are_json(make_client):
    client = make_client()
    assert_error(client.get("/no/such/route"), 404, "not_found")
    assert_error(client.delete("/health"), 405, "method_not_allowed")


def test_unexpected_exception_is_500_without_traceback_or_paths(make_client, caplog):
    caplog.set_level(logging.ERROR, logger="suite.http")
    response = make_client().get("/api/demo/boom")
    error = assert_error(response, 500, "internal")
    text = response.text
    for leak in ("Traceback", "RuntimeError", "hunter2", "/home/", "model.py", ".py", 'File "'):
        assert leak not in text
    request_id = error["request_id"]
    assert response.headers["x-request-id"] == request_id
    assert request_id in error["message"]
    # the traceback is kept server-side, under the same request id
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None


def test_request_id_is_taken_from_the_client_when_sane(make_client):
    client = make_client()
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert generated != "bad id\twith spaces" and len(generated) == 16


def test_redact_paths_keeps_urls_and_relative_names():
    assert redact_paths(f"cannot read {SECRET_PATH}") == "cannot read …/model.py"
    assert redact_paths("see http://example.org/a/b/c") == "see http://example.org/a/b/c"
    assert redact_paths("column a/b is bad") == "column a/b is bad"
    assert redact_paths(r"cannot open C:\Users\me\model.bin") == "cannot open …/model.bin"


# -- core routes -----------------------------------------------------------------------------
def test_health_needs_no_key(make_client):
    client = make_client(auth="on", api_keys=[KEY])
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/").json()["docs"] == "/docs"


def test_api_plugins_lists_the_demo_plugin(make_client):
    client = make_client(auth="on", api_keys=[KEY])
    assert_error(client.get("/api/plugins"), 401, "unauthorized")
    [demo] = client.get("/api/plugins", headers=auth()).json()
    assert demo["name"] == "demo" and demo["status"] == "enabled"
    assert "suite_http_routers" in demo["hooks"]


def test_api_models_lists_the_registry(make_client):
    response = make_client().get("/api/models")
    assert response.status_code == 200 and response.json() == []


# -- readiness -------------------------------------------------------------------------------
def test_ready_reports_each_check_and_503_when_the_database_is_unreachable(make_client):
    client = make_client(database_url="postgresql+psycopg://suite:hunter2@127.0.0.1:1/nowhere")
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert set(body["checks"]) == {"database", "search", "models", "plugins"}
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["models"] == {
        "ok": True,
        "detail": "no models declared by the enabled plugins",
        "required": True,
    }
    assert body["error"]["type"] == "unavailable" and body["error"]["status"] == 503
    assert "database" in body["error"]["message"]
    assert "hunter2" not in response.text  # the URL, with its password, is never echoed


def test_ready_database_check_passes_on_sqlite(make_client):
    database = make_client().get("/ready").json()["checks"]["database"]
    assert database == {"ok": True, "detail": "sqlite", "required": True}


def test_ready_is_200_when_every_check_passes(make_client):
    response = make_client().get("/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready" and "error" not in body
    assert all(check["ok"] for check in body["checks"].values())


def test_ready_reports_untrained_models(make_client):
    class Trains:
        def suite_training_tasks(self, ctx):
            return [TrainingTask("trains", "intent", "classification", "an untrained task", run=lambda c, o: None)]

    response = make_client(extra_plugins={"trains": Trains()}).get("/ready")
    assert response.status_code == 503
    models = response.json()["checks"]["models"]
    assert models["ok"] is False and models["detail"] == "0/1 models ready"
    item = models["items"]["trains:intent"]
    assert item["ok"] is False and "suite train trains:intent" in item["detail"]
