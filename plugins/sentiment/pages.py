"""The monitoring dashboard (``/sentiment``), drawn from ``/api/sentiment``.

The watchlist with each entity's current sentiment and volume against its baseline, a chart
over time for the selected entity (the PNG of ``/entities/{name}/chart.png``), the alert
list with links to the evidence and an acknowledge button, and the last monitor runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from plugins.sentiment.model import PLUGIN
from suite.web import PageSet

if TYPE_CHECKING:
    from suite.context import SuiteContext

pages = PageSet(PLUGIN, Path(__file__).parent / "web")


@pages.page(
    "", title="Monitoring", description="Watchlist sentiment and volume, charts over time, alerts to acknowledge"
)
def dashboard(request: Request) -> HTMLResponse:
    return pages.render(request, "dashboard.html", title="Monitoring", script="dashboard.js")


def build_router(ctx: SuiteContext) -> APIRouter:
    return pages.router
