"""Marks: the footprints valid at every :data:`MARK_EVERY`-th sequence, summed per place.

A place's summary as of sequence k (its head, and its figures by year and by programme) is
the sum of its footprints valid at k. Summing them all reads the place's whole range of
``footprints``; instead, :func:`sums_at` starts from the latest mark at or below k and adds
only the rows that changed after it: those made after the mark and still valid at k, less
those valid at the mark and closed by k. ``footprints`` is keyed by (country, since,
metric), so the first are one short range of the key, and a small covering index holds the
second (schema.py, "The past").

Both appliers write marks with :func:`write_marks`, which is :func:`sums_at` at each new mark:
the live one when a batch passes a multiple of :data:`MARK_EVERY`, a rebuild once it has
folded every event (``BulkApplier.mark``).
A replay split by activity (replay/partition.py) has each part write the marks of its own
activities in its own file, at the same time, and adds them up (:func:`add_marks`): sums of
disjoint activities add, and every footprint row counts or lists something, so no sum of
two parts cancels to a row a whole replay would leave out.
A mark reads every row changed since the one before, ~1 s at 50,000 events, so the live
projector does not make its batches wait for it: it leaves marks out of its transactions
and fills them afterwards from a thread (:func:`fill_marks`), summed in a read transaction
and written in a short one of their own. A mark describes the past at its sequence, which
later events never change, so it is the same whenever it is written; until it is there, an
answer as of a later sequence starts from the mark before, which only takes longer.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from projections.fold import add_share
from projections.schema import OPEN

__all__ = [
    "MARK_EVERY",
    "Sums",
    "add_marks",
    "drop_marks_after",
    "fill_marks",
    "missing_marks",
    "sums_at",
    "write_marks",
]

MARK_EVERY = 50_000
"""Sequences between two marks. At 1M events a mark is about 30k rows (191 places x 5
metrics x 12 years, and x 20 programmes); a summary as of k reads at most this many
sequences' changes (about 850 rows of a country, 120k of the whole)."""

Sums = dict[str | None, dict[tuple[Any, str], list[int]]]
"""``[micros, counted, listed]`` by (value, metric): under ``None`` the head (value ``None``),
under ``"year"`` and ``"programme"`` the breakdowns."""

_BREAKDOWNS = ("year", "programme")


def sums_at(conn: sqlite3.Connection, place: str, sequence: int) -> Sums:
    """The sums of ``place``'s footprints valid at ``sequence`` (``''``: activities as a whole).

    :param sequence: at most the projection's checkpoint.
    """
    (mark,) = conn.execute("SELECT max(mark) FROM marks WHERE mark <= ?", (sequence,)).fetchone()
    mark = mark or 0
    sums: Sums = {}
    for breakdown in _BREAKDOWNS:
        # The mark, plus the rows made since and valid at k, less the rows valid at the mark
        # and closed by k: one statement, so that SQLite adds them up.
        rows = conn.execute(
            f"SELECT {breakdown}, metric, sum(micros), sum(counted), sum(listed) FROM ("
            f"SELECT {breakdown}, metric, micros, counted, listed FROM marks_by_{breakdown} "
            "WHERE country = ?1 AND mark = ?2 "
            f"UNION ALL SELECT {breakdown}, metric, micros, counted, listed FROM footprints "
            "WHERE country = ?1 AND since > ?2 AND since <= ?3 AND until > ?3 "
            f"UNION ALL SELECT {breakdown}, metric, -micros, -counted, -listed "
            "FROM footprints INDEXED BY footprints_closed WHERE country = ?1 AND until > ?2 "
            f"AND until <= ?3 AND until < {OPEN} AND since <= ?2"
            f") GROUP BY {breakdown}, metric",
            (place, mark, sequence),
        )
        sums[breakdown] = {(value, metric): figures for value, metric, *figures in rows}
    head: dict[tuple[Any, str], list[int]] = {}
    for (_, metric), figures in sums["year"].items():
        add_share(head, (None, metric), figures)
    sums[None] = head
    return sums


def write_marks(conn: sqlite3.Connection, after: int, upto: int) -> int:
    """Write the marks at the multiples of :data:`MARK_EVERY` in (``after``, ``upto``].

    Call it in the transaction that brought the footprints to ``upto``. Each mark is summed
    from the one before it, so they are written in order.

    :returns: how many marks were written.
    """
    written = 0
    for mark in range((after // MARK_EVERY + 1) * MARK_EVERY, upto + 1, MARK_EVERY):
        _insert_mark(conn, mark, _mark_rows(conn, mark))
        written += 1
    return written


def add_marks(conn: sqlite3.Connection, other: str) -> None:
    """Add the marks of the attached database ``other`` (a part of a split replay, whose
    activities are none of this file's) to this file's, mark by mark and row by row."""
    conn.execute(
        f"INSERT INTO main.marks SELECT mark FROM {other}.marks WHERE true "
        "ON CONFLICT (mark) DO NOTHING"
    )
    for breakdown in _BREAKDOWNS:
        conn.execute(
            f"INSERT INTO main.marks_by_{breakdown} SELECT * FROM {other}.marks_by_{breakdown} "
            f"WHERE true ON CONFLICT (country, mark, metric, {breakdown}) DO UPDATE SET "
            "micros = micros + excluded.micros, counted = counted + excluded.counted, "
            "listed = listed + excluded.listed"
        )


def drop_marks_after(conn: sqlite3.Connection, sequence: int) -> None:
    """Remove the marks past ``sequence``: a split replay's that some part did not reach, and
    so lack its activities, before they are summed again over the merged file."""
    for table in ("marks", *(f"marks_by_{breakdown}" for breakdown in _BREAKDOWNS)):
        conn.execute(f"DELETE FROM {table} WHERE mark > ?", (sequence,))


def missing_marks(conn: sqlite3.Connection, upto: int) -> list[int]:
    """The multiples of :data:`MARK_EVERY` up to ``upto`` that have no mark, in order."""
    done = {mark for (mark,) in conn.execute("SELECT mark FROM marks")}
    return [m for m in range(MARK_EVERY, upto + 1, MARK_EVERY) if m not in done]


def fill_marks(reader: sqlite3.Connection, writer: sqlite3.Connection, upto: int) -> list[int]:
    """Write the marks missing up to ``upto``, each summed on ``reader`` in a read transaction
    and written on ``writer`` in a write transaction of its own, so that the writer's lock is
    held only while the rows are inserted.

    :param reader: a connection to the projection, not in a transaction.
    :param writer: another, in autocommit mode; a mark another writer wrote meanwhile is
        left as it is.
    :param upto: at most the checkpoint the reader sees.
    :returns: the marks written.
    """
    written = []
    for mark in missing_marks(reader, upto):
        reader.execute("BEGIN")
        try:
            rows = _mark_rows(reader, mark)
        finally:
            reader.execute("COMMIT")
        writer.execute("BEGIN IMMEDIATE")
        try:
            if writer.execute("SELECT 1 FROM marks WHERE mark = ?", (mark,)).fetchone() is None:
                _insert_mark(writer, mark, rows)
                written.append(mark)
        except BaseException:
            writer.execute("ROLLBACK")
            raise
        writer.execute("COMMIT")
    return written


_MarkRows = list[tuple[str, list[tuple[Any, ...]]]]


def _mark_rows(conn: sqlite3.Connection, mark: int) -> _MarkRows:
    """The rows of the mark at ``mark``, by breakdown table."""
    out: _MarkRows = []
    for place in _places(conn):
        sums = sums_at(conn, place, mark)
        for breakdown in _BREAKDOWNS:
            rows = [
                (place, mark, metric, value, *slot)
                for (value, metric), slot in sums[breakdown].items()
                if any(slot)
            ]
            out.append((breakdown, rows))
    return out


def _insert_mark(conn: sqlite3.Connection, mark: int, rows: _MarkRows) -> None:
    for breakdown, chunk in rows:
        conn.executemany(f"INSERT INTO marks_by_{breakdown} VALUES (?, ?, ?, ?, ?, ?, ?)", chunk)
    conn.execute("INSERT INTO marks (mark) VALUES (?)", (mark,))


def _places(conn: sqlite3.Connection) -> list[str]:
    """Every place with footprints: ``''`` and each country, one seek of the key apiece."""
    places: list[str] = []
    row = conn.execute("SELECT min(country) FROM footprints").fetchone()
    while row[0] is not None:
        places.append(row[0])
        row = conn.execute(
            "SELECT min(country) FROM footprints WHERE country > ?", (row[0],)
        ).fetchone()
    return places
