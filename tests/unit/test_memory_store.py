"""The store contract (tests/store_contract.py) on the in-memory EventStore, and what is its own.

The same cases run on the JetStream store in tests/integration/test_store_contract.py.
"""

from __future__ import annotations

import datetime as dt

import pytest

from events.memory import InMemoryEventStore
from events.stored import EPOCH
from events.subjects import Namespace
from tests.factories import make_reported, sealed
from tests.store_contract import StoreContract


@pytest.fixture
async def store() -> InMemoryEventStore:
    """An empty in-memory store, under a namespace of its own as the JetStream one is."""
    memory = InMemoryEventStore(Namespace.for_tests("memory"))
    await memory.ensure_stream()
    return memory


class TestInMemoryStore(StoreContract):
    """Every case of the contract, on the in-memory store."""


async def test_messages_are_placed_in_time_by_the_clock_and_never_go_back() -> None:
    second = 1_000_000_000
    ticks = iter([5 * second, 7 * second, 6 * second])  # the third steps back
    memory = InMemoryEventStore(clock=lambda: next(ticks))
    for i in range(3):
        await memory.append(sealed(make_reported(activity_id=f"A-{i}")), 0)

    raws = [raw for batch in [b async for b in memory.read_raw()] for raw in batch]
    assert [raw.time_ns for raw in raws] == [5 * second, 7 * second, 7 * second]

    cut = EPOCH + dt.timedelta(seconds=6)
    assert [r.sequence async for r in memory.read(until_time=cut)] == [1]


async def test_a_read_ends_where_the_stream_ended_when_it_began() -> None:
    memory = InMemoryEventStore()
    for i in range(4):
        await memory.append(sealed(make_reported(activity_id=f"A-{i}")), 0)

    seen = []
    async for batch in memory.read_raw(batch_size=2):
        seen.extend(raw.sequence for raw in batch)
        await memory.append(sealed(make_reported(activity_id=f"LATE-{len(seen)}")), 0)

    assert seen == [1, 2, 3, 4]
    assert await memory.last_sequence() == 4 + 2
