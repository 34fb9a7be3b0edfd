"""Answers as of a past instant, or narrowed to one document: the figures summed from the
versions of the activities, not read from the rollups.

A :class:`Scope` is what a reader asks for (``as_of``, ``as_of_sequence``, ``document``);
:func:`resolve` turns it, inside the query's read transaction, into a :class:`View`: the
sequence whose ledger the answer shows, and the document. The present without a document is
the rollups' fast path in :mod:`projections.queries`; everything else is read here, from the
time-travel tables (``projections/schema.py``, "The past"): every version of an activity is
valid from one sequence to the next, so the ledger as of sequence k is the rows with
``since <= k < until``, summed in SQL by the same rules as the rollups, because the rows are
what :func:`projections.fold.footprint_rows` made of each version.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any, NamedTuple

import msgspec

from events.activity import ActivityState
from events.stored import nanoseconds
from projections.answers import AsOf
from projections.errors import BadParameterError, UnknownKeyError
from projections.fold import decode_state
from projections.schema import OPEN, PROJECTION

__all__ = [
    "Scope",
    "View",
    "as_of_answer",
    "documents_filter",
    "instant_of",
    "parse_instant",
    "resolve",
    "scope_of",
    "state_at",
    "time_of",
    "valid",
]

_NS = 1_000_000_000


class Scope(msgspec.Struct, frozen=True, kw_only=True):
    """Which ledger a reader asks about: now or as of a past instant or sequence, all
    documents or one. Every interface builds one from its parameters."""

    as_of: dt.datetime | None = None
    """An instant (with a time zone): the ledger as the last event recorded by then left it."""
    as_of_sequence: int | None = None
    """A stream sequence: the ledger as the events up to it left it."""
    document: str | None = None
    """Only the figures and activities of this document, e.g. ``A/76/119``."""
    release: str | None = None
    """As of the sequence a release states (``ledger release create``)."""

    @property
    def is_now(self) -> bool:
        """Whether the scope asks for the present ledger, all documents."""
        return (
            self.as_of is None
            and self.as_of_sequence is None
            and self.document is None
            and self.release is None
        )


NOW = Scope()


class View(NamedTuple):
    """A scope resolved against one snapshot of the projection."""

    sequence: int | None
    """The sequence the answer is as of; ``None``: the present (the checkpoint)."""
    document: str | None
    as_of: AsOf
    """What the answer says it reflects."""
    sums: dict[Any, Any]
    """Footprint sums already read in this snapshot, by what they sum (``queries`` fills it):
    a summary's head and breakdowns come from one scan. :func:`resolve` gives each view its
    own."""

    @property
    def rollups(self) -> bool:
        """Whether the rollup tables hold the answer: the present, all documents."""
        return self.sequence is None and self.document is None


def parse_instant(text: str, parameter: str = "as_of") -> dt.datetime:
    """An RFC 3339 instant, e.g. ``2021-06-30T00:00:00Z``; a date alone means its midnight UTC.

    :raises BadParameterError: naming ``parameter`` when it is not one, or has no time zone.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)
        instant = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise BadParameterError(
            parameter, f"{text!r} is not an instant; give RFC 3339, e.g. 2021-06-30T00:00:00Z"
        ) from None
    if instant.tzinfo is None:
        raise BadParameterError(
            parameter, f"{text!r} has no time zone; add one, e.g. Z for UTC: {text}Z"
        )
    return instant.astimezone(dt.UTC)


def time_of(time_ns: int | None) -> dt.datetime | None:
    """An instant in nanoseconds since the epoch as a UTC datetime; ``None`` for none."""
    return None if time_ns is None else instant_of(time_ns)


def instant_of(time_ns: int) -> dt.datetime:
    """An instant in nanoseconds since the epoch as a UTC datetime (to the microsecond)."""
    seconds, nanos = divmod(time_ns, _NS)
    return dt.datetime.fromtimestamp(seconds, dt.UTC) + dt.timedelta(microseconds=nanos // 1000)


def _checkpoint(conn: sqlite3.Connection) -> tuple[int, int | None]:
    row = conn.execute(
        "SELECT sequence, stream_time_ns FROM checkpoint WHERE projection = ?", (PROJECTION,)
    ).fetchone()
    return (row[0], row[1]) if row else (0, None)


def as_of_answer(conn: sqlite3.Connection) -> AsOf:
    """The present: the projection's checkpoint, its last applied sequence and that event's
    time."""
    sequence, time_ns = _checkpoint(conn)
    return AsOf(sequence, time_of(time_ns))


def resolve(conn: sqlite3.Connection, scope: Scope | None) -> View:
    """The sequence and document a scope means, in the caller's read transaction.

    An instant before the first event is sequence 0: empty figures. A sequence or instant at
    or after the checkpoint's is the present.

    :raises BadParameterError: for a sequence past the checkpoint, an instant in the future,
        or both ``as_of`` and ``as_of_sequence``.
    :raises UnknownKeyError: naming ``document`` when no activity cites it, ``release`` when
        there is no such release.
    """
    if scope is None or scope.is_now:
        return View(None, None, as_of_answer(conn), {})
    last, last_ns = _checkpoint(conn)
    sequence: int | None = None
    asked = scope.as_of
    if asked is not None and scope.as_of_sequence is not None:
        raise BadParameterError("as_of", "give as_of or as_of_sequence, not both")
    if scope.release is not None:
        row = conn.execute(
            "SELECT sequence FROM releases WHERE name = ?", (scope.release,)
        ).fetchone()
        if row is None:
            raise UnknownKeyError(
                "release",
                f"no release {scope.release!r}; list them with /v1/releases or "
                "`ledger release list`",
            )
        sequence = row[0]
    elif scope.as_of_sequence is not None:
        sequence = scope.as_of_sequence
        if sequence < 0:
            raise BadParameterError("as_of_sequence", f"{sequence} is negative; give 0..{last}")
        if sequence > last:
            raise BadParameterError(
                "as_of_sequence",
                f"{sequence} is past the last applied sequence, {last}; give 0..{last}",
            )
    elif asked is not None:
        if asked > dt.datetime.now(dt.UTC):
            last_time = time_of(last_ns)
            raise BadParameterError(
                "as_of",
                f"{asked.isoformat()} is in the future; the last event was recorded at "
                f"{last_time.isoformat() if last_time else 'no time yet'} (sequence {last})",
            )
        ns = nanoseconds(asked)
        row = conn.execute(
            "SELECT max(sequence) FROM timeline WHERE time_ns <= ?", (ns,)
        ).fetchone()
        sequence = row[0] or 0
    document = scope.document
    if (
        document is not None
        and not conn.execute(
            "SELECT 1 FROM activity_documents WHERE document = ? LIMIT 1", (document,)
        ).fetchone()
    ):
        raise UnknownKeyError(
            "document",
            f"no activity cites the document {document!r}; list them with /v1/documents "
            "or `ledger query documents`",
        )
    if sequence is not None and sequence >= last:
        sequence = None
    if sequence is None:
        answer = AsOf(last, time_of(last_ns), document=document, asked=asked, release=scope.release)
        return View(None, document, answer, {})
    row = conn.execute(
        "SELECT time_ns FROM timeline WHERE sequence <= ? ORDER BY sequence DESC LIMIT 1",
        (sequence,),
    ).fetchone()
    answer = AsOf(
        sequence,
        time_of(row[0] if row else None),
        now=False,
        document=document,
        asked=asked,
        release=scope.release,
    )
    return View(sequence, document, answer, {})


def valid(view: View, alias: str = "") -> tuple[str, list[Any]]:
    """The SQL condition that keeps the versions of a time-travel table valid in the view."""
    prefix = f"{alias}." if alias else ""
    if view.sequence is None:
        return f"{prefix}until = {OPEN}", []
    return f"{prefix}since <= ? AND {prefix}until > ?", [view.sequence, view.sequence]


def documents_filter(view: View, column: str) -> tuple[str, list[Any]]:
    """The SQL condition that keeps the activities the view's document cites ('' for none)."""
    if view.document is None:
        return "", []
    condition, params = valid(view)
    return (
        f"{column} IN (SELECT activity_id FROM activity_documents WHERE document = ? "
        f"AND {condition})",
        [view.document, *params],
    )


def state_at(
    conn: sqlite3.Connection, activity_id: str, sequence: int | None
) -> tuple[ActivityState, int] | None:
    """An activity's version as of ``sequence`` (``None``: now) with how many events it had
    then; ``None`` when it was not yet reported."""
    row = conn.execute(
        "SELECT state, json_array_length(event_ids), last_sequence FROM activities "
        "WHERE activity_id = ?",
        (activity_id,),
    ).fetchone()
    if row is None:
        return None
    if sequence is None or row[2] <= sequence:
        return decode_state(row[0]), row[1]
    past = conn.execute(
        "SELECT state, events FROM activities_past WHERE activity_id = ? AND since <= ? "
        "AND until > ?",
        (activity_id, sequence, sequence),
    ).fetchone()
    return (decode_state(past[0]), past[1]) if past else None


def scope_of(
    as_of: str | dt.datetime | None = None,
    as_of_sequence: int | None = None,
    document: str | None = None,
    release: str | None = None,
) -> Scope:
    """The scope that an interface's parameters ask for, checked: what HTTP, NATS, the CLI
    and the dashboard all call.

    :raises BadParameterError: naming ``as_of`` for an instant that is not RFC 3339 or both
        ``as_of`` and ``as_of_sequence``; naming ``as_of_sequence`` for a negative one;
        naming ``document`` or ``release`` for an empty one, ``release`` with an ``as_of``.
    """
    if as_of is not None and as_of_sequence is not None:
        raise BadParameterError("as_of", "give as_of or as_of_sequence, not both")
    if release is not None and (as_of is not None or as_of_sequence is not None):
        raise BadParameterError("release", "a release names its sequence; give no as_of with it")
    if release is not None and not release.strip():
        raise BadParameterError("release", "is empty; give a release's name")
    if as_of_sequence is not None and as_of_sequence < 0:
        raise BadParameterError("as_of_sequence", f"{as_of_sequence} is negative; give 0 or more")
    if document is not None and not document.strip():
        raise BadParameterError("document", "is empty; give a document symbol, e.g. A/76/119")
    instant = parse_instant(as_of) if isinstance(as_of, str) else as_of
    if instant is not None and instant.tzinfo is None:
        raise BadParameterError("as_of", "has no time zone; add one, e.g. Z for UTC")
    return Scope(as_of=instant, as_of_sequence=as_of_sequence, document=document, release=release)
