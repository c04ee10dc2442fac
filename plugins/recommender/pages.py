"""The recommendations page (``/recommender``), drawn from ``/api/recommender``.

Pick a user (or describe interests), see the recommendations with the history items each
one matched and the share each signal gave, and open any item's similar items.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from suite.web import PageSet

if TYPE_CHECKING:
    from suite.context import SuiteContext

pages = PageSet("recommender", Path(__file__).parent / "web")


@pages.page("", title="Recommendations", description="Pick a user or describe interests; see why items are picked")
def recommendations(request: Request) -> HTMLResponse:
    return pages.render(request, "recommendations.html", title="Recommendations", script="recommendations.js")


def build_router(ctx: SuiteContext) -> APIRouter:
    return pages.router
