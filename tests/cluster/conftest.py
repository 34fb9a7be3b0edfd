"""Fixtures for the cluster tests: one local 3-node cluster per session, whole again per test.

The cluster checks credentials as a deployment does; the tests connect as its admin, which may
use the streams of their own namespaces (the other roles' permissions name ``LEDGER``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from nats.aio.client import Client as NATS

from events.store import EventStore
from events.subjects import Namespace
from services.infra.cluster import LocalCluster
from services.infra.stack import connect


@pytest.fixture(scope="session")
def _session_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), 3)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def local_cluster(_session_cluster: LocalCluster) -> LocalCluster:
    """A running 3-node cluster; nodes an earlier test killed are started again first."""
    _session_cluster.start_stopped()
    return _session_cluster


@pytest.fixture
async def cluster_nc(local_cluster: LocalCluster) -> AsyncIterator[NATS]:
    """A client that knows every node, so it reconnects to a survivor when one dies."""
    client = await connect(
        local_cluster.urls, name="cluster-tests", creds=local_cluster.credentials()
    )
    yield client
    await client.close()


@pytest.fixture
async def r3_store(cluster_nc: NATS) -> EventStore:
    """An EventStore on a fresh stream with 3 replicas."""
    store = EventStore(cluster_nc, Namespace.for_tests(uuid.uuid4().hex[:12]), timeout=5.0)
    await store.ensure_stream(replicas=3)
    return store
