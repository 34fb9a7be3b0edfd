"""What the stream holds, as plain values: raw messages, recorded events, an activity's events,
and what an append returns.

These types import neither nats nor SQLite, so the domain (``events/decisions.py``), the folds
(``projections/``) and the tests can take what a store returns without knowing which store it
came from: the JetStream one (``events/store.py``) or the in-memory one (``events/memory.py``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec

from events.envelope import Envelope

__all__ = ["EPOCH", "AppendOutcome", "AppendResult", "LoadedActivity", "RawMessage", "Recorded"]

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
"""Where the stream's nanosecond timestamps count from."""


class RawMessage(msgspec.Struct, frozen=True):
    """A message as it sits in the stream, before decoding."""

    sequence: int
    subject: str
    time_ns: int
    """Nanoseconds since the epoch at which the stream stored it."""
    headers: dict[str, str] | None
    data: bytes

    @property
    def time(self) -> dt.datetime:
        """When the stream stored the message (UTC), truncated to the microsecond."""
        return EPOCH + dt.timedelta(microseconds=self.time_ns // 1000)


class Recorded(msgspec.Struct, frozen=True):
    """A decoded event with its place in the stream."""

    sequence: int
    time: dt.datetime
    subject: str
    event: Envelope[Any]


class LoadedActivity(msgspec.Struct, frozen=True):
    """All events of one activity, oldest first."""

    events: list[Recorded]

    @property
    def last_sequence(self) -> int:
        """The expectation for the next append: 0 for an activity with no events."""
        return self.events[-1].sequence if self.events else 0

    @property
    def version(self) -> int:
        """How many events the activity has."""
        return len(self.events)


class AppendResult(msgspec.Struct, frozen=True):
    """Where an appended event was stored."""

    sequence: int
    duplicate: bool = False
    """True when the event id was stored before: nothing new was written."""


class AppendOutcome(msgspec.Struct, frozen=True):
    """What happened to one event of a bulk append."""

    event_id: str
    status: Literal["stored", "duplicate", "conflict", "error"]
    sequence: int = 0
    """The stream sequence for stored and duplicate; the activity's actual one for a conflict."""
    detail: str = ""
