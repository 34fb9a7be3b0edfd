"""The rebuild's bulk path against a real nats-server: poison, failure, and the as-of cut."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bench.synthetic import synthetic_events
from events.store import EventStore
from events.stored import RawMessage
from projections.apply import Applier
from projections.db import live_path, open_reader, open_writer, resolve
from projections.schema import table_names
from replay.asof import replay_as_of
from replay.rebuild import build_projection, rebuild
from tests.factories import make_reported, make_revised, sealed


def rows_of(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted, for a row-for-row comparison."""
    return {
        t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in table_names()
    }


async def fill_with_poison(store: EventStore) -> int:
    """Synthetic events, then poison and late events; the last sequence."""
    items = list(synthetic_events(1200, seed=8))
    outcomes = await store.append_many(items)
    assert {o.status for o in outcomes} == {"stored"}
    subject = store.ns.activity("HQ", "POISON")
    await store.js.publish(subject, b"\x00\xffnot an event")
    unknown = msgspec.json.encode({"type": "ActivitySung", "version": 1, "payload": {}})
    await store.js.publish(
        subject, unknown, headers={"Ledger-Type": "ActivitySung", "Ledger-Version": "1"}
    )
    # Events that cannot follow, published around intake as a damaged log would hold them.
    for payload in [
        make_revised("NEVER-REPORTED", year=2019),
        make_reported(activity_id="S8-00000001"),
    ]:
        envelope = sealed(payload)
        await store.js.publish(
            store.ns.activity("HQ", payload.activity_id),
            msgspec.json.encode(envelope),
            headers={"Ledger-Type": envelope.type, "Ledger-Version": "1"},
        )
    late = sealed(make_reported(activity_id="LATE", year=2019))
    return (await store.append(late, 0)).sequence


async def live_rows(store: EventStore, path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The live applier's projection of the whole stream, in batches of 100."""
    conn = open_writer(path)
    applier = Applier(conn)
    async for batch in store.read_raw(batch_size=100):
        applier.apply(batch)
    rows = rows_of(conn)
    conn.close()
    return rows


async def test_rebuild_with_poison_equals_the_live_projection(store: EventStore, tmp_path: Path):
    last = await fill_with_poison(store)
    expected = await live_rows(store, tmp_path / "live.db")
    # A cache of 50 activities: most are written out and many read back for a revision.
    result = await rebuild(store, live_path(tmp_path), batch_size=50, progress=False)
    assert result.checkpoint == last
    conn = open_reader(live_path(tmp_path))
    assert rows_of(conn) == expected
    assert conn.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 4
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # The full-text index was filled at the end, from every activity.
    (found,) = conn.execute(
        "SELECT count(*) FROM activities_fts WHERE activities_fts MATCH 'synthetic'"
    ).fetchone()
    assert found == conn.execute("SELECT count(*) FROM activities").fetchone()[0] - 1
    conn.close()


class FailingStore:
    """The store, but its read breaks after ``good`` batches, as a lost connection would."""

    def __init__(self, store: EventStore, good: int) -> None:
        self.store = store
        self.good = good

    async def last_sequence(self) -> int:
        return await self.store.last_sequence()

    async def read_raw(self, *args: Any, **kwargs: Any) -> AsyncIterator[list[RawMessage]]:
        served = 0
        kwargs["batch_size"] = 1000  # several batches, whatever the caller asks
        async for batch in self.store.read_raw(*args, **kwargs):
            if served == self.good:
                raise ConnectionError("lost the server")
            served += 1
            yield batch


async def test_a_failed_rebuild_leaves_the_live_file_and_no_file_of_its_own(
    store: EventStore, tmp_path: Path
):
    items = list(synthetic_events(5000, seed=6))
    assert {o.status for o in await store.append_many(items)} == {"stored"}
    live = live_path(tmp_path)
    await rebuild(store, live, progress=False)
    before = resolve(live)
    expected = rows_of_file(live)
    failing: Any = FailingStore(store, good=1)
    with pytest.raises(ConnectionError):
        await rebuild(failing, live, batch_size=100, progress=False)
    assert resolve(live) == before
    assert rows_of_file(live) == expected
    assert [p.name for p in live.parent.glob("ledger-*.db")] == [before.name]


def rows_of_file(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = open_reader(path)
    try:
        return rows_of(conn)
    finally:
        conn.close()


async def test_as_of_a_sequence_equals_the_live_projection_at_that_checkpoint(
    store: EventStore, tmp_path: Path
):
    await fill_with_poison(store)
    middle = 700
    conn = open_writer(tmp_path / "live.db")
    applier = Applier(conn)
    async for batch in store.read_raw(until_seq=middle, batch_size=64):
        applier.apply(batch)
    expected = rows_of(conn)
    conn.close()
    result = await replay_as_of(store, tmp_path / "asof.db", until_seq=middle)
    assert result.checkpoint == middle
    replayed = open_reader(tmp_path / "asof.db")
    assert rows_of(replayed) == expected
    replayed.close()
    # And a build stopped at the same sequence with a cache of one activity agrees too.
    await build_projection(store, tmp_path / "tiny.db", until_seq=middle, batch_size=1)
    tiny = open_reader(tmp_path / "tiny.db")
    assert rows_of(tiny) == expected
    tiny.close()
