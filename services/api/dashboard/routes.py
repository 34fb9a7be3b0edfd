"""The dashboard's pages: thin GET handlers over :mod:`projections.queries`, rendered to HTML.

Each handler reads the live projection through the app's :class:`~services.api.read_model.ReadModel`
(the same one the API uses), asks the same query functions in one of its worker threads (never
on the event loop), and hands their answers to a template.

Every page takes the scope of the query layer (:mod:`projections.temporal`): ``as_of`` (an
instant or a date), ``as_of_sequence`` or ``release`` for the ledger as it stood then, and
``document`` for one document's figures. The dependency :func:`~.render.asked_by` checks them;
each query is asked with the scope (``None`` for the present, the rollups' fast path); every
link keeps them; the page says which ledger it shows (``templates/base.html``). ``/releases``
lists the releases, and a release's page what changed since.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import Any, TypedDict, TypeVar

from litestar import MediaType, Request, Response, get
from litestar.di import Provide
from litestar.params import FromPath, FromQuery

from events.errors import ActivityNotFoundError
from events.reference import load_reference
from events.store import EventStore
from projections import queries
from projections.answers import (
    ActivityDetail,
    ActivityItem,
    ActivityPage,
    AsOf,
    Cell,
    Release,
    Summary,
    Timeline,
)
from projections.errors import UnknownKeyError
from projections.temporal import Scope
from replay.history import HistoryEntry, activity_history
from services.api.dashboard.charts import column_chart, row_chart
from services.api.dashboard.format import ACTIVITY_COUNT, metric_label, metric_unit
from services.api.dashboard.history_text import tell_history
from services.api.dashboard.render import (
    SCOPE_KEYS,
    Asked,
    Page,
    Scoped,
    asked_by,
    render,
    segment,
)
from services.api.dashboard.sorting import parse_sort, sort_cells
from services.api.dashboard.views import (
    ActivityChange,
    FigureChange,
    MapPanel,
    activity_change,
    blank,
    cell_bars,
    cell_changes,
    map_panel,
    metrics_of,
    parse_year,
    pick_metric,
    same_snapshot,
    top_cells,
    total_changes,
)
from services.api.lag import stream_last

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
CHANGES_SHOWN = 100
"""The most changed activities a release's page lists."""
CHANGES_SCANNED = 10 * queries.MAX_LIMIT
"""The most activities a release's page reads to find those changed since it."""
_NATS_TIMEOUT = 3.0
_PLURAL = {"country": "/countries", "programme": "/programmes", "year": "/years"}

Text = FromQuery[str | None]
"""Form fields arrive as text, empty when left blank; each page parses its own."""


def _page(path: str, *params: str) -> Any:
    """A GET page that accepts only the named query parameters and those of a scope, which
    it gets as ``scoped``."""
    return get(
        path,
        opt={"query": frozenset({*params, *SCOPE_KEYS})},
        dependencies={"scoped": Provide(asked_by)},
        media_type=MediaType.HTML,
        include_in_schema=False,
    )


T = TypeVar("T")


async def _read(request: Request, read: Callable[[sqlite3.Connection], T]) -> T:
    """``read(conn)`` in one of the read model's worker threads."""
    return await request.app.state.read_model.run(read)


def _controls(conn: sqlite3.Connection) -> tuple[Timeline, tuple[str, ...]]:
    """What the time control shows: the ledger's history, its releases and its documents.

    Read for the present: the scope would change only the answer's ``as_of``, and one answer
    for every page is kept by the read model until the projection changes.
    """
    documents = queries.list_documents(conn).items
    return queries.timeline(conn), tuple(cell.document for cell in documents if cell.document)


async def _page_of(request: Request, title: str, as_of: AsOf, asked: Asked) -> Page:
    """The page answered, with the time control's history."""
    timeline, documents = await request.app.state.read_model.query(None, _controls)
    return Page(title, as_of, asked, timeline, documents)


# -- overview and indexes ----------------------------------------------------------------------


@_page("/", "metric")
async def overview(request: Request, metric: Text = None, *, scoped: Scoped) -> Response:
    """Headline totals, the world map, activities per year, the top countries and programmes,
    and status."""
    # The badge's lag, or why there is none and what to do (services/api/lag.py).
    last, note = await stream_last(request.app.state)
    follows = request.app.state.follows_stream
    scope = scoped.scope
    total, years, countries, programmes, status = await _read(
        request,
        lambda conn: same_snapshot(
            lambda: (
                queries.global_summary(conn, scope=scope),
                queries.list_years(conn, scope=scope),
                queries.list_countries(conn, scope=scope),
                queries.list_programmes(conn, scope=scope),
                queries.status(conn, last, scope=scope, follows_stream=follows, lag_note=note),
            )
        ),
    )
    top_countries = top_cells(countries.items, TOP)
    top_programmes = top_cells(programmes.items, TOP)
    page = await _page_of(request, "Overview", years.as_of, scoped)
    return render(
        "overview.html",
        page,
        world=_world(page, countries.items, metric),
        map_metrics=metrics_of(countries.items),
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


def _world(page: Page, cells: list[Cell], metric: str | None) -> MapPanel:
    """The world map of the metric asked (activities counted by default) over the countries.

    :raises BadParameterError: naming ``metric`` when no country has a figure of it.
    """
    chosen = pick_metric(blank(metric), metrics_of(cells))
    return map_panel(cells, chosen, lambda code: page.link(f"/countries/{code}"))


def _index(
    page: Page,
    key: str,
    cells: list[Cell],
    csv: str,
    sort: str | None,
    world: MapPanel | None = None,
) -> Response:
    metrics = metrics_of(cells)
    order = parse_sort(sort, metrics)
    return render(
        "index.html",
        page,
        key=key,
        cells=sort_cells(cells, order, key),
        order=order,
        metrics=metrics,
        csv=csv,
        world=world,
        map_metrics=metrics,
    )


@_page("/countries", "sort", "metric")
async def countries(
    request: Request, sort: Text = None, metric: Text = None, *, scoped: Scoped
) -> Response:
    """Every country with activities, its figures, and a world map of one of them."""
    answer = await _read(request, lambda conn: queries.list_countries(conn, scope=scoped.scope))
    page = await _page_of(request, "Countries", answer.as_of, scoped)
    csv = page.api("/v1/countries", format="csv")
    world = _world(page, answer.items, metric)
    return _index(page, "country", answer.items, csv, sort, world)


@_page("/programmes", "sort")
async def programmes(request: Request, sort: Text = None, *, scoped: Scoped) -> Response:
    """Every programme with activities, and its figures."""
    answer = await _read(request, lambda conn: queries.list_programmes(conn, scope=scoped.scope))
    page = await _page_of(request, "Programmes", answer.as_of, scoped)
    csv = page.api("/v1/programmes", format="csv")
    return _index(page, "programme", answer.items, csv, sort)


@_page("/years", "sort")
async def years(request: Request, sort: Text = None, *, scoped: Scoped) -> Response:
    """Every year with activities, and its figures."""
    answer = await _read(request, lambda conn: queries.list_years(conn, scope=scoped.scope))
    page = await _page_of(request, "Years", answer.as_of, scoped)
    return _index(page, "year", answer.items, page.api("/v1/years", format="csv"), sort)


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
        "csv": page.link("/csv/activities", **filters),
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
    sort: str | None,
) -> Response:
    """One page shape for a country, a programme and a year.

    :param scope: ``country``, ``programme`` or ``year``: which summary this is.
    :param key: the summary's code or year, as it appears in its URL.
    :param parts: the breakdowns to show, as (field of the summary, key of its cells).
    """
    metrics = sorted(summary.totals)
    chosen = pick_metric(metric, metrics)
    order = parse_sort(sort, metrics)
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
        breakdowns=[
            {**part, "cells": sort_cells(part["cells"], order, part["key"])} for part in breakdowns
        ],
        order=order,
        listing=listing,
        links=_list_links(page, base, listing, cursor, filters, {"year": narrowed}),
        csv_base=f"/csv/{scope}/{segment(key)}",
    )


@_page("/countries/{country:str}", "year", "metric", "cursor", "sort")
async def country(
    request: Request,
    country: FromPath[str],
    year: Text = None,
    metric: Text = None,
    cursor: Text = None,
    sort: Text = None,
    *,
    scoped: Scoped,
) -> Response:
    """One country: totals, figures by year and programme, multi-country and activities."""
    narrowed, cursor, scope = parse_year(year), blank(cursor), scoped.scope
    code = queries.resolve_country(country)
    summary, listing = await _read(
        request,
        lambda conn: same_snapshot(
            lambda: (
                queries.country_summary(conn, code, narrowed, scope=scope),
                queries.list_activities(
                    conn, country=code, year=narrowed, cursor=cursor, limit=PAGE_SIZE, scope=scope
                ),
            )
        ),
    )
    page = await _page_of(request, summary.name or code, summary.as_of, scoped)
    return _summary_page(
        page,
        summary,
        listing,
        scope="country",
        key=code,
        metric=metric,
        parts=[("by_year", "year"), ("by_programme", "programme")],
        cursor=cursor,
        sort=sort,
    )


@_page("/programmes/{programme:str}", "year", "metric", "cursor", "sort")
async def programme(
    request: Request,
    programme: FromPath[str],
    year: Text = None,
    metric: Text = None,
    cursor: Text = None,
    sort: Text = None,
    *,
    scoped: Scoped,
) -> Response:
    """One programme: totals, figures by year and country, multi-country and activities."""
    narrowed, cursor, scope = parse_year(year), blank(cursor), scoped.scope
    code = queries.resolve_programme(programme)
    summary, listing = await _read(
        request,
        lambda conn: same_snapshot(
            lambda: (
                queries.programme_summary(conn, code, narrowed, scope=scope),
                queries.list_activities(
                    conn,
                    programme=code,
                    year=narrowed,
                    cursor=cursor,
                    limit=PAGE_SIZE,
                    scope=scope,
                ),
            )
        ),
    )
    page = await _page_of(request, summary.name or code, summary.as_of, scoped)
    return _summary_page(
        page,
        summary,
        listing,
        scope="programme",
        key=code,
        metric=metric,
        parts=[("by_year", "year"), ("by_country", "country")],
        cursor=cursor,
        sort=sort,
    )


@_page("/years/{year:int}", "metric", "cursor", "sort")
async def year(
    request: Request,
    year: FromPath[int],
    metric: Text = None,
    cursor: Text = None,
    sort: Text = None,
    *,
    scoped: Scoped,
) -> Response:
    """One year: totals, figures by programme and country, multi-country and activities."""
    cursor, scope = blank(cursor), scoped.scope
    summary, listing = await _read(
        request,
        lambda conn: same_snapshot(
            lambda: (
                queries.year_summary(conn, year, scope=scope),
                queries.list_activities(
                    conn, year=year, cursor=cursor, limit=PAGE_SIZE, scope=scope
                ),
            )
        ),
    )
    page = await _page_of(request, str(year), summary.as_of, scoped)
    return _summary_page(
        page,
        summary,
        listing,
        scope="year",
        key=str(year),
        metric=metric,
        parts=[("by_programme", "programme"), ("by_country", "country")],
        cursor=cursor,
        sort=sort,
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
async def activity(request: Request, activity_id: FromPath[str], scoped: Scoped) -> Response:
    """One activity: its state (now or then), its source, and its history from the stream."""
    detail = await _read(
        request, lambda conn: queries.get_activity(conn, activity_id, scope=scoped.scope)
    )
    history, note = await _history(request.app.state.store, activity_id)
    if not detail.as_of.now:
        # The stream holds every event; as of a past sequence, those recorded by then.
        history = [entry for entry in history if entry.sequence <= detail.as_of.sequence]
    ref = load_reference()
    return render(
        "activity.html",
        await _page_of(request, detail.title, detail.as_of, scoped),
        detail=detail,
        country_names={p.country: ref.country_name(p.country) for p in detail.countries},
        programme_name=_programme_name(detail.programme),
        history=tell_history(history),
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
    *,
    scoped: Scoped,
) -> Response:
    """The activities and events that make up one figure, which their values sum to."""
    key: dict[str, Any] = {
        "country": blank(country),
        "programme": blank(programme),
        "year": parse_year(year),
        "metric": blank(metric) or ACTIVITY_COUNT,
    }
    cursor = blank(cursor)
    answer = await _read(
        request,
        lambda conn: queries.provenance(
            conn, **key, cursor=cursor, limit=PROVENANCE_SHOWN, scope=scoped.scope
        ),
    )
    ref = load_reference()
    where = [
        *([ref.country_name(answer.country)] if answer.country else []),
        *([_programme_name(answer.programme)] if answer.programme else []),
        *([str(answer.year)] if answer.year is not None else []),
    ]
    page = await _page_of(
        request, f"{metric_label(answer.metric)}: where the figure comes from", answer.as_of, scoped
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
        csv=page.link("/csv/provenance", **figure),
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
    *,
    scoped: Scoped,
) -> Response:
    """Full text over titles and summaries, with filters; a GET form, so results can be linked."""
    filters: dict[str, Any] = {
        "q": blank(q),
        "country": blank(country),
        "programme": blank(programme),
        "year": parse_year(year),
        "kind": blank(kind),
        "status": blank(status),
    }
    cursor, scope = blank(cursor), scoped.scope
    found, countries, programmes, years = await _read(
        request,
        lambda conn: same_snapshot(
            lambda: (
                queries.list_activities(
                    conn, **filters, cursor=cursor, limit=PAGE_SIZE, scope=scope
                ),
                queries.list_countries(conn, scope=scope),
                queries.list_programmes(conn, scope=scope),
                queries.list_years(conn, scope=scope),
            )
        ),
    )
    page = await _page_of(request, "Search activities", found.as_of, scoped)
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


# -- releases ----------------------------------------------------------------------------------


@_page("/releases")
async def releases(request: Request, scoped: Scoped) -> Response:
    """Every release made by the page's moment, each linked to what changed since it."""
    answer = await _read(request, lambda conn: queries.list_releases(conn, scope=scoped.scope))
    page = await _page_of(request, "Releases", answer.as_of, scoped)
    return render("releases.html", page, releases=answer.items)


class _Comparison(TypedDict):
    """A release against the page's moment, as the release's template reads it."""

    release: Release
    then: AsOf
    later: AsOf
    totals: list[FigureChange]
    countries: list[FigureChange]
    programmes: list[FigureChange]
    activities: list[ActivityChange]
    activities_note: str


def _figures_of(
    conn: sqlite3.Connection, scope: Scope | None
) -> tuple[Summary, list[Cell], list[Cell]]:
    total, countries, programmes = same_snapshot(
        lambda: (
            queries.global_summary(conn, scope=scope),
            queries.list_countries(conn, scope=scope),
            queries.list_programmes(conn, scope=scope),
        )
    )
    return total, countries.items, programmes.items


def _changed_since(
    conn: sqlite3.Connection, sequence: int, scope: Scope | None
) -> tuple[list[ActivityItem], str]:
    """The activities last changed after ``sequence`` in the scope's ledger, and a note when
    the list stops short: it reads at most :data:`CHANGES_SCANNED` activities, by id."""
    found: list[ActivityItem] = []
    scanned, cursor = 0, None
    while True:
        listing = queries.list_activities(conn, cursor=cursor, limit=queries.MAX_LIMIT, scope=scope)
        scanned += len(listing.items)
        found += [item for item in listing.items if item.last_sequence > sequence]
        cursor = listing.next_cursor
        if cursor is None:
            break
        if len(found) > CHANGES_SHOWN:
            return found[:CHANGES_SHOWN], (
                f"The first {CHANGES_SHOWN} changed activities by id; more changed."
            )
        if scanned >= CHANGES_SCANNED:
            return found, f"Only the first {scanned:,} activities by id were checked."
    if len(found) > CHANGES_SHOWN:
        return found[:CHANGES_SHOWN], (
            f"The first {CHANGES_SHOWN} of {len(found):,} changed activities by id."
        )
    return found, ""


def _then(conn: sqlite3.Connection, activity_id: str, scope: Scope) -> ActivityDetail | None:
    try:
        return queries.get_activity(conn, activity_id, scope=scope)
    except UnknownKeyError:
        return None  # reported after the release


def _compare(conn: sqlite3.Connection, name: str, asked: Asked) -> _Comparison:
    """A release's figures and activities against the page's moment (now by default)."""
    made = queries.get_release(conn, name)
    at_release = Scope(release=name, document=asked.document)
    total_then, countries_then, programmes_then = _figures_of(conn, at_release)
    total_later, countries_later, programmes_later = _figures_of(conn, asked.scope)
    changed, note = _changed_since(conn, made.sequence, asked.scope)
    return {
        "release": made,
        "then": total_then.as_of,
        "later": total_later.as_of,
        "totals": total_changes(total_then, total_later),
        "countries": cell_changes(countries_then, countries_later, "country"),
        "programmes": cell_changes(programmes_then, programmes_later, "programme"),
        "activities": [
            activity_change(item, _then(conn, item.activity_id, at_release)) for item in changed
        ],
        "activities_note": note,
    }


@_page("/releases/{name:str}")
async def release(request: Request, name: FromPath[str], scoped: Scoped) -> Response:
    """One release, and every figure and activity that changed between it and the page's
    moment (now, unless the page is asked as of another)."""
    compared = await _read(request, lambda conn: _compare(conn, name, scoped))
    page = await _page_of(request, f"Release {name}", compared["later"], scoped)
    at = {"release": name, "document": scoped.document}
    return render("release.html", page, at=at, **compared)


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
    releases,
    release,
]
"""Every page handler, for the dashboard's router."""
