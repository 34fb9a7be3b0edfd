"""The SQLite schema of the projections: current activities, rollups, checkpoint, quarantine.

Rollups are long and narrow: one row per key and metric, e.g. ``(country, metric)``, holding the
total, the number of activities counted in it, and the number of multi-country activities
without shares that are only listed there. The metric ``*`` counts activities (see
:data:`projections.fold.ACTIVITY_COUNT`). ``total_micros`` is the exact integer sum in
millionths; ``total`` is the same figure as a number, for readers.
"""

from __future__ import annotations

import sqlite3

from projections.fold import ROLLUP_KEYS

__all__ = ["PROJECTION", "SCHEMA_VERSION", "create_indexes", "create_schema", "table_names"]

SCHEMA_VERSION = 1
"""Stored as ``PRAGMA user_version``; a different one means: rebuild."""

PROJECTION = "ledger"
"""The name of the one projection these tables form, as it appears in ``checkpoint``."""

_KEY_TYPES = {"country": "TEXT", "programme": "TEXT", "year": "INTEGER"}

_BASE = """
CREATE TABLE IF NOT EXISTS activities (
    activity_id TEXT PRIMARY KEY,
    office TEXT NOT NULL,
    programme TEXT NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    year INTEGER NOT NULL,
    countries TEXT NOT NULL,      -- JSON: [{"country": "KAZ", "share": null}, ...]
    metrics TEXT NOT NULL,        -- JSON: {"people_trained": 571}
    status TEXT NOT NULL,         -- active | withdrawn
    version INTEGER NOT NULL,
    last_sequence INTEGER NOT NULL,
    last_event_id TEXT NOT NULL,
    event_ids TEXT NOT NULL,      -- JSON list, oldest first: the activity's provenance
    state TEXT NOT NULL           -- JSON of events.activity.ActivityState, to fold the next event
);
CREATE TABLE IF NOT EXISTS activity_countries (
    activity_id TEXT NOT NULL,
    country TEXT NOT NULL,
    share REAL,
    PRIMARY KEY (activity_id, country)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoint (
    projection TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL,
    stream_time_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    sequence INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    data BLOB NOT NULL,
    headers TEXT,
    reason TEXT NOT NULL,
    stream_time_ns INTEGER NOT NULL
);
"""

_INDEXES = """
CREATE INDEX IF NOT EXISTS activities_programme ON activities (programme, year);
CREATE INDEX IF NOT EXISTS activities_year ON activities (year);
CREATE INDEX IF NOT EXISTS activity_countries_country ON activity_countries (country);
"""


def _rollup_ddl(table: str, keys: tuple[str, ...]) -> str:
    columns = "".join(f"    {key} {_KEY_TYPES[key]} NOT NULL,\n" for key in keys)
    primary = ", ".join((*keys, "metric"))
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (\n{columns}"
        "    metric TEXT NOT NULL,\n"
        "    total REAL NOT NULL,\n"
        "    total_micros INTEGER NOT NULL,\n"
        "    activities INTEGER NOT NULL,\n"
        "    multi_country INTEGER NOT NULL,\n"
        f"    PRIMARY KEY ({primary})\n) WITHOUT ROWID;\n"
    )


def create_schema(conn: sqlite3.Connection, *, indexes: bool = True) -> None:
    """Create every table (and, unless told not to, the secondary indexes) if missing.

    :param indexes: a bulk rebuild leaves them out and calls :func:`create_indexes` at the end,
        which is faster than keeping them up to date row by row.
    """
    script = _BASE + "".join(_rollup_ddl(t, k) for t, k in ROLLUP_KEYS.items())
    conn.executescript(script)
    if indexes:
        create_indexes(conn)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def create_indexes(conn: sqlite3.Connection) -> None:
    """Create the secondary indexes that provenance queries use."""
    conn.executescript(_INDEXES)


def table_names() -> list[str]:
    """Every table of the projection, in a stable order (for comparisons and status)."""
    return ["activities", "activity_countries", *ROLLUP_KEYS, "checkpoint", "quarantine"]
