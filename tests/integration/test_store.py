"""The EventStore against a real nats-server: appends, concurrency, dedup, immutability, reads."""

from __future__ import annotations

import asyncio
import datetime as dt

import nats.js.errors
import pytest
from nats.js import api

from events.errors import Conflict, StreamConfigError
from events.store import DUPLICATE_WINDOW, EventStore
from tests.factories import make_reported, make_revised, make_withdrawn, sealed


async def test_every_event_type_round_trips_through_the_stream(store: EventStore) -> None:
    reported = sealed(make_reported())
    revised = sealed(make_revised(metrics={"people_trained": 600}), prev=reported.hash)
    withdrawn = sealed(make_withdrawn(), prev=revised.hash)

    first = await store.append(reported, 0)
    second = await store.append(revised, first.sequence)
    third = await store.append(withdrawn, second.sequence)

    loaded = await store.load("KAZ-TRAINING-1")
    assert [r.event for r in loaded.events] == [reported, revised, withdrawn]
    assert [r.sequence for r in loaded.events] == [1, 2, 3]
    assert (loaded.version, loaded.last_sequence) == (3, third.sequence)
    assert [r.subject for r in loaded.events] == [store.ns.activity("HQ", "KAZ-TRAINING-1")] * 3


async def test_two_writers_with_the_same_expectation_store_exactly_one(store: EventStore) -> None:
    base = await store.append(sealed(make_reported()), 0)
    one = sealed(make_revised(metrics={"people_trained": 600}))
    other = sealed(make_revised(metrics={"people_trained": 700}))

    results = await asyncio.gather(
        store.append(one, base.sequence), store.append(other, base.sequence), return_exceptions=True
    )

    stored = [r for r in results if not isinstance(r, BaseException)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(stored) == 1 and len(conflicts) == 1
    assert conflicts[0].expected == base.sequence
    assert conflicts[0].actual == stored[0].sequence
    assert (await store.load("KAZ-TRAINING-1")).version == 2


async def test_a_stale_expectation_names_both_sequences(store: EventStore) -> None:
    await store.append(sealed(make_reported()), 0)
    with pytest.raises(Conflict) as caught:
        await store.append(sealed(make_revised(title="x")), 0)
    assert (caught.value.expected, caught.value.actual) == (0, 1)
    assert "expected at sequence 0 but is at 1" in str(caught.value)


async def test_the_same_id_under_another_office_is_a_conflict(store: EventStore) -> None:
    await store.append(sealed(make_reported(office="KAZ"), office="KAZ"), 0)
    with pytest.raises(Conflict):
        await store.append(sealed(make_reported(office="VNM"), office="VNM"), 0)


async def test_a_retried_event_id_is_stored_once(store: EventStore) -> None:
    event = sealed(make_reported())
    first = await store.append(event, 0)
    again = await store.append(event, 0)
    assert (again.sequence, again.duplicate) == (first.sequence, True)

    revision = sealed(make_revised(title="new title"), prev=event.hash)
    stored = await store.append(revision, first.sequence)
    retried = await store.append(revision, first.sequence)
    assert (retried.sequence, retried.duplicate) == (stored.sequence, True)
    assert await store.last_sequence() == 2


async def test_delete_and_purge_are_refused_by_the_server(store: EventStore) -> None:
    await store.append(sealed(make_reported()), 0)
    with pytest.raises(nats.js.errors.APIError):
        await store.js.delete_msg(store.ns.stream, 1)
    with pytest.raises(nats.js.errors.APIError):
        await store.js.purge_stream(store.ns.stream)
    assert len((await store.load("KAZ-TRAINING-1")).events) == 1


async def test_the_stream_is_created_as_the_design_requires(store: EventStore) -> None:
    config = (await store.js.stream_info(store.ns.stream)).config
    assert config.deny_delete and config.deny_purge
    assert not config.allow_rollup_hdrs
    assert config.duplicate_window >= 24 * 3600
    assert config.storage == api.StorageType.FILE
    assert config.subjects == [store.ns.activities, store.ns.releases, store.ns.checkpoints]


@pytest.mark.parametrize("known", [1, 2])
async def test_a_stream_made_before_releases_or_checkpoints_gets_their_subjects(
    store: EventStore, known: int
) -> None:
    ns = type(store.ns)(prefix=store.ns.prefix + "_old", stream=store.ns.stream + "_OLD")
    older = EventStore(store.nc, ns)
    config = older.stream_config()
    config.subjects = [ns.activities, ns.releases][:known]
    await store.js.add_stream(config)

    await older.ensure_stream()

    subjects = (await store.js.stream_info(ns.stream)).config.subjects
    assert subjects == [ns.activities, ns.releases, ns.checkpoints]


async def test_a_weaker_existing_stream_is_refused_loudly(store: EventStore) -> None:
    weak = store.stream_config()
    weak.name = store.ns.stream + "_WEAK"
    weak.subjects = [store.ns.prefix + "_weak.activity.>"]
    weak.deny_delete = weak.deny_purge = False
    weak.duplicate_window = 60
    await store.js.add_stream(weak)
    other = EventStore(store.nc, type(store.ns)(prefix=store.ns.prefix + "_weak", stream=weak.name))
    with pytest.raises(StreamConfigError) as caught:
        await other.ensure_stream()
    message = str(caught.value)
    assert "deny_delete is off" in message and "deny_purge is off" in message
    assert "duplicate window is 60s" in message
    assert DUPLICATE_WINDOW == 86400.0


async def test_append_many_reports_every_outcome(store: EventStore) -> None:
    taken = sealed(make_reported(activity_id="TAKEN"))
    await store.append(taken, 0)
    fresh = [sealed(make_reported(activity_id=f"A-{i}")) for i in range(50)]
    items = [(e, 0) for e in fresh] + [(taken, 0), (sealed(make_reported(activity_id="TAKEN")), 0)]

    outcomes = await store.append_many(items)

    assert [o.status for o in outcomes] == ["stored"] * 50 + ["duplicate", "conflict"]
    assert sorted(o.sequence for o in outcomes[:50]) == list(range(2, 52))
    assert outcomes[50].sequence == 1
    assert outcomes[51].sequence == 1  # the activity's actual sequence
    assert await store.last_sequence() == 51


async def test_read_streams_everything_in_order_and_stops_where_told(store: EventStore) -> None:
    events = [sealed(make_reported(activity_id=f"A-{i}")) for i in range(25)]
    await store.append_many([(e, 0) for e in events])

    everything = [r async for r in store.read()]
    assert [r.event for r in everything] == events
    assert [r.sequence for r in everything] == list(range(1, 26))

    middle = [r.sequence async for r in store.read(from_seq=5, until_seq=9)]
    assert middle == [5, 6, 7, 8, 9]

    cut = everything[11].time
    until_time = [r.sequence async for r in store.read(until_time=cut)]
    assert until_time == [r.sequence for r in everything if r.time <= cut]

    assert [r async for r in store.read(from_seq=26)] == []
    batches = [len(b) async for b in store.read_raw(batch_size=10)]
    assert batches == [10, 10, 5]


async def test_read_of_an_empty_stream_ends_at_once(store: EventStore) -> None:
    assert [r async for r in store.read()] == []
    assert [r async for r in store.read(until_time=dt.datetime.now(dt.UTC))] == []


async def test_loading_an_unknown_activity_gives_no_events(store: EventStore) -> None:
    loaded = await store.load("NOPE")
    assert (loaded.events, loaded.version, loaded.last_sequence) == ([], 0, 0)
