"""The batch applier: folds a batch of stored messages into SQLite in one transaction.

The transaction also moves the checkpoint to the batch's last sequence (docs/design.md,
"Principles"), so a crash at any instant either keeps the whole batch or none of it. Messages
at or below the checkpoint are skipped: a redelivery, a restart or a second instance never
counts twice. A message that does not decode, or cannot follow its activity's state, is written to
``quarantine`` with the reason, and the batch goes on without it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any, NamedTuple

import msgspec

from events.activity import ActivityState
from events.codec import DEFAULT_CODEC, Codec
from events.envelope import Envelope
from events.errors import EventDecodeError
from events.stored import RawMessage
from projections.fold import (
    ROLLUP_KEYS,
    Bucket,
    FoldError,
    Share,
    add_footprint,
    country_parts,
    decode_state,
    encode_state,
    fold_state,
    net_deltas,
)
from projections.schema import PROJECTION

__all__ = ["Applier", "BatchResult"]

_CHUNK = 500
"""Ids per ``IN (...)`` lookup; well under SQLite's limit on parameters."""

_json = msgspec.json.Encoder()
_ids_decoder = msgspec.json.Decoder(list[str])


class BatchResult(NamedTuple):
    """What one call of :meth:`Applier.apply` did."""

    applied: int
    skipped: int
    """Messages at or below the checkpoint: already applied earlier."""
    quarantined: int
    checkpoint: int
    """The checkpoint after the batch."""


class _Current:
    """An activity while a batch folds it."""

    __slots__ = ("event_ids", "loaded", "state")

    def __init__(
        self, state: ActivityState, event_ids: list[str], loaded: ActivityState | None
    ) -> None:
        self.state = state
        self.event_ids = event_ids
        self.loaded = loaded
        """The state stored before the batch; ``None`` for an activity new in it."""


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
    "source_document",
    "source_paragraph",
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
_PLACE_INSERT = (
    "INSERT INTO activity_countries (country, activity_id, share, office, programme, kind, "
    "year, status, multi_country, figures) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class Applier:
    """Applies batches of raw stream messages to one projection database."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        codec: Codec = DEFAULT_CODEC,
        projection: str = PROJECTION,
    ) -> None:
        """
        :param conn: a read-write connection in autocommit mode (``isolation_level=None``), as
            :func:`projections.db.open_writer` gives; the applier manages transactions itself.
        :param codec: decodes and upcasts the stored events.
        :param projection: the checkpoint's name.
        """
        self.conn = conn
        self.codec = codec
        self.projection = projection

    def checkpoint(self) -> int:
        """The last stream sequence applied; 0 for a fresh database."""
        row = self.conn.execute(
            "SELECT sequence FROM checkpoint WHERE projection = ?", (self.projection,)
        ).fetchone()
        return row[0] if row else 0

    def apply(self, messages: Iterable[RawMessage]) -> BatchResult:
        """Fold a batch of messages, in stream order, in one transaction with the checkpoint.

        :param messages: stored messages; any at or below the checkpoint are skipped.
        :raises sqlite3.Error: when the database cannot be written; nothing is then changed.
        """
        batch = sorted({raw.sequence: raw for raw in messages}.values(), key=_sequence)
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
        quarantine: list[tuple[RawMessage, str]] = []
        decoded: list[tuple[RawMessage, Envelope[Any]]] = []
        for raw in fresh:
            try:
                decoded.append((raw, self.codec.decode(raw.data, raw.headers)))
            except EventDecodeError as exc:
                quarantine.append((raw, f"undecodable: {exc.reason}"))
        current = self._load({envelope.activity_id for _, envelope in decoded})
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
                current[activity_id] = _Current(after, [envelope.event_id], None)
            else:
                before.state = after
                before.event_ids.append(envelope.event_id)
            touched.add(activity_id)
        # Each activity's rollup change is its footprint after the batch minus the one before:
        # the sum of its events' deltas, computed once however many events it had.
        deltas: dict[Bucket, list[int]] = {}
        for activity_id in touched:
            item = current[activity_id]
            add_footprint(deltas, item.loaded, -1)
            add_footprint(deltas, item.state, 1)
        self._write_activities([(i, current[i]) for i in sorted(touched)])
        self._write_rollups(net_deltas(deltas))
        self._write_quarantine(quarantine)
        last = fresh[-1]
        self.conn.execute(
            "INSERT OR REPLACE INTO checkpoint (projection, sequence, stream_time_ns) "
            "VALUES (?, ?, ?)",
            (self.projection, last.sequence, last.time_ns),
        )
        return BatchResult(len(fresh) - len(quarantine), skipped, len(quarantine), last.sequence)

    def _load(self, activity_ids: set[str]) -> dict[str, _Current]:
        found: dict[str, _Current] = {}
        ids = sorted(activity_ids)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT activity_id, state, event_ids FROM activities "
                f"WHERE activity_id IN ({marks})",
                chunk,
            )
            for activity_id, state, event_ids in rows:
                loaded = decode_state(state)
                found[activity_id] = _Current(loaded, _ids_decoder.decode(event_ids), loaded)
        return found

    def _write_activities(self, rows: list[tuple[str, _Current]]) -> None:
        # An upsert, not INSERT OR REPLACE: the row keeps its rowid, which the full-text
        # index's triggers key on (a REPLACE would delete without firing them).
        self.conn.executemany(_ACTIVITY_UPSERT, [_activity_row(i, c) for i, c in rows])
        # The stored rows are exactly the countries of the stored state: delete them by key.
        self.conn.executemany(
            "DELETE FROM activity_countries WHERE country = ? AND activity_id = ?",
            [
                (place.country, activity_id)
                for activity_id, current in rows
                if current.loaded is not None
                for place in current.loaded.activity.countries
            ],
        )
        placed = [row for activity_id, current in rows for row in _place_rows(activity_id, current)]
        placed.sort(key=_by_key)  # in key order: appends to the table's b-tree
        self.conn.executemany(_PLACE_INSERT, placed)

    def _write_rollups(self, deltas: dict[Bucket, Share]) -> None:
        by_table: dict[str, list[tuple[Any, ...]]] = {}
        emptied: dict[str, list[tuple[Any, ...]]] = {}
        for bucket, (micros, activities, multi_country) in deltas.items():
            key = bucket[1:]
            by_table.setdefault(bucket[0], []).append(
                (*key, micros / 1_000_000, micros, activities, multi_country)
            )
            # Only a row whose counts went down can reach zero: rows exist only while some
            # activity counts or is listed in them.
            if activities <= 0 and multi_country <= 0:
                emptied.setdefault(bucket[0], []).append(key)
        for table, rows in by_table.items():
            self.conn.executemany(_UPSERTS[table], rows)
        for table, keys in emptied.items():
            # A row that no activity counts in or is listed in any more is gone, as it would
            # be after a rebuild.
            self.conn.executemany(_DELETES[table], keys)

    def _write_quarantine(self, items: list[tuple[RawMessage, str]]) -> None:
        self.conn.executemany(
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


def _sequence(raw: RawMessage) -> int:
    return raw.sequence


def _by_key(row: tuple[Any, ...]) -> tuple[str, str]:
    return row[0], row[1]


def _place_rows(activity_id: str, current: _Current) -> list[tuple[Any, ...]]:
    state = current.state
    activity = state.activity
    places = activity.countries
    status = "withdrawn" if state.withdrawn else "active"
    multi = int(len(places) > 1 and all(place.share is None for place in places))
    shares = {place.country: place.share for place in places}
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
        )
        for country, parts in country_parts(activity)
    ]


def _activity_row(activity_id: str, current: _Current) -> tuple[Any, ...]:
    state = current.state
    activity = state.activity
    places = activity.countries
    source = activity.source
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
        int(len(places) > 1 and all(place.share is None for place in places)),
        _json.encode(activity.partners).decode(),
        source.document if source else None,
        source.paragraph if source else None,
        activity.notes,
        "withdrawn" if state.withdrawn else "active",
        state.version,
        state.last_sequence,
        current.event_ids[-1],
        _json.encode(current.event_ids).decode(),
        encode_state(state).decode(),
    )
