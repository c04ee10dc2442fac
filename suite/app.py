"""The HTTP app: one FastAPI app for the core and every enabled plugin (``suite serve``).

Plugins contribute routers through the ``suite_http_routers`` hook; the core mounts each
one behind the same authentication, rate limit and error handling, and documents them all
in one OpenAPI schema (``/docs``, ``/redoc``, ``/openapi.json``). A plugin whose hook raises,
or returns something that is not a router, is recorded (``/ready`` and ``GET /api/plugins``
show it) and left out; the app still starts.

Writing endpoints in a plugin:

- Declare CPU-bound endpoints (model inference, spaCy, search with embeddings) with a plain
  ``def``: FastAPI runs them in its thread pool, so the event loop keeps serving other
  requests. Use ``async def`` only for endpoints that never block.
- Models are loaded once per process and shared: take them from ``ctx`` (services are
  cached there) or from a cache of the plugin's own, never per request.
- Validate user text with :func:`suite.http.limits.check_texts` (batch size and text
  length from ``[http]``), and raise :class:`suite.errors.SuiteError` subclasses for the
  rest: ``NotFoundError`` becomes 404, ``DataError`` 422, any other ``SuiteError`` 400,
  and anything unexpected a 500 whose body names a request id, never the traceback.
- Every error body is ``{"error": {"type", "message", "status"}}`` (see
  :mod:`suite.http.errors`).

With several workers (``suite serve --workers 4``) each worker is a process that builds its
own context and models from the configuration (:func:`app_from_env`), so memory grows with
the number of workers. The rate limit is counted per worker unless ``http.rate_limit_storage``
names a Redis server that they share; ``/metrics`` adds up every worker's figures. The
scheduler never runs inside the API: it is its own process (``suite scheduler run``).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.security import HTTPAuthorizationCredentials
from fastapi_offline import FastAPIOffline

from services import metrics
from services.training.loading import set_long_running
from suite import __version__, web
from suite.config import CONFIG_ENV, HttpConfig
from suite.context import SuiteContext
from suite.errors import ConfigError
from suite.http.auth import ApiKeyAuth, Caller, auth_required, bearer_scheme
from suite.http.errors import ERROR_RESPONSES, ApiError, install_error_handlers
from suite.http.limits import BodySizeLimit, RateLimiter
from suite.http.metrics import RequestMetrics, metrics_router
from suite.http.middleware import RequestContext
from suite.http.routes import api_router, core_router

log = logging.getLogger(__name__)
HOOK = "suite_http_routers"


def create_app(ctx: SuiteContext, http: HttpConfig | None = None) -> FastAPI:
    """Build the app for ``ctx``; ``http`` overrides ``ctx.settings.http`` (host, port...).

    :raises ConfigError: authentication is required but no API key is configured.
    """
    http = http or ctx.settings.http
    ctx.schema_auto_upgrade = False  # a server never changes an existing schema: 'suite db upgrade' does
    guard = _guard(ApiKeyAuth(http), rate_limiter(http))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.startup()
        # Before the first request (and /ready) is answered: models loaded and traced, indexes read.
        ctx.plugins.call_each("suite_warm_up", ctx=ctx)
        try:
            yield
        finally:
            ctx.shutdown()

    app = FastAPIOffline(  # /docs and /redoc with Swagger UI and ReDoc served locally, not from a CDN
        title="suite",
        version=__version__,
        description="A plugin-based NLP application suite. Send `Authorization: Bearer <API key>` "
        "unless the server runs on loopback without authentication.",
        lifespan=lifespan,
        static_url=web.DOCS_STATIC_URL,
        redoc_url=None,  # web.install serves it, under a stricter policy
    )
    web.install(app)  # the pages' stylesheet and scripts, /redoc (see suite.web)
    app.state.ctx = ctx
    app.state.http = http
    install_error_handlers(app)
    # Added last = outermost: the request id and the 500 guard wrap everything, body size included;
    # the request metrics wrap those too, so they count every answer.
    app.add_middleware(BodySizeLimit, max_bytes=http.max_body_bytes)
    app.add_middleware(RequestContext, limits=http)
    app.add_middleware(RequestMetrics)

    app.include_router(core_router(ctx))
    protected = {"dependencies": [Depends(guard)], "responses": ERROR_RESPONSES}
    app.include_router(api_router(ctx), **protected)
    if http.metrics:
        app.include_router(metrics_router(), **protected)
    for name, router in ctx.plugins.collect(HOOK, ctx=ctx):
        _mount(app, ctx, name, router, protected)
    return app


def rate_limiter(http: HttpConfig) -> RateLimiter:
    """The limiter ``[http]`` asks for, its store checked.

    :raises ConfigError: the store (Redis) does not answer.
    """
    limiter = RateLimiter(http.rate_limit_per_minute, http.rate_limit_storage, http.rate_limit_prefix)
    limiter.ping()
    return limiter


def _guard(auth: ApiKeyAuth, limiter: RateLimiter):
    async def guard(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme)
    ) -> Caller:
        try:
            caller = auth.identify(request, credentials)
        except ApiError:
            limiter.check(auth.client_identity(request))  # failed attempts count against the address
            raise
        limiter.check(caller.identity)
        return caller

    return guard


def _mount(app: FastAPI, ctx: SuiteContext, plugin: str, router: Any, options: dict[str, Any]) -> None:
    if not isinstance(router, APIRouter):
        error = TypeError(f"returned {type(router).__name__}, not a fastapi.APIRouter")
        ctx.plugins.record_failure(plugin, HOOK, error)
        return
    try:  # routers are included lazily: build this one's schema now, so a broken one stays out
        probe = FastAPI()
        probe.include_router(router, **options)
        probe.openapi()
    except Exception as exc:
        ctx.plugins.record_failure(plugin, HOOK, exc)
        return
    app.include_router(router, **options)
    web.note_pages(app, router)  # its HTML pages join the nav bar


# -- running -------------------------------------------------------------------------------
def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory suite.app:app_from_env``: config from file and env.

    Each worker process calls it, so each builds its own context, services and models.
    """
    set_long_running()  # a server process: worth torch's import where bfloat16 is native
    ctx = SuiteContext.create()
    logging.basicConfig(level=ctx.settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    for info in ctx.plugins.broken():
        log.warning("plugin %s %s", info.name, info.error)
    return create_app(ctx)


def serve(
    ctx: SuiteContext,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    config_file: str | Path | None = None,
) -> None:
    """Run the API with uvicorn in the foreground (never the scheduler)."""
    import uvicorn

    http = effective_http(ctx, host=host, port=port, workers=workers)
    ApiKeyAuth(http)  # fail now, with one line, rather than in every worker
    rate_limiter(http)
    ctx.require_current_schema()  # an outdated schema stops the server here, with one line
    keys = "required" if auth_required(http) else "not required"
    where = f"http://{http.host}:{http.port}"
    print(f"serving on {where} ({http.workers} worker(s), API keys {keys})", file=sys.stderr)
    options: dict[str, Any] = {
        "host": http.host,
        "port": http.port,
        "log_level": ctx.settings.log_level.lower(),
        "proxy_headers": True,
        "server_header": False,
    }
    if http.workers == 1:
        set_long_running()
        uvicorn.run(create_app(ctx, http), **options)
        return
    # Workers are fresh processes: hand them the effective settings through the environment.
    if http.metrics:  # each worker writes its figures there; /metrics sums them
        os.environ[metrics.MULTIPROCESS_ENV] = str(fresh_metrics_dir(ctx.settings.data_dir, http.port))
    os.environ["SUITE_HTTP__HOST"] = http.host
    os.environ["SUITE_HTTP__PORT"] = str(http.port)
    os.environ["SUITE_DATA_DIR"] = str(ctx.settings.data_dir)
    if config_file:
        os.environ[CONFIG_ENV] = str(Path(config_file).expanduser().resolve())
    uvicorn.run("suite.app:app_from_env", factory=True, workers=http.workers, **options)


def fresh_metrics_dir(data_dir: Path, port: int) -> Path:
    """An empty folder where the workers of the server on ``port`` write their metrics.

    Emptied at each start: figures of a previous run's workers must not be summed in.
    """
    folder = data_dir / "metrics" / f"serve-{port}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def effective_http(ctx: SuiteContext, **overrides: Any) -> HttpConfig:
    """``ctx.settings.http`` with command-line overrides, validated."""
    from pydantic import ValidationError

    from suite.config import describe_validation_error

    values = {**ctx.settings.http.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return HttpConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "suite serve")) from None
