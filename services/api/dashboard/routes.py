"""The dashboard's pages: thin GET handlers over :mod:`projections.queries`, rendered to HTML.

Each handler reads the live projection through the app's :class:`~services.api.read_model.ReadModel`
(the same one the API uses), asks the same query functions in one of its worker threads (never
on the event loop), and hands their answers to a template. Every page takes
``?as_of_sequence=N``: the projection holds one sequence, so a page asked for another says so
plainly (see ``templates/base.html``).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import Annotated, Any, TypedDict, TypeVar

from litestar import MediaType, Request, Response, get
from litestar.params import FromPath, FromQuery, QueryParameter

from events.errors import ActivityNotFoundError
from events.reference import load_reference
from events.store import EventStore
from projections import queries
from projections.answers import ActivityPage, Cell, Summary
from replay.history import HistoryEntry, activity_history
from services.api.dashboard.charts import column_chart, row_chart
from services.api.dashboard.format import ACTIVITY_COUNT, metric_label, metric_unit
from services.api.dashboard.render import Page, href, render, segment
from services.api.dashboard.views import (
    cell_bars,
    metrics_of,
    parse_year,
    pick_metric,
    same_snapshot,
    top_cells,
)

__all__ = ["PAGES", "PAGE_SIZE"]

_log = logging.getLogger("ledger.dashboard")

PAGE_SIZE = 50
"""Activities listed per page; the next page is a link (keyset cursor)."""
TOP = 10
"""How many countries and programmes the overview ranks."""
ROW_CHART_MOST = 15
"""The most rows a horizontal chart draws; its table lists them all."""
PROVENANCE_SHOWN = PAGE_SIZE
"""Activities a provenance page lists; the next page is a link, and its CSV has them all."""
_NATS_TIMEOUT = 3.0
_PLURAL = {"country": "/countries", "programme": "/programmes", "year": "/years"}

AsOfSequence = Annotated[
    int | None,
    QueryParameter(ge=0, description="The sequence the reader wants the page to reflect"),
]
Text = FromQuery[str | None]
"""Form fields arrive as text, empty when left blank; each page parses its own."""


def _page(path: str, *params: str) -> Any:
    """A GET page that accepts only the named query parameters, and ``as_of_sequence``."""
    return get(
        path,
        opt={"query": frozenset({*params, "as_of_sequence"})},
        media_type=MediaType.HTML,
        include_in_schema=False,
    )


T = TypeVar("T")


async def _read(request: Request, read: Callable[[sqlite3.Connection], T]) -> T:
    """``read(conn)`` in one of the read model's worker threads."""
    return await request.app.state.read_model.run(read)


def _blank(text: str | None) -> str | None:
    return text.strip() if text and text.strip() else None


async def _stream_last(store: EventStore | None) -> int | None:
    if store is None:
        return None
    try:
        return await asyncio.wait_for(store.last_sequence(), _NATS_TIMEOUT)
    except Exception:  # the badge still helps without the stream's side
        _log.warning("could not read the stream's last sequence", exc_info=True)
        return None


# -- overview and indexes ----------------------------------------------------------------------


@_page("/")
async def overview(request: Request, as_of_sequence: AsOfSequence = None) -> Response:
    """Headline totals, activities per year, the top countries and programmes, and status."""
    last = await _stream_last(request.app.state.store)
    total, years, countries, programmes, status = await _read(
        request,
        lambda conn: same_snapshot(
            lambda: (
                queries.global_summary(conn),
                queries.list_years(conn),
                queries.list_countries(conn),
                queries.list_programmes(conn),
                queries.status(conn, last),
            )
        ),
    )
    top_countries = top_cells(countries.items, TOP)
    top_programmes = top_cells(programmes.items, TOP)
    return render(
        "overview.html",
        Page("Overview", years.as_of, as_of_sequence),
        total=total,
        years=years.items,
        counts={
            "countries": len(countries.items),
            "programmes": len(programmes.items),
            "years": len(years.items),
        },
        status=status,
        top_countries=top_countries,
        top_programmes=top_programmes,
        year_chart=column_chart(
            cell_bars(years.items, ACTIVITY_COUNT),
            chart_id="years",
            title="Activities per year",
            unit="activities",
        ),
        country_chart=row_chart(
            cell_bars(top_countries, ACTIVITY_COUNT),
            chart_id="countries",
            title=f"Top {len(top_countries)} countries by activities counted",
            unit="activities",
        ),
        programme_chart=row_chart(
            cell_bars(top_programmes, ACTIVITY_COUNT),
            chart_id="programmes",
            title=f"Top {len(top_programmes)} programmes by activities counted",
            unit="activities",
        ),
    )


def _index(page: Page, key: str, cells: list[Cell], csv: str) -> Response:
    return render("index.html", page, key=key, cells=cells, metrics=metrics_of(cells), csv=csv)


@_page("/countries")
async def countries(request: Request, as_of_sequence: AsOfSequence = None) -> Response:
    """Every country with activities, and its figures."""
    answer = await _read(request, queries.list_countries)
    page = Page("Countries", answer.as_of, as_of_sequence)
    return _index(page, "country", answer.items, "/v1/countries?format=csv")


@_page("/programmes")
async def programmes(request: Request, as_of_sequence: AsOfSequence = None) -> Response:
    """Every programme with activities, and its figures."""
    answer = await _read(request, queries.list_programmes)
    page = Page("Programmes", answer.as_of, as_of_sequence)
    return _index(page, "programme", answer.items, "/v1/programmes?format=csv")


@_page("/years")
async def years(request: Request, as_of_sequence: AsOfSequence = None) -> Response:
    """Every year with activities, and its figures."""
    answer = await _read(request, queries.list_years)
    page = Page("Years", answer.as_of, as_of_sequence)
    return _index(page, "year", answer.items, "/v1/years?format=csv")


# -- country, programme and year ---------------------------------------------------------------


def _list_links(
    page: Page,
    base: str,
    listing: ActivityPage,
    cursor: str | None,
    filters: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, str | None]:
    """The links of an activity list: all of it as CSV, its next page, and back to the first."""
    return {
        "csv": href("/csv/activities", **filters),
        "next": page.link(base, **params, cursor=listing.next_cursor)
        if listing.next_cursor
        else None,
        "first": page.link(base, **params) + "#activities" if cursor else None,
    }


class _Breakdown(TypedDict):
    """One breakdown of a summary page, as its template reads it."""

    part: str
    key: str
    cells: list[Cell]


def _summary_page(
    page: Page,
    summary: Summary,
    listing: ActivityPage,
    *,
    scope: str,
    key: str,
    metric: str | None,
    parts: list[tuple[str, str]],
    cursor: str | None,
) -> Response:
    """One page shape for a country, a programme and a year.

    :param scope: ``country``, ``programme`` or ``year``: which summary this is.
    :param key: the summary's code or year, as it appears in its URL.
    :param parts: the breakdowns to show, as (field of the summary, key of its cells).
    """
    metrics = sorted(summary.totals)
    chosen = pick_metric(metric, metrics)
    keys = {"country": summary.country, "programme": summary.programme, "year": summary.year}
    breakdowns: list[_Breakdown] = [
        {"part": part, "key": cell_key, "cells": getattr(summary, part) or []}
        for part, cell_key in parts
    ]
    chart_cells: list[Cell] = breakdowns[0]["cells"]
    chart_title = f"{metric_label(chosen)} {breakdowns[0]['part'].replace('_', ' ')}"
    if breakdowns[0]["key"] == "year":
        chart = column_chart(
            cell_bars(chart_cells, chosen),
            chart_id="chart",
            title=chart_title,
            unit=metric_unit(chosen),
        )
    else:
        shown = top_cells(chart_cells, ROW_CHART_MOST, chosen)
        chart = row_chart(
            cell_bars(shown, chosen),
            chart_id="chart",
            title=f"{chart_title} (top {len(shown)})",
            unit=metric_unit(chosen),
        )
    base = f"{_PLURAL[scope]}/{segment(key)}"
    narrowed = summary.year if scope != "year" else None
    filters = {scope: summary.year if scope == "year" else key, "year": summary.year}
    return render(
        "summary.html",
        page,
        scope=scope,
        key=key,
        base=base,
        summary=summary,
        keys={k: v for k, v in keys.items() if v is not None},
        metrics=metrics,
        metric=chosen,
        chart=chart,
        breakdowns=breakdowns,
        listing=listing,
        links=_list_links(page, base, listing, cursor, filters, {"year": narrowed}),
        csv_base=f"/csv/{scope}/{segment(key)}",
    )


@_page("/countries/{country:str}", "year", "metric", "cursor")
async def country(
    request: Request,
    country: FromPath[str],
    year: Text = None,
    metric: Text = None,
    cursor: Text = None,
    as_of_sequence: AsOfSequence = None,
) -> Response:
    """One country: totals, figures by year and programme, multi-country and activities."""
    narrowed, cursor = parse_year(year), _blank(cursor)
    code = queries.resolve_country(country)
    summary, listing = await _read(
        request,
        lambda conn: same_snapshot(
            lambda: (
                queries.country_summary(conn, code, narrowed),
                queries.list_activities(
                    conn, country=code, year=narrowed, cursor=cursor, limit=PAGE_SIZE
                ),
            )
        ),
    )
    page = Page(summary.name or code, summary.as_of, as_of_sequence)
    return _summary_page(
        page,
        summary,
        listing,
        scope="country",
        key=code,
        metric=metric,
        parts=[("by_year", "year"), ("by_programme", "programme")],
        cursor=cursor,
    )


@_page("/programmes/{programme:str}", "year", "metric", "cursor")
async def programme(
    request: Request,
    programme: FromPath[str],
    year: Text = None,
    metric: Text = None,
    cursor: Text = None,
    as_of_sequence: AsOfSequence = None,
) -> Response:
    """One programme: totals, figures by year and country, multi-country and activities."""
    narrowed, cursor = parse_year(year), _blank(cursor)
    code = queries.resolve_programme(programme)
    summary, listing = await _read(
        request,
        lambda conn: same_snapshot(
            lambda: (
                queries.programme_summary(conn, code, narrowed),
                queries.list_activities(
                    conn, programme=code, year=narrowed, cursor=cursor, limit=PAGE_SIZE
                ),
            )
        ),
    )
    page = Page(summary.name or code, summary.as_of, as_of_sequence)
    return _summary_page(
        page,
        summary,
        listing,
        scope="programme",
        key=code,
        metric=metric,
        parts=[("by_year", "year"), ("by_country", "country")],
        cursor=cursor,
    )


@_page("/years/{year:int}", "metric", "cursor")
async def year(
    request: Request,
    year: FromPath[int],
    metric: Text = None,
    cursor: Text = None,
    as_of_sequence: AsOfSequence = None,
) -> Response:
    """One year: totals, figures by programme and country, multi-country and activities."""
    cursor = _blank(cursor)
    summary, listing = await _read(
        request,
        lambda conn: same_snapshot(
            lambda: (
                queries.year_summary(conn, year),
                queries.list_activities(conn, year=year, cursor=cursor, limit=PAGE_SIZE),
            )
        ),
    )
    page = Page(str(year), summary.as_of, as_of_sequence)
    return _summary_page(
        page,
        summary,
        listing,
        scope="year",
        key=str(year),
        metric=metric,
        parts=[("by_programme", "programme"), ("by_country", "country")],
        cursor=cursor,
    )


# -- one activity, provenance, search ----------------------------------------------------------


async def _history(store: EventStore | None, activity_id: str) -> tuple[list[HistoryEntry], str]:
    """The activity's history from the stream, or none and the reason why."""
    if store is None:
        return [], (
            "The history is read from the event stream, and this server has no NATS "
            "connection (it serves a projection file alone). Start the stack with `ledger up`, "
            "or give `--nats-url`, to see who changed what, when and why."
        )
    try:
        return await asyncio.wait_for(activity_history(store, activity_id), _NATS_TIMEOUT), ""
    except ActivityNotFoundError:
        return [], "The stream this server reads holds no event of this activity."
    except TimeoutError:
        return [], "The event stream did not answer in time; reload the page to try again."


@_page("/activities/{activity_id:str}")
async def activity(
    request: Request, activity_id: FromPath[str], as_of_sequence: AsOfSequence = None
) -> Response:
    """One activity: its current state, its source, and its history from the stream."""
    detail = await _read(request, lambda conn: queries.get_activity(conn, activity_id))
    history, note = await _history(request.app.state.store, activity_id)
    ref = load_reference()
    return render(
        "activity.html",
        Page(detail.title, detail.as_of, as_of_sequence),
        detail=detail,
        country_names={p.country: ref.country_name(p.country) for p in detail.countries},
        programme_name=_programme_name(detail.programme),
        history=history,
        history_note=note,
    )


def _programme_name(code: str) -> str:
    entry = load_reference().programmes.get(code)
    return entry.name if entry else code


@_page("/provenance", "country", "programme", "year", "metric", "cursor")
async def provenance(
    request: Request,
    country: Text = None,
    programme: Text = None,
    year: Text = None,
    metric: Text = None,
    cursor: Text = None,
    as_of_sequence: AsOfSequence = None,
) -> Response:
    """The activities and events that make up one figure, which their values sum to."""
    key: dict[str, Any] = {
        "country": _blank(country),
        "programme": _blank(programme),
        "year": parse_year(year),
        "metric": _blank(metric) or ACTIVITY_COUNT,
    }
    cursor = _blank(cursor)
    answer = await _read(
        request,
        lambda conn: queries.provenance(conn, **key, cursor=cursor, limit=PROVENANCE_SHOWN),
    )
    ref = load_reference()
    where = [
        *([ref.country_name(answer.country)] if answer.country else []),
        *([_programme_name(answer.programme)] if answer.programme else []),
        *([str(answer.year)] if answer.year is not None else []),
    ]
    page = Page(
        f"{metric_label(answer.metric)}: where the figure comes from",
        answer.as_of,
        as_of_sequence,
    )
    figure = {
        "country": answer.country,
        "programme": answer.programme,
        "year": answer.year,
        "metric": answer.metric,
    }
    return render(
        "provenance.html",
        page,
        answer=answer,
        where=", ".join(where) or "all countries, programmes and years",
        items=answer.items,
        csv=href("/csv/provenance", **figure),
        next_url=page.link("/provenance", **figure, cursor=answer.next_cursor)
        if answer.next_cursor
        else None,
        first_url=page.link("/provenance", **figure) if cursor else None,
    )


@_page("/search", "q", "country", "programme", "year", "kind", "status", "cursor")
async def search(
    request: Request,
    q: Text = None,
    country: Text = None,
    programme: Text = None,
    year: Text = None,
    kind: Text = None,
    status: Text = None,
    cursor: Text = None,
    as_of_sequence: AsOfSequence = None,
) -> Response:
    """Full text over titles and summaries, with filters; a GET form, so results can be linked."""
    filters: dict[str, Any] = {
        "q": _blank(q),
        "country": _blank(country),
        "programme": _blank(programme),
        "year": parse_year(year),
        "kind": _blank(kind),
        "status": _blank(status),
    }
    cursor = _blank(cursor)
    found, countries, programmes, years = await _read(
        request,
        lambda conn: same_snapshot(
            lambda: (
                queries.list_activities(conn, **filters, cursor=cursor, limit=PAGE_SIZE),
                queries.list_countries(conn),
                queries.list_programmes(conn),
                queries.list_years(conn),
            )
        ),
    )
    page = Page("Search activities", found.as_of, as_of_sequence)
    return render(
        "search.html",
        page,
        filters=filters,
        listing=found,
        links=_list_links(page, "/search", found, cursor, filters, filters),
        countries=countries.items,
        programmes=programmes.items,
        years=[cell.year for cell in years.items],
        kinds=sorted(load_reference().kinds),
    )


PAGES = [
    overview,
    countries,
    programmes,
    years,
    country,
    programme,
    year,
    activity,
    provenance,
    search,
]
"""Every page handler, for the dashboard's router."""
