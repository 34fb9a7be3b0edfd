"""``ledger import`` through intake while the stream's leader is killed: the issue's scenario.

An intake process serves a fresh R3 stream on the local cluster; the importer (the function
behind ``ledger import``) sends 20,000 reports; the stream leader is SIGKILLed a quarter of
the way in. Whatever the importer met, running it again is the office's retry; in the end the
file's activities are in the stream exactly once each, and a rebuild equals the recomputation.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from bench.synthetic import synthetic_activities
from events.store import EventStore
from projections.db import open_reader
from replay.rebuild import rebuild
from services.client.errors import IntakeUnavailableError
from services.client.importer import ImportSummary, import_file
from services.client.office import OfficeClient
from services.infra.cluster import LocalCluster
from services.infra.credentials import users_path
from services.infra.stack import connect
from tests.cluster.test_cluster import stored_events
from tests.projection_oracle import assert_projection_matches

pytestmark = pytest.mark.cluster

RECORDS = 20_000


@pytest.fixture
def intake(local_cluster: LocalCluster, r3_store: EventStore) -> Iterator[None]:
    """One intake process for the test's stream, knowing every node."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.intake",
            "--nats-url",
            local_cluster.urls,
            "--prefix",
            r3_store.ns.prefix,
            "--stream",
            r3_store.ns.stream,
            # As the admin (the roles' permissions name the LEDGER stream, not the test's),
            # answering the users the cluster knows.
            "--creds",
            str(local_cluster.credentials().path),
            "--users",
            str(users_path(local_cluster.ledger_dir)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("intake ready")
        yield
    finally:
        process.terminate()
        process.wait(15)


async def test_an_import_survives_the_leaders_death_and_stores_each_activity_once(
    local_cluster: LocalCluster, r3_store: EventStore, intake: None, tmp_path: Path
) -> None:
    activities = list(synthetic_activities(RECORDS, seed=21, prefix="N"))
    path = tmp_path / "activities.jsonl"
    path.write_bytes(b"".join(msgspec.json.encode(a) + b"\n" for a in activities))
    stream = r3_store.ns.stream
    leader = await local_cluster.stream_leader(r3_store.js, stream)
    nc = await connect(local_cluster.urls, "cluster-import", creds=local_cluster.credentials())
    client = OfficeClient(nc, None, r3_store.ns)
    killed: list[int] = []

    async def kill_leader_midway() -> None:
        while (await r3_store.last_sequence()) < RECORDS // 4:
            await asyncio.sleep(0.02)
        local_cluster.kill_node(leader)
        killed.append(leader)

    async def import_until_done() -> list[ImportSummary | str]:
        # What an office does when `ledger import` says intake stopped answering: run it again.
        runs: list[ImportSummary | str] = []
        for _ in range(10):
            try:
                runs.append(await import_file(client, path))
                return runs
            except IntakeUnavailableError as exc:
                runs.append(str(exc))
        raise AssertionError(f"the import never finished: {runs}")

    killer = asyncio.create_task(kill_leader_midway())
    try:
        runs = await asyncio.wait_for(import_until_done(), 300)
        await asyncio.wait_for(killer, 5)
        # Check the last run was whole: every line stored, by this run or an earlier one.
        last = runs[-1]
        assert isinstance(last, ImportSummary)
        assert last.rejections == []
        assert last.accepted + last.already_present == RECORDS
        # Check a further run, as a careful office might make, stores nothing new.
        again = await import_file(client, path)
        assert (again.accepted, again.already_present, again.rejected) == (0, RECORDS, 0)
    finally:
        killer.cancel()
        await nc.close()

    # Check the leader died while lines were going in, and another node took over.
    assert killed == [leader]
    assert await local_cluster.stream_leader(r3_store.js, stream) != leader
    # Check the stream holds the file's activities, each exactly once, and nothing else.
    stored = await stored_events(r3_store)
    ids = Counter(event.activity_id for _, event in stored)
    assert set(ids) == {a.activity_id for a in activities}
    assert set(ids.values()) == {1}
    assert len(stored) == RECORDS
    # Check a rebuild from the stream equals the naive recomputation from the same events.
    live = tmp_path / "projections" / "ledger.db"
    result = await rebuild(r3_store, live, progress=False)
    assert result.checkpoint == RECORDS
    conn = open_reader(live)
    try:
        assert_projection_matches(conn, stored)
    finally:
        conn.close()
