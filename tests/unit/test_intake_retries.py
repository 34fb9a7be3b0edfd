"""Intake's answer to a conflict: load again, decide again, up to ``attempts`` times.

Another writer gets in between intake's load and its append by way of a store that, when intake
appends, first appends a revision of its own (:class:`RacingStore`). The store is the in-memory
one, so each race is exact and the test needs no nats-server.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from events.commands import (
    Accepted,
    Rejected,
    Reply,
    ReviseActivity,
    WithdrawActivity,
    decode_reply,
    encode_command,
)
from events.envelope import Envelope
from events.memory import InMemoryEventStore
from events.stored import AppendResult, LoadedActivity
from services.intake.service import Intake
from tests.factories import make_reported, make_revised, make_withdrawn, sealed

OFFICE = "KAZ"
ACTIVITY = "KAZ-TRAINING-1"
ISSUED = dt.datetime(2021, 6, 30, 12, 0, tzinfo=dt.UTC)

Rival = Callable[[LoadedActivity, int], Envelope[Any]]
"""Builds the other writer's event from the activity as it stands and how many came before."""


class RacingStore(InMemoryEventStore):
    """An in-memory store where another writer's event lands just before intake's appends.

    :param races: how many of intake's appends lose the race (the first ones).
    :param rival: builds the other writer's event from the activity as it stands then.
    """

    def __init__(self, races: int, rival: Rival | None = None) -> None:
        super().__init__()
        self.races = races
        self.rival = rival or _revise_title
        self.appends = 0
        self.rivals: list[Envelope[Any]] = []

    async def append(self, event: Envelope[Any], expected_sequence: int) -> AppendResult:
        self.appends += 1
        if self.appends <= self.races:
            loaded = await self.load(event.activity_id)
            other = self.rival(loaded, len(self.rivals))
            await super().append(other, loaded.last_sequence)
            self.rivals.append(other)
        return await super().append(event, expected_sequence)


def _revise_title(loaded: LoadedActivity, n: int) -> Envelope[Any]:
    """A revision by another writer of the same office, of a field intake's command leaves."""
    last = loaded.events[-1].event
    return sealed(
        make_revised(ACTIVITY, title=f"title by the other writer, {n}"), OFFICE, last.hash
    )


def _withdraw(loaded: LoadedActivity, n: int) -> Envelope[Any]:
    return sealed(make_withdrawn(ACTIVITY), OFFICE, loaded.events[-1].event.hash)


async def _reported(store: InMemoryEventStore) -> int:
    """The activity as intake's commands find it: reported by the office, one event.

    Stored past :class:`RacingStore`'s override, so it neither races nor counts as intake's.
    """
    report = sealed(make_reported(office=OFFICE), OFFICE)
    return (await InMemoryEventStore.append(store, report, 0)).sequence


def _revise(**fields: Any) -> ReviseActivity:
    return ReviseActivity(
        command_id="c-revise-1",
        issued_at=ISSUED,
        actor="kaz.officer@example.org",
        activity_id=ACTIVITY,
        changes={"metrics.people_trained": 600},
        reason="final attendance list",
        **fields,
    )


async def _send(intake: Intake, command: ReviseActivity | WithdrawActivity) -> Reply:
    """Intake's reply, through the bytes a field office sends and receives."""
    return decode_reply(await intake.handle(f"ledger.intake.{OFFICE}", encode_command(command)))


async def test_without_a_race_the_first_append_is_stored() -> None:
    store = RacingStore(races=0)
    reported_at = await _reported(store)

    reply = await _send(Intake(store), _revise())

    assert isinstance(reply, Accepted)
    assert (reply.sequence, reply.version, reply.duplicate) == (reported_at + 1, 2, False)
    assert store.appends == 1


@pytest.mark.parametrize("attempts", [2, 3, 5])
async def test_a_lost_race_is_decided_again_and_accepted(attempts: int) -> None:
    store = RacingStore(races=1)
    reported_at = await _reported(store)

    reply = await _send(Intake(store, attempts=attempts), _revise())

    # The rival's revision took the sequence after the report; intake's goes after it.
    assert isinstance(reply, Accepted), reply
    assert (reply.sequence, reply.version, reply.duplicate) == (reported_at + 2, 3, False)
    assert store.appends == 2
    loaded = await store.load(ACTIVITY)
    assert [r.event.event_id for r in loaded.events][1:] == [
        store.rivals[0].event_id,
        reply.event_id,
    ]
    # Decided on what was there: chained to the rival's event, changing only its own field.
    ours = loaded.events[-1].event
    assert ours.prev == store.rivals[0].hash
    assert ours.payload.changes.metrics == {"people_trained": 600}


@pytest.mark.parametrize("attempts", [1, 2, 3, 4])
async def test_losing_every_race_ends_in_conflict_after_attempts_tries(attempts: int) -> None:
    store = RacingStore(races=attempts)
    reported_at = await _reported(store)

    reply = await _send(Intake(store, attempts=attempts), _revise())

    assert isinstance(reply, Rejected), reply
    assert (reply.code, reply.field) == ("conflict", "activity_id")
    # Each try lost to one more rival event; the reply says where the activity is now.
    assert store.appends == attempts
    assert (reply.version, reply.sequence) == (1 + attempts, reported_at + attempts)
    loaded = await store.load(ACTIVITY)
    assert [r.event.event_id for r in loaded.events][1:] == [e.event_id for e in store.rivals]


async def test_one_more_attempt_than_races_is_enough() -> None:
    races = 3
    store = RacingStore(races=races)
    reported_at = await _reported(store)

    reply = await _send(Intake(store, attempts=races + 1), _revise())

    assert isinstance(reply, Accepted), reply
    assert (reply.sequence, reply.version) == (reported_at + races + 1, 1 + races + 1)


async def test_a_command_decided_again_meets_the_rule_the_rival_broke() -> None:
    # The other writer withdrew the activity: decided afresh, the revision is refused.
    store = RacingStore(races=1, rival=_withdraw)
    await _reported(store)

    reply = await _send(Intake(store, attempts=3), _revise())

    assert isinstance(reply, Rejected), reply
    assert reply.code == "withdrawn"
    assert store.appends == 1


async def test_an_expected_version_turns_a_lost_race_into_a_stale_conflict() -> None:
    # With the version the office saw, a newer activity is not overwritten silently.
    store = RacingStore(races=1)
    await _reported(store)

    reply = await _send(Intake(store, attempts=3), _revise(expected_version=1))

    assert isinstance(reply, Rejected), reply
    assert (reply.code, reply.field, reply.version) == ("conflict", "expected_version", 2)
    assert store.appends == 1
