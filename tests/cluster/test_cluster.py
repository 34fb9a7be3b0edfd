"""The ledger on a 3-node JetStream cluster: replication, a node lost mid-ingest, a rejoin.

Real nats-servers on loopback (``services.infra.cluster.LocalCluster``), killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import pytest

from bench.synthetic import synthetic_events
from events.envelope import Envelope
from events.store import EventStore
from projections.db import open_reader
from replay.rebuild import rebuild
from services.infra.cluster import LocalCluster
from tests.cluster.ingest import ingest
from tests.projection_oracle import assert_projection_matches

pytestmark = pytest.mark.cluster


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    """Wait until ``check`` holds; fail with its name after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{check.__name__} still false after {timeout:g}s")
        await asyncio.sleep(0.2)


async def replicas_current(store: EventStore) -> bool:
    """Whether the stream has a leader and every follower is current, lag 0."""
    try:
        info = await store.js.stream_info(store.ns.stream)
    except Exception:  # an election in progress; ask again
        return False
    cluster = info.cluster
    peers = cluster.replicas or [] if cluster else []
    return bool(
        cluster
        and cluster.leader
        and len(peers) == 2
        and all(p.current and not p.offline and not p.lag for p in peers)
    )


async def stored_events(store: EventStore) -> list[tuple[int, Envelope[Any]]]:
    """Every event in the stream with its sequence, in stream order."""
    return [(recorded.sequence, recorded.event) async for recorded in store.read()]


async def test_r3_stream_has_a_leader_and_two_current_replicas(
    local_cluster: LocalCluster, r3_store: EventStore
) -> None:
    info = await r3_store.js.stream_info(r3_store.ns.stream)
    assert info.config.num_replicas == 3

    await eventually(lambda: replicas_current(r3_store))
    info = await r3_store.js.stream_info(r3_store.ns.stream)
    names = {info.cluster.leader, *(p.name for p in info.cluster.replicas)}
    assert names == {"node-0", "node-1", "node-2"}
    # Each node's own store holds a replica, not only the leader's.
    for i in range(3):
        assert local_cluster.stream_state_on(i, r3_store.ns.stream) is not None


async def test_killing_the_stream_leader_during_ingest_loses_and_doubles_nothing(
    local_cluster: LocalCluster, r3_store: EventStore, tmp_path: Path
) -> None:
    events = [event for event, _ in synthetic_events(20_000, seed=9, prefix="K")]
    stream = r3_store.ns.stream
    leader = await local_cluster.stream_leader(r3_store.js, stream)
    # The writer talks to the leader itself, so the kill also cuts its connection: the harder
    # case, where acknowledgements in flight are lost and the client must reconnect.
    others = [local_cluster.url_of(i) for i in range(3) if i != leader]
    writer_nc = await nats.connect(
        [local_cluster.url_of(leader), *others],
        dont_randomize=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        **local_cluster.credentials().connect_options(),
    )
    writer = EventStore(writer_nc, r3_store.ns, timeout=5.0)
    killed: list[int] = []

    async def kill_leader_midway() -> None:
        # Kill once a quarter is in, so publishes are in flight to the dying leader.
        while (await r3_store.last_sequence()) < 5_000:
            await asyncio.sleep(0.02)
        local_cluster.kill_node(leader)
        killed.append(leader)

    killer = asyncio.create_task(kill_leader_midway())
    try:
        report = await asyncio.wait_for(ingest(writer, events), 240)
        await killer
    finally:
        killer.cancel()
        await writer_nc.close()

    # Check the leader died mid-ingest and another node took over.
    assert killed == [leader]
    assert await local_cluster.stream_leader(r3_store.js, stream) != leader
    # Check every event got a positive acknowledgement in the end.
    assert len(report.acked) == len(events)
    # Check each is in the stream exactly once, at the sequence its acknowledgement named.
    stored = await stored_events(r3_store)
    assert len(stored) == len(events)
    assert Counter(Counter(event.event_id for _, event in stored).values()) == {1: len(events)}
    assert {event.event_id: sequence for sequence, event in stored} == report.acked

    # Check a rebuild from the stream equals the naive recomputation from the same events.
    live = tmp_path / "projections" / "ledger.db"
    result = await rebuild(r3_store, live, progress=False)
    assert result.checkpoint == len(events)
    conn = open_reader(live)
    try:
        assert_projection_matches(conn, stored)
    finally:
        conn.close()


async def test_killed_node_rejoins_and_catches_up(
    local_cluster: LocalCluster, r3_store: EventStore
) -> None:
    events = [event for event, _ in synthetic_events(6_000, seed=3, prefix="R")]
    stream = r3_store.ns.stream
    first = await ingest(r3_store, events[:2_000])
    leader = await local_cluster.stream_leader(r3_store.js, stream)

    local_cluster.kill_node(leader)
    await ingest(r3_store, events, acked=first.acked)
    assert not local_cluster.is_running(leader)
    local_cluster.start_node(leader)

    # Check the rejoined node is a current replica again, and its own store has every event.
    await eventually(lambda: replicas_current(r3_store))

    async def own_store_complete() -> bool:
        state = local_cluster.stream_state_on(leader, stream) or {}
        return state.get("messages") == len(events) and state.get("last_seq") == len(events)

    await eventually(own_store_complete)
