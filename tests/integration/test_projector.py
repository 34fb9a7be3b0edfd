"""The projector and the rebuild against a real nats-server and real SQLite files."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bench.synthetic import synthetic_events
from events.envelope import Envelope
from events.store import EventStore
from projections import marks
from projections.apply import Applier
from projections.db import open_reader, open_writer, resolve
from projections.schema import table_names
from replay.rebuild import rebuild
from services.infra.embedded import EmbeddedNats
from services.projector.service import run_projector
from tests.factories import make_reported, make_revised, make_withdrawn, sealed
from tests.projection_oracle import assert_projection_matches

ROOT = Path(__file__).resolve().parents[2]


async def fill(store: EventStore, n: int, seed: int = 7) -> list[tuple[int, Envelope[Any]]]:
    """Append ``n`` synthetic events; return them with their stream sequences."""
    items = list(synthetic_events(n, seed=seed))
    outcomes = await store.append_many(items)
    assert {o.status for o in outcomes} == {"stored"}
    return [(o.sequence, event) for o, (event, _) in zip(outcomes, items, strict=True)]


async def append_story(store: EventStore) -> list[tuple[int, Envelope[Any]]]:
    """Report, revise and withdraw a few activities, as intake would."""
    events = []
    last: dict[str, int] = {}
    for payload in [
        make_reported(),
        make_reported(activity_id="B", year=2021),
        make_revised(metrics={"people_trained": 600}),
        make_withdrawn("B"),
    ]:
        envelope = sealed(payload)
        result = await store.append(envelope, last.get(payload.activity_id, 0))
        last[payload.activity_id] = result.sequence
        events.append((result.sequence, envelope))
    return events


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted, for row-for-row comparisons."""
    conn = open_reader(path)
    try:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in table_names()
        }
    finally:
        conn.close()


def checkpoint_of(path: Path) -> int:
    if not resolve(path).exists():
        return 0
    conn = open_reader(path)
    try:
        row = conn.execute("SELECT sequence FROM checkpoint").fetchone()
        return row[0] if row else 0
    except sqlite3.OperationalError:
        return 0  # the schema is not there yet
    finally:
        conn.close()


async def wait_for_checkpoint(path: Path, sequence: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while checkpoint_of(path) < sequence:
        if time.monotonic() > deadline:
            raise TimeoutError(f"checkpoint {checkpoint_of(path)} never reached {sequence}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def projector(
    store: EventStore, nats_server: EmbeddedNats, tmp_path: Path
) -> AsyncIterator[Path]:
    """A live projector running in this process; yields the live projection path."""
    live = tmp_path / "projections" / "ledger.db"
    stop = asyncio.Event()
    task = asyncio.create_task(run_projector(store, nats_server.url, live, stop, batch_size=100))
    yield live
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_redelivered_batch_changes_nothing(store: EventStore, tmp_path: Path):
    events = await append_story(store)
    conn = open_writer(tmp_path / "p.db")
    applier = Applier(conn)
    batches = [batch async for batch in store.read_raw(batch_size=3)]
    for batch in batches:
        applier.apply(batch)
    before = snapshot(tmp_path / "p.db")
    # Check a redelivery of every batch, and of all of them at once, is skipped.
    for batch in batches:
        assert applier.apply(batch).skipped == len(batch)
    assert applier.apply([raw for batch in batches for raw in batch]).applied == 0
    assert snapshot(tmp_path / "p.db") == before
    assert_projection_matches(conn, events)


async def test_poison_is_quarantined_and_later_events_still_apply(
    store: EventStore, projector: Path
):
    events = await append_story(store)
    subject = store.ns.activity("HQ", "POISON")
    garbage = b"\x00\xffnot an event"
    unknown = msgspec.json.encode({"type": "ActivitySung", "version": 1, "payload": {}})
    bad_garbage = await store.js.publish(subject, garbage)
    bad_type = await store.js.publish(
        subject, unknown, headers={"Ledger-Type": "ActivitySung", "Ledger-Version": "1"}
    )
    later = sealed(make_reported(activity_id="C", year=2019))
    events.append(((await store.append(later, 0)).sequence, later))
    await wait_for_checkpoint(projector, events[-1][0])

    conn = open_reader(projector)
    rows = conn.execute("SELECT sequence, subject, data, reason FROM quarantine").fetchall()
    assert [(seq, subj, data) for seq, subj, data, _ in rows] == [
        (bad_garbage.seq, subject, garbage),
        (bad_type.seq, subject, unknown),
    ]
    assert "undecodable" in rows[0][3]
    assert "unknown event type 'ActivitySung'" in rows[1][3]
    assert_projection_matches(conn, events)
    conn.close()


async def test_rebuild_of_unchanged_stream_equals_live_projection(
    store: EventStore, projector: Path
):
    events = await fill(store, 1500)
    events += await append_story(store)
    await wait_for_checkpoint(projector, events[-1][0])
    live_before = resolve(projector)
    live_rows = snapshot(live_before)

    result = await rebuild(store, projector, batch_size=200, progress=False)

    assert resolve(projector) == result.path != live_before
    assert result.checkpoint == events[-1][0]
    assert snapshot(projector) == live_rows
    conn = open_reader(projector)
    assert_projection_matches(conn, events)
    conn.close()
    # Check the projector follows the switch: a new event lands in the new file.
    later = sealed(make_reported(activity_id="AFTER"))
    sequence = (await store.append(later, 0)).sequence
    await wait_for_checkpoint(projector, sequence)
    assert checkpoint_of(result.path) == sequence


async def test_the_projector_fills_its_marks_after_the_batches_that_pass_them(
    store: EventStore, projector: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(marks, "MARK_EVERY", 100)  # 50,000 in use
    events = await fill(store, 450)
    await wait_for_checkpoint(projector, events[-1][0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        conn = open_reader(projector)
        found = [mark for (mark,) in conn.execute("SELECT mark FROM marks ORDER BY mark")]
        conn.close()
        if found == [100, 200, 300, 400]:
            break
        await asyncio.sleep(0.05)
    assert found == [100, 200, 300, 400]
    # Filled later, they are the very rows a rebuild writes in its one pass.
    live_rows = snapshot(projector)
    await rebuild(store, projector, batch_size=200, progress=False)
    assert snapshot(projector) == live_rows


async def test_reader_sees_only_complete_states_during_rebuild(store: EventStore, tmp_path: Path):
    events = await fill(store, 2000, seed=3)
    live = tmp_path / "projections" / "ledger.db"
    await rebuild(store, live, progress=False)
    expected = snapshot(live)
    seen: list[tuple[Path, int]] = []
    done = asyncio.Event()

    async def read_in_a_loop() -> None:
        while not done.is_set():
            conn = open_reader(live)
            try:
                # One read transaction: the checkpoint and the rollups of the same state.
                conn.execute("BEGIN")
                sequence = conn.execute("SELECT sequence FROM checkpoint").fetchone()[0]
                totals = sorted(conn.execute("SELECT * FROM totals").fetchall())
                conn.execute("COMMIT")
            finally:
                conn.close()
            assert (sequence, totals) == (events[-1][0], expected["totals"])
            seen.append((resolve(live), sequence))
            await asyncio.sleep(0)

    reader = asyncio.create_task(read_in_a_loop())
    result = await rebuild(store, live, batch_size=100, progress=False)
    await asyncio.sleep(0.05)
    done.set()
    await reader
    assert snapshot(live) == expected
    assert {path for path, _ in seen} >= {result.path}
    assert len(seen) > 10


@pytest.mark.slow
async def test_projector_killed_at_random_loses_and_doubles_nothing(
    store: EventStore, nats_server: EmbeddedNats, tmp_path: Path
):
    rng = random.Random(11)
    items = list(synthetic_events(6000, seed=5))
    chunks = [items[:1500], *(items[i : i + 450] for i in range(1500, 6000, 450))]
    events: list[tuple[int, Envelope[Any]]] = []
    live = tmp_path / "projections" / "ledger.db"
    command = [
        sys.executable,
        "-m",
        "services.projector",
        "--nats-url",
        nats_server.url,
        "--db",
        str(live),
        "--stream",
        store.ns.stream,
        "--prefix",
        store.ns.prefix,
        "--batch",
        "50",
    ]
    log = (tmp_path / "projector.log").open("wb")
    kills = []
    for chunk in chunks:
        before = checkpoint_of(live)
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
        outcomes = await store.append_many(chunk)
        events += [(o.sequence, event) for o, (event, _) in zip(outcomes, chunk, strict=True)]
        # Kill it at a random moment once it is at work: after its first commit of this round.
        await wait_for_checkpoint(live, before + 1)
        await asyncio.sleep(rng.uniform(0.0, 0.3))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        kills.append((checkpoint_of(live), events[-1][0]))
    print("checkpoint at each kill, of the stream's last sequence:", kills)
    assert len(kills) >= 10
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
    try:
        await wait_for_checkpoint(live, events[-1][0], timeout=90)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        log.close()
    conn = open_reader(live)
    assert conn.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
    assert_projection_matches(conn, events)
    conn.close()
