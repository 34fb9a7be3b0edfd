"""Checking a release against the stream alone (events/release.py): is it intact, signed by
headquarters, and do the figures of the history up to its sequence still give its digest?

The figures are recomputed by a replay of the stream up to the release's sequence into a
scratch file, not read from any projection: a projection is derived data, and the question is
whether the history itself still says what was published.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import msgspec

from events.errors import ReleaseNotFoundError
from events.integrity import stored_hashes
from events.keys import KeyRegistry
from events.release import RELEASING_OFFICE, decode_release
from events.signing import signature_is_valid
from events.store import EventStore
from events.stored import EPOCH
from projections.db import open_reader
from projections.digest import present_digest
from replay.asof import replay_as_of
from replay.source import StreamSource, as_source

__all__ = ["ReleaseCheck", "release_instant", "verify_release"]


class ReleaseCheck(msgspec.Struct, frozen=True, kw_only=True):
    """What ``ledger release verify`` found."""

    name: str
    sequence: int
    """The sequence whose figures the release states."""
    office: str
    actor: str
    stated: str
    """The digest the release states."""
    digest: str
    """The digest of the figures a replay up to ``sequence`` gives now."""
    problems: list[str]
    """What differs, each naming what: ``hash``, ``office``, ``signature``, ``digest``."""

    @property
    def ok(self) -> bool:
        """Whether nothing differs."""
        return not self.problems


async def verify_release(
    stream: StreamSource | EventStore, name: str, keys: KeyRegistry
) -> ReleaseCheck:
    """Check the release ``name``: its stored hash, its signature by a key registered for
    headquarters, and its digest against a replay of the stream up to its sequence.

    :raises ReleaseNotFoundError: when the stream holds no release of that name.
    """
    source = as_source(stream)
    raw = await source.store.release(name)
    if raw is None:
        raise ReleaseNotFoundError(name)
    event = decode_release(raw.data)
    stated = event.payload
    with tempfile.TemporaryDirectory(prefix="ledger-release-") as tmp:
        out = Path(tmp, "then.db")
        await replay_as_of(source, out, until_seq=stated.sequence, progress=False)
        then = open_reader(out)
        try:
            digest = present_digest(then)
        finally:
            then.close()
    problems = []
    # Both hashes from the stored bytes, as `ledger verify` checks an activity's events.
    chain_hash, content = stored_hashes(raw.data)
    if event.hash != chain_hash:
        problems.append("hash: the stored event does not match its hash; it was altered")
    registered = keys.keys_for(event.office)
    if event.office != RELEASING_OFFICE:
        problems.append(f"office: made by {event.office}, not {RELEASING_OFFICE}")
    elif not registered:
        problems.append(f"signature: no key is registered for {event.office} to check it with")
    elif not any(signature_is_valid(key, content, event.signature) for key in registered):
        problems.append(f"signature: not valid for any key registered for {event.office}")
    if digest != stated.digest:
        problems.append(
            f"digest: the figures as of sequence {stated.sequence} now give {digest}, the "
            f"release states {stated.digest}; the history up to it has changed"
        )
    return ReleaseCheck(
        name=name,
        sequence=stated.sequence,
        office=event.office,
        actor=event.actor,
        stated=stated.digest,
        digest=digest,
        problems=problems,
    )


async def release_instant(store: EventStore, name: str) -> dt.datetime:
    """The instant a release stands for in an as-of replay or a diff: when the event at its
    sequence was recorded (the epoch for a release of the empty ledger).

    :raises ReleaseNotFoundError: when the stream holds no release of that name.
    """
    raw = await store.release(name)
    if raw is None:
        raise ReleaseNotFoundError(name)
    recorded = await store.recorded_at(decode_release(raw.data).payload.sequence)
    return recorded or EPOCH
