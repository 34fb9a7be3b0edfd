"""Auditors' tools on the log itself: history, tamper evidence, export and import."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client as NATS

from events.codec import encode, headers_for
from events.envelope import Envelope
from events.integrity import content_hash
from events.keys import KeyRegistry
from events.signing import new_key_pair, sign_hash
from events.store import EventStore
from events.subjects import Namespace
from replay.archive import export_log, import_log
from replay.archive_check import ArchiveError, ImportRules
from replay.chain import ChainChecker, Failure
from replay.history import FieldChange, activity_history
from tests.factories import make_reported, make_revised, make_withdrawn, sealed


async def _report_revise_withdraw(store: EventStore) -> list[Envelope]:
    reported = sealed(make_reported())
    revised = sealed(make_revised(metrics={"people_trained": 600}, year=2021), prev=reported.hash)
    withdrawn = sealed(make_withdrawn(), prev=revised.hash)
    seq = 0
    for event in (reported, revised, withdrawn):
        seq = (await store.append(event, seq)).sequence
    return [reported, revised, withdrawn]


async def _check_all(store: EventStore, registry: KeyRegistry) -> list[Failure]:
    checker = ChainChecker(registry)
    failures: list[Failure] = []
    async for batch in store.read_raw():
        for raw in batch:
            record = store.decode(raw)
            failures += checker.check(record.sequence, record.subject, record.event, raw.data)
    return failures


async def test_history_lists_who_changed_what_and_why(store: EventStore) -> None:
    events = await _report_revise_withdraw(store)

    history = await activity_history(store, "KAZ-TRAINING-1")

    assert [h.type for h in history] == ["ActivityReported", "ActivityRevised", "ActivityWithdrawn"]
    assert [h.version for h in history] == [1, 2, 3]
    assert [h.event_id for h in history] == [e.event_id for e in events]
    assert FieldChange("metrics", None, {"people_trained": 571}) in history[0].changes
    assert history[1].changes == [
        FieldChange("year", 2020, 2021),
        FieldChange("metrics", {"people_trained": 571}, {"people_trained": 600}),
    ]
    assert history[1].reason == "corrected against the final attendance list"
    assert history[2].changes == [FieldChange("status", "active", "withdrawn")]
    assert history[2].actor == "test@example.org"


async def test_an_intact_log_has_no_failures(store: EventStore) -> None:
    await _report_revise_withdraw(store)
    assert await _check_all(store, KeyRegistry()) == []


async def test_tampering_is_detected_and_named_by_sequence(store: EventStore) -> None:
    good = await _report_revise_withdraw(store)
    ns = store.ns

    # 1. Published raw, bypassing intake: the body altered, the hash copied from the original.
    forged = msgspec.structs.replace(
        good[0], payload=msgspec.structs.replace(good[0].payload, activity_id="COPY", title="x")
    )
    forged = msgspec.structs.replace(forged, event_id="forged-1")
    await store.js.publish(ns.activity("HQ", "COPY"), encode(forged), headers=headers_for(forged))

    # 2. A broken prev link: a revision that claims to follow nothing.
    orphan = sealed(make_revised("COPY", title="y"), prev="0" * 64)
    await store.js.publish(ns.activity("HQ", "COPY"), encode(orphan), headers=headers_for(orphan))

    # 3. Signed with another office's key.
    kaz_seed, kaz_public = new_key_pair()
    vnm_seed, vnm_public = new_key_pair()
    registry = KeyRegistry({"KAZ": [kaz_public], "VNM": [vnm_public]})
    report = sealed(make_reported(activity_id="KAZ-2", office="KAZ"), office="KAZ")
    wrongly_signed = msgspec.structs.replace(
        report, signature=sign_hash(vnm_seed, content_hash(report))
    )
    await store.append(wrongly_signed, 0)
    rightly = sealed(make_reported(activity_id="KAZ-3", office="KAZ"), office="KAZ")
    rightly = msgspec.structs.replace(rightly, signature=sign_hash(kaz_seed, content_hash(rightly)))
    await store.append(rightly, 0)

    failures = await _check_all(store, registry)

    assert [(f.sequence, f.check) for f in failures] == [(4, "hash"), (5, "prev"), (6, "signature")]
    assert failures[2].message == "not signed by a key registered for office KAZ"


async def test_export_import_round_trip_keeps_ids_order_and_sequences(
    store: EventStore, nc: NATS, tmp_path: Path
) -> None:
    await _report_revise_withdraw(store)
    for i in range(20):
        await store.append(sealed(make_reported(activity_id=f"A-{i}")), 0)
    await store.js.publish(store.ns.activity("HQ", "JUNK"), b"\xff not json")
    archive = tmp_path / "ledger.jsonl.gz"

    exported = await export_log(store, archive, seed=new_key_pair()[0])

    fresh = EventStore(nc, Namespace.for_tests(store.ns.stream.lower() + "copy"))
    await fresh.ensure_stream()
    # The junk message is no event: only an explicit allowance carries it over.
    rules = ImportRules(KeyRegistry(), allow_non_events=True)
    imported = await import_log(fresh, archive, rules=rules)

    assert exported.count == imported.count == imported.written == 24
    assert imported.non_events == 1
    original = [
        (r.sequence, r.subject.split(".", 1)[1], r.data) async for b in store.read_raw() for r in b
    ]
    copy = [
        (r.sequence, r.subject.split(".", 1)[1], r.data) async for b in fresh.read_raw() for r in b
    ]
    assert [(s, d) for s, _, d in copy] == [(s, d) for s, _, d in original]

    with pytest.raises(ArchiveError, match="already holds 24 messages"):
        await import_log(fresh, archive, rules=rules)


async def test_an_altered_archive_is_refused_before_anything_is_written(
    store: EventStore, nc: NATS, tmp_path: Path
) -> None:
    await _report_revise_withdraw(store)
    archive = tmp_path / "ledger.jsonl"
    await export_log(store, archive, seed=new_key_pair()[0])
    lines = archive.read_text().splitlines()
    second = json.loads(lines[1])
    second["event"]["payload"]["changes"]["metrics"]["people_trained"] = 6000
    lines[1] = json.dumps(second)
    archive.write_text("\n".join(lines) + "\n")

    fresh = EventStore(nc, Namespace.for_tests(store.ns.stream.lower() + "bad"))
    await fresh.ensure_stream()
    with pytest.raises(ArchiveError, match=r"ledger.jsonl:2: event.hash: sequence 2"):
        await import_log(fresh, archive, rules=ImportRules(KeyRegistry()))
    assert await fresh.last_sequence() == 0


def test_a_gzip_archive_is_really_compressed(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"{}\n")
    assert path.read_bytes()[:2] == b"\x1f\x8b"
