"""The projector never stays behind: with its delivery path stalled, the watch catches up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from events.store import EventStore
from projections.db import live_path, open_reader
from services.projector.service import Projector
from tests.factories import make_reported, sealed


async def test_a_stalled_delivery_path_is_caught_up_directly(
    store: EventStore, tmp_path: Path
) -> None:
    # No durable consumer at all: the harshest stall. Only the watch can apply events.
    projector = Projector(store, live_path(tmp_path))
    projector.open()
    stop = asyncio.Event()
    watching = asyncio.create_task(projector.watch(stop, interval=0.1, stalled_after=0.3))
    try:
        for i in range(5):
            await store.append(sealed(make_reported(activity_id=f"A-{i}")), 0)
        for _ in range(100):
            if projector.applier is not None and projector.applier.checkpoint() == 5:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await watching
        projector.close()
    conn = open_reader(live_path(tmp_path))
    (count,) = conn.execute("SELECT count(*) FROM activities").fetchone()
    conn.close()
    assert count == 5
