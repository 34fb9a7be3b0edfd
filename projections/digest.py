"""A digest of the published figures: SHA-256 over every rollup row, in a canonical order.

A release (issue 16) states the figures as of a sequence by this digest, so that anyone can
later recompute them and see whether the past was changed. The same digest comes from two
places, which must agree to the bit:

- :func:`present_digest` reads the rollup tables, as they stand at the checkpoint;
- :func:`digest_at` sums the footprints valid at any sequence (``projections/temporal.py``)
  into the very rows the rollups would hold then.

Each row is one line, ``table, key values, metric, total_micros, activities, multi_country``
separated by tabs, tables in name order and rows in key order; integers only, so no float
formatting can differ between machines.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from typing import Any

from events.metrics import unsummed_metrics
from projections.fold import ROLLUP_KEYS

__all__ = ["digest_at", "present_digest", "rows_at"]


def _hash(rows: Iterable[tuple[str, tuple[Any, ...]]]) -> str:
    digest = hashlib.sha256()
    for table, row in rows:
        digest.update("\t".join((table, *map(str, row))).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _order(table: str) -> str:
    return ", ".join((*ROLLUP_KEYS[table], "metric"))


def present_digest(conn: sqlite3.Connection) -> str:
    """The digest of the rollup tables as they are (the figures at the checkpoint)."""

    def rows() -> Iterable[tuple[str, tuple[Any, ...]]]:
        for table in sorted(ROLLUP_KEYS):
            order = _order(table)
            for row in conn.execute(
                f"SELECT {order}, total_micros, activities, multi_country FROM {table} "
                f"ORDER BY {order}"
            ):
                yield table, row

    return _hash(rows())


def rows_at(conn: sqlite3.Connection, sequence: int) -> Iterable[tuple[str, tuple[Any, ...]]]:
    """Every rollup row as the rollups held it at ``sequence``, summed from the footprints
    valid then, in the digest's order."""
    unsummed = sorted(unsummed_metrics())
    marks = ", ".join("?" * len(unsummed)) or "NULL"
    # A metric that is not summed keeps its figure in the footprints, but 0 in the rollups.
    micros = f"sum(CASE WHEN metric IN ({marks}) THEN 0 ELSE micros END)"
    valid = "since <= ? AND until > ?"
    documents = [
        document
        for (document,) in conn.execute(
            f"SELECT DISTINCT document FROM activity_documents WHERE {valid} ORDER BY document",
            (sequence, sequence),
        )
    ]
    for table in sorted(ROLLUP_KEYS):
        keys = tuple(key for key in ROLLUP_KEYS[table] if key != "document")
        by_place = "country" in keys
        place = "country > ''" if by_place else "country = ''"
        listed = "sum(listed)" if by_place else "0"
        group = ", ".join((*keys, "metric"))
        # Neither table is keyed by activity: a document's activities are a set to probe
        # (SQLite builds it once), one document at a time, never a join.
        for document in documents if "document" in ROLLUP_KEYS[table] else [None]:
            narrow, params = "", [*unsummed, sequence, sequence]
            if document is not None:
                narrow = (
                    f" AND activity_id IN (SELECT activity_id FROM activity_documents "
                    f"WHERE document = ? AND {valid})"
                )
                params += [document, sequence, sequence]
            query = (
                f"SELECT {group}, {micros}, sum(counted), {listed} FROM footprints "
                f"WHERE {place} AND {valid}{narrow} GROUP BY {group} "
                f"HAVING sum(counted) > 0 OR {listed} > 0 ORDER BY {group}"
            )
            for row in conn.execute(query, params):
                yield table, row if document is None else (document, *row)


def digest_at(conn: sqlite3.Connection, sequence: int) -> str:
    """The digest of the figures as of ``sequence``; at the checkpoint it equals
    :func:`present_digest`."""
    return _hash(rows_at(conn, sequence))
