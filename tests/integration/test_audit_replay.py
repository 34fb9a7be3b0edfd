"""As-of replay, diff and verify against a real stream: the auditor's questions, answered."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import msgspec
from nats.aio.client import Client as NATS

from events.codec import encode, headers_for
from events.keys import KeyRegistry
from events.model import CountryShare
from events.signing import new_key_pair
from events.store import EventStore
from events.subjects import Namespace
from projections.db import live_path, open_reader, open_writer
from replay.archive import export_log, import_log
from replay.archive_check import ImportRules
from replay.asof import replay_as_of
from replay.diff import diff
from replay.rebuild import rebuild
from replay.verify import compare_projections, verify
from tests.factories import make_reported, make_revised, make_withdrawn, sealed

SIGNED = dt.datetime(2021, 6, 30, tzinfo=dt.UTC)
"""The day the report was signed: the auditor's instant T."""


def _at(days: int) -> dt.datetime:
    return SIGNED + dt.timedelta(days=days)


async def _history_around_the_signing(store: EventStore) -> None:
    """KAZ trained 571 before T and was revised to 600 after; VNM's activity withdrawn after T."""
    kaz = sealed(make_reported(), recorded_at=_at(-10))
    vnm = sealed(
        make_reported(
            activity_id="VNM-OPS-1",
            kind="operation",
            countries=[CountryShare("VNM")],
            metrics={"suspects_arrested": 12},
        ),
        recorded_at=_at(-5),
    )
    first = await store.append(kaz, 0)
    second = await store.append(vnm, 0)
    revised = sealed(
        make_revised(metrics={"people_trained": 600}), prev=kaz.hash, recorded_at=_at(3)
    )
    await store.append(revised, first.sequence)
    withdrawn = sealed(make_withdrawn("VNM-OPS-1"), prev=vnm.hash, recorded_at=_at(5))
    await store.append(withdrawn, second.sequence)


def _figure(path: Path, table: str, key: str, metric: str) -> float | None:
    conn = open_reader(path)
    try:
        column = {"by_country": "country", "by_programme": "programme"}[table]
        row = conn.execute(
            f"SELECT total FROM {table} WHERE {column} = ? AND metric = ?", (key, metric)
        ).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


async def test_as_of_shows_what_was_known_on_the_day(store: EventStore, tmp_path: Path) -> None:
    await _history_around_the_signing(store)

    then = await replay_as_of(store, tmp_path / "asof.db", until_time=SIGNED)
    now = await rebuild(store, live_path(tmp_path), progress=False)

    # Check the figure revised after T: the old one then, the new one now.
    assert _figure(then.path, "by_country", "KAZ", "people_trained") == 571
    assert _figure(now.path, "by_country", "KAZ", "people_trained") == 600
    # Check the activity withdrawn after T: still counted as of T, nowhere now.
    assert _figure(then.path, "by_country", "VNM", "suspects_arrested") == 12
    assert _figure(now.path, "by_country", "VNM", "suspects_arrested") in (None, 0)


async def test_as_of_a_sequence_stops_there(store: EventStore, tmp_path: Path) -> None:
    await _history_around_the_signing(store)
    result = await replay_as_of(store, tmp_path / "seq3.db", until_seq=3)
    assert result.checkpoint == 3
    assert _figure(result.path, "by_country", "KAZ", "people_trained") == 600
    assert _figure(result.path, "by_country", "VNM", "suspects_arrested") == 12


async def test_diff_lists_exactly_the_changed_figures_and_their_events(store: EventStore) -> None:
    await _history_around_the_signing(store)

    changes = await diff(store, SIGNED, _at(30), country="KAZ")

    by_row = {(c.table, tuple(c.key.values()), c.metric): c for c in changes}
    assert set(by_row) == {
        ("by_country", ("KAZ",), "people_trained"),
        ("country_year", ("KAZ", 2020), "people_trained"),
        ("country_programme", ("KAZ", "GENERAL"), "people_trained"),
        # The report that cites the training, by country (issue 18's documents).
        ("document_country", ("SG report 2021 (A/76, item 109)", "KAZ"), "people_trained"),
    }
    change = by_row[("by_country", ("KAZ",), "people_trained")]
    assert (change.before, change.after) == (571, 600)
    assert [(e.sequence, e.type, e.reason) for e in change.events] == [
        (3, "ActivityRevised", "corrected against the final attendance list")
    ]

    everywhere = await diff(store, SIGNED, _at(30))
    vnm = [c for c in everywhere if c.key == {"country": "VNM"} and c.metric == "suspects_arrested"]
    assert [(c.before, c.after, [e.sequence for e in c.events]) for c in vnm] == [(12, 0, [4])]
    assert await diff(store, _at(10), _at(30)) == []


async def test_verify_passes_an_intact_ledger_and_names_what_broke(
    store: EventStore, tmp_path: Path
) -> None:
    await _history_around_the_signing(store)
    live = live_path(tmp_path)
    await rebuild(store, live, progress=False)

    report = await verify(store, KeyRegistry(), live)
    assert report.ok
    assert (report.events, report.activities, report.compared_at) == (4, 2, 4)

    # A figure changed behind the ledger's back in the live projection.
    conn = open_writer(live)
    conn.execute(
        "UPDATE by_country SET total = 999 WHERE country = 'KAZ' AND metric = 'people_trained'"
    )
    conn.close()
    # An event published raw with an altered body and the original hash.
    first = (await store.load("KAZ-TRAINING-1")).events[0].event
    forged = msgspec.structs.replace(
        first, payload=msgspec.structs.replace(first.payload, activity_id="KAZ-FORGED")
    )
    await store.js.publish(
        store.ns.activity("HQ", "KAZ-FORGED"), encode(forged), headers=headers_for(forged)
    )

    report = await verify(store, KeyRegistry(), live)

    assert not report.ok
    assert [(f.sequence, f.check) for f in report.failures] == [(5, "hash")]
    assert [(d.table, d.only_live, d.only_rebuilt) for d in report.differences] == [
        ("by_country", 1, 1)
    ]
    assert report.compared_at == 4  # the live projection had not applied sequence 5


async def test_export_import_and_rebuild_give_identical_projections(
    store: EventStore, nc: NATS, tmp_path: Path
) -> None:
    await _history_around_the_signing(store)
    for i in range(30):
        shared = [CountryShare("KAZ", 60.0), CountryShare("UZB", 40.0)] if i % 3 else []
        await store.append(sealed(make_reported(activity_id=f"A-{i}", countries=shared)), 0)
    original = await rebuild(store, live_path(tmp_path / "original"), progress=False)
    archive = tmp_path / "ledger.jsonl.gz"
    await export_log(store, archive, seed=new_key_pair()[0])

    restored_store = EventStore(nc, Namespace.for_tests(store.ns.stream.lower() + "r"))
    await restored_store.ensure_stream()
    await import_log(restored_store, archive, rules=ImportRules(KeyRegistry()))
    restored = await rebuild(restored_store, live_path(tmp_path / "restored"), progress=False)

    conn = sqlite3.connect(f"file:{original.path}?mode=ro", uri=True)
    conn.execute("ATTACH DATABASE ? AS restored", (f"file:{restored.path}?mode=ro",))
    differences = compare_projections(conn, "main", "restored")
    # The checkpoint keeps the stream's time of its last event, which an import cannot carry
    # over; its sequence must match, and every other table row for row.
    assert [d.table for d in differences] in ([], ["checkpoint"])
    assert restored.checkpoint == original.checkpoint == 34
    conn.close()
