"""What every EventStore must do, written once and run against each store.

:class:`StoreContract` holds the cases; a test module subclasses it as ``Test...`` and provides
a ``store`` fixture with an empty stream. ``tests/unit/test_memory_store.py`` runs them on
:class:`~events.memory.InMemoryEventStore`, ``tests/integration/test_store_contract.py`` on the
JetStream :class:`~events.store.EventStore`, so the fake cannot drift from the real thing
without one of the two failing.

Every expected sequence is counted from what the case itself appended, never read back from a
store, so both stores are held to the same numbers.
"""

from __future__ import annotations

from typing import Any

import pytest

from events.errors import Conflict
from events.memory import InMemoryEventStore
from events.store import EventStore
from tests.factories import make_reported, make_revised, sealed

__all__ = ["AnyStore", "StoreContract"]

AnyStore = EventStore | InMemoryEventStore
"""A store the contract applies to."""


def _reports(count: int, office: str = "HQ") -> list[Any]:
    """``count`` sealed reports of distinct new activities ``A-0``, ``A-1``, ..."""
    return [
        sealed(make_reported(activity_id=f"A-{i}", office=office), office=office)
        for i in range(count)
    ]


class StoreContract:
    """The cases; subclasses supply the ``store`` fixture."""

    async def test_append_then_load_gives_the_events_back(self, store: AnyStore) -> None:
        reported = sealed(make_reported())
        revised = sealed(make_revised(metrics={"people_trained": 600}), prev=reported.hash)

        first = await store.append(reported, 0)
        second = await store.append(revised, first.sequence)

        assert (first.sequence, first.duplicate) == (1, False)
        assert (second.sequence, second.duplicate) == (first.sequence + 1, False)
        loaded = await store.load(reported.activity_id)
        assert [r.event for r in loaded.events] == [reported, revised]
        assert [r.sequence for r in loaded.events] == [first.sequence, second.sequence]
        assert (loaded.version, loaded.last_sequence) == (2, second.sequence)
        assert {r.subject for r in loaded.events} == {store.ns.activity("HQ", "KAZ-TRAINING-1")}
        assert loaded.events[0].time <= loaded.events[1].time

    async def test_an_unknown_activity_loads_as_no_events(self, store: AnyStore) -> None:
        await store.append(sealed(make_reported()), 0)
        loaded = await store.load("NOPE")
        assert (loaded.events, loaded.version, loaded.last_sequence) == ([], 0, 0)

    async def test_a_retried_event_id_is_stored_once(self, store: AnyStore) -> None:
        event = sealed(make_reported())
        first = await store.append(event, 0)
        # The retry may come with the expectation it was sent with (now stale) or with the
        # current one (the writer saw its own append): either way nothing new is stored.
        stale_retry = await store.append(event, 0)
        current_retry = await store.append(event, first.sequence)

        assert (stale_retry.sequence, stale_retry.duplicate) == (first.sequence, True)
        assert (current_retry.sequence, current_retry.duplicate) == (first.sequence, True)
        assert (await store.load(event.activity_id)).version == 1
        assert await store.last_sequence() == 1

    async def test_a_stale_expectation_raises_conflict_naming_both_sequences(
        self, store: AnyStore
    ) -> None:
        reported = sealed(make_reported())
        first = await store.append(reported, 0)
        one = sealed(make_revised(title="one"), prev=reported.hash)
        second = await store.append(one, first.sequence)

        # Another writer that loaded the activity after the report, before the revision.
        with pytest.raises(Conflict) as caught:
            await store.append(
                sealed(make_revised(title="two"), prev=reported.hash), first.sequence
            )

        conflict = caught.value
        assert conflict.activity_id == reported.activity_id
        assert (conflict.expected, conflict.actual) == (first.sequence, second.sequence)
        assert f"expected at sequence {first.sequence} but is at {second.sequence}" in str(conflict)
        assert await store.last_sequence() == 2

    async def test_an_expectation_ahead_of_the_activity_is_a_conflict(
        self, store: AnyStore
    ) -> None:
        await store.append(sealed(make_reported(activity_id="OTHER")), 0)
        with pytest.raises(Conflict) as caught:
            await store.append(sealed(make_reported()), 1)
        assert (caught.value.expected, caught.value.actual) == (1, 0)

    async def test_two_offices_cannot_both_create_the_same_id(self, store: AnyStore) -> None:
        kaz = sealed(make_reported(office="KAZ"), office="KAZ")
        vnm = sealed(make_reported(office="VNM"), office="VNM")
        created = await store.append(kaz, 0)

        with pytest.raises(Conflict) as caught:
            await store.append(vnm, 0)

        assert (caught.value.expected, caught.value.actual) == (0, created.sequence)
        loaded = await store.load(kaz.activity_id)
        assert [r.event for r in loaded.events] == [kaz]
        assert loaded.events[0].subject == store.ns.activity("KAZ", kaz.activity_id)
        assert await store.last_sequence() == 1

    async def test_append_many_reports_each_outcome_in_input_order(self, store: AnyStore) -> None:
        taken = sealed(make_reported(activity_id="TAKEN"))
        taken_at = (await store.append(taken, 0)).sequence
        fresh = _reports(3)
        first_fresh = taken_at + 1  # the call below stores ``fresh`` first, in order
        revision = sealed(make_revised("A-0", title="new title"), prev=fresh[0].hash)
        rival = sealed(make_reported(activity_id="TAKEN"))
        items = [
            *((event, 0) for event in fresh),
            (taken, 0),  # a retry with its stale expectation
            (rival, 0),  # another event for an id already taken
            (taken, taken_at),  # a retry with the current expectation
            (revision, first_fresh),  # expects what A-0 is stored at earlier in this call
        ]

        outcomes = await store.append_many(items)

        assert [o.event_id for o in outcomes] == [event.event_id for event, _ in items]
        statuses = [o.status for o in outcomes]
        assert statuses == ["stored"] * 3 + ["duplicate", "conflict", "duplicate", "stored"]
        # Duplicates give the first sequence, the conflict the activity's actual one.
        fresh_at = [first_fresh + i for i in range(len(fresh))]
        assert [o.sequence for o in outcomes] == [
            *fresh_at,
            taken_at,
            taken_at,
            taken_at,
            fresh_at[-1] + 1,
        ]
        assert f"expected at sequence 0 but is at {taken_at}" in outcomes[4].detail
        assert await store.last_sequence() == taken_at + len(fresh) + 1
        assert (await store.load("A-0")).version == 2

    async def test_append_many_without_the_look_reports_any_stale_one_as_conflict(
        self, store: AnyStore
    ) -> None:
        taken = sealed(make_reported(activity_id="TAKEN"))
        taken_at = (await store.append(taken, 0)).sequence
        fresh = _reports(2)

        outcomes = await store.append_many(
            [(taken, 0), *((event, 0) for event in fresh), (taken, taken_at)],
            find_duplicates=False,
        )

        # Intake turns the look off: it loads a refused report anyway. A retry with a stale
        # expectation is then a conflict with no sequence; one with the current expectation is
        # still caught by the duplicate window.
        assert [(o.status, o.sequence) for o in outcomes] == [
            ("conflict", 0),
            *(("stored", taken_at + 1 + i) for i in range(len(fresh))),
            ("duplicate", taken_at),
        ]
        assert await store.last_sequence() == taken_at + len(fresh)

    async def test_read_raw_yields_every_message_in_sequence_order(self, store: AnyStore) -> None:
        events = _reports(7)
        revisions = [
            sealed(make_revised(e.activity_id, title="revised"), prev=e.hash) for e in events[:4]
        ]
        await store.append_many([(e, 0) for e in events])
        # Each revision expects its report's sequence: report i is stored at i + 1.
        await store.append_many([(r, i + 1) for i, r in enumerate(revisions)])
        written = events + revisions
        batch_size = 3

        batches = [batch async for batch in store.read_raw(batch_size=batch_size)]

        full, rest = divmod(len(written), batch_size)
        assert [len(b) for b in batches] == [batch_size] * full + ([rest] if rest else [])
        raws = [raw for batch in batches for raw in batch]
        assert [raw.sequence for raw in raws] == list(range(1, len(written) + 1))
        assert [(raw.headers or {}).get("Nats-Msg-Id") for raw in raws] == [
            e.event_id for e in written
        ]
        assert [raw.subject for raw in raws] == [
            store.ns.activity(e.office, e.activity_id) for e in written
        ]
        assert [raw.time_ns for raw in raws] == sorted(raw.time_ns for raw in raws)
        assert [store.decode(raw).event for raw in raws] == written

    async def test_read_decodes_a_window_of_the_stream(self, store: AnyStore) -> None:
        events = _reports(9)
        await store.append_many([(e, 0) for e in events])

        everything = [r async for r in store.read()]
        window = [r.sequence async for r in store.read(from_seq=3, until_seq=6)]
        past_the_end = [r async for r in store.read(from_seq=len(events) + 1)]
        cut = everything[4].time
        until_time = [r.sequence async for r in store.read(until_time=cut)]

        assert [r.event for r in everything] == events
        assert window == [3, 4, 5, 6]
        assert past_the_end == []
        assert until_time == [r.sequence for r in everything if r.time <= cut]

    async def test_last_sequence_counts_stored_messages_only(self, store: AnyStore) -> None:
        assert await store.last_sequence() == 0
        assert [raw async for raw in store.read_raw()] == []
        events = _reports(4)
        for event in events:
            await store.append(event, 0)
        assert await store.last_sequence() == len(events)

        await store.append(events[0], 0)  # a duplicate stores nothing
        with pytest.raises(Conflict):  # nor does a conflict
            await store.append(sealed(make_reported(activity_id="A-1")), 0)
        await store.append_many([(events[1], 0), (sealed(make_reported(activity_id="A-2")), 0)])

        assert await store.last_sequence() == len(events)
