"""The read-only web dashboard: HTML pages and SVG charts over the same queries as the API.

Mounted into the API's Litestar app by :func:`services.api.app.create_app`, so one server, one
read model and one set of query functions answer both. Pages are rendered on the server and
work without JavaScript; nothing they show is fetched from anywhere else.
"""

from __future__ import annotations

from importlib import resources

from litestar import Response, Router, get

from services.api.dashboard.downloads import DOWNLOADS
from services.api.dashboard.errors import ERROR_PAGES
from services.api.dashboard.routes import PAGES

__all__ = ["dashboard_router"]


@get("/static/dashboard.css", include_in_schema=False, opt={"query": frozenset()})
async def stylesheet() -> Response:
    """The dashboard's one stylesheet, from the package."""
    css = resources.files(__name__).joinpath("static", "dashboard.css").read_text("utf-8")
    return Response(
        css,
        media_type="text/css; charset=utf-8",
        headers={"Cache-Control": "public, max-age=3600"},
    )


def dashboard_router() -> Router:
    """The dashboard's pages, CSV downloads and stylesheet, served from ``/``."""
    return Router(
        path="/",
        route_handlers=[*PAGES, *DOWNLOADS, stylesheet],
        exception_handlers=ERROR_PAGES,
    )
