"""``GET /v1/iati/activities.xml``: the activities as one IATI 2.03 document, streamed.

The same export as ``ledger iati export`` (:mod:`services.iati.export`), with the filters of
``/v1/activities`` (``country``, ``programme``, ``year``) and the scope every ``/v1`` route takes
(``as_of``, ``as_of_sequence``, ``document``, ``release``, ``min_sequence``). The document is
read from a connection of its own in one read transaction and written as it is read, one
activity at a time in a worker thread, so its size costs no memory. Each activity is checked
(schema, codelists, ruleset) before its bytes are sent; a bad parameter, or a failure in the
first 64 KiB, is an error answer. A failure later cuts the answer short: the document then
has no closing tag, so no reader can take it for a whole, valid file.

The reporting organisation is the server's setting, ``LEDGER_IATI_REPORTING_ORG``
(:func:`services.iati.export.reporting_org_default`): a reader does not choose who publishes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Generator, Iterator
from typing import Annotated

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter, SkipValidation
from litestar.response import Stream

from events.reference import FIRST_YEAR, LAST_YEAR
from projections.db import open_reader, resolve
from projections.errors import NotYetError
from projections.temporal import Scope
from services.api.error_body import ERRORS
from services.iati.export import checked_elements, iati_activities, reporting_org_default
from services.iati.source import ExportFilters, read_states
from services.iati.writer import document_chunks

__all__ = ["IATI_ROUTES"]

_MEDIA_TYPE = "application/xml"
_QUERY = frozenset(
    {
        "country",
        "programme",
        "year",
        "min_sequence",
        "as_of",
        "as_of_sequence",
        "document",
        "release",
    }
)


def _document(conn: sqlite3.Connection, filters: ExportFilters) -> Generator[bytes, None, None]:
    """The document's bytes; the connection is closed when they end or are dropped."""
    try:
        now = dt.datetime.now(dt.UTC)
        activities = iati_activities(
            read_states(conn, filters), reporting_org=reporting_org_default(), today=now.date()
        )
        yield from document_chunks(checked_elements(activities, now=now), generated=now)
    finally:
        conn.close()


@get(
    "/v1/iati/activities.xml",
    opt={"query": _QUERY},
    media_type=_MEDIA_TYPE,
    responses=ERRORS,
)
async def iati_activities_xml(
    request: Request,
    asked: NamedDependency[SkipValidation[Scope]],
    country: FromQuery[str | None] = None,
    programme: FromQuery[str | None] = None,
    year: Annotated[int | None, QueryParameter(ge=FIRST_YEAR, le=LAST_YEAR)] = None,
    min_sequence: Annotated[int, QueryParameter(ge=0)] = 0,
) -> Stream:
    """The activities that are not withdrawn, as one IATI 2.03 activity document."""
    model = request.app.state.read_model
    await model.at_least(min_sequence)
    try:
        conn = await asyncio.to_thread(open_reader, resolve(model.path), any_thread=True)
    except (FileNotFoundError, sqlite3.OperationalError):
        raise NotYetError(
            f"no projection at {model.path} yet; start `ledger up` or run `ledger rebuild`"
        ) from None
    filters = ExportFilters(country=country, programme=programme, year=year, scope=asked)
    chunks = _document(conn, filters)
    # The first chunk is made before the answer starts: a bad filter is then a 400, not a
    # cut stream.
    try:
        first = await asyncio.to_thread(next, chunks, b"")
    except BaseException:
        chunks.close()
        raise
    # The route's media type is the stream's: Litestar lets the route's win (see
    # services/api/dashboard/downloads.py), and here they agree.
    return Stream(_chained(first, chunks), media_type=_MEDIA_TYPE)


def _chained(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


IATI_ROUTES = [iati_activities_xml]
"""The IATI routes, for :func:`services.api.app.create_app`."""
