"""Every list the dashboard shows, as CSV: the parts of a summary, whole activity lists, provenance;
and a programme's or a country's draft report section, as Word or Markdown (services/drafts).

The API's CSV gives one page at a time; a person clicking "Download CSV" wants the whole list,
so these routes page through :func:`projections.queries.list_activities` and
:func:`projections.queries.provenance` themselves, writing each page as it is read
(:func:`services.api.tables.stream_csv`): a list of a hundred thousand activities holds one page in
memory, read in a worker thread, from one snapshot. The columns are the API's
(:mod:`services.api.tables`). Each takes the pages' scope (``as_of``, ``as_of_sequence``,
``release``, ``document``), so that a page's download lists what the page shows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.di import Provide
from litestar.params import FromPath, FromQuery
from litestar.response import Stream

from projections import queries
from projections.answers import ActivityItem, AsOf, Cell, ProvenanceItem
from projections.errors import BadParameterError, UnknownKeyError
from projections.temporal import Scope
from services.api.dashboard.format import ACTIVITY_COUNT
from services.api.dashboard.render import SCOPE_KEYS, Scoped, asked_by
from services.api.dashboard.views import parse_year
from services.api.read_model import ReadModel
from services.api.tables import Fetch, stream_csv, to_csv
from services.drafts.compose import compose_draft
from services.drafts.document import DraftFacts
from services.drafts.docx import to_docx
from services.drafts.gather import gather_draft
from services.drafts.markdown import to_markdown
from services.drafts.sentences import load_sentences

__all__ = ["DOWNLOADS", "CsvStream", "csv_response"]

_PARTS = ("by_year", "by_country", "by_programme", "multi_country")
_SCOPES = ("country", "programme", "year")


def _as_of_headers(as_of: AsOf) -> dict[str, str]:
    return {
        "X-As-Of-Sequence": str(as_of.sequence),
        "X-As-Of-Time": as_of.time.isoformat() if as_of.time else "",
    }


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


def _csv(text: str, as_of: AsOf, filename: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={**_attachment(filename), **_as_of_headers(as_of)},
    )


class CsvStream(Stream):
    """A streamed answer whose own media type wins over its route's.

    Litestar 2's ``Stream`` lets the route's media type (JSON, for an API route whose answer is
    a Struct) override its own, against what its docstring says; a CSV must say it is CSV.
    """

    def to_asgi_response(self, *args: Any, media_type: Any = None, **kwargs: Any) -> Any:
        """The ASGI response, with this answer's media type."""
        return super().to_asgi_response(*args, media_type=self.media_type, **kwargs)


async def csv_response(
    model: ReadModel,
    fetch: Fetch,
    kind: type[msgspec.Struct],
    *,
    keep: Callable[[Any], bool] | None = None,
    every_page: bool = True,
    min_sequence: int | None = None,
    filename: str | None = None,
) -> Stream:
    """A paged list as a streamed CSV answer, with ``as_of`` (and the next cursor) in headers.

    :param fetch: the query for one page, ``fetch(conn, cursor)``.
    :param keep: which items go into the CSV; all without it.
    :param every_page: the whole list; ``False`` for the first page alone, whose
        ``next_cursor`` is then the ``X-Next-Cursor`` header (the API's CSV of a page).
    :param min_sequence: wait, bounded, until the projection has applied it.
    :param filename: download as this file (``Content-Disposition``).
    :raises QueryError: for a bad parameter, before anything is sent.
    """
    await model.at_least(min_sequence)
    as_of, after, chunks = await stream_csv(
        await model.snapshot(), fetch, kind, keep=keep, every_page=every_page
    )
    headers = _as_of_headers(as_of)
    if after:
        headers["X-Next-Cursor"] = after
    if filename:
        headers.update(_attachment(filename))
    media_type = "text/csv; charset=utf-8" if filename else "text/csv"
    return CsvStream(chunks, media_type=media_type, headers=headers)


def _download(path: str | list[str], *params: str) -> Any:
    """A download route that accepts only the named query parameters and those of a scope."""
    return get(
        path,
        opt={"query": frozenset({*params, *SCOPE_KEYS})},
        dependencies={"scoped": Provide(asked_by)},
        include_in_schema=False,
    )


def _activities(scope: Scope | None, **filters: Any) -> Fetch:
    """Every page of the activities matching ``filters``, the largest pages the query gives."""
    return lambda conn, cursor: queries.list_activities(
        conn, **filters, cursor=cursor, limit=queries.MAX_LIMIT, scope=scope
    )


def _text(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


@_download("/csv/activities", "q", "country", "programme", "year", "kind", "status")
async def activities_csv(
    request: Request,
    scoped: Scoped,
    q: FromQuery[str | None] = None,
    country: FromQuery[str | None] = None,
    programme: FromQuery[str | None] = None,
    year: FromQuery[str | None] = None,
    kind: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
) -> Stream:
    """Every activity matching the filters (those of the search page) as CSV."""
    fetch = _activities(
        scoped.scope,
        q=_text(q),
        country=_text(country),
        programme=_text(programme),
        year=parse_year(year),
        kind=_text(kind),
        status=_text(status),
    )
    return await csv_response(
        request.app.state.read_model, fetch, ActivityItem, filename="activities.csv"
    )


def _listed_apart(item: ActivityItem) -> bool:
    # The summaries list at most a few by name; the CSV gives every one, from the same rows.
    return item.multi_country and item.status == "active"


@_download("/csv/provenance", "country", "programme", "year", "metric")
async def provenance_csv(
    request: Request,
    scoped: Scoped,
    country: FromQuery[str | None] = None,
    programme: FromQuery[str | None] = None,
    year: FromQuery[str | None] = None,
    metric: FromQuery[str | None] = None,
) -> Stream:
    """Every activity and event that makes up one figure, as CSV (the page lists a page)."""
    key: dict[str, Any] = {
        "country": _text(country),
        "programme": _text(programme),
        "year": parse_year(year),
        "metric": _text(metric) or ACTIVITY_COUNT,
    }

    def fetch(conn: Any, cursor: str | None) -> Any:
        return queries.provenance(
            conn, **key, cursor=cursor, limit=queries.MAX_LIMIT, scope=scoped.scope
        )

    return await csv_response(
        request.app.state.read_model, fetch, ProvenanceItem, filename="provenance.csv"
    )


@_download("/csv/{summary:str}/{key:str}/{part:str}", "year")
async def summary_csv(
    request: Request,
    scoped: Scoped,
    summary: FromPath[str],
    key: FromPath[str],
    part: FromPath[str],
    year: FromQuery[str | None] = None,
) -> Response | Stream:
    """One list of a country's, programme's or year's page, e.g. ``/csv/country/KAZ/by_year``."""
    scope = summary  # ``scope`` is a name Litestar keeps for the ASGI scope
    if scope not in _SCOPES:
        raise UnknownKeyError("scope", f"no list of {scope!r}; one of {', '.join(_SCOPES)}")
    if part not in _PARTS:
        raise UnknownKeyError("part", f"no list {part!r}; one of {', '.join(_PARTS)}")
    model: ReadModel = request.app.state.read_model
    narrowed, asked = parse_year(year), scoped.scope
    if scope == "year":
        narrowed = parse_year(key)
        if narrowed is None:
            raise BadParameterError("year", "give a year, e.g. /csv/year/2020/by_country")
    filename = (
        f"{scope}-{key}-{part}.csv" if narrowed is None else f"{scope}-{key}-{narrowed}-{part}.csv"
    )
    if part == "multi_country":
        filters = {scope: narrowed if scope == "year" else key, "year": narrowed}
        return await csv_response(
            model,
            _activities(asked, **filters),
            ActivityItem,
            keep=_listed_apart,
            filename=filename,
        )
    if scope == "country":
        answer = await model.run(
            lambda conn: queries.country_summary(conn, key, narrowed, scope=asked)
        )
    elif scope == "programme":
        answer = await model.run(
            lambda conn: queries.programme_summary(conn, key, narrowed, scope=asked)
        )
    else:
        assert narrowed is not None  # the year scope has checked it
        answer = await model.run(lambda conn: queries.year_summary(conn, narrowed, scope=asked))
    cells = getattr(answer, part)
    if cells is None:
        raise UnknownKeyError("part", f"a {scope} page has no list {part!r}")
    # A summary's breakdown is bounded by the reference data (countries, programmes, years).
    return _csv(to_csv(cells, Cell), answer.as_of, filename)


_DRAFT_TYPES = {
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "md": "text/markdown",
}


async def _draft(
    request: Request, scoped: Scoped, kind: str, key: str, year: str | None
) -> Response:
    """The draft section of one programme or country, in the format the path ends with."""
    form = request.url.path.rpartition(".")[2]
    narrowed = parse_year(year)
    programmes, countries = ([key], []) if kind == "programme" else ([], [key])

    def write(conn: Any) -> tuple[DraftFacts, bytes]:
        # Composing and writing a Word file of a large section takes a second or more: in the
        # worker, with the reading, never on the event loop.
        facts = gather_draft(
            conn, programmes=programmes, countries=countries, year=narrowed, scope=scoped.scope
        )
        draft = compose_draft(facts, load_sentences())
        return facts, to_docx(draft) if form == "docx" else to_markdown(draft).encode("utf-8")

    facts, data = await request.app.state.read_model.run(write)
    code = facts.sections[0].code
    name = f"draft-{kind}-{code}" + (f"-{narrowed}" if narrowed is not None else "")
    return Response(
        data,
        media_type=_DRAFT_TYPES[form],
        headers={**_attachment(f"{name}.{form}"), **_as_of_headers(facts.as_of)},
    )


@_download(
    ["/programmes/{programme:str}/draft.docx", "/programmes/{programme:str}/draft.md"], "year"
)
async def programme_draft(
    request: Request, scoped: Scoped, programme: FromPath[str], year: FromQuery[str | None] = None
) -> Response:
    """A programme's draft report section, every figure footnoted to its events."""
    return await _draft(request, scoped, "programme", programme, year)


@_download(["/countries/{country:str}/draft.docx", "/countries/{country:str}/draft.md"], "year")
async def country_draft(
    request: Request, scoped: Scoped, country: FromPath[str], year: FromQuery[str | None] = None
) -> Response:
    """A country's draft report section, every figure footnoted to its events."""
    return await _draft(request, scoped, "country", country, year)


DOWNLOADS = [activities_csv, provenance_csv, summary_csv, programme_draft, country_draft]
"""Every download route (CSV and drafts), for the dashboard's router."""
