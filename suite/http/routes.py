"""The core's own routes: liveness, readiness, plugins and model versions.

``/health`` answers as long as the process serves requests (use it for liveness probes and
the Compose healthcheck). ``/ready`` checks what requests need: the database, the search
backend and, for every declared training task, an active model version that verifies.
A suite whose models are not trained yet is alive but not ready (503), with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from suite import __version__
from suite.context import SuiteContext
from suite.errors import one_line
from suite.http.errors import redact_paths
from suite.web import home, wants_html

READY_CHECK_TIMEOUT = 5.0


class Check(BaseModel):
    ok: bool
    detail: str
    required: bool = True
    items: dict[str, Check] | None = None


class Readiness(BaseModel):
    status: str  # "ready" | "not_ready"
    checks: dict[str, Check]
    error: dict[str, Any] | None = None  # the standard error body, when not ready


class PluginOut(BaseModel):
    name: str
    version: str
    status: str
    description: str
    hooks: list[str]
    error: str | None = None


class ModelOut(BaseModel):
    ref: str
    plugin: str
    task: str
    version: int
    active: bool
    kind: str | None = None
    backbone: str | None = None
    created_at: str | None = None
    train_examples: int | None = None
    metrics: dict[str, Any] = {}
    labels: list[str] | None = None


def core_router(ctx: SuiteContext) -> APIRouter:
    """Routes open to every caller: ``/``, ``/health`` and ``/ready``."""
    router = APIRouter(tags=["core"])
    verified: set[tuple[str, str]] = set()  # (ref, path) of versions that verified

    @router.get(
        "/",
        summary="What this server is (JSON; a browser asking for text/html gets the pages' index)",
        responses={200: {"content": {"text/html": {}}}},
    )
    def root(request: Request) -> Any:
        if wants_html(request):
            return home(request)
        return {"name": "suite", "version": __version__, "docs": "/docs", "openapi": "/openapi.json"}

    @router.get("/health", summary="Liveness: the process serves requests")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/ready",
        response_model=Readiness,
        summary="Readiness: database, search backend and models",
        responses={503: {"model": Readiness, "description": "A required check failed"}},
    )
    async def ready() -> JSONResponse:
        checks = {
            "database": lambda: _check_database(ctx),
            "search": lambda: _check_search(ctx),
            "models": lambda: _check_models(ctx, verified),
            "plugins": lambda: _check_plugins(ctx),
        }
        results: dict[str, Check] = {}

        async def run(name: str, check: Callable[[], Check]) -> None:
            results[name] = await _run_check(check)

        async with anyio.create_task_group() as group:
            for name, check in checks.items():
                group.start_soon(run, name, check)
        ordered = {name: results[name] for name in checks}
        failed = [name for name, check in ordered.items() if check.required and not check.ok]
        body = Readiness(status="not_ready" if failed else "ready", checks=ordered)
        if failed:
            message = f"not ready: {', '.join(failed)} check failed"
            body.error = {"type": "unavailable", "message": message, "status": 503}
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503 if failed else 200)

    return router


def api_router(ctx: SuiteContext) -> APIRouter:
    """The core's JSON API, mounted behind authentication and rate limiting."""
    router = APIRouter(prefix="/api", tags=["core"])

    @router.get("/plugins", response_model=list[PluginOut], summary="Installed plugins")
    def plugins() -> list[PluginOut]:
        return [
            PluginOut(
                name=info.name,
                version=info.version,
                status=info.status,
                description=info.description,
                hooks=info.hooks,
                error=redact_paths(info.error) if info.error else None,
            )
            for info in ctx.plugins.describe()
        ]

    @router.get("/models", response_model=list[ModelOut], summary="Registered model versions")
    def models(plugin: str | None = None, task: str | None = None) -> list[ModelOut]:
        return [_model_out(version) for version in ctx.registry.list(plugin, task)]

    return router


def _model_out(version: Any) -> ModelOut:
    card = version.card
    backbone = getattr(card, "backbone", None)
    if backbone and Path(backbone).is_absolute():
        backbone = Path(backbone).name  # a local folder: its name, not the server's layout
    return ModelOut(
        ref=version.ref,
        plugin=version.plugin,
        task=version.task,
        version=version.version,
        active=version.active,
        kind=getattr(card, "kind", None),
        backbone=backbone,
        created_at=getattr(card, "created_at", None),
        train_examples=getattr(card, "train_examples", None),
        metrics=getattr(card, "metrics", None) or {},
        labels=getattr(card, "labels", None),
    )


# -- readiness checks (each runs in a worker thread, with a timeout) ----------------------
async def _run_check(check: Callable[[], Check]) -> Check:
    started = time.monotonic()
    with anyio.move_on_after(READY_CHECK_TIMEOUT):
        try:
            return await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
        except Exception as exc:
            return Check(ok=False, detail=redact_paths(one_line(exc)))
    return Check(ok=False, detail=f"timed out after {time.monotonic() - started:.0f} s")


def _check_database(ctx: SuiteContext) -> Check:
    engine = ctx.database
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return Check(ok=True, detail=engine.dialect.name)  # never the URL: it may hold a password


def _check_search(ctx: SuiteContext) -> Check:
    indexes = ctx.search.list_indexes()
    return Check(ok=True, detail=f"{ctx.settings.search.backend} backend, {len(indexes)} indexes")


def _check_models(ctx: SuiteContext, verified: set[tuple[str, str]]) -> Check:
    tasks = ctx.training_tasks()
    if not tasks:
        return Check(ok=True, detail="no models declared by the enabled plugins")
    items = {task.qualified_name: _check_model(ctx, task.plugin, task.name, verified) for task in tasks}
    missing = [name for name, item in items.items() if not item.ok]
    detail = f"{len(items) - len(missing)}/{len(items)} models ready"
    return Check(ok=not missing, detail=detail, items=items)


def _check_model(ctx: SuiteContext, plugin: str, task: str, verified: set[tuple[str, str]]) -> Check:
    try:
        version = ctx.registry.active(plugin, task)
    except Exception as exc:
        return Check(ok=False, detail=redact_paths(one_line(exc)))
    if version is None:
        return Check(ok=False, detail=f"not trained yet: run `suite train {plugin}:{task}`")
    key = (version.ref, str(version.path))
    if key not in verified:  # verifying reads the weights: once per good version and process
        try:
            ctx.registry.verify(version)
        except Exception as exc:
            return Check(ok=False, detail=redact_paths(one_line(exc)))
        verified.add(key)
    return Check(ok=True, detail=f"{version.ref} active")


def _check_plugins(ctx: SuiteContext) -> Check:
    """Plugins that failed to load or in a hook: reported, but not a reason to stop traffic."""
    problems = [f"{info.name}: {info.error}" for info in ctx.plugins.broken()]
    problems += [f"{failure.plugin} failed in {failure.hook}: {failure.error}" for failure in ctx.plugins.failures]
    if not problems:
        return Check(ok=True, detail=f"{len(ctx.plugins.names)} plugins loaded", required=False)
    return Check(ok=False, detail=redact_paths("; ".join(problems)), required=False)
