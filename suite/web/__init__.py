"""Server-rendered HTML pages: a shared layout, stylesheet and fetch helper, and the page kit plugins use.

A plugin adds pages with a :class:`PageSet` on a folder of its own holding ``templates/``
and ``static/``, and returns ``pages.router`` from its ``suite_http_routers`` hook next to
its JSON router::

    pages = PageSet("chatbot", Path(__file__).parent / "web")

    @pages.page("", title="Chat", description="Talk to the customer-service bot")
    def chat(request: Request) -> HTMLResponse:
        return pages.render(request, "chat.html", script="chat.js")

Templates extend ``suite/base.html`` (blocks ``title``, ``content``, ``scripts``), which
draws the nav bar (every page declared this way, found on the app's routes), links
``/static/suite/suite.css`` and ``suite.js``, and asks for the API key when the server
requires one. Pages are open without a key (they hold no data); their scripts call the
JSON APIs through ``Suite.api`` (``suite.js``), which sends the key kept in
``sessionStorage`` and shows JSON errors.

Pages load nothing from outside the suite: no CDN, no external fonts or scripts. Every
page answers with a Content-Security-Policy that lets the browser enforce it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from suite import __version__
from suite.http.auth import PUBLIC, auth_required

WEB_DIR = Path(__file__).parent
STATIC_URL = "/static/suite"
DOCS_STATIC_URL = "/static/docs"
PAGE_FLAG = "x-suite-page"

# Same-origin only: the browser itself refuses anything a page would load from elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# ReDoc styles itself inline and searches in a blob: worker; it may load nothing from elsewhere either.
REDOC_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' blob:; "
    "worker-src 'self' blob:; font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class PageLink:
    """A page in the nav bar and on the home page."""

    title: str
    path: str
    description: str
    plugin: str


def install(app: FastAPI) -> None:
    """Serve the core's stylesheet and scripts at ``/static/suite``, and ReDoc at ``/redoc``, offline.

    The app is made with ``FastAPIOffline``, which serves Swagger UI and ReDoc's files
    itself (at :data:`DOCS_STATIC_URL`). ReDoc's bundle still shows a logo from its CDN,
    so ``/redoc`` is served here with a policy under which the browser never fetches it.
    """
    app.mount(STATIC_URL, StaticFiles(directory=WEB_DIR / "static"), name="suite-static")

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = REDOC_CONTENT_SECURITY_POLICY
        return page


def note_pages(app: FastAPI, router: APIRouter) -> None:
    """Record the pages ``router`` declares (:meth:`PageSet.page`) for the nav bar of ``app``."""
    if not hasattr(app.state, "suite_pages"):
        app.state.suite_pages = []
    pages: list[PageLink] = app.state.suite_pages
    for route in router.routes:
        page = (getattr(route, "openapi_extra", None) or {}).get(PAGE_FLAG) if isinstance(route, APIRoute) else None
        if page and page.get("nav", True):
            pages.append(PageLink(page["title"], route.path, page.get("description", ""), page.get("plugin", "")))


def site_pages(app: FastAPI) -> list[PageLink]:
    """The pages in the nav bar of ``app``, in the order their plugins were mounted."""
    return list(getattr(app.state, "suite_pages", []))


def wants_html(request: Request) -> bool:
    """True for a browser (``Accept`` names text/html); API clients (``*/*``, JSON) get JSON."""
    return "text/html" in request.headers.get("accept", "")


def _base_context(request: Request) -> dict[str, Any]:
    root = request.scope.get("root_path", "")
    path = request.url.path
    http = getattr(request.app.state, "http", None)
    return {
        "root": root,
        "static": f"{root}{STATIC_URL}",
        "nav": site_pages(request.app),
        "auth_required": bool(http and auth_required(http)),
        "suite_version": __version__,
        "current_path": path[len(root) :] if root and path.startswith(root) else path,
    }


@lru_cache(maxsize=32)
def templates_for(folder: Path | None) -> Jinja2Templates:
    """Templates from ``folder``, with the core's available as ``suite/<name>``."""
    core = jinja2.FileSystemLoader(WEB_DIR / "templates")
    loaders: list[jinja2.BaseLoader] = [jinja2.PrefixLoader({"suite": core})]
    if folder is not None:
        loaders.insert(0, jinja2.FileSystemLoader(folder))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,  # a typo in a template fails the test, not the page silently
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=env, context_processors=[_base_context])


def render(request: Request, templates_dir: Path | None, name: str, **context: Any) -> HTMLResponse:
    """Render template ``name`` from ``templates_dir`` (or the core's) as a page response."""
    return templates_for(templates_dir).TemplateResponse(request, name, context, headers=PAGE_HEADERS)


class PageSet:
    """A plugin's pages under ``/<plugin>``: templates from ``folder/templates``, files from ``folder/static``.

    ``pages.router`` is an ``APIRouter`` to return from ``suite_http_routers``. Its routes
    stay out of the OpenAPI schema and need no API key; the static files are served at
    ``/<plugin>/static/<file>`` (``pages.static_url(request, "chat.js")``).
    """

    def __init__(self, plugin: str, folder: Path, prefix: str | None = None) -> None:
        self.plugin = plugin
        self.prefix = prefix if prefix is not None else f"/{plugin}"
        self.templates_dir = folder / "templates"
        self.router = APIRouter(prefix=self.prefix)
        files = StaticFiles(directory=folder / "static", check_dir=False)

        @self.router.get("/static/{path:path}", include_in_schema=False, openapi_extra=PUBLIC)
        async def static(path: str, request: Request) -> Response:
            return await files.get_response(path, request.scope)

    def page(
        self, path: str, *, title: str, description: str = "", nav: bool = True
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare a page at ``<prefix><path>``; ``nav=False`` keeps it out of the nav bar."""
        extra = {**PUBLIC, PAGE_FLAG: {"title": title, "description": description, "plugin": self.plugin, "nav": nav}}
        return self.router.get(path, include_in_schema=False, response_class=HTMLResponse, openapi_extra=extra)

    def render(self, request: Request, name: str, **context: Any) -> HTMLResponse:
        """Render one of this plugin's templates; ``script="x.js"`` adds ``static/x.js`` to the page."""
        script = context.pop("script", None)
        scripts = [self.static_url(request, script)] if script else []
        return render(request, self.templates_dir, name, page_scripts=scripts, **context)

    def static_url(self, request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{self.prefix}/static/{name}?v={__version__}"


def home(request: Request) -> HTMLResponse:
    """The HTML index of ``/``: the pages plugins contribute, the API docs, readiness."""
    return render(request, None, "suite/home.html", page_scripts=[], title="suite")


__all__ = [
    "CONTENT_SECURITY_POLICY",
    "DOCS_STATIC_URL",
    "PageLink",
    "PageSet",
    "home",
    "install",
    "note_pages",
    "render",
    "site_pages",
    "templates_for",
    "wants_html",
]
