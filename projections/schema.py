"""The SQLite schema of the projections: current activities, rollups, the figures that are not
summed, checkpoint, quarantine.

Rollups are long and narrow: one row per key and metric, e.g. ``(country, metric)``, holding the
total, the number of activities counted in it, and the number of multi-country activities
without shares that are only listed there. The metric ``*`` counts activities (see
:data:`projections.fold.ACTIVITY_COUNT`). ``total_micros`` is the exact integer sum in
millionths; ``total`` is the same figure as a number, for readers.
"""

from __future__ import annotations

import sqlite3

from events.errors import LedgerError
from projections.fold import ROLLUP_KEYS

__all__ = [
    "OPEN",
    "PROJECTION",
    "SCHEMA_VERSION",
    "OutdatedSchemaError",
    "create_indexes",
    "create_schema",
    "table_names",
]

SCHEMA_VERSION = 7
"""Stored as ``PRAGMA user_version``; a different one means: rebuild."""

PROJECTION = "ledger"
"""The name of the one projection these tables form, as it appears in ``checkpoint``."""


OPEN = (1 << 63) - 1
"""The ``until`` of a version that is current: no event has replaced it yet."""


class OutdatedSchemaError(LedgerError):
    """Raised when a projection file was written with another schema version: rebuild it."""


_KEY_TYPES = {"document": "TEXT", "country": "TEXT", "programme": "TEXT", "year": "INTEGER"}

_BASE = """
CREATE TABLE IF NOT EXISTS activities (
    activity_id TEXT PRIMARY KEY,
    office TEXT NOT NULL,
    programme TEXT NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    year INTEGER NOT NULL,
    start_date TEXT,              -- ISO date or NULL
    end_date TEXT,
    countries TEXT NOT NULL,      -- JSON: [{"country": "KAZ", "share": null, "role": ...}, ...]
    metrics TEXT NOT NULL,        -- JSON: {"people_trained": 571}
    multi_country INTEGER NOT NULL,  -- 1: several recipients without shares (listed only)
    partners TEXT NOT NULL,       -- JSON list of names
    sources TEXT NOT NULL,        -- JSON: [{"document": "A/76/119", "paragraph": 30}, ...]
    part_of TEXT,                 -- the activity whose figures include this one's, if any
    notes TEXT NOT NULL,
    status TEXT NOT NULL,         -- active | withdrawn
    version INTEGER NOT NULL,
    last_sequence INTEGER NOT NULL,
    last_event_id TEXT NOT NULL,
    event_ids TEXT NOT NULL,      -- JSON list, oldest first: the activity's provenance
    state TEXT NOT NULL           -- JSON of events.activity.ActivityState, to fold the next event
);
-- One row per country of an activity, keyed and stored by country, with the columns that
-- lists and summaries filter a country's activities by, so a query reads one range of this
-- table instead of probing `activities` once per activity (issue 5: ~1,000 probes a country
-- at 200k events). The applier rewrites an activity's rows whenever one of its events lands.
CREATE TABLE IF NOT EXISTS activity_countries (
    country TEXT NOT NULL,
    activity_id TEXT NOT NULL,
    share REAL,
    office TEXT NOT NULL,
    programme TEXT NOT NULL,
    kind TEXT NOT NULL,
    year INTEGER NOT NULL,
    status TEXT NOT NULL,            -- the activity's: active | withdrawn
    multi_country INTEGER NOT NULL,  -- the activity's: listed here, not counted
    figures TEXT NOT NULL,           -- JSON {metric: micros}: this country's part; {} if listed
    since INTEGER NOT NULL,          -- the sequence of the event that made this version
    PRIMARY KEY (country, activity_id)
) WITHOUT ROWID;
-- The past (docs/design.md, "Time travel"). Every version of an activity is current from the
-- sequence of the event that made it (`since`) until the one of the event that replaced it
-- (`until`, or OPEN): the version seen as of sequence k is the one with since <= k < until.
--
-- `footprints` holds what every version of every activity puts into the figures, one row per
-- place ('' for the activity as a whole, else a country it counts or is listed in) and metric
-- ('*' counts it), as add_footprint counts it; but a metric that is not summed keeps the
-- activity's own figure. Any figure as of k is then the sum of the rows valid at k, in SQL.
-- Withdrawn versions have none: they count nowhere.
CREATE TABLE IF NOT EXISTS footprints (
    country TEXT NOT NULL,
    activity_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    since INTEGER NOT NULL,
    until INTEGER NOT NULL,
    programme TEXT NOT NULL,
    year INTEGER NOT NULL,
    micros INTEGER NOT NULL,
    counted INTEGER NOT NULL,        -- 1: counts in the place's totals
    listed INTEGER NOT NULL,         -- 1: multi-country without shares, listed only
    summed INTEGER NOT NULL,         -- 1: the metric's figures add up; 0: max or none
    -- One event makes one version, with one row per place and metric. Keyed by `since`
    -- within a place, so that the rows made between two sequences are one range: a summary
    -- as of k reads those since the mark before k (projections/marks.py).
    PRIMARY KEY (country, since, metric)
) WITHOUT ROWID;
-- The other rows that changed since a mark: those closed after it, by when. Only replaced
-- versions are here (a tenth of the rows), with every column a summary sums.
CREATE INDEX IF NOT EXISTS footprints_closed
    ON footprints (country, until, year, programme, micros, counted, listed)
    WHERE until < 9223372036854775807;  -- OPEN
-- Marks: the footprints valid at every MARK_EVERY-th sequence, summed per place and metric,
-- by year and by programme (projections/marks.py); `marks` lists the sequences written.
CREATE TABLE IF NOT EXISTS marks (
    mark INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS marks_by_year (
    country TEXT NOT NULL,
    mark INTEGER NOT NULL,
    metric TEXT NOT NULL,
    year INTEGER NOT NULL,
    micros INTEGER NOT NULL,
    counted INTEGER NOT NULL,
    listed INTEGER NOT NULL,
    PRIMARY KEY (country, mark, metric, year)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS marks_by_programme (
    country TEXT NOT NULL,
    mark INTEGER NOT NULL,
    metric TEXT NOT NULL,
    programme TEXT NOT NULL,
    micros INTEGER NOT NULL,
    counted INTEGER NOT NULL,
    listed INTEGER NOT NULL,
    PRIMARY KEY (country, mark, metric, programme)
) WITHOUT ROWID;
-- The documents that report each version of an activity (withdrawn ones too).
CREATE TABLE IF NOT EXISTS activity_documents (
    document TEXT NOT NULL,
    activity_id TEXT NOT NULL,
    since INTEGER NOT NULL,
    until INTEGER NOT NULL,
    PRIMARY KEY (document, activity_id, since)
) WITHOUT ROWID;
-- The versions that a later event replaced, as `activities` and `activity_countries` held
-- them while they were current, for lists and pages as of a past sequence. The current
-- version stays where it is, with its `since` (`last_sequence` in `activities`).
CREATE TABLE IF NOT EXISTS activities_past (
    activity_id TEXT NOT NULL,
    since INTEGER NOT NULL,
    until INTEGER NOT NULL,
    office TEXT NOT NULL,
    programme TEXT NOT NULL,
    kind TEXT NOT NULL,
    year INTEGER NOT NULL,
    status TEXT NOT NULL,
    multi_country INTEGER NOT NULL,
    part_of TEXT,
    events INTEGER NOT NULL,         -- how many of the activity's event ids this version had
    state TEXT NOT NULL,
    PRIMARY KEY (activity_id, since)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS activity_countries_past (
    country TEXT NOT NULL,
    activity_id TEXT NOT NULL,
    since INTEGER NOT NULL,
    until INTEGER NOT NULL,
    share REAL,
    office TEXT NOT NULL,
    programme TEXT NOT NULL,
    kind TEXT NOT NULL,
    year INTEGER NOT NULL,
    status TEXT NOT NULL,
    multi_country INTEGER NOT NULL,
    figures TEXT NOT NULL,
    PRIMARY KEY (country, activity_id, since)
) WITHOUT ROWID;
-- The releases: named, signed statements of the figures as of a sequence (FiguresReleased).
CREATE TABLE IF NOT EXISTS releases (
    name TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL,       -- the sequence whose figures it states
    digest TEXT NOT NULL,            -- over every rollup row then, in canonical order
    note TEXT NOT NULL,
    office TEXT NOT NULL,
    actor TEXT NOT NULL,
    event_id TEXT NOT NULL,
    recorded_sequence INTEGER NOT NULL,  -- the release event's own sequence
    recorded_ns INTEGER NOT NULL,
    data BLOB NOT NULL               -- the event as stored, to check its signature
);
-- When each applied message (kept or quarantined) was stored: an instant's sequence.
CREATE TABLE IF NOT EXISTS timeline (
    sequence INTEGER PRIMARY KEY,
    time_ns INTEGER NOT NULL
);
-- The figures of metrics that are not summed (events/metrics.py: `max` and `none`), one row
-- per activity and metric for the activity as a whole (country ''), and one for each country
-- it counts in: what an answer lists, or takes the largest of, instead of a total. Only active
-- activities have rows, as only they count in the rollups.
CREATE TABLE IF NOT EXISTS reported (
    metric TEXT NOT NULL,            -- canonical metric
    country TEXT NOT NULL,           -- '' for the activity as a whole
    activity_id TEXT NOT NULL,
    programme TEXT NOT NULL,
    year INTEGER NOT NULL,
    micros INTEGER NOT NULL,         -- the figure, in millionths of the metric's unit
    PRIMARY KEY (metric, country, activity_id)
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
CREATE INDEX IF NOT EXISTS activities_parts ON activities (part_of) WHERE part_of IS NOT NULL;
CREATE INDEX IF NOT EXISTS activities_listed_programme ON activities (programme, activity_id, year)
    WHERE status = 'active' AND multi_country = 1;
CREATE INDEX IF NOT EXISTS activities_listed_year ON activities (year, activity_id)
    WHERE status = 'active' AND multi_country = 1;
CREATE INDEX IF NOT EXISTS activity_countries_year ON activity_countries (country, year);
CREATE INDEX IF NOT EXISTS activity_countries_programme ON activity_countries (programme, year);
CREATE INDEX IF NOT EXISTS reported_largest ON reported (metric, country, micros);
CREATE INDEX IF NOT EXISTS reported_programme
    ON reported (metric, country, programme, year, micros);
CREATE INDEX IF NOT EXISTS reported_year ON reported (metric, country, year, micros);
CREATE INDEX IF NOT EXISTS footprints_programme ON footprints (programme, year)
    WHERE country = '';
CREATE INDEX IF NOT EXISTS footprints_year ON footprints (year) WHERE country = '';
CREATE INDEX IF NOT EXISTS footprints_listed ON footprints (country, activity_id, until)
    WHERE metric = '*' AND listed = 1;
CREATE INDEX IF NOT EXISTS footprints_reported
    ON footprints (country, metric, micros DESC, activity_id, until)
    WHERE summed = 0 AND counted = 1;
CREATE INDEX IF NOT EXISTS activities_past_parts ON activities_past (part_of)
    WHERE part_of IS NOT NULL;
CREATE INDEX IF NOT EXISTS timeline_time ON timeline (time_ns, sequence);
"""

_SEARCH = """
CREATE VIRTUAL TABLE IF NOT EXISTS activities_fts USING fts5 (
    title, summary, content='activities', content_rowid='rowid'
);
CREATE TRIGGER IF NOT EXISTS activities_fts_insert AFTER INSERT ON activities BEGIN
    INSERT INTO activities_fts (rowid, title, summary) VALUES (new.rowid, new.title, new.summary);
END;
CREATE TRIGGER IF NOT EXISTS activities_fts_update AFTER UPDATE OF title, summary ON activities
WHEN old.title IS NOT new.title OR old.summary IS NOT new.summary BEGIN
    INSERT INTO activities_fts (activities_fts, rowid, title, summary)
        VALUES ('delete', old.rowid, old.title, old.summary);
    INSERT INTO activities_fts (rowid, title, summary) VALUES (new.rowid, new.title, new.summary);
END;
CREATE TRIGGER IF NOT EXISTS activities_fts_delete AFTER DELETE ON activities BEGIN
    INSERT INTO activities_fts (activities_fts, rowid, title, summary)
        VALUES ('delete', old.rowid, old.title, old.summary);
END;
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
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found not in (0, SCHEMA_VERSION):
        raise OutdatedSchemaError(
            f"the projection has schema version {found}, this program writes {SCHEMA_VERSION}; "
            "run `ledger rebuild` (the stream keeps everything)"
        )
    script = _BASE + "".join(_rollup_ddl(t, k) for t, k in ROLLUP_KEYS.items())
    conn.executescript(script)
    if indexes:
        create_indexes(conn)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def create_indexes(conn: sqlite3.Connection) -> None:
    """Create the secondary indexes that queries use, and the full-text index of activities.

    The full-text index (FTS5 over ``title`` and ``summary``, for ``q``) is kept up to date by
    triggers, so every applier transaction changes it with the rows. A bulk rebuild creates it
    only here, at the end, and fills it in one pass, which is faster than row by row.
    """
    fresh = not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'activities_fts'").fetchone()
    conn.executescript(_INDEXES + _SEARCH)
    if fresh:
        conn.execute("INSERT INTO activities_fts (activities_fts) VALUES ('rebuild')")


def table_names() -> list[str]:
    """Every table the fold writes, in a stable order (for comparisons and status); not
    ``releases``, which is copied from the stream (projections/releases.py)."""
    return [
        "activities",
        "activity_countries",
        "reported",
        "footprints",
        "activity_documents",
        "activities_past",
        "activity_countries_past",
        "timeline",
        "marks",
        "marks_by_year",
        "marks_by_programme",
        *ROLLUP_KEYS,
        "checkpoint",
        "quarantine",
    ]
