"""Provenance: which activities and events make up a rollup row, with what figure each.

The figures come from the very function the applier counts with
(:func:`projections.fold.add_footprint`), so for any row they add up exactly to its
``total_micros``. Activities listed as multi-country without shares appear with a zero
figure and ``multi_country`` set.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from events.errors import LedgerError
from projections.fold import MICROS, ROLLUP_KEYS, Bucket, add_footprint, decode_state
from projections.schema import OPEN

__all__ = ["Contribution", "UnknownRollupError", "contributions"]

_ids = msgspec.json.Decoder(list[str])


class UnknownRollupError(LedgerError, ValueError):
    """Raised when a rollup table or its key is not one the projection has."""


class Contribution(msgspec.Struct, frozen=True, kw_only=True):
    """One activity's part in one rollup row."""

    activity_id: str
    value: float
    """The figure it adds to the row's total (its share, for a shared activity)."""
    micros: int
    """The same figure in millionths, exact."""
    counted: bool
    """Whether it counts in the row's total and activity count."""
    multi_country: bool
    """Whether it is only listed there: multi-country without shares."""
    event_ids: list[str]
    """Every event of the activity, oldest first."""
    last_event_id: str
    """The event that gave the activity its current figures."""


def contributions(
    conn: sqlite3.Connection,
    table: str,
    key: tuple[Any, ...],
    metric: str,
    *,
    after: str | None = None,
    limit: int | None = None,
) -> list[Contribution]:
    """The activities behind one rollup row, sorted by activity id.

    :param conn: a connection to a projection (read-only is enough).
    :param table: a rollup table, e.g. ``by_country``.
    :param key: the row's key values in the table's key order, e.g. ``("KAZ",)``; ``()``
        for ``totals``.
    :param metric: a metric name, or ``*`` for the activity count.
    :param after: only activities whose id sorts after this one (the key of a page's end).
    :param limit: at most this many; the activities are read only until they are found.
    :raises UnknownRollupError: for an unknown table or a key of the wrong length.
    """
    columns = ROLLUP_KEYS.get(table)
    if columns is None:
        raise UnknownRollupError(f"unknown rollup {table!r}; one of {', '.join(ROLLUP_KEYS)}")
    if len(key) != len(columns):
        raise UnknownRollupError(f"{table} is keyed by ({', '.join(columns)}), got {key!r}")
    where = ["a.status = 'active'"]
    params: list[Any] = []
    join = ""
    for column, value in zip(columns, key, strict=True):
        if column == "country":
            join = "JOIN activity_countries c ON c.activity_id = a.activity_id"
            where.append("c.country = ?")
        elif column == "document":
            where.append(
                "a.activity_id IN (SELECT activity_id FROM activity_documents "
                f"WHERE document = ? AND until = {OPEN})"
            )
        else:
            where.append(f"a.{column} = ?")
        params.append(value)
    if after is not None:
        where.append("a.activity_id > ?")
        params.append(after)
    rows = conn.execute(
        f"SELECT a.activity_id, a.state, a.event_ids FROM activities a {join} "
        f"WHERE {' AND '.join(where)} ORDER BY a.activity_id",
        params,
    )
    bucket = (table, *key, metric)
    found: list[Contribution] = []
    for activity_id, state, event_ids in rows:
        if limit is not None and len(found) >= limit:
            break
        # The activity's rows straight from the counting rules, not through ``footprint``: a
        # row such as ``totals`` reads every activity, and the copy to tuples would cost more.
        shares: dict[Bucket, list[int]] = {}
        add_footprint(shares, decode_state(state), 1)
        share = shares.get(bucket)
        if share is None:
            continue
        ids = _ids.decode(event_ids)
        found.append(
            Contribution(
                activity_id=activity_id,
                value=share[0] / MICROS,
                micros=share[0],
                counted=bool(share[1]),
                multi_country=bool(share[2]),
                event_ids=ids,
                last_event_id=ids[-1],
            )
        )
    rows.close()  # a page may stop before the rows do
    return found
