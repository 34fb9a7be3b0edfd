"""As-of replay: every projection as it stood at a sequence or an instant, in a file of its own.

"Recorded by T" means the envelope's ``recorded_at``, which intake sets when it accepts the
event; it travels with the event through export and import, where the stream's own timestamps
would become the time of the import. A message that is not an event at all is judged by the
time the stream stored it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec

from events.errors import LedgerError
from events.store import EventStore
from events.stored import RawMessage
from replay.rebuild import RebuildResult, build_projection
from replay.source import StreamSource

__all__ = ["RecordedBy", "ReplayError", "replay_as_of"]


class ReplayError(LedgerError):
    """Raised when a replay is asked for something it cannot do (e.g. an existing output)."""


class _Recorded(msgspec.Struct):
    recorded_at: dt.datetime


_recorded = msgspec.json.Decoder(_Recorded)


class RecordedBy:
    """A message filter: true for events recorded at or before ``instant``.

    A class, not a closure, so that the parts of a split replay (replay/partition.py) can be
    sent it.
    """

    def __init__(self, instant: dt.datetime) -> None:
        """:raises ReplayError: when ``instant`` has no time zone."""
        if instant.tzinfo is None:
            raise ReplayError(
                f"{instant.isoformat()} has no time zone; give one, e.g. ...T00:00:00Z"
            )
        self.instant = instant

    def __call__(self, raw: RawMessage) -> bool:
        try:
            return _recorded.decode(raw.data).recorded_at <= self.instant
        except (msgspec.DecodeError, msgspec.ValidationError):
            return raw.time <= self.instant


async def replay_as_of(
    stream: StreamSource | EventStore,
    out: Path,
    *,
    until_seq: int | None = None,
    until_time: dt.datetime | None = None,
    progress: bool | None = None,
    parts: int | None = None,
) -> RebuildResult:
    """Build the projections from the events up to ``until_seq`` and/or ``until_time``.

    :param stream: the ledger's stream (as for :func:`replay.rebuild.build_projection`).
    :param out: the projection file to write; it must not exist yet.
    :param until_seq: the last stream sequence to count.
    :param until_time: count only events recorded at or before this instant (time zone aware).
    :param parts: how many processes fold (see :func:`replay.rebuild.build_projection`).
    :raises ReplayError: when ``out`` exists or neither bound is given.
    """
    if until_seq is None and until_time is None:
        raise ReplayError("give --as-of TIME or --until-seq N")
    out = Path(out)
    if out.exists():
        raise ReplayError(f"{out} exists; give a new file name, or remove it first")
    keep = RecordedBy(until_time) if until_time is not None else None
    return await build_projection(
        stream, out, until_seq=until_seq, keep=keep, progress=progress, label="as-of", parts=parts
    )
