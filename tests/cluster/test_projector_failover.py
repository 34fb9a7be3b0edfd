"""Two projector processes on their own files survive the death of the node they talk to."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.synthetic import synthetic_events
from events.envelope import Envelope
from events.store import EventStore
from projections.db import open_reader
from projections.schema import table_names
from services.infra.cluster import LocalCluster
from tests.cluster.ingest import ingest
from tests.projection_oracle import assert_projection_matches

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
PROJECTORS = ("reader-a", "reader-b")


def checkpoint_of(db: Path) -> int:
    """The projection's last applied sequence; 0 before it has one."""
    try:
        conn = open_reader(db)
    except (OSError, sqlite3.Error):
        return 0
    try:
        row = conn.execute("SELECT sequence FROM checkpoint").fetchone()
    except sqlite3.Error:
        return 0  # the schema is not there yet
    finally:
        conn.close()
    return row[0] if row else 0


def tables_of(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table's rows, sorted, for a row-for-row comparison."""
    conn = open_reader(db)
    try:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in table_names()
        }
    finally:
        conn.close()


def projector_connections(cluster: LocalCluster, i: int) -> int:
    """How many of the projectors' connections node ``i`` holds.

    Each projector has two: its store's, named ``ledger-projector``, and FastStream's, which
    FastStream names after itself.
    """
    connections = cluster.monitor(i, "/connz").get("connections") or []
    names = [c.get("name") or "" for c in connections]
    return sum(1 for name in names if name == "ledger-projector" or name.startswith("faststream"))


async def until(check: Any, what: Any, timeout: float = 90.0) -> None:
    """Wait until ``check()`` is true, or fail with ``what()``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what() if callable(what) else what}, after {timeout:g}s")
        await asyncio.sleep(0.2)


@pytest.fixture
def start_projectors(tmp_path: Path, local_cluster: LocalCluster) -> Iterator[Any]:
    """Starts ``python -m services.projector`` processes, one durable and file each; stops them.

    They connect as the admin: the projector role may use only the durable ``projector`` on
    ``LEDGER``, and these use durables of their own on the test's stream.
    """
    processes: list[subprocess.Popen[bytes]] = []
    creds = str(local_cluster.credentials().path)

    def start(url: str, store: EventStore) -> dict[str, Path]:
        files = {}
        for name in PROJECTORS:
            files[name] = tmp_path / name / "ledger.db"
            files[name].parent.mkdir()
            log = (tmp_path / f"{name}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "services.projector", "--nats-url", url),
                        *("--db", str(files[name]), "--durable", name, "--batch", "200"),
                        *("--stream", store.ns.stream, "--prefix", store.ns.prefix),
                        *("--creds", creds),
                    ],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()
        return files

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_two_projectors_survive_the_loss_of_their_node_and_end_equal(
    local_cluster: LocalCluster, r3_store: EventStore, start_projectors: Any
) -> None:
    events = [event for event, _ in synthetic_events(8_000, seed=4, prefix="F")]
    first = await ingest(r3_store, events[:3_000])

    # Both projectors are given one node only; when it dies they reconnect to the nodes the
    # cluster told them about (the INFO connect_urls), as any client of the cluster would.
    def names(i: int) -> list[str]:
        return [c.get("name") for c in local_cluster.monitor(i, "/connz")["connections"]]

    target = await local_cluster.stream_leader(r3_store.js, r3_store.ns.stream)
    files = start_projectors(local_cluster.url_of(target), r3_store)

    # Wait until both have caught up and their durable consumers have acknowledged it all, so
    # the kill hits running projectors, not ones still setting up their subscriptions.
    async def subscribed() -> bool:
        for name in PROJECTORS:
            try:
                info = await r3_store.js.consumer_info(r3_store.ns.stream, name)
            except Exception:  # not created yet
                return False
            if info.ack_floor is None or info.ack_floor.stream_seq < 3_000:
                return False
        return True

    deadline = time.monotonic() + 60
    while not await subscribed():
        assert time.monotonic() < deadline, "projectors did not start"
        await asyncio.sleep(0.2)
    assert all(checkpoint_of(f) == 3_000 for f in files.values())
    assert projector_connections(local_cluster, target) == 2 * len(PROJECTORS), names(target)

    local_cluster.kill_node(target)
    report = await ingest(r3_store, events, acked=first.acked)
    await until(
        lambda: all(checkpoint_of(f) == len(events) for f in files.values()),
        lambda: f"caught up: {[checkpoint_of(f) for f in files.values()]}",
    )

    # Check both moved to surviving nodes, and hold the same rows.
    survivors = [i for i in range(3) if i != target]
    moved = sum(projector_connections(local_cluster, i) for i in survivors)
    assert moved == 2 * len(PROJECTORS)
    assert tables_of(files["reader-a"]) == tables_of(files["reader-b"])
    # Check those rows are the naive recomputation from the stream's events.
    stored: list[tuple[int, Envelope[Any]]] = [
        (recorded.sequence, recorded.event) async for recorded in r3_store.read()
    ]
    assert {event.event_id: sequence for sequence, event in stored} == report.acked
    conn = open_reader(files["reader-a"])
    try:
        assert_projection_matches(conn, stored)
    finally:
        conn.close()
