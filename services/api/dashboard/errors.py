"""The dashboard's refusals as HTML pages: the same errors and codes as the API, for people.

The API answers JSON ``{code, message, field}``; a person who followed a bad link should see a
page that says what was wrong and how to go on, so the dashboard's router maps errors here. The
page, its status and its headers for one of the ledger's errors are the error's row of the one
error table, :mod:`services.errors`, which the API reads too.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from events.errors import LedgerError
from projections.errors import QueryError
from services.api.dashboard.render import Page, render
from services.errors import answer_for, field_of

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


def _on_ledger_error(request: Request, exc: LedgerError) -> Response:
    answer = answer_for(exc)
    if answer.internal:
        return _on_unexpected(request, exc)
    # The page names the field itself; a query error's text would name it twice.
    message = exc.message if isinstance(exc, QueryError) else str(exc)
    response = _page(answer.status, answer.page.title, message, field_of(exc))
    response.headers.update(answer.headers)
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
    # The same classes as the API's handlers: a router's handler overrides the app's only for
    # the very class it names.
    LedgerError: _on_ledger_error,
    ValidationException: _on_validation,
    HTTPException: _on_http,
    Exception: _on_unexpected,
}
"""Every error a page can raise, and the HTML page it becomes."""
