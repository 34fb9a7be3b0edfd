"""The activities an export writes, read from the projection through the query layer.

:func:`read_page` is one page: :func:`projections.queries.list_activities` with the export's
filters (active activities only, the API's filters and scope), then each activity's state as of
the page's sequence (:func:`projections.temporal.state_at`) and the time its last event was
stored. The CLI reads every page in one read transaction; the API reads them from one
snapshot of its read model, a page per worker call. Both see one state of the ledger.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from events.activity import ActivityState
from projections import queries
from projections.answers import AsOf
from projections.temporal import Scope, instant_of, state_at

__all__ = ["ExportFilters", "Page", "read_page", "read_states"]


@dataclass(frozen=True)
class ExportFilters:
    """Which activities an export holds: the API's activity filters and scope."""

    country: str | None = None
    programme: str | None = None
    year: int | None = None
    scope: Scope | None = None


@dataclass(frozen=True)
class Page:
    """One page of activities, each with the time of its last event, and the next cursor."""

    as_of: AsOf
    states: list[tuple[ActivityState, dt.datetime | None]]
    next_cursor: str | None


def _stored_at(conn: sqlite3.Connection, sequence: int) -> dt.datetime | None:
    # The timeline is the projection's record of when each event was stored (the same table
    # as_of reads); the activity's last event is its last_sequence.
    row = conn.execute("SELECT time_ns FROM timeline WHERE sequence = ?", (sequence,)).fetchone()
    return instant_of(row[0]) if row else None


def read_page(conn: sqlite3.Connection, filters: ExportFilters, cursor: str | None) -> Page:
    """One page of the active activities that match ``filters``, after ``cursor``.

    :raises QueryError: naming a filter that is unknown or malformed, before anything is read.
    """
    page = queries.list_activities(
        conn,
        country=filters.country,
        programme=filters.programme,
        year=filters.year,
        status="active",
        cursor=cursor,
        limit=queries.MAX_LIMIT,
        scope=filters.scope,
    )
    sequence = None if page.as_of.now else page.as_of.sequence
    states = []
    for item in page.items:
        found = state_at(conn, item.activity_id, sequence)
        if found is not None:
            state = found[0]
            states.append((state, _stored_at(conn, state.last_sequence)))
    return Page(page.as_of, states, page.next_cursor)


def read_states(
    conn: sqlite3.Connection, filters: ExportFilters
) -> Iterator[tuple[ActivityState, dt.datetime | None]]:
    """Every active activity that matches ``filters``, page after page, in one read
    transaction (the caller's, or one begun here and ended when the iteration ends)."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        cursor: str | None = None
        while True:
            page = read_page(conn, filters, cursor)
            yield from page.states
            cursor = page.next_cursor
            if cursor is None:
                return
    finally:
        # An export stopped early (a failed check) may close the connection before it drops
        # this generator: then there is nothing left to end.
        with contextlib.suppress(sqlite3.ProgrammingError):
            if own and conn.in_transaction:
                conn.execute("COMMIT")
