"""The bulk applier of rebuilds and as-of replays, against the live applier, without NATS.

The property test in ``test_projection_property.py`` checks both appliers against a naive
recomputation; these cases pin what is particular to the bulk path: poison quarantined exactly
as the live applier does it, memory bounded by the cache, nothing committed before the end,
and a file that is not fresh refused.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bench.synthetic import synthetic_events
from events.codec import encode, headers_for
from events.envelope import Envelope
from events.model import CountryShare
from events.stored import RawMessage
from projections.apply import Applier
from projections.bulk import BulkApplier, BulkError
from projections.db import finish_bulk, open_writer
from projections.schema import table_names
from tests.factories import make_reported, make_revised, make_withdrawn, sealed


def raw(sequence: int, envelope: Envelope[Any]) -> RawMessage:
    """The message as the stream would hand it over."""
    subject = f"ledger.activity.HQ.{envelope.activity_id}"
    return RawMessage(sequence, subject, sequence * 1000, headers_for(envelope), encode(envelope))


def poisoned_stream() -> list[RawMessage]:
    """Synthetic events with every kind of poison among them, late revisions included."""
    messages = [raw(i, env) for i, (env, _) in enumerate(synthetic_events(300, seed=4), 1)]
    subject = "ledger.activity.HQ.POISON"
    unknown = msgspec.json.encode({"type": "ActivitySung", "version": 1, "payload": {}})
    extra: list[Any] = [
        b"\x00\xffnot an event",
        (unknown, {"Ledger-Type": "ActivitySung", "Ledger-Version": "1"}),
        (b"{}", {"Ledger-Type": "ActivityReported", "Ledger-Version": "9"}),
        sealed(make_reported(activity_id="LATE", countries=[CountryShare("KAZ", 60.0)])),
        sealed(make_revised("NEVER-REPORTED", year=2019)),
        sealed(make_reported(activity_id="LATE")),
        sealed(make_reported(activity_id="S4-00000001")),  # reported twice, long after
        sealed(make_revised("S4-00000002", metrics={"people_trained": 9})),
        sealed(make_withdrawn("S4-00000003")),
        sealed(make_revised("S4-00000003", year=2011)),  # after its withdrawal
        sealed(make_withdrawn("LATE")),
    ]
    for item in extra:
        sequence = len(messages) + 1
        if isinstance(item, bytes):
            messages.append(RawMessage(sequence, subject, sequence * 1000, None, item))
        elif isinstance(item, tuple):
            messages.append(RawMessage(sequence, subject, sequence * 1000, item[1], item[0]))
        else:
            messages.append(raw(sequence, item))
    return messages


def rows_of(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted, for a row-for-row comparison."""
    return {
        t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in table_names()
    }


def live_projection(messages: list[RawMessage], batch: int = 40) -> sqlite3.Connection:
    conn = open_writer(":memory:")  # type: ignore[arg-type]
    applier = Applier(conn)
    for start in range(0, len(messages), batch):
        applier.apply(messages[start : start + batch])
    return conn


def bulk_projection(
    path: Path, messages: list[RawMessage], *, cache: int, batch: int = 25
) -> sqlite3.Connection:
    conn = open_writer(path, bulk=True)
    bulk = BulkApplier(conn, cache=cache)
    for start in range(0, len(messages), batch):
        bulk.add(messages[start : start + batch])
    bulk.finish()
    finish_bulk(conn)
    return conn


@pytest.mark.parametrize("cache", [1, 7, 100_000])
def test_poison_is_quarantined_as_the_live_applier_does_it(tmp_path: Path, cache: int):
    messages = poisoned_stream()
    live = live_projection(messages)
    bulk = bulk_projection(tmp_path / "bulk.db", messages, cache=cache)
    assert rows_of(bulk) == rows_of(live)
    reasons = [r for (r,) in bulk.execute("SELECT reason FROM quarantine ORDER BY sequence")]
    assert len(reasons) == 7
    assert reasons[0].startswith("undecodable")
    assert "unknown event type 'ActivitySung'" in reasons[1]
    assert "newer than this program knows" in reasons[2]
    assert all(r.startswith("unapplicable") for r in reasons[3:])
    # The late revision of an activity written out long before was folded onto its state.
    row = bulk.execute("SELECT version FROM activities WHERE activity_id = 'S4-00000002'")
    assert row.fetchone() == (2,)
    live.close()
    bulk.close()


def test_memory_holds_at_most_the_cache(tmp_path: Path):
    messages = [raw(i, env) for i, (env, _) in enumerate(synthetic_events(500, seed=2), 1)]
    conn = open_writer(tmp_path / "p.db", bulk=True)
    bulk = BulkApplier(conn, cache=30)
    for start in range(0, len(messages), 20):
        bulk.add(messages[start : start + 20])
        assert bulk.kept <= 30
    bulk.finish()
    assert bulk.kept == 0
    assert rows_of(conn) == rows_of(live_projection(messages))
    conn.close()


def test_order_redelivery_and_duplicates_within_a_batch(tmp_path: Path):
    messages = [raw(i, env) for i, (env, _) in enumerate(synthetic_events(60, seed=9), 1)]
    conn = open_writer(tmp_path / "p.db", bulk=True)
    bulk = BulkApplier(conn, cache=5)
    first = bulk.add(list(reversed(messages[:30])) + messages[:10])
    assert (first.applied, first.skipped, first.checkpoint) == (30, 0, 30)
    again = bulk.add(messages[20:45])
    assert (again.applied, again.skipped, again.checkpoint) == (15, 10, 45)
    assert bulk.add(messages[:45]).applied == 0
    bulk.add(messages[45:])
    assert bulk.finish() == 60
    assert rows_of(conn) == rows_of(live_projection(messages))
    conn.close()


def test_nothing_is_committed_before_finish(tmp_path: Path):
    messages = [raw(i, env) for i, (env, _) in enumerate(synthetic_events(200, seed=5), 1)]
    conn = open_writer(tmp_path / "p.db", bulk=True)
    bulk = BulkApplier(conn, cache=10)
    bulk.add(messages)
    # Activities were written out (the cache is small), inside the one open transaction.
    assert conn.in_transaction
    assert conn.execute("SELECT count(*) FROM activities").fetchone()[0] > 0
    bulk.abort()
    assert conn.execute("SELECT count(*) FROM activities").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM checkpoint").fetchone()[0] == 0
    with pytest.raises(BulkError):
        bulk.add(messages)
    conn.close()


def test_checkpoint_is_the_last_message_even_when_it_is_poison(tmp_path: Path):
    messages = poisoned_stream()
    conn = open_writer(tmp_path / "p.db", bulk=True)
    bulk = BulkApplier(conn)
    bulk.add(messages)
    assert bulk.finish() == messages[-1].sequence
    row = conn.execute("SELECT sequence, stream_time_ns FROM checkpoint").fetchone()
    assert row == (messages[-1].sequence, messages[-1].time_ns)
    with pytest.raises(BulkError):
        bulk.finish()
    conn.close()


def test_an_empty_replay_leaves_no_checkpoint(tmp_path: Path):
    conn = open_writer(tmp_path / "p.db", bulk=True)
    bulk = BulkApplier(conn)
    assert bulk.add([]).applied == 0
    assert bulk.finish() == 0
    assert conn.execute("SELECT count(*) FROM checkpoint").fetchone()[0] == 0
    conn.close()


def test_a_file_that_holds_a_projection_is_refused(tmp_path: Path):
    path = tmp_path / "p.db"
    conn = open_writer(path)
    Applier(conn).apply([raw(1, sealed(make_reported()))])
    with pytest.raises(BulkError):
        BulkApplier(conn)
    conn.close()


def test_a_stream_of_poison_is_written_as_it_comes_not_held(tmp_path: Path):
    subject = "ledger.activity.HQ.POISON"
    poison = [RawMessage(i, subject, i, None, b"\x00 not an event") for i in range(1, 2501)]
    conn = open_writer(tmp_path / "p.db", bulk=True)
    bulk = BulkApplier(conn)
    for start in range(0, len(poison), 100):
        bulk.add(poison[start : start + 100])
    # Written inside the open transaction, at most a thousand-odd left in memory.
    assert conn.execute("SELECT count(*) FROM quarantine").fetchone()[0] >= 2000
    assert bulk.finish() == 2500
    assert conn.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 2500
    conn.close()
