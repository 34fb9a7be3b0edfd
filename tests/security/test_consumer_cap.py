"""A reader cannot pile consumers up on the servers: the account caps them per stream.

Readers and auditors may create ephemeral consumers (every replay is one). Without a cap, one
reader could create them until the servers ran out of memory; with it, the reader meets a
clear error and the ledger's own consumers keep working.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import nats.js.errors
import pytest
from nats.aio.client import Client as NATS
from nats.js import api

from events.errors import TooManyReadersError
from events.store import EventStore
from services.client.office import OfficeClient
from services.infra.security import MAX_CONSUMERS
from tests.factories import make_reported

AsUser = Callable[[str], Awaitable[NATS]]


async def test_a_reader_cannot_create_more_consumers_than_the_cap(
    as_user: AsUser, secured_intake: None
) -> None:
    # One event, so that a replay has something to read.
    kaz = OfficeClient(await as_user("office-KAZ"), "KAZ", timeout=5)
    await kaz.report(make_reported(activity_id="KAZ-CAPPED", office="KAZ"))
    admin = await as_user("admin")
    before = (await admin.jetstream().stream_info("LEDGER")).state.consumer_count
    auditor = await as_user("auditor")
    js = auditor.jetstream(timeout=5)
    config = api.ConsumerConfig(inactive_threshold=120.0)
    created = 0
    with pytest.raises(nats.js.errors.BadRequestError) as refused:
        for _ in range(MAX_CONSUMERS + 5):
            await js.add_consumer("LEDGER", config)
            created += 1
    assert refused.value.err_code == 10026
    assert created == MAX_CONSUMERS - before
    # Check a replay then says what happened, in the ledger's words.
    with pytest.raises(TooManyReadersError, match="as many readers as the server allows"):
        async for _ in EventStore(auditor).read_raw():
            pass
    # Check the stream itself is untouched: still there, still strict.
    info = await admin.jetstream().stream_info("LEDGER")
    assert (info.config.deny_delete, info.config.deny_purge) == (True, True)
