"""The dashboard's refusals as HTML pages: the same errors and codes as the API, for people.

The API answers JSON ``{code, message, field}``; a person who followed a bad link should see a
page that says what was wrong and how to go on, so the dashboard's router maps errors here.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from events.errors import ActivityNotFoundError
from projections.errors import NotYetError, QueryError, UnknownKeyError
from services.api.dashboard.render import Page, render

__all__ = ["ERROR_PAGES"]

_log = logging.getLogger("ledger.dashboard")


def _page(status: int, title: str, message: str, field: str = "") -> Response:
    return render(
        "error.html",
        Page(title, None),
        status_code=status,
        status=status,
        message=message,
        field=field,
    )


def _on_query_error(_: Request, exc: QueryError) -> Response:
    if isinstance(exc, UnknownKeyError):
        return _page(404, "Not found", str(exc), exc.parameter)
    return _page(400, "Cannot show this page", str(exc), exc.parameter)


def _on_not_found(_: Request, exc: ActivityNotFoundError) -> Response:
    return _page(404, "Not found", str(exc), "activity_id")


def _on_not_yet(_: Request, exc: NotYetError) -> Response:
    response = _page(503, "Not ready yet", str(exc))
    response.headers["Retry-After"] = "1"
    return response


def _on_validation(_: Request, exc: ValidationException) -> Response:
    problems = exc.extra if isinstance(exc.extra, list) else []
    first = problems[0] if problems and isinstance(problems[0], dict) else {}
    field = str(first.get("key", ""))
    message = str(first.get("message", exc.detail))
    return _page(400, "Cannot show this page", f"{field}: {message}" if field else message, field)


def _on_http(_: Request, exc: HTTPException) -> Response:
    if exc.status_code == 405:
        return _page(405, "Read-only", "The dashboard only shows the ledger; it changes nothing.")
    if exc.status_code == 404:
        return _page(404, "Not found", "There is no such page.")
    return _page(exc.status_code, "Cannot show this page", str(exc.detail))


def _on_unexpected(request: Request, exc: Exception) -> Response:
    _log.exception("page failed: %s %s", request.method, request.url.path)
    return _page(500, "Something went wrong", "The page failed; the server's log has the details.")


ERROR_PAGES: dict[type[Exception] | int, Any] = {
    QueryError: _on_query_error,
    ActivityNotFoundError: _on_not_found,
    NotYetError: _on_not_yet,
    ValidationException: _on_validation,
    HTTPException: _on_http,
    Exception: _on_unexpected,
}
"""Every error a page can raise, and the HTML page it becomes."""
