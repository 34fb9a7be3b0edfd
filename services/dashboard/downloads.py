"""Every list the dashboard shows, as CSV: the parts of a summary, and whole activity lists.

The API's CSV gives one page of activities at a time; a person clicking "Download CSV" wants
the whole list, so these routes page through :func:`projections.queries.list_activities`
themselves. The columns are the API's (:mod:`services.tables`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery

from projections import queries
from projections.answers import ActivityItem, AsOf, Cell
from projections.errors import BadParameterError, UnknownKeyError
from services.dashboard.views import parse_year
from services.tables import to_csv

__all__ = ["DOWNLOADS"]

_PARTS = ("by_year", "by_country", "by_programme", "multi_country")
_SCOPES = ("country", "programme", "year")


def _csv(text: str, as_of: AsOf, filename: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-As-Of-Sequence": str(as_of.sequence),
            "X-As-Of-Time": as_of.time.isoformat() if as_of.time else "",
        },
    )


def _every_activity(request: Request, **filters: Any) -> tuple[list[ActivityItem], AsOf]:
    """All activities matching the filters, page after page, and the first page's as_of."""
    conn = request.app.state.read_model.connection()
    items: list[ActivityItem] = []
    cursor: str | None = None
    as_of: AsOf | None = None
    while True:
        page = queries.list_activities(conn, **filters, cursor=cursor, limit=queries.MAX_LIMIT)
        as_of = as_of or page.as_of
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return items, as_of


def _text(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


@get(
    "/csv/activities",
    opt={"query": frozenset({"q", "country", "programme", "year", "kind", "status"})},
    include_in_schema=False,
)
async def activities_csv(
    request: Request,
    q: FromQuery[str | None] = None,
    country: FromQuery[str | None] = None,
    programme: FromQuery[str | None] = None,
    year: FromQuery[str | None] = None,
    kind: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
) -> Response:
    """Every activity matching the filters (those of the search page) as CSV."""
    items, as_of = _every_activity(
        request,
        q=_text(q),
        country=_text(country),
        programme=_text(programme),
        year=parse_year(year),
        kind=_text(kind),
        status=_text(status),
    )
    return _csv(to_csv(items, ActivityItem), as_of, "activities.csv")


def _multi_country(items: list[ActivityItem]) -> Iterator[ActivityItem]:
    # The summaries list at most a few by name; the CSV gives every one, from the same rows.
    return (item for item in items if item.multi_country and item.status == "active")


@get(
    "/csv/{summary:str}/{key:str}/{part:str}",
    opt={"query": frozenset({"year"})},
    include_in_schema=False,
)
async def summary_csv(
    request: Request,
    summary: FromPath[str],
    key: FromPath[str],
    part: FromPath[str],
    year: FromQuery[str | None] = None,
) -> Response:
    """One list of a country's, programme's or year's page, e.g. ``/csv/country/KAZ/by_year``."""
    scope = summary  # ``scope`` is a name Litestar keeps for the ASGI scope
    if scope not in _SCOPES:
        raise UnknownKeyError("scope", f"no list of {scope!r}; one of {', '.join(_SCOPES)}")
    if part not in _PARTS:
        raise UnknownKeyError("part", f"no list {part!r}; one of {', '.join(_PARTS)}")
    conn = request.app.state.read_model.connection()
    narrowed = parse_year(year)
    if scope == "year":
        narrowed = parse_year(key)
        if narrowed is None:
            raise BadParameterError("year", "give a year, e.g. /csv/year/2020/by_country")
    filename = (
        f"{scope}-{key}-{part}.csv" if narrowed is None else f"{scope}-{key}-{narrowed}-{part}.csv"
    )
    if part == "multi_country":
        filters = {scope: narrowed if scope == "year" else key, "year": narrowed}
        items, as_of = _every_activity(request, **filters)
        return _csv(to_csv(list(_multi_country(items)), ActivityItem), as_of, filename)
    if scope == "country":
        answer = queries.country_summary(conn, key, narrowed)
    elif scope == "programme":
        answer = queries.programme_summary(conn, key, narrowed)
    else:
        answer = queries.year_summary(conn, narrowed)  # type: ignore[arg-type]
    cells = getattr(answer, part)
    if cells is None:
        raise UnknownKeyError("part", f"a {scope} page has no list {part!r}")
    return _csv(to_csv(cells, Cell), answer.as_of, filename)


DOWNLOADS = [activities_csv, summary_csv]
"""Every CSV route, for the dashboard's router."""
