"""What changed between two instants: every figure that moved, and the events that moved it.

Both instants are replayed into projections of their own; their rollup rows are compared, and
each changed row is explained by the events recorded in between that belong to the activities
behind the row at either instant.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from events.errors import EventDecodeError
from events.model import ActivityRevised, ActivityWithdrawn
from events.store import EventStore
from projections.db import open_reader
from projections.fold import ROLLUP_KEYS
from projections.provenance import contributions
from replay.asof import ReplayError, replay_as_of

__all__ = ["EventRef", "FigureChange", "diff"]


class EventRef(msgspec.Struct, frozen=True):
    """One event, as a line in a diff."""

    sequence: int
    event_id: str
    type: str
    activity_id: str
    office: str
    actor: str
    recorded_at: dt.datetime
    reason: str = ""


class FigureChange(msgspec.Struct, frozen=True):
    """One rollup figure that is different at the second instant."""

    table: str
    key: dict[str, Any]
    metric: str
    """A metric name, or ``*`` for the number of activities."""
    before: float
    after: float
    events: list[EventRef]


async def diff(
    store: EventStore,
    since: dt.datetime,
    until: dt.datetime,
    *,
    country: str | None = None,
    programme: str | None = None,
) -> list[FigureChange]:
    """Every figure that differs between ``since`` and ``until``, with its events.

    :param country: only rows of this country (tables keyed by country).
    :param programme: only rows of this programme (tables keyed by programme).
    :raises ReplayError: when ``until`` is not after ``since``.
    """
    if until <= since:
        raise ReplayError(f"--to {until.isoformat()} must be after --from {since.isoformat()}")
    with tempfile.TemporaryDirectory(prefix="ledger-diff-") as tmp:
        before_path, after_path = Path(tmp, "before.db"), Path(tmp, "after.db")
        await replay_as_of(store, before_path, until_time=since, progress=False)
        await replay_as_of(store, after_path, until_time=until, progress=False)
        window = await _events_between(store, since, until)
        before, after = open_reader(before_path), open_reader(after_path)
        try:
            return _changes(before, after, window, country, programme)
        finally:
            before.close()
            after.close()


async def _events_between(
    store: EventStore, since: dt.datetime, until: dt.datetime
) -> dict[str, list[EventRef]]:
    found: dict[str, list[EventRef]] = {}
    async for batch in store.read_raw():
        for raw in batch:
            try:
                record = store.decode(raw)
            except EventDecodeError:
                continue
            event = record.event
            if not since < event.recorded_at <= until:
                continue
            payload = event.payload
            reason = (
                payload.reason if isinstance(payload, ActivityRevised | ActivityWithdrawn) else ""
            )
            found.setdefault(event.activity_id, []).append(
                EventRef(
                    sequence=record.sequence,
                    event_id=event.event_id,
                    type=event.type,
                    activity_id=event.activity_id,
                    office=event.office,
                    actor=event.actor,
                    recorded_at=event.recorded_at,
                    reason=reason,
                )
            )
    return found


def _rows(
    conn: sqlite3.Connection, table: str, keys: tuple[str, ...], where: dict[str, str]
) -> dict[tuple[Any, ...], float]:
    columns = ", ".join((*keys, "metric", "total"))
    clause = " AND ".join(f"{k} = ?" for k in where)
    sql = f"SELECT {columns} FROM {table}" + (f" WHERE {clause}" if clause else "")
    return {tuple(row[:-1]): row[-1] for row in conn.execute(sql, list(where.values()))}


def _changes(
    before: sqlite3.Connection,
    after: sqlite3.Connection,
    window: dict[str, list[EventRef]],
    country: str | None,
    programme: str | None,
) -> list[FigureChange]:
    wanted = {k: v for k, v in (("country", country), ("programme", programme)) if v}
    changes: list[FigureChange] = []
    for table, keys in ROLLUP_KEYS.items():
        if not set(wanted) <= set(keys):
            continue
        old, new = _rows(before, table, keys, wanted), _rows(after, table, keys, wanted)
        for row in sorted(old.keys() | new.keys(), key=repr):
            was, now = old.get(row, 0.0), new.get(row, 0.0)
            if was == now:
                continue
            *key, metric = row
            behind = {
                c.activity_id
                for conn in (before, after)
                for c in contributions(conn, table, tuple(key), metric)
            }
            events = sorted(
                (e for activity in behind for e in window.get(activity, [])),
                key=lambda e: e.sequence,
            )
            changes.append(
                FigureChange(
                    table=table,
                    key=dict(zip(keys, key, strict=True)),
                    metric=metric,
                    before=was,
                    after=now,
                    events=events,
                )
            )
    return changes
