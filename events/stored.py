"""What the stream holds, as plain values: raw messages, recorded events, an activity's events,
and what an append returns.

These types import neither nats nor SQLite, so the domain (``events/decisions.py``), the folds
(``projections/``) and the tests can take what a store returns without knowing which store it
came from: the JetStream one (``events/store.py``) or the in-memory one (``events/memory.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any, Literal

import msgspec

from events.codec import Codec
from events.envelope import Envelope
from events.errors import EventDecodeError

__all__ = [
    "EPOCH",
    "AppendOutcome",
    "AppendResult",
    "DecodingReads",
    "LoadedActivity",
    "RawMessage",
    "Recorded",
    "nanoseconds",
]

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
"""Where the stream's nanosecond timestamps count from."""


def nanoseconds(at: dt.datetime) -> int:
    """An aware instant as integer nanoseconds since 1970 (exact: a datetime holds whole
    microseconds), the unit of stream times and of the projection's ``timeline``."""
    return int(at.timestamp()) * 1_000_000_000 + at.microsecond * 1000


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


class DecodingReads:
    """What every store reads the same way, on top of its own ``read_raw``: one message
    decoded, and every event in stream order."""

    codec: Codec

    def read_raw(
        self,
        from_seq: int = 1,
        until_seq: int | None = None,
        until_time: dt.datetime | None = None,
        batch_size: int = 1000,
    ) -> AsyncIterator[list[RawMessage]]:
        """The stream's messages in batches, undecoded; each store reads them its own way."""
        raise NotImplementedError

    def decode(self, raw: RawMessage) -> Recorded:
        """Decode one stored message.

        :raises EventDecodeError: naming the sequence, for a message that is not an event.
        """
        try:
            event = self.codec.decode(raw.data, raw.headers)
        except EventDecodeError as exc:
            raise EventDecodeError(exc.reason, raw.sequence) from None
        return Recorded(sequence=raw.sequence, time=raw.time, subject=raw.subject, event=event)

    async def read(
        self,
        from_seq: int = 1,
        until_seq: int | None = None,
        until_time: dt.datetime | None = None,
    ) -> AsyncIterator[Recorded]:
        """Every event from ``from_seq`` on, in stream order, decoded.

        Stops at ``until_seq``, or before the first event stored after ``until_time``, or at
        the end of the stream as it was when the read began.

        :raises EventDecodeError: at a message that is not an event.
        """
        async for batch in self.read_raw(from_seq, until_seq, until_time):
            for raw in batch:
                yield self.decode(raw)
