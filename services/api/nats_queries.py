"""The queries over NATS request-reply, for services inside the NATS mesh.

A request to ``<prefix>.query.<name>`` carries the parameters as a JSON object (``{"country":
"KAZ", "year": 2020}``; an empty body for none) and gets the very JSON the HTTP API gives for
the same query, because both call :mod:`projections.queries` and encode the same Structs. A
refusal is ``{code, message, field}`` as in HTTP, with the header ``Ledger-Error`` set to the
code. Names: country, countries, programme, programmes, year, years, documents, releases,
activities, activity, provenance, status. ``min_sequence``, ``as_of``, ``as_of_sequence``,
``document`` and ``release`` work as over HTTP.

It is a plain nats-py queue subscription, not FastStream, for the reason intake gives (its
module docstring): FastStream 0.7.8's subscriber answered a fraction of the requests per second
of a plain subscription on the same handler, and a query should cost about what the SQL costs.
Each request is answered in its own task, so one waiting for ``min_sequence`` holds no other,
and its SQL runs in the read model's worker threads, so a slow one holds no other either.
Lists (activities, provenance) come a page at a time: pass ``next_cursor`` as ``cursor``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from events.errors import LedgerError
from events.store import EventStore
from projections import queries
from projections.db import live_path
from projections.errors import UnknownKeyError
from projections.temporal import Scope, scope_of
from services.api.read_model import ReadModel
from services.errors import answer_for, field_of
from services.infra.credentials import users_path
from services.infra.replies import ReplyGuard
from services.infra.stack import Ledger

__all__ = ["QUERY_NAMES", "QueryService", "query_component"]

_log = logging.getLogger("ledger.query")

QUEUE = "ledger-query"
"""The queue group: several instances share the requests."""

_MAX_IN_FLIGHT = 64


class _Params(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    min_sequence: int | None = None
    as_of: str | None = None
    as_of_sequence: int | None = None
    document: str | None = None
    release: str | None = None

    @property
    def scope(self) -> Scope:
        """The scope these parameters ask for (projections/temporal.py), checked."""
        return scope_of(self.as_of, self.as_of_sequence, self.document, self.release)


class _Listing(_Params, frozen=True):
    year: int | None = None


class _Years(_Params, frozen=True):
    pass


class _Country(_Params, frozen=True):
    country: str
    year: int | None = None


class _Programme(_Params, frozen=True):
    programme: str
    year: int | None = None


class _Year(_Params, frozen=True):
    year: int


class _Activities(_Params, frozen=True):
    country: str | None = None
    programme: str | None = None
    year: int | None = None
    kind: str | None = None
    office: str | None = None
    status: str | None = None
    q: str | None = None
    cursor: str | None = None
    limit: int = queries.DEFAULT_LIMIT


class _Activity(_Params, frozen=True):
    activity_id: str


class _Provenance(_Params, frozen=True):
    metric: str
    country: str | None = None
    programme: str | None = None
    year: int | None = None
    cursor: str | None = None
    limit: int = queries.DEFAULT_LIMIT


def _fields(params: _Params) -> dict[str, Any]:
    values = msgspec.structs.asdict(params)
    for name in ("min_sequence", "as_of", "as_of_sequence", "document", "release"):
        values.pop(name)
    return values | {"scope": params.scope}


_Query = Callable[[sqlite3.Connection, Any], Any]

_QUERIES: dict[str, tuple[type[_Params], _Query]] = {
    "countries": (_Listing, lambda c, p: queries.list_countries(c, p.year, scope=p.scope)),
    "country": (
        _Country,
        lambda c, p: queries.country_summary(c, p.country, p.year, scope=p.scope),
    ),
    "programmes": (_Listing, lambda c, p: queries.list_programmes(c, p.year, scope=p.scope)),
    "programme": (
        _Programme,
        lambda c, p: queries.programme_summary(c, p.programme, p.year, scope=p.scope),
    ),
    "years": (_Years, lambda c, p: queries.list_years(c, scope=p.scope)),
    "year": (_Year, lambda c, p: queries.year_summary(c, p.year, scope=p.scope)),
    "documents": (_Years, lambda c, p: queries.list_documents(c, scope=p.scope)),
    "releases": (_Years, lambda c, p: queries.list_releases(c, scope=p.scope)),
    "activities": (_Activities, lambda c, p: queries.list_activities(c, **_fields(p))),
    "activity": (_Activity, lambda c, p: queries.get_activity(c, p.activity_id, scope=p.scope)),
    "provenance": (_Provenance, lambda c, p: queries.provenance(c, **_fields(p))),
}

QUERY_NAMES = (*_QUERIES, "status")
"""Every query name, the last token of its subject."""


class _Error(msgspec.Struct, frozen=True):
    code: str
    message: str
    field: str = ""


def _error_for(exc: Exception) -> _Error:
    """The reply to a refused request.

    The ledger's errors are answered by their row of the one error table
    (:mod:`services.errors`); a request msgspec cannot decode is ``invalid``.
    """
    if isinstance(exc, LedgerError):
        answer = answer_for(exc)
        if not answer.internal:
            return _Error(answer.code, str(exc), field_of(exc))
    elif isinstance(exc, msgspec.ValidationError | msgspec.DecodeError):
        # msgspec's message ends with the path, e.g. "... - at `$.year`".
        text = str(exc)
        field = text.rpartition("$.")[2].rstrip("`") if "$." in text else ""
        if "unknown field" in text:
            field = text.split("`")[1] if "`" in text else field
        return _Error("invalid", f"{field}: {text}" if field else text, field)
    _log.exception("query failed", exc_info=exc)
    return _Error("internal", "the query failed; the server's log has the details")


class QueryService:
    """Answers query requests from one projection."""

    def __init__(self, read_model: ReadModel, store: EventStore | None = None) -> None:
        self.read_model = read_model
        self.store = store

    async def answer(self, name: str, data: bytes) -> tuple[bytes, str]:
        """The encoded reply to query ``name`` with JSON parameters ``data``, and an error code.

        The code is empty for an answer; the reply then is the same JSON as over HTTP.
        """
        try:
            return msgspec.json.encode(await self._answer(name, data)), ""
        except Exception as exc:
            error = _error_for(exc)
            return msgspec.json.encode(error), error.code

    async def _answer(self, name: str, data: bytes) -> Any:
        if name == "status":
            params = msgspec.json.decode(data or b"{}", type=_Params)
            await self.read_model.at_least(params.min_sequence)
            last = await self.store.last_sequence() if self.store is not None else None
            scope = params.scope
            return await self.read_model.run(lambda conn: queries.status(conn, last, scope=scope))
        if name not in _QUERIES:
            raise UnknownKeyError("query", f"unknown query {name!r}; one of {list(QUERY_NAMES)}")
        kind, query = _QUERIES[name]
        params = msgspec.json.decode(data or b"{}", type=kind)
        return await self.read_model.query(params.min_sequence, query, params)

    async def serve(
        self, nc: NATS, prefix: str, stop: asyncio.Event, replies: ReplyGuard | None = None
    ) -> None:
        """Answer ``<prefix>.query.*`` in the queue group until ``stop`` is set.

        :param replies: which reply subjects may be answered; by default only nats-py's default
            inboxes, as on a server without authentication. A request with any other reply
            subject is dropped and logged.
        """
        guard = replies if replies is not None else ReplyGuard("query")
        limit = asyncio.Semaphore(_MAX_IN_FLIGHT)
        pending: set[asyncio.Task[None]] = set()

        async def reply(msg: Msg) -> None:
            async with limit:
                body, code = await self.answer(msg.subject.rpartition(".")[2], msg.data)
                headers = {"Ledger-Error": code} if code else None
                with contextlib.suppress(Exception):
                    await nc.publish(msg.reply, body, headers=headers)

        async def on_request(msg: Msg) -> None:
            if not guard.allows(msg.reply or None):
                _log.warning(
                    "violation: dropped a query on %s whose reply subject %.120r is not a "
                    "user's inbox",
                    msg.subject,
                    msg.reply,
                )
                return
            task = asyncio.create_task(reply(msg))
            pending.add(task)
            task.add_done_callback(pending.discard)

        subscription = await nc.subscribe(f"{prefix}.query.*", queue=QUEUE, cb=on_request)
        try:
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)


async def query_component(ledger: Ledger, stop: asyncio.Event) -> None:
    """The NATS queries as a ``ledger up`` component, over the data directory's projection.

    It connects as the query role: it may answer ``<prefix>.query.*`` and read the stream.
    """
    data_dir = ledger.settings.data_dir
    read_model = ReadModel(live_path(data_dir))
    users = users_path(data_dir) if ledger.credentials_for("query") else None
    async with ledger.connect_as("query") as store:
        service = QueryService(read_model, store)
        await service.serve(store.nc, store.ns.prefix, stop, ReplyGuard("query", users))
