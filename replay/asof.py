"""As-of replay: every projection as it stood at a sequence or an instant, in a file of its own.

"Recorded by T" means the envelope's ``recorded_at``, which intake sets when it accepts the
event; it travels with the event through export and import, where the stream's own timestamps
would become the time of the import. A message that is not an event at all is judged by the
time the stream stored it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import msgspec

from events.errors import LedgerError
from events.store import EventStore
from events.stored import RawMessage
from replay.rebuild import RebuildResult, build_projection

__all__ = ["ReplayError", "recorded_by", "replay_as_of"]


class ReplayError(LedgerError):
    """Raised when a replay is asked for something it cannot do (e.g. an existing output)."""


class _Recorded(msgspec.Struct):
    recorded_at: dt.datetime


_recorded = msgspec.json.Decoder(_Recorded)


def recorded_by(instant: dt.datetime) -> Callable[[RawMessage], bool]:
    """A message filter: true for events recorded at or before ``instant``."""
    if instant.tzinfo is None:
        raise ReplayError(f"{instant.isoformat()} has no time zone; give one, e.g. ...T00:00:00Z")

    def keep(raw: RawMessage) -> bool:
        try:
            return _recorded.decode(raw.data).recorded_at <= instant
        except (msgspec.DecodeError, msgspec.ValidationError):
            return raw.time <= instant

    return keep


async def replay_as_of(
    store: EventStore,
    out: Path,
    *,
    until_seq: int | None = None,
    until_time: dt.datetime | None = None,
    progress: bool | None = None,
) -> RebuildResult:
    """Build the projections from the events up to ``until_seq`` and/or ``until_time``.

    :param store: the ledger's stream.
    :param out: the projection file to write; it must not exist yet.
    :param until_seq: the last stream sequence to count.
    :param until_time: count only events recorded at or before this instant (time zone aware).
    :raises ReplayError: when ``out`` exists or neither bound is given.
    """
    if until_seq is None and until_time is None:
        raise ReplayError("give --as-of TIME or --until-seq N")
    out = Path(out)
    if out.exists():
        raise ReplayError(f"{out} exists; give a new file name, or remove it first")
    keep = recorded_by(until_time) if until_time is not None else None
    return await build_projection(
        store, out, until_seq=until_seq, keep=keep, progress=progress, label="as-of"
    )
