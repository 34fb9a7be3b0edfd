"""The envelope around every event: who, when, why, and where it sits in the activity's chain."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from typing import Generic, TypeVar

from msgspec import Struct

from events.integrity import with_hash
from events.model import (
    SCHEMA_VERSION,
    ActivityReported,
    ActivityRevised,
    ActivityWithdrawn,
    FiguresReleased,
)

__all__ = ["Envelope", "new_event_id", "seal", "utc_now"]

TPayload = TypeVar(
    "TPayload", ActivityReported, ActivityRevised, ActivityWithdrawn, FiguresReleased
)


class Envelope(Struct, Generic[TPayload], frozen=True, kw_only=True):
    """One stored event: metadata around a payload of one of the three event types."""

    event_id: str
    """Time-ordered unique id (UUIDv7); also the ``Nats-Msg-Id`` that makes retries idempotent."""
    type: str
    """The payload's type name, e.g. ``ActivityReported``."""
    version: int
    """Schema version of the payload as written."""
    office: str
    """Office on whose behalf the event was written."""
    actor: str
    """Person or system that issued the command, e.g. ``kaz.officer@example.org``."""
    occurred_at: dt.datetime
    """When the office says the change happened (UTC)."""
    recorded_at: dt.datetime
    """When the ledger accepted the event (UTC)."""
    correlation_id: str = ""
    """Id shared by every event of one piece of work (an import run, a request)."""
    causation_id: str = ""
    """Id of the command or event that caused this one."""
    prev: str = ""
    """Hash of the same activity's previous event; empty for the first."""
    hash: str = ""
    """SHA-256 of the canonical encoding without ``hash`` and ``signature``."""
    signature: str = ""
    """The office's Ed25519 signature over the content hash (``events.integrity.content_hash``:
    the event without its place in the chain), when the office signs."""
    payload: TPayload

    @property
    def activity_id(self) -> str:
        """The id of the activity this event belongs to (a release's own key for a release)."""
        return str(self.payload.activity_id)


def utc_now() -> dt.datetime:
    """The current time in UTC, to the microsecond."""
    return dt.datetime.now(dt.UTC)


def new_event_id(at: dt.datetime | None = None, seed: str | None = None) -> str:
    """A UUIDv7 string: 48 bits of Unix milliseconds, then 74 other bits, so ids sort by time.

    :param at: the instant the id stands for; now when not given.
    :param seed: when given, the other bits come from its SHA-256 instead of chance, so the
        same command retried gives the same event id and JetStream stores it once.
    """
    millis = int((at.timestamp() if at else time.time()) * 1000)
    noise = hashlib.sha256(seed.encode()).digest()[:10] if seed is not None else os.urandom(10)
    value = (millis & ((1 << 48) - 1)) << 80 | int.from_bytes(noise, "big")
    # Set version 7 and the RFC 4122 variant in place of the bits they occupy.
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def seal(
    payload: TPayload,
    *,
    office: str,
    actor: str,
    event_id: str | None = None,
    occurred_at: dt.datetime | None = None,
    recorded_at: dt.datetime | None = None,
    correlation_id: str = "",
    causation_id: str = "",
    prev: str = "",
) -> Envelope[TPayload]:
    """Wrap a payload in an envelope at the current schema version, with its hash filled in."""
    now = utc_now()
    envelope = Envelope(
        event_id=event_id or new_event_id(now),
        type=type(payload).__name__,
        version=SCHEMA_VERSION,
        office=office,
        actor=actor,
        occurred_at=occurred_at or now,
        recorded_at=recorded_at or now,
        correlation_id=correlation_id,
        causation_id=causation_id,
        prev=prev,
        payload=payload,
    )
    return with_hash(envelope)
