"""The ``releases`` table: the stream's releases (events/release.py), kept beside the
projection so that ``?release=NAME`` resolves in the same snapshot as the figures.

Releases are not folded: they are copied as stored, by the projector as they come and by a
rebuild at its end. ``verify`` does not compare this table; ``ledger release verify`` checks
each release against the stream itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import msgspec

from events.release import decode_release
from events.stored import RawMessage, nanoseconds

__all__ = ["write_releases"]


def write_releases(conn: sqlite3.Connection, messages: Iterable[RawMessage]) -> int:
    """Keep these stored releases in the table (each once, by name), in the caller's
    transaction; a message that is not a release event is skipped.

    :returns: how many were written.
    """
    rows = []
    for raw in messages:
        try:
            event = decode_release(raw.data)
        except msgspec.DecodeError:
            continue
        rows.append(
            (
                event.payload.name,
                event.payload.sequence,
                event.payload.digest,
                event.payload.note,
                event.office,
                event.actor,
                event.event_id,
                raw.sequence,
                nanoseconds(event.recorded_at),
                bytes(raw.data),
            )
        )
    conn.executemany(
        "INSERT OR REPLACE INTO releases (name, sequence, digest, note, office, actor, event_id, "
        "recorded_sequence, recorded_ns, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return len(rows)
