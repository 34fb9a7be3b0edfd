"""Checking the log's tamper evidence, one event at a time: hashes, ``prev`` links, signatures.

Pure: the checker is fed decoded events in stream order and keeps only each activity's last
hash, so it checks a log of any length in constant memory per activity.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any, Literal

import msgspec

from events.envelope import Envelope
from events.integrity import stored_hashes
from events.keys import KeyRegistry
from events.signing import signature_is_valid

__all__ = ["ChainChecker", "ChainTally", "Failure"]

Check = Literal["decode", "subject", "hash", "prev", "signature"]


class Failure(msgspec.Struct, frozen=True):
    """One broken rule at one place in the stream."""

    sequence: int
    check: Check
    activity_id: str
    message: str


class ChainTally(msgspec.Struct):
    """What checkers saw, in a form that adds up across the parts of a replay split by
    activity (replay/partition.py): each activity's chain is checked whole in one part."""

    events: int = 0
    activities: int = 0
    signed: int = 0
    unsigned: int = 0
    failures: list[Failure] = []

    def __add__(self, other: ChainTally) -> ChainTally:
        return ChainTally(
            self.events + other.events,
            self.activities + other.activities,
            self.signed + other.signed,
            self.unsigned + other.unsigned,
            sorted([*self.failures, *other.failures], key=_in_stream_order),
        )


def _in_stream_order(failure: Failure) -> int:
    return failure.sequence


def _key(activity_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(activity_id.encode(), digest_size=16).digest())


def _compact(hash_hex: str) -> int | str:
    """A SHA-256 hex digest as its first 128 bits; anything else (empty, malformed) as is."""
    if len(hash_hex) == 64:
        with contextlib.suppress(ValueError):
            return int(hash_hex[:32], 16)
    return hash_hex


def _shown(value: int | str) -> str:
    """The first 12 hex digits of a compact hash, as messages show hashes."""
    return f"{value:032x}"[:12] if isinstance(value, int) else value[:12]


class ChainChecker:
    """Feeds on events in stream order and lists every failure it sees."""

    def __init__(self, registry: KeyRegistry, *, require_signatures: bool = False) -> None:
        """
        :param registry: the public keys each office may sign with.
        :param require_signatures: count an unsigned event as a failure even when its office
            has no registered key (by default only offices with keys must sign).
        """
        self.registry = registry
        self.require_signatures = require_signatures
        # Each activity's last hash, in a compact form: verify of a million activities held
        # ~220 bytes an activity as two strings, ~140 as two 128-bit integers. The key is the
        # first 128 bits of a BLAKE2b of the id, the value the first 128 bits of the hash: to
        # pass a wrong ``prev`` or confuse two activities would take 2**64 work or more.
        self._last_hash: dict[int, int | str] = {}
        self.events = 0
        self.signed = 0
        self.unsigned = 0

    @property
    def activities(self) -> int:
        """How many activities have been seen."""
        return len(self._last_hash)

    def check(
        self, sequence: int, subject: str, envelope: Envelope[Any], data: bytes
    ) -> list[Failure]:
        """The failures of one event, in the context of the events before it.

        :param envelope: the event, decoded (and upcast) from ``data``.
        :param data: the event as stored: the hashes are computed from these bytes
            (:func:`events.integrity.stored_hashes`), so that an event written under an older
            schema keeps the hash it was sealed with.
        """
        self.events += 1
        activity_id = envelope.activity_id
        failures: list[Failure] = []

        def fail(check: Check, message: str) -> None:
            failures.append(Failure(sequence, check, activity_id, message))

        expected_subject = f".activity.{envelope.office}.{activity_id}"
        if not subject.endswith(expected_subject):
            fail(
                "subject", f"stored on {subject}, but the event is {envelope.office}/{activity_id}"
            )
        actual, content = stored_hashes(data)
        if envelope.hash != actual:
            fail(
                "hash",
                f"stored hash {envelope.hash[:12]} does not match the content ({actual[:12]})",
            )
        key = _key(activity_id)
        previous = self._last_hash.get(key, "")
        if _compact(envelope.prev) != previous:
            wanted = _shown(previous) or "empty, as the first event"
            fail("prev", f"prev {envelope.prev[:12] or 'empty'} should be {wanted}")
        # The chain goes on from the hash as stored, so one bad event is reported once.
        self._last_hash[key] = _compact(envelope.hash)
        self._check_signature(envelope, content, fail)
        return failures

    def _check_signature(self, envelope: Envelope[Any], digest: str, fail: Any) -> None:
        keys = self.registry.keys_for(envelope.office)
        if not envelope.signature:
            self.unsigned += 1
            if keys or self.require_signatures:
                fail("signature", f"unsigned, but office {envelope.office} must sign its events")
            return
        self.signed += 1
        if not any(signature_is_valid(key, digest, envelope.signature) for key in keys):
            fail("signature", f"not signed by a key registered for office {envelope.office}")

    def tally(self, failures: list[Failure]) -> ChainTally:
        """The counts so far, with the failures the caller collected."""
        return ChainTally(self.events, self.activities, self.signed, self.unsigned, failures)

    def undecodable(self, sequence: int, reason: str) -> Failure:
        """The failure of a message that is not an event at all."""
        self.events += 1
        return Failure(sequence, "decode", "", reason)
