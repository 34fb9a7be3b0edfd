"""A client that appends a ledger through node failures: resend what got no answer, same ids.

It is what an importer does against a cluster: events go in chunks through
:meth:`EventStore.append_many`; an event whose outcome is ``error`` (no acknowledgement, or the
stream briefly without a leader) is sent again with the same event id, so the stream stores it
once whatever happened to the first attempt. A revision waits until its activity's previous
event is acknowledged, because its expected sequence is that event's real sequence, which a
failure can shift away from the one the synthetic ledger assumed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import nats.errors

from events.envelope import Envelope
from events.errors import LedgerError
from events.store import EventStore


@dataclass
class IngestReport:
    """What happened while ingesting."""

    acked: dict[str, int] = field(default_factory=dict)
    """Event id -> the sequence its positive acknowledgement named."""
    resent: int = 0
    """How many sends got no positive answer and were made again."""
    rounds: int = 0


def predecessors(events: Sequence[Envelope[Any]]) -> list[int | None]:
    """For each event, the index of the previous event of the same activity, if any."""
    last: dict[str, int] = {}
    found: list[int | None] = []
    for i, event in enumerate(events):
        found.append(last.get(event.activity_id))
        last[event.activity_id] = i
    return found


async def ingest(
    store: EventStore,
    events: Sequence[Envelope[Any]],
    *,
    chunk: int = 1000,
    max_rounds: int = 30,
    pause: float = 0.5,
    acked: dict[str, int] | None = None,
) -> IngestReport:
    """Append every event exactly once, resending those without a positive acknowledgement.

    :param events: sealed events in ledger order; each activity's events in their order.
    :param chunk: events per :meth:`EventStore.append_many` call.
    :param max_rounds: passes over the events still pending before giving up.
    :param pause: seconds to wait before resending, while the cluster elects a leader.
    :param acked: events already stored by an earlier call (id -> sequence); they are skipped.
    :raises AssertionError: on a conflict (which would mean an event is missing or twice) or
        when events are still pending after ``max_rounds``.
    """
    before = predecessors(events)
    report = IngestReport(acked=dict(acked or {}))
    pending = [i for i, event in enumerate(events) if event.event_id not in report.acked]
    while pending:
        report.rounds += 1
        if report.rounds > max_rounds:
            raise AssertionError(f"{len(pending)} events still pending after {max_rounds} rounds")
        later: list[int] = []
        for start in range(0, len(pending), chunk):
            sendable: list[tuple[int, int]] = []
            for i in pending[start : start + chunk]:
                previous = before[i]
                if previous is None:
                    sendable.append((i, 0))
                elif events[previous].event_id in report.acked:
                    sendable.append((i, report.acked[events[previous].event_id]))
                else:
                    later.append(i)
            later.extend(await _send(store, events, sendable, report))
        pending = sorted(later)
        if pending:
            await asyncio.sleep(pause)
    return report


async def _send(
    store: EventStore,
    events: Sequence[Envelope[Any]],
    sendable: list[tuple[int, int]],
    report: IngestReport,
) -> list[int]:
    """Send one chunk; return the indexes to send again."""
    try:
        outcomes = await store.append_many((events[i], expected) for i, expected in sendable)
    except (LedgerError, nats.errors.Error, TimeoutError):
        # The store could not even sort out the answers (e.g. its look-up of a retried event
        # met an election): nothing of the chunk is known, and resending all of it is safe.
        report.resent += len(sendable)
        return [i for i, _ in sendable]
    again = []
    for (i, expected), outcome in zip(sendable, outcomes, strict=True):
        if outcome.status in ("stored", "duplicate"):
            report.acked[outcome.event_id] = outcome.sequence
        elif outcome.status == "error":
            report.resent += 1
            again.append(i)
        else:
            raise AssertionError(f"event {i} expected at {expected}: {outcome}")
    return again
