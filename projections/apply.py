"""The batch applier: folds a batch of stored messages into SQLite in one transaction.

The transaction also moves the checkpoint to the batch's last sequence (DESIGN.md, principle 3),
so a crash at any instant either keeps the whole batch or none of it. Messages at or below the
checkpoint are skipped: a redelivery, a restart or a second instance never counts twice. A
message that does not decode, or cannot follow its activity's state, is written to
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
from events.store import RawMessage
from projections.fold import (
    ROLLUP_KEYS,
    Bucket,
    FoldError,
    Share,
    add_deltas,
    decode_state,
    encode_state,
    fold_event,
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


class _Current(NamedTuple):
    state: ActivityState
    event_ids: list[str]
    stored: bool
    """Whether the row already exists in the database."""
    countries_changed: bool


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


_UPSERTS = {table: _upsert_sql(table, keys) for table, keys in ROLLUP_KEYS.items()}


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
        deltas: dict[Bucket, list[int]] = {}
        touched: set[str] = set()
        for raw, envelope in decoded:
            activity_id = envelope.activity_id
            before = current.get(activity_id)
            try:
                step = fold_event(before.state if before else None, envelope, raw.sequence)
            except FoldError as exc:
                quarantine.append((raw, f"unapplicable: {exc}"))
                continue
            add_deltas(deltas, step.deltas)
            current[activity_id] = _Current(
                state=step.after,
                event_ids=[*(before.event_ids if before else ()), envelope.event_id],
                stored=before.stored if before else False,
                countries_changed=(before is None or before.countries_changed)
                or before.state.activity.countries != step.after.activity.countries,
            )
            touched.add(activity_id)
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
                found[activity_id] = _Current(
                    decode_state(state), _ids_decoder.decode(event_ids), True, False
                )
        return found

    def _write_activities(self, rows: list[tuple[str, _Current]]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO activities (activity_id, office, programme, kind, title, "
            "year, countries, metrics, status, version, last_sequence, last_event_id, "
            "event_ids, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [_activity_row(activity_id, current) for activity_id, current in rows],
        )
        moved = [
            (activity_id,)
            for activity_id, current in rows
            if current.stored and current.countries_changed
        ]
        self.conn.executemany("DELETE FROM activity_countries WHERE activity_id = ?", moved)
        self.conn.executemany(
            "INSERT INTO activity_countries (activity_id, country, share) VALUES (?, ?, ?)",
            [
                (activity_id, place.country, place.share)
                for activity_id, current in rows
                if current.countries_changed
                for place in current.state.activity.countries
            ],
        )

    def _write_rollups(self, deltas: dict[Bucket, Share]) -> None:
        by_table: dict[str, list[tuple[Any, ...]]] = {}
        for bucket, (micros, activities, multi_country) in deltas.items():
            by_table.setdefault(bucket[0], []).append(
                (*bucket[1:], micros / 1_000_000, micros, activities, multi_country)
            )
        for table, rows in by_table.items():
            self.conn.executemany(_UPSERTS[table], rows)
            # A row that no activity counts in or is listed in any more is gone, as it would
            # be after a rebuild.
            self.conn.execute(f"DELETE FROM {table} WHERE activities = 0 AND multi_country = 0")

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


def _activity_row(activity_id: str, current: _Current) -> tuple[Any, ...]:
    state = current.state
    activity = state.activity
    return (
        activity_id,
        activity.office,
        activity.programme,
        activity.kind,
        activity.title,
        activity.year,
        _json.encode(activity.countries).decode(),
        _json.encode(activity.metrics).decode(),
        "withdrawn" if state.withdrawn else "active",
        state.version,
        state.last_sequence,
        current.event_ids[-1],
        _json.encode(current.event_ids).decode(),
        encode_state(state).decode(),
    )
