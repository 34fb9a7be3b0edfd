"""The batch applier: folds a batch of stored messages into SQLite in one transaction.

The transaction also moves the checkpoint to the batch's last sequence (docs/design.md,
"Principles"), so a crash at any instant either keeps the whole batch or none of it. Messages
at or below the checkpoint are skipped: a redelivery, a restart or a second instance never
counts twice. A message that does not decode, or cannot follow its activity's state, is written to
``quarantine`` with the reason, and the batch goes on without it.

The steps of a batch are module functions (:func:`decode_batch`, :func:`fold_batch`,
:func:`load_activities`, :func:`write_activities`, :func:`write_rollups`,
:func:`write_quarantine`, :func:`write_checkpoint`), because the bulk applier of a rebuild
(:mod:`projections.bulk`) runs the very same ones: it differs only in when it writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec

from events.activity import ActivityState
from events.codec import DEFAULT_CODEC, Codec
from events.envelope import Envelope
from events.errors import EventDecodeError
from events.metrics import unsummed_metrics
from events.stored import RawMessage, nanoseconds
from projections.fold import (
    ROLLUP_KEYS,
    Bucket,
    FoldError,
    Footprint,
    add_footprint,
    country_parts,
    decode_state,
    documents_of,
    encode_state,
    fold_state,
    footprint_rows,
    is_listed_only,
    reported_figures,
)
from projections.marks import write_marks
from projections.schema import OPEN, PROJECTION

__all__ = [
    "Applier",
    "BatchResult",
    "Folded",
    "decode_batch",
    "fold_batch",
    "in_stream_order",
    "load_activities",
    "make_timeline_monotone",
    "read_checkpoint",
    "timeline_floor",
    "write_activities",
    "write_checkpoint",
    "write_quarantine",
    "write_rollups",
    "write_timeline",
]

_CHUNK = 500
"""Ids per ``IN (...)`` lookup; well under SQLite's limit on parameters."""

_json = msgspec.json.Encoder()
_ids_decoder = msgspec.json.Decoder(list[str])


class BatchResult(NamedTuple):
    """What one batch did: a call of :meth:`Applier.apply` (or of the bulk applier's ``add``)."""

    applied: int
    skipped: int
    """Messages at or below the checkpoint: already applied earlier."""
    quarantined: int
    checkpoint: int
    """The checkpoint after the batch; for the bulk applier, the last sequence folded, which
    its ``finish`` commits."""


class Folded:
    """An activity while it is folded: its state now, its event ids, its stored state, and
    the versions that events folded since it was read have replaced."""

    __slots__ = ("_loaded_rows", "_rows", "_rows_of", "event_ids", "loaded", "past", "state")

    def __init__(
        self, state: ActivityState, event_ids: list[str], loaded: ActivityState | None
    ) -> None:
        self.state = state
        self.event_ids = event_ids
        self.loaded = loaded
        """The state the file holds; ``None`` for an activity the file does not have yet."""
        self.past: list[tuple[ActivityState, int]] = []
        """Each version replaced since the activity was read, oldest first, with how many
        event ids it had: what :func:`write_activities` keeps in the ``*_past`` tables."""
        self._rows: list[Footprint] = []
        self._rows_of: ActivityState | None = None
        self._loaded_rows: list[Footprint] | None = None

    def loaded_rows(self) -> list[Footprint]:
        """The stored state's footprint rows (none when there is none), computed once: the
        rollups take them off, and the ``footprints`` table closes them."""
        if self._loaded_rows is None:
            loaded = self.loaded
            self._loaded_rows = (
                [] if loaded is None or loaded.withdrawn else footprint_rows(loaded.activity)
            )
        return self._loaded_rows

    def rows(self) -> list[Footprint]:
        """The current state's footprint rows (none when withdrawn), computed once: the
        rollups, the ``footprints`` table and the country rows all take them."""
        if self._rows_of is not self.state:
            state = self.state
            self._rows = [] if state.withdrawn else footprint_rows(state.activity)
            self._rows_of = state
        return self._rows

    @property
    def changed(self) -> bool:
        """Whether the state differs from the stored one (an event was folded since)."""
        return self.state is not self.loaded


def _upsert_sql(table: str, keys: tuple[str, ...]) -> str:
    columns = ", ".join((*keys, "metric", "total", "total_micros", "activities", "multi_country"))
    marks = ", ".join("?" * (len(keys) + 5))
    conflict = ", ".join((*keys, "metric"))
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT ({conflict}) DO UPDATE SET "
        "total_micros = total_micros + excluded.total_micros, "
        "total = (total_micros + excluded.total_micros) / 1000000.0, "
        "activities = activities + excluded.activities, "
        "multi_country = multi_country + excluded.multi_country"
    )


_ACTIVITY_COLUMNS = (
    "activity_id",
    "office",
    "programme",
    "kind",
    "title",
    "summary",
    "year",
    "start_date",
    "end_date",
    "countries",
    "metrics",
    "multi_country",
    "partners",
    "sources",
    "part_of",
    "notes",
    "status",
    "version",
    "last_sequence",
    "last_event_id",
    "event_ids",
    "state",
)
_ACTIVITY_UPSERT = (
    f"INSERT INTO activities ({', '.join(_ACTIVITY_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_ACTIVITY_COLUMNS))}) ON CONFLICT (activity_id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _ACTIVITY_COLUMNS[1:])
)

_UPSERTS = {table: _upsert_sql(table, keys) for table, keys in ROLLUP_KEYS.items()}
_DELETES = {
    table: f"DELETE FROM {table} WHERE "
    + " AND ".join(f"{column} = ?" for column in (*keys, "metric"))
    + " AND activities = 0 AND multi_country = 0"
    for table, keys in ROLLUP_KEYS.items()
}
_FOOTPRINT_INSERT = (
    "INSERT INTO footprints (country, metric, year, programme, activity_id, since, until, "
    "micros, counted, listed, summed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_PAST_PLACE_INSERT = (
    "INSERT INTO activity_countries_past (country, activity_id, share, office, programme, "
    "kind, year, status, multi_country, figures, since, until) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_PLACE_INSERT = (
    "INSERT INTO activity_countries (country, activity_id, share, office, programme, kind, "
    "year, status, multi_country, figures, since) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class Applier:
    """Applies batches of raw stream messages to one projection database."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        codec: Codec = DEFAULT_CODEC,
        projection: str = PROJECTION,
        marks: bool = True,
    ) -> None:
        """
        :param conn: a read-write connection in autocommit mode (``isolation_level=None``), as
            :func:`projections.db.open_writer` gives; the applier manages transactions itself.
        :param codec: decodes and upcasts the stored events.
        :param projection: the checkpoint's name.
        :param marks: write the marks a batch passes in its transaction; ``False`` leaves
            them to :func:`projections.marks.fill_marks` (the live projector's thread).
        """
        self.conn = conn
        self.codec = codec
        self.projection = projection
        self.marks = marks

    def checkpoint(self) -> int:
        """The last stream sequence applied; 0 for a fresh database."""
        return read_checkpoint(self.conn, self.projection)

    def apply(self, messages: Iterable[RawMessage]) -> BatchResult:
        """Fold a batch of messages, in stream order, in one transaction with the checkpoint.

        :param messages: stored messages; any at or below the checkpoint are skipped.
        :raises sqlite3.Error: when the database cannot be written; nothing is then changed.
        """
        batch = in_stream_order(messages)
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            result = self._apply_in_transaction(batch)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return result

    def _apply_in_transaction(self, batch: list[RawMessage]) -> BatchResult:
        # The checkpoint is read inside the write transaction, so a second writer that got in
        # first is seen and its batch is not counted again.
        checkpoint = self.checkpoint()
        fresh = [raw for raw in batch if raw.sequence > checkpoint]
        skipped = len(batch) - len(fresh)
        if not fresh:
            return BatchResult(0, skipped, 0, checkpoint)
        decoded, quarantine = decode_batch(self.codec, fresh)
        current = load_activities(self.conn, {envelope.activity_id for _, envelope in decoded})
        touched = fold_batch(current, decoded, quarantine)
        # Each activity's rollup change is its footprint after the batch minus the one before:
        # the sum of its events' deltas, computed once however many events it had.
        deltas: dict[Bucket, list[int]] = {}
        for activity_id in touched:
            item = current[activity_id]
            add_footprint(deltas, item.loaded, -1, item.loaded_rows())
            add_footprint(deltas, item.state, 1, item.rows())
        write_activities(self.conn, [(i, current[i]) for i in sorted(touched)])
        if self.marks:
            write_marks(self.conn, checkpoint, fresh[-1].sequence)
        write_rollups(self.conn, deltas)
        write_timeline(self.conn, fresh, decoded, timeline_floor(self.conn))
        write_quarantine(self.conn, quarantine)
        write_checkpoint(self.conn, self.projection, fresh[-1])
        return BatchResult(
            len(fresh) - len(quarantine), skipped, len(quarantine), fresh[-1].sequence
        )


def in_stream_order(messages: Iterable[RawMessage]) -> list[RawMessage]:
    """The messages sorted by sequence, each sequence once (a redelivery may repeat one)."""
    return sorted({raw.sequence: raw for raw in messages}.values(), key=_sequence)


def read_checkpoint(conn: sqlite3.Connection, projection: str = PROJECTION) -> int:
    """The last stream sequence applied to the file; 0 for a fresh one."""
    row = conn.execute(
        "SELECT sequence FROM checkpoint WHERE projection = ?", (projection,)
    ).fetchone()
    return int(row[0]) if row else 0


def decode_batch(
    codec: Codec, fresh: list[RawMessage]
) -> tuple[list[tuple[RawMessage, Envelope[Any]]], list[tuple[RawMessage, str]]]:
    """Decode messages in order: the events, and the messages to quarantine with the reason.

    :returns: ``(decoded, quarantine)``; :func:`fold_batch` adds to the second.
    """
    quarantine: list[tuple[RawMessage, str]] = []
    decoded: list[tuple[RawMessage, Envelope[Any]]] = []
    for raw in fresh:
        try:
            decoded.append((raw, codec.decode(raw.data, raw.headers)))
        except EventDecodeError as exc:
            quarantine.append((raw, f"undecodable: {exc.reason}"))
    return decoded, quarantine


def fold_batch(
    current: dict[str, Folded],
    decoded: list[tuple[RawMessage, Envelope[Any]]],
    quarantine: list[tuple[RawMessage, str]],
) -> set[str]:
    """Fold decoded events, in order, into the activities of ``current``, in place.

    :param current: every activity the events belong to that the file or memory already
        has; activities reported here are added.
    :param quarantine: where an event that cannot follow its activity's state goes, with the
        reason; the batch goes on without it.
    :returns: the ids of the activities that changed.
    """
    touched: set[str] = set()
    for raw, envelope in decoded:
        activity_id = envelope.activity_id
        before = current.get(activity_id)
        try:
            after = fold_state(before.state if before else None, envelope, raw.sequence)
        except FoldError as exc:
            quarantine.append((raw, f"unapplicable: {exc}"))
            continue
        if before is None:
            current[activity_id] = Folded(after, [envelope.event_id], None)
        else:
            before.past.append((before.state, len(before.event_ids)))
            before.state = after
            before.event_ids.append(envelope.event_id)
        touched.add(activity_id)
    return touched


def load_activities(conn: sqlite3.Connection, activity_ids: Iterable[str]) -> dict[str, Folded]:
    """The stored activities among ``activity_ids``; ids the file does not have are left out."""
    found: dict[str, Folded] = {}
    ids = sorted(activity_ids)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT activity_id, state, event_ids FROM activities WHERE activity_id IN ({marks})",
            chunk,
        )
        for activity_id, state, event_ids in rows:
            loaded = decode_state(state)
            found[activity_id] = Folded(loaded, _ids_decoder.decode(event_ids), loaded)
    return found


def write_activities(conn: sqlite3.Connection, rows: list[tuple[str, Folded]]) -> None:
    """Write the activities' rows and their ``activity_countries`` rows, and the versions
    their events replaced to the ``*_past`` tables.

    :param rows: ``(activity_id, activity)`` in id order, which appends to the b-tree.
    """
    # An upsert, not INSERT OR REPLACE: the row keeps its rowid, which the full-text
    # index's triggers key on (a REPLACE would delete without firing them).
    conn.executemany(_ACTIVITY_UPSERT, [_activity_row(i, c) for i, c in rows])
    # The stored rows are exactly the countries of the stored state: delete them by key.
    conn.executemany(
        "DELETE FROM activity_countries WHERE country = ? AND activity_id = ?",
        [
            (place.country, activity_id)
            for activity_id, current in rows
            if current.loaded is not None
            for place in current.loaded.activity.countries
        ],
    )
    placed = [
        row
        for activity_id, current in rows
        for row in _place_rows(
            activity_id,
            current.state,
            # A withdrawn activity counts nowhere, but lists still show it under its
            # countries, with the figures it had.
            footprint_rows(current.state.activity) if current.state.withdrawn else current.rows(),
        )
    ]
    placed.sort(key=_by_key)  # in key order: appends to the table's b-tree
    conn.executemany(_PLACE_INSERT, placed)
    # The same for the figures that are not summed, by their key: no index on the activity
    # is needed, and a bulk load has none until the end.
    conn.executemany(
        "DELETE FROM reported WHERE metric = ? AND country = ? AND activity_id = ?",
        [
            (metric, country, activity_id)
            for activity_id, current in rows
            if current.loaded is not None and not current.loaded.withdrawn
            for metric, country, _ in reported_figures(current.loaded.activity)
        ],
    )
    reported = [
        (metric, country, activity_id, activity.programme, activity.year, micros)
        for activity_id, current in rows
        if not current.state.withdrawn
        for activity in (current.state.activity,)
        for metric, country, micros in reported_figures(activity, current.rows())
    ]
    reported.sort()
    conn.executemany("INSERT INTO reported VALUES (?, ?, ?, ?, ?, ?)", reported)
    _write_versions(conn, rows)


def _write_versions(conn: sqlite3.Connection, rows: list[tuple[str, Folded]]) -> None:
    """Write the time-travel tables of the activities' new versions (schema.py, "The past").

    Each activity's versions are the one the file held (if any), those its events replaced
    within the batch, and the current one; each is valid until the next one's sequence. The
    file's version gets its open rows closed; the others get rows of their own.
    """
    unsummed = unsummed_metrics()
    feet: list[tuple[Any, ...]] = []
    papers: list[tuple[Any, ...]] = []
    wholes: list[tuple[Any, ...]] = []
    places: list[tuple[Any, ...]] = []
    closing: list[tuple[Any, ...]] = []
    for activity_id, current in rows:
        versions = [*current.past, (current.state, len(current.event_ids))]
        untils = [state.last_sequence for state, _ in versions[1:]] + [OPEN]
        for index, ((state, events), until) in enumerate(zip(versions, untils, strict=True)):
            since = state.last_sequence
            activity = state.activity
            # Only the last version can be withdrawn: nothing folds after a withdrawal.
            if until == OPEN:
                mine = current.rows()
            elif index == 0 and current.loaded is not None:
                mine = current.loaded_rows()
            else:
                mine = footprint_rows(activity)
            if index == 0 and current.loaded is not None:
                closing.append((until, activity_id, state, mine))
            else:
                papers.extend((d, activity_id, since, until) for d in documents_of(activity))
                if mine:
                    year, programme = activity.year, activity.programme
                    feet += [
                        (
                            place,
                            metric,
                            year,
                            programme,
                            activity_id,
                            since,
                            until,
                            m,
                            c,
                            x,
                            metric not in unsummed,
                        )
                        for place, metric, m, c, x in mine
                    ]
            if until == OPEN:
                continue
            # A replaced version: kept as the current tables held it.
            status = "withdrawn" if state.withdrawn else "active"
            multi = is_listed_only(activity)
            wholes.append(
                (
                    activity_id,
                    since,
                    until,
                    activity.office,
                    activity.programme,
                    activity.kind,
                    activity.year,
                    status,
                    multi,
                    activity.part_of,
                    events,
                    encode_state(state).decode(),
                )
            )
            places += [(*row, until) for row in _place_rows(activity_id, state, mine)]
        current.past = []
    # The file's versions get their open rows closed, each row by its whole key (the
    # version's rows say which they are), all in one statement per table.
    conn.executemany(
        "UPDATE footprints SET until = ? WHERE country = ? AND since = ? AND metric = ?",
        [
            (until, place, state.last_sequence, metric)
            for until, _, state, rows_then in closing
            for place, metric, *_ in rows_then
        ],
    )
    conn.executemany(
        f"UPDATE activity_documents SET until = ? WHERE document = ? AND activity_id = ? "
        f"AND until = {OPEN}",
        [
            (until, document, activity_id)
            for until, activity_id, state, _ in closing
            for document in documents_of(state.activity)
        ],
    )
    # Not sorted first: measured, SQLite inserted them as fast unsorted (a batch's pages are
    # in its cache), and the sort cost a tenth of a rebuild.
    conn.executemany(_FOOTPRINT_INSERT, feet)
    conn.executemany("INSERT INTO activity_documents VALUES (?, ?, ?, ?)", papers)
    conn.executemany(f"INSERT INTO activities_past VALUES ({', '.join('?' * 12)})", wholes)
    places.sort(key=_by_key)
    conn.executemany(_PAST_PLACE_INSERT, places)


def write_timeline(
    conn: sqlite3.Connection,
    messages: list[RawMessage],
    decoded: list[tuple[RawMessage, Envelope[Any]]],
    floor: int,
) -> int:
    """Record, for each applied message (kept or quarantined), the instant by which it and
    every message before it had been recorded; return the last such instant.

    "Recorded" is the envelope's ``recorded_at``, as for an as-of replay
    (docs/design.md, "As of means recorded by"): the stream's own timestamps become the time
    of an import. Two intake instances may record out of order by a few milliseconds, so
    each row holds the running maximum: the ledger as of an instant is then always a prefix
    of the stream. A message that did not decode adds no instant of its own.

    :param floor: the running maximum before these messages (the file's last row's).
    """
    recorded = {raw.sequence: envelope.recorded_at for raw, envelope in decoded}
    rows = []
    for raw in messages:
        at = recorded.get(raw.sequence)
        if at is not None:
            floor = max(floor, nanoseconds(at))
        rows.append((raw.sequence, floor))
    conn.executemany("INSERT OR IGNORE INTO timeline (sequence, time_ns) VALUES (?, ?)", rows)
    return floor


def timeline_floor(conn: sqlite3.Connection) -> int:
    """The instant of the file's last timeline row; 0 for none."""
    row = conn.execute("SELECT time_ns FROM timeline ORDER BY sequence DESC LIMIT 1").fetchone()
    return int(row[0]) if row else 0


def make_timeline_monotone(conn: sqlite3.Connection) -> None:
    """Carry the running maximum over rows that parts of a split replay wrote apart, each
    with its own messages' maximum only."""
    conn.execute(
        "UPDATE timeline SET time_ns = m.top FROM (SELECT sequence, max(time_ns) OVER "
        "(ORDER BY sequence ROWS UNBOUNDED PRECEDING) AS top FROM timeline) AS m "
        "WHERE m.sequence = timeline.sequence AND m.top > timeline.time_ns"
    )


def write_rollups(conn: sqlite3.Connection, deltas: Mapping[Bucket, Sequence[int]]) -> None:
    """Add signed changes to the rollup rows, and delete the rows they leave empty.

    :param deltas: ``(micros, activities, multi_country)`` by bucket; changes of nothing are
        skipped, so a replay passes its sums as they are, without a copy.
    """
    by_table: dict[str, list[tuple[Any, ...]]] = {}
    emptied: dict[str, list[tuple[Any, ...]]] = {}
    for bucket, (micros, activities, multi_country) in deltas.items():
        if not (micros or activities or multi_country):
            continue
        key = bucket[1:]
        by_table.setdefault(bucket[0], []).append(
            (*key, micros / 1_000_000, micros, activities, multi_country)
        )
        # Only a row whose counts went down can reach zero: rows exist only while some
        # activity counts or is listed in them.
        if activities <= 0 and multi_country <= 0:
            emptied.setdefault(bucket[0], []).append(key)
    for table, rows in by_table.items():
        conn.executemany(_UPSERTS[table], rows)
    for table, keys in emptied.items():
        # A row that no activity counts in or is listed in any more is gone, as it would
        # be after a rebuild.
        conn.executemany(_DELETES[table], keys)


def write_quarantine(conn: sqlite3.Connection, items: list[tuple[RawMessage, str]]) -> None:
    """Record messages that cannot be applied, with the reason; a repeat is ignored."""
    conn.executemany(
        "INSERT OR IGNORE INTO quarantine (sequence, subject, data, headers, reason, "
        "stream_time_ns) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                raw.sequence,
                raw.subject,
                bytes(raw.data),
                _json.encode(raw.headers).decode() if raw.headers else None,
                reason,
                raw.time_ns,
            )
            for raw, reason in sorted(items, key=lambda item: item[0].sequence)
        ],
    )


def write_checkpoint(conn: sqlite3.Connection, projection: str, last: RawMessage) -> None:
    """Move the checkpoint to ``last``, the last message applied (kept or quarantined)."""
    conn.execute(
        "INSERT OR REPLACE INTO checkpoint (projection, sequence, stream_time_ns) VALUES (?, ?, ?)",
        (projection, last.sequence, last.time_ns),
    )


def _sequence(raw: RawMessage) -> int:
    return raw.sequence


def _by_key(row: tuple[Any, ...]) -> tuple[str, str]:
    return row[0], row[1]


def _place_rows(
    activity_id: str, state: ActivityState, rows: list[Footprint]
) -> list[tuple[Any, ...]]:
    """The activity's ``activity_countries`` rows in this state, from its footprint rows."""
    activity = state.activity
    status = "withdrawn" if state.withdrawn else "active"
    multi = is_listed_only(activity)
    shares = {place.country: place.share for place in activity.countries}
    return [
        (
            country,
            activity_id,
            shares[country],
            activity.office,
            activity.programme,
            activity.kind,
            activity.year,
            status,
            multi,
            _json.encode(parts or {}).decode(),
            state.last_sequence,
        )
        for country, parts in country_parts(activity, rows)
    ]


def _activity_row(activity_id: str, current: Folded) -> tuple[Any, ...]:
    state = current.state
    activity = state.activity
    places = activity.countries
    return (
        activity_id,
        activity.office,
        activity.programme,
        activity.kind,
        activity.title,
        activity.summary,
        activity.year,
        activity.start_date.isoformat() if activity.start_date else None,
        activity.end_date.isoformat() if activity.end_date else None,
        _json.encode(places).decode(),
        _json.encode(activity.metrics).decode(),
        is_listed_only(activity),
        _json.encode(activity.partners).decode(),
        _json.encode(activity.sources).decode(),
        activity.part_of,
        activity.notes,
        "withdrawn" if state.withdrawn else "active",
        state.version,
        state.last_sequence,
        current.event_ids[-1],
        _json.encode(current.event_ids).decode(),
        encode_state(state).decode(),
    )
