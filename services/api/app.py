"""The read-only HTTP API (Litestar): thin routes over :mod:`projections.queries`.

Every route is a GET (HEAD too); any other method gets 405, so no route accepts a write. Each
route makes the same call as its CLI command and returns the same Struct, computed in one of the
read model's worker threads, never on the event loop. Lists also come as CSV
(``?format=csv``, with ``as_of`` in the ``X-As-Of-Sequence`` and ``X-As-Of-Time`` headers);
a page of activities or provenance is written as it is read, with ``X-Next-Cursor``.
``?min_sequence=N`` waits, bounded, until the projection has applied N (read-your-writes), else
503 with ``Retry-After``. A query parameter a route does not know is refused, so that a typo
never silently widens an answer. Errors become status codes in one place,
:data:`EXCEPTION_HANDLERS`, which reads the ledger's errors' status and code from the one error
table (:mod:`services.errors`), with a body ``{code, message, field}`` as intake's replies have.

The history of an activity is read from the stream, so it needs a NATS connection; without one
(a read-only file server) that route answers 503 and says so. OpenAPI is served as JSON at
``/schema`` (and ``/schema/openapi.json``); the browsable Redoc page Litestar would serve loads
its script from a CDN and runs inline script, which the Content-Security-Policy every answer
carries (:class:`services.api.auth.SecureHeaders`) rightly forbids.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from litestar import Litestar, MediaType, Request, Response, get
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Operation
from litestar.params import (
    FromPath,
    FromQuery,
    PathParameter,
    QueryParameter,
    SkipValidation,
)

from events.activity import Status as ActivityStatus
from events.errors import LedgerError
from events.reference import FIRST_YEAR, LAST_YEAR
from events.store import EventStore
from projections import queries
from projections.answers import (
    ActivityDetail,
    ActivityItem,
    ActivityPage,
    AsOf,
    Cell,
    CellList,
    Provenance,
    ProvenanceItem,
    Release,
    ReleaseList,
    Status,
    Summary,
    Timeline,
)
from projections.errors import BadParameterError, NotYetError
from projections.temporal import Scope, scope_of
from replay.history import HistoryEntry, activity_history
from replay.tree import TreeLocation
from services.api.asyncapi_page import asyncapi_router
from services.api.auth import SecureHeaders
from services.api.dashboard import dashboard_router
from services.api.dashboard.downloads import csv_response
from services.api.error_body import ERRORS, ErrorBody
from services.api.iati_routes import IATI_ROUTES
from services.api.lag import stream_last
from services.api.log_routes import LOG_ROUTES
from services.api.metrics_route import metrics_page, timed
from services.api.read_model import DEFAULT_KEPT, DEFAULT_WAIT, ReadModel
from services.api.tables import to_csv
from services.errors import answer_for, field_of

__all__ = ["EXCEPTION_HANDLERS", "ErrorBody", "History", "create_app"]

_log = logging.getLogger("ledger.api")

_NATS_TIMEOUT = 5.0


class History(msgspec.Struct, frozen=True, kw_only=True):
    """Every event of one activity, read from the stream."""

    as_of: AsOf
    """The stream's last sequence when the history was read, and the time of reading."""
    activity_id: str
    entries: list[HistoryEntry]


class HistoryUnavailableError(NotYetError):
    """Raised when the history is asked of a server that has no NATS connection."""


# -- errors, mapped in one place ---------------------------------------------------------------


def _error(status: int, code: str, message: str, field: str = "", **headers: str) -> Response:
    return Response(
        ErrorBody(code, message, field),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers or None,
    )


def _on_ledger_error(request: Request, exc: LedgerError) -> Response:
    # The status, code and headers are the error's row of the one table (services.errors).
    answer = answer_for(exc)
    if answer.internal:
        return _on_unexpected(request, exc)
    return _error(answer.status, answer.code, str(exc), field_of(exc), **answer.headers)


_MISSING = re.compile(r"Missing required \w+ parameter '(\w+)'")


def _on_validation(_: Request, exc: ValidationException) -> Response:
    # Litestar names the offending parameter in ``extra``; say it first, as our errors do.
    problems = exc.extra if isinstance(exc.extra, list) else []
    first = problems[0] if problems and isinstance(problems[0], dict) else {}
    field = str(first.get("key", ""))
    message = str(first.get("message", exc.detail))
    if not field and (missing := _MISSING.search(str(exc.detail))):
        field, message = missing.group(1), "is required"
    return _error(400, "invalid", f"{field}: {message}" if field else message, field)


def _on_http(_: Request, exc: HTTPException) -> Response:
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        return _error(405, "method_not_allowed", "this API is read-only: use GET", **headers)
    if exc.status_code == 404:
        return _error(404, "not_found", "no such route; see /schema for the API", **headers)
    return _error(exc.status_code, "http", str(exc.detail), **headers)


def _on_unexpected(request: Request, exc: Exception) -> Response:
    _log.exception("query failed: %s %s", request.method, request.url.path)
    return _error(500, "internal", "the query failed; the server's log has the details")


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    # The ledger's errors, through the one table; the dashboard's router registers the same
    # classes, so that none of its errors falls through to one of these JSON answers.
    LedgerError: _on_ledger_error,
    ValidationException: _on_validation,
    HTTPException: _on_http,
    Exception: _on_unexpected,
}
"""Every error the routes can raise, and the response it becomes: the one place of mapping."""


# -- OpenAPI: lists also come as CSV -----------------------------------------------------------


class _AlsoCsv(Operation):
    """An operation whose 200 answer can also be ``text/csv``."""

    def to_schema(self) -> dict[str, Any]:
        """The operation's OpenAPI object, with ``text/csv`` beside JSON for 200."""
        schema = super().to_schema()
        content = schema.get("responses", {}).get("200", {}).get("content")
        if content is not None:
            content["text/csv"] = {"schema": {"type": "string"}}
        return schema


_COMMON = frozenset({"min_sequence"})
_SCOPE = frozenset({"as_of", "as_of_sequence", "document", "release"})
"""The parameters of a scope (projections/temporal.py), which every /v1 route takes."""

Year = Annotated[int | None, QueryParameter(ge=FIRST_YEAR, le=LAST_YEAR)]
MinSequence = Annotated[
    int,
    QueryParameter(ge=0, description="Wait (a few seconds at most) until this sequence is applied"),
]
Format = FromQuery[Literal["json", "csv"]]


def _route(path: str, *params: str, csv: bool = False, scoped: bool = True, **kwargs: Any) -> Any:
    """A GET (and HEAD) route that accepts only the named query parameters, and unless told
    not to, those of a scope (the ``asked`` dependency)."""
    allowed = _COMMON | set(params) | ({"format"} if csv else set()) | (_SCOPE if scoped else set())
    return get(
        path,
        opt={"query": frozenset(allowed)},
        responses=ERRORS,
        operation_class=_AlsoCsv if csv else Operation,
        **kwargs,
    )


def _csv(items: list[Any], kind: type[msgspec.Struct], as_of: AsOf) -> Response:
    return Response(
        to_csv(items, kind),
        media_type="text/csv",
        headers={
            "X-As-Of-Sequence": str(as_of.sequence),
            "X-As-Of-Time": as_of.time.isoformat() if as_of.time else "",
        },
    )


async def _check_query(request: Request) -> None:
    # async: Litestar would run a plain function in a thread, for every request.
    allowed = request.route_handler.opt.get("query", _COMMON)
    for name in request.query_params:
        if name not in allowed:
            takes = ", ".join(sorted(allowed)) or "no query parameters"
            raise BadParameterError(name, f"unknown query parameter; this route takes {takes}")


# -- scope -------------------------------------------------------------------------------------


async def _scope(
    as_of: Annotated[
        str | None,
        QueryParameter(
            description="An RFC 3339 instant: the answer as the ledger stood then, "
            "e.g. 2021-06-30T00:00:00Z"
        ),
    ] = None,
    as_of_sequence: Annotated[
        int | None,
        QueryParameter(ge=0, description="A stream sequence: the answer as of that event"),
    ] = None,
    document: Annotated[
        str | None,
        QueryParameter(description="Only the figures and activities of this document"),
    ] = None,
    release: Annotated[
        str | None,
        QueryParameter(description="As of the sequence a release states (see /v1/releases)"),
    ] = None,
) -> Scope:
    # async: Litestar would run a plain function in a thread, for every request.
    return scope_of(as_of, as_of_sequence, document, release)


Scoped = NamedDependency[SkipValidation[Scope]]


# -- routes ------------------------------------------------------------------------------------


def _model(request: Request) -> ReadModel:
    return request.app.state.read_model


@_route("/v1/countries", "year", csv=True)
async def countries(
    request: Request,
    asked: Scoped,
    year: Year = None,
    min_sequence: MinSequence = 0,
    format: Format = "json",
) -> CellList:
    """Every country with activities, its totals per metric and counts."""
    answer = await _model(request).query(min_sequence, queries.list_countries, year, scope=asked)
    # Litestar documents the annotation (the JSON answer) in OpenAPI; _AlsoCsv adds the CSV.
    return _csv(answer.items, Cell, answer.as_of) if format == "csv" else answer  # type: ignore[return-value]


@_route("/v1/countries/{country:str}", "year")
async def country(
    request: Request,
    country: FromPath[str],
    asked: Scoped,
    year: Year = None,
    min_sequence: MinSequence = 0,
) -> Summary:
    """One country (ISO3 or UN name): totals, multi-country activities, by year and programme."""
    return await _model(request).query(
        min_sequence, queries.country_summary, country, year, scope=asked
    )


@_route("/v1/programmes", "year", csv=True)
async def programmes(
    request: Request,
    asked: Scoped,
    year: Year = None,
    min_sequence: MinSequence = 0,
    format: Format = "json",
) -> CellList:
    """Every programme with activities, its totals per metric and counts."""
    answer = await _model(request).query(min_sequence, queries.list_programmes, year, scope=asked)
    # Litestar documents the annotation (the JSON answer) in OpenAPI; _AlsoCsv adds the CSV.
    return _csv(answer.items, Cell, answer.as_of) if format == "csv" else answer  # type: ignore[return-value]


@_route("/v1/programmes/{programme:str}", "year")
async def programme(
    request: Request,
    programme: FromPath[str],
    asked: Scoped,
    year: Year = None,
    min_sequence: MinSequence = 0,
) -> Summary:
    """One programme: totals, multi-country activities, by year and by country."""
    return await _model(request).query(
        min_sequence, queries.programme_summary, programme, year, scope=asked
    )


@_route("/v1/years", csv=True)
async def years(
    request: Request, asked: Scoped, min_sequence: MinSequence = 0, format: Format = "json"
) -> CellList:
    """Every year with activities, its totals per metric and counts."""
    answer = await _model(request).query(min_sequence, queries.list_years, scope=asked)
    # Litestar documents the annotation (the JSON answer) in OpenAPI; _AlsoCsv adds the CSV.
    return _csv(answer.items, Cell, answer.as_of) if format == "csv" else answer  # type: ignore[return-value]


@_route("/v1/years/{year:str}")
async def year(
    request: Request,
    # Four digits here; the range (FIRST_YEAR..LAST_YEAR) is year_summary's check, as for the
    # dashboard's year page, so that no pattern restates the bounds.
    year: Annotated[str, PathParameter(pattern=r"^[0-9]{4}$")],
    asked: Scoped,
    min_sequence: MinSequence = 0,
) -> Summary:
    """One year: totals, multi-country activities, by country and by programme."""
    if not (year.isascii() and year.isdigit()):
        raise BadParameterError("year", f"{year!r} is not a year; give e.g. 2020")
    return await _model(request).query(min_sequence, queries.year_summary, int(year), scope=asked)


@_route("/v1/documents", csv=True)
async def documents(
    request: Request, asked: Scoped, min_sequence: MinSequence = 0, format: Format = "json"
) -> CellList:
    """Every document that reports activities: how many, and their figures."""
    answer = await _model(request).query(min_sequence, queries.list_documents, scope=asked)
    # Litestar documents the annotation (the JSON answer) in OpenAPI; _AlsoCsv adds the CSV.
    return _csv(answer.items, Cell, answer.as_of) if format == "csv" else answer  # type: ignore[return-value]


@_route(
    "/v1/activities",
    "country",
    "programme",
    "year",
    "kind",
    "office",
    "status",
    "q",
    "cursor",
    "limit",
    csv=True,
)
async def activities(
    request: Request,
    asked: Scoped,
    country: FromQuery[str | None] = None,
    programme: FromQuery[str | None] = None,
    year: Year = None,
    kind: FromQuery[str | None] = None,
    office: FromQuery[str | None] = None,
    status: FromQuery[ActivityStatus | None] = None,
    q: Annotated[str | None, QueryParameter(description="Words in title or summary")] = None,
    cursor: Annotated[str | None, QueryParameter(description="A page's next_cursor")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=queries.MAX_LIMIT)] = queries.DEFAULT_LIMIT,
    min_sequence: MinSequence = 0,
    format: Format = "json",
) -> ActivityPage:
    """Activities matching every filter, by id, a page at a time (cursor pagination)."""
    filters: dict[str, Any] = {
        "country": country,
        "programme": programme,
        "year": year,
        "kind": kind,
        "office": office,
        "status": status,
        "q": q,
        "limit": limit,
        "scope": asked,
    }
    if format == "csv":
        # Litestar documents the annotation (the JSON answer) in OpenAPI; _AlsoCsv adds the CSV.
        return await csv_response(  # type: ignore[return-value]
            _model(request),
            lambda conn, after: queries.list_activities(conn, **filters, cursor=after or cursor),
            ActivityItem,
            every_page=False,
            min_sequence=min_sequence,
        )
    answer = await _model(request).query(
        min_sequence, queries.list_activities, **filters, cursor=cursor
    )
    return answer


@_route("/v1/releases")
async def releases(request: Request, asked: Scoped, min_sequence: MinSequence = 0) -> ReleaseList:
    """Every release: a named, signed statement of the figures as of a sequence."""
    return await _model(request).query(min_sequence, queries.list_releases, scope=asked)


@_route("/v1/releases/{name:str}", scoped=False)
async def release(request: Request, name: FromPath[str], min_sequence: MinSequence = 0) -> Release:
    """One release: its sequence and instant, digest, note and who made it."""
    return await _model(request).query(min_sequence, queries.get_release, name)


@_route("/v1/timeline")
async def timeline(request: Request, asked: Scoped, min_sequence: MinSequence = 0) -> Timeline:
    """The ledger's history for a time control: first and last event, points, releases."""
    return await _model(request).query(min_sequence, queries.timeline, scope=asked)


@_route("/v1/activities/{activity_id:str}")
async def activity(
    request: Request, activity_id: FromPath[str], asked: Scoped, min_sequence: MinSequence = 0
) -> ActivityDetail:
    """One activity, as it is now or as it was (as_of)."""
    return await _model(request).query(min_sequence, queries.get_activity, activity_id, scope=asked)


@_route("/v1/activities/{activity_id:str}/history", csv=False)
async def history(
    request: Request, activity_id: FromPath[str], asked: Scoped, min_sequence: MinSequence = 0
) -> History:
    """Every event of one activity, from the stream: who, when, what changed and why; as of
    a past instant or sequence, the events up to it."""
    store: EventStore | None = request.app.state.store
    if store is None:
        raise HistoryUnavailableError(
            "history is read from the stream, and this server has no NATS connection; "
            "ask a server started by `ledger up`, or give it --nats-url"
        )
    view = None
    if not asked.is_now:
        view = await _model(request).query(min_sequence, queries.view_of, scope=asked)
    try:
        last = await asyncio.wait_for(store.last_sequence(), _NATS_TIMEOUT)
        entries = await asyncio.wait_for(activity_history(store, activity_id), _NATS_TIMEOUT)
    except TimeoutError:
        raise HistoryUnavailableError("NATS did not answer in time; retry shortly") from None
    if view is not None and not view.now:
        # The events recorded by then; the history read now has them all.
        entries = [entry for entry in entries if entry.sequence <= view.sequence]
        return History(as_of=view, activity_id=activity_id, entries=entries)
    return History(
        as_of=AsOf(last, dt.datetime.now(dt.UTC)), activity_id=activity_id, entries=entries
    )


@_route("/v1/provenance", "country", "programme", "year", "metric", "cursor", "limit", csv=True)
async def provenance(
    request: Request,
    asked: Scoped,
    metric: Annotated[str, QueryParameter(description="A metric name, or * to count activities")],
    country: FromQuery[str | None] = None,
    programme: FromQuery[str | None] = None,
    year: Year = None,
    cursor: Annotated[str | None, QueryParameter(description="A page's next_cursor")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=queries.MAX_LIMIT)] = queries.DEFAULT_LIMIT,
    min_sequence: MinSequence = 0,
    format: Format = "json",
) -> Provenance:
    """The activities and event ids that make up one figure, a page at a time by activity id.

    The values of every page's items sum to ``total``.
    """
    key: dict[str, Any] = {
        "country": country,
        "programme": programme,
        "year": year,
        "metric": metric,
        "scope": asked,
    }
    if format == "csv":
        # Litestar documents the annotation (the JSON answer) in OpenAPI; _AlsoCsv adds the CSV.
        return await csv_response(  # type: ignore[return-value]
            _model(request),
            lambda conn, after: queries.provenance(
                conn, **key, cursor=after or cursor, limit=limit
            ),
            ProvenanceItem,
            every_page=False,
            min_sequence=min_sequence,
        )
    return await _model(request).query(
        min_sequence, queries.provenance, **key, cursor=cursor, limit=limit
    )


@_route("/v1/status")
async def status(request: Request, asked: Scoped, min_sequence: MinSequence = 0) -> Status:
    """The stream's last sequence, each projection's checkpoint, lag and quarantine count.

    Without the stream's side, ``lag_note`` says why and what to do; a projection file served
    alone says which sequence and instant it reflects.
    """
    model = _model(request)
    await model.at_least(min_sequence)
    state = request.app.state
    last, note = await stream_last(state)
    if note:
        _log.warning("no lag for /v1/status: %s", note, extra={"event": "lag_unknown"})
    return await model.run(
        lambda conn: queries.status(
            conn, last, scope=asked, follows_stream=state.follows_stream, lag_note=note
        )
    )


class Health(msgspec.Struct, frozen=True):
    """The server is up and its projection opens."""

    status: str
    as_of: AsOf


@_route("/healthz", scoped=False)
async def healthz(request: Request) -> Health:
    """200 when the projection can be read.

    It reads the checkpoint row on the event loop's own connection, not in a worker: one
    lookup by key, so that it answers at once even while every worker runs a long query.
    """
    return Health("ok", queries.as_of(_model(request).connection()))


# -- the app -----------------------------------------------------------------------------------


class _HeadAsGet:
    """Answers HEAD as GET without the body, so every route takes HEAD too."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)


def create_app(
    db_path: Path,
    store: EventStore | None = None,
    *,
    wait: float = DEFAULT_WAIT,
    kept: int = DEFAULT_KEPT,
    debug: bool = False,
    tree: TreeLocation | None = None,
    follows_stream: bool | None = None,
    monitor_url: str = "",
) -> Any:
    """The API over the projection at ``db_path``, as an ASGI app.

    :param db_path: the live projection link (followed across rebuilds) or a projection file.
    :param store: the EventStore for history and the stream's last sequence; ``None`` for a
        server of a file alone: history then answers 503.
    :param wait: the longest ``min_sequence`` waits, in seconds.
    :param kept: how many answers to keep until the projection changes; 0 keeps none.
    :param tree: the notary's Merkle tree (services/notary), for ``/v1/proofs``; ``None``
        answers those 503.
    :param follows_stream: whether a projector keeps the file up to date with the stream, so
        that a lag means something; by default, whether ``store`` is given. A replayed file
        served alone (``ledger up --read-only``) does not, even with a store for history.
    :param monitor_url: the nats-server's monitoring endpoint on 127.0.0.1, for ``/metrics``.
    """
    app = Litestar(
        route_handlers=[
            countries,
            country,
            programmes,
            programme,
            years,
            year,
            documents,
            releases,
            release,
            timeline,
            activities,
            activity,
            history,
            provenance,
            status,
            healthz,
            metrics_page,
            *LOG_ROUTES,
            *IATI_ROUTES,
            # The dashboard's pages share this app, its read model and its query functions.
            dashboard_router(),
            # The NATS interface's AsyncAPI document, JSON and HTML; not in the OpenAPI schema.
            asyncapi_router(),
        ],
        before_request=_check_query,
        dependencies={"asked": Provide(_scope)},
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="Activity Ledger query API",
            version="1",
            path="/schema",
            description="Read-only figures of the ledger; every answer carries as_of.",
            # JSON alone: see the module's docstring.
            render_plugins=[JsonRenderPlugin()],
        ),
        debug=debug,
        # Litestar's default configuration replaces the root logger's handlers with its own
        # format; the process's one handler is services/infra/logs.py's.
        logging_config=None,
    )
    app.state.read_model = ReadModel(db_path, wait=wait, kept=kept)
    app.state.store = store
    app.state.tree = tree
    app.state.follows_stream = store is not None if follows_stream is None else follows_stream
    app.state.monitor_url = monitor_url
    return SecureHeaders(_HeadAsGet(timed(app)))
