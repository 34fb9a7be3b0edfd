"""The history of one activity: every event, who made it, when, what changed and why."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from events.activity import ActivityState, apply_event
from events.errors import ActivityNotFoundError
from events.model import ActivityReported, ActivityRevised, ActivityWithdrawn
from events.store import EventStore
from events.stored import Recorded

__all__ = ["FieldChange", "HistoryEntry", "activity_history", "history_of"]


class FieldChange(msgspec.Struct, frozen=True):
    """One field's value before and after an event; ``old`` is ``None`` on the first report."""

    field: str
    old: Any
    new: Any


class HistoryEntry(msgspec.Struct, frozen=True):
    """One event of an activity, as an auditor reads it."""

    sequence: int
    recorded_at: dt.datetime
    occurred_at: dt.datetime
    office: str
    actor: str
    type: str
    event_id: str
    changes: list[FieldChange]
    reason: str = ""
    version: int = 0
    """The activity's version after this event."""


def history_of(records: list[Recorded]) -> list[HistoryEntry]:
    """The entries of one activity's events, given in stream order."""
    entries: list[HistoryEntry] = []
    state: ActivityState | None = None
    for record in records:
        event = record.event
        payload = event.payload
        match payload:
            case ActivityReported():
                values = msgspec.to_builtins(payload)
                changes = [
                    FieldChange(k, None, v)
                    for k, v in values.items()
                    if v not in ("", [], {}, None)
                ]
                reason = ""
            case ActivityRevised():
                before = msgspec.to_builtins(state.activity) if state else {}
                after = msgspec.to_builtins(payload.changes)
                changes = [FieldChange(k, before.get(k), v) for k, v in after.items()]
                reason = payload.reason
            case ActivityWithdrawn():
                changes = [FieldChange("status", "active", "withdrawn")]
                reason = payload.reason
        state = apply_event(state, event, record.sequence)
        entries.append(
            HistoryEntry(
                sequence=record.sequence,
                recorded_at=event.recorded_at,
                occurred_at=event.occurred_at,
                office=event.office,
                actor=event.actor,
                type=event.type,
                event_id=event.event_id,
                changes=changes,
                reason=reason,
                version=state.version,
            )
        )
    return entries


async def activity_history(store: EventStore, activity_id: str) -> list[HistoryEntry]:
    """Every event of one activity, read from the stream.

    :raises ActivityNotFoundError: when the activity has no event.
    """
    loaded = await store.load(activity_id)
    if not loaded.events:
        raise ActivityNotFoundError(activity_id)
    return history_of(loaded.events)
