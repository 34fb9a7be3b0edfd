"""The activity aggregate: its state, how each event changes it, and the guards on commands.

Pure functions only: they take values and return values, with no clock, NATS or SQLite. Intake
loads an activity's events, folds them with :func:`apply_event`, asks the guards, and appends.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import Struct

from events.envelope import Envelope
from events.errors import ActivityWithdrawnError, FieldIssue, InvalidEventError
from events.model import ActivityChanges, ActivityReported, ActivityRevised, ActivityWithdrawn

__all__ = [
    "STATUSES",
    "ActivityState",
    "Status",
    "apply_event",
    "check_can_revise",
    "check_can_withdraw",
    "fold_activity",
    "revise",
]


Status = Literal["active", "withdrawn"]
"""An activity as the projections list it: counted, or withdrawn (kept in history only)."""

STATUSES: tuple[Status, ...] = ("active", "withdrawn")
"""Every status, in the order the interfaces offer them."""


class ActivityState(Struct, frozen=True, kw_only=True):
    """An activity as its events leave it."""

    activity: ActivityReported
    """The current values of every field."""
    withdrawn: bool = False
    version: int = 1
    """How many events the activity has."""
    last_sequence: int = 0
    """Stream sequence of its latest event: the expectation for the next append."""
    last_hash: str = ""
    """Hash of its latest event: the ``prev`` of the next one."""
    withdraw_reason: str = ""


def revise(activity: ActivityReported, changes: ActivityChanges) -> ActivityReported:
    """The activity with the changed fields replaced."""
    return msgspec.structs.replace(activity, **changes.as_dict())


def apply_event(
    state: ActivityState | None, envelope: Envelope[Any], sequence: int = 0
) -> ActivityState:
    """Fold one stored event into the activity's state.

    :raises InvalidEventError: when the event cannot follow the state (e.g. a revision first).
    """
    event = envelope.payload
    match event:
        case ActivityReported():
            if state is not None:
                raise InvalidEventError([FieldIssue("type", "the activity was already reported")])
            return ActivityState(activity=event, last_sequence=sequence, last_hash=envelope.hash)
        case ActivityRevised() | ActivityWithdrawn() if state is None:
            raise InvalidEventError(
                [FieldIssue("type", f"{envelope.type} before ActivityReported")]
            )
        case ActivityRevised() if state is not None:
            return msgspec.structs.replace(
                state,
                activity=revise(state.activity, event.changes),
                version=state.version + 1,
                last_sequence=sequence,
                last_hash=envelope.hash,
            )
        case ActivityWithdrawn() if state is not None:
            return msgspec.structs.replace(
                state,
                withdrawn=True,
                withdraw_reason=event.reason,
                version=state.version + 1,
                last_sequence=sequence,
                last_hash=envelope.hash,
            )
    raise InvalidEventError([FieldIssue("type", f"unknown event type {envelope.type!r}")])


def fold_activity(events: list[tuple[int, Envelope[Any]]]) -> ActivityState | None:
    """The state after every ``(sequence, envelope)`` in order; ``None`` for no events."""
    state: ActivityState | None = None
    for sequence, envelope in events:
        state = apply_event(state, envelope, sequence)
    return state


def check_can_revise(state: ActivityState, changes: ActivityChanges) -> ActivityChanges:
    """The changes that really change something; refuse a withdrawn activity or a no-op.

    :raises ActivityWithdrawnError: when the activity was withdrawn.
    :raises InvalidEventError: when no field would change.
    """
    if state.withdrawn:
        raise ActivityWithdrawnError(state.activity.activity_id)
    # Each value has its own field's type, as ActivityChanges takes it.
    effective: dict[str, Any] = {
        name: value
        for name, value in changes.as_dict().items()
        if getattr(state.activity, name) != value
    }
    if not effective:
        raise InvalidEventError(
            [FieldIssue("changes", "the revision changes nothing; give at least one new value")]
        )
    return ActivityChanges(**effective)


def check_can_withdraw(state: ActivityState) -> None:
    """Refuse to withdraw an activity twice.

    :raises ActivityWithdrawnError: when it is already withdrawn.
    """
    if state.withdrawn:
        raise ActivityWithdrawnError(state.activity.activity_id)
