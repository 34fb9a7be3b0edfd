"""The first schema evolution against a real nats-server: a log whose older events were stored
at version 1 (one ``source``, no roles, no ``part_of``) and whose later ones at version 2
replays, rebuilds and verifies as if it had been written at version 2 throughout; the stored
bytes of the old events are never touched."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import msgspec

from events.codec import HEADER_TYPE, HEADER_VERSION, encode, headers_for
from events.envelope import Envelope
from events.keys import KeyRegistry
from events.model import ActivityChanges, ActivityRevised, CountryShare, Source
from events.signing import new_key_pair
from events.store import EventStore
from events.subjects import Namespace
from projections.db import open_reader
from replay.archive import export_log, import_log
from replay.archive_check import ImportRules
from replay.rebuild import build_projection
from replay.verify import verify
from tests.factories import make_reported, sealed
from tests.integration.test_bulk_rebuild import live_rows

COMPARED = ["activity_countries", "reported", "by_country", "by_programme", "totals"]
"""The tables whose rows do not hold hashes (the activity's state keeps its last hash, which
differs between a version 1 body and a version 2 one by design)."""


def as_version_1(envelope: Envelope[Any], prev: str) -> bytes:
    """The event as a version 1 writer stored it, sealed with its own hash."""
    body = msgspec.to_builtins(envelope)
    body["version"] = 1
    payload = body["payload"]
    if envelope.type == "ActivityReported":
        sources = payload.pop("sources")
        payload["source"] = sources[0] if sources else None
        payload.pop("part_of")
        for place in payload["countries"]:
            place.pop("role")
    elif envelope.type == "ActivityRevised" and "sources" in payload["changes"]:
        sources = payload["changes"].pop("sources")
        payload["changes"]["source"] = sources[0] if sources else None
    body["prev"] = prev
    del body["hash"], body["signature"]
    body["hash"] = hashlib.sha256(msgspec.json.encode(body, order="sorted")).hexdigest()
    body["signature"] = ""
    return msgspec.json.encode(body)


def history() -> list[tuple[Any, bool]]:
    """(payload, stored at version 1?) in stream order."""
    doc = "SG report 2021 (A/76, item 109)"
    return [
        (make_reported(activity_id="A"), True),
        (
            make_reported(
                activity_id="B",
                countries=[CountryShare("KAZ", 60.0), CountryShare("UZB", 40.0)],
                metrics={"people_trained": 100, "countries_assisted": 7},
                sources=[Source(doc, 61)],
            ),
            True,
        ),
        (
            ActivityRevised(
                activity_id="A",
                changes=ActivityChanges(metrics={"people_trained": 600}, sources=[Source(doc, 31)]),
                reason="final list",
            ),
            True,
        ),
        # Written after the upgrade: a venue, two sources, a part of another activity.
        (
            ActivityRevised(
                activity_id="B",
                changes=ActivityChanges(
                    countries=[
                        CountryShare("AUT", role="venue"),
                        CountryShare("KAZ", 60.0),
                        CountryShare("UZB", 40.0),
                    ],
                    sources=[Source(doc, 61), Source(doc, 62)],
                ),
                reason="held in Vienna; cited again in para 62",
            ),
            False,
        ),
        (make_reported(activity_id="C", part_of="A", metrics={"people_trained": 50}), False),
    ]


async def publish(store: EventStore, old: bool) -> None:
    """The history into the store: with its first events at version 1 when ``old``."""
    last_hash: dict[str, str] = {}
    for payload, at_version_1 in history():
        prev = last_hash.get(payload.activity_id, "")
        envelope = sealed(payload, prev=prev)
        if old and at_version_1:
            data = as_version_1(envelope, prev)
            headers = {HEADER_TYPE: envelope.type, HEADER_VERSION: "1"}
        else:
            data, headers = encode(envelope), headers_for(envelope)
        await store.js.publish(store.ns.activity("HQ", payload.activity_id), data, headers=headers)
        last_hash[payload.activity_id] = msgspec.json.decode(data)["hash"]


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = open_reader(path)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in COMPARED}
    finally:
        conn.close()


async def test_a_mixed_log_rebuilds_as_if_written_at_version_2_and_verifies(
    store: EventStore, tmp_path: Path
) -> None:
    await publish(store, old=True)
    stored = [raw async for batch in store.read_raw() for raw in batch]
    assert [raw.headers[HEADER_VERSION] for raw in stored if raw.headers] == [
        "1",
        "1",
        "1",
        "2",
        "2",
    ]
    # Every reader sees version 2: one source became a list.
    first = store.decode(stored[0]).event
    assert first.version == 2
    assert [(s.document, s.paragraph) for s in first.payload.sources] == [
        ("SG report 2021 (A/76, item 109)", 30)
    ]

    mixed = tmp_path / "mixed.db"
    await build_projection(store, mixed)
    fresh = EventStore(store.nc, Namespace.for_tests("written_at_v2"))
    await fresh.ensure_stream()
    await publish(fresh, old=False)
    written = tmp_path / "v2.db"
    await build_projection(fresh, written)
    assert rows(mixed) == rows(written)

    live = tmp_path / "live.db"
    await live_rows(store, live)
    report = await verify(store, KeyRegistry(), live)
    assert report.failures == [] and report.differences == []
    assert report.events == 5

    conn = open_reader(mixed)
    # The venue counts nowhere; the part counts only in the whole (A's 600).
    assert conn.execute(
        "SELECT country FROM activity_countries WHERE activity_id = 'B'"
    ).fetchall() == [
        ("KAZ",),
        ("UZB",),
    ]
    assert conn.execute("SELECT total FROM totals WHERE metric = 'people_trained'").fetchone() == (
        700.0,
    )
    conn.close()


async def test_a_mixed_log_survives_export_and_import_log_byte_for_byte(
    store: EventStore, tmp_path: Path
) -> None:
    await publish(store, old=True)
    archive = tmp_path / "mixed.jsonl"
    seed = new_key_pair()[0]
    await export_log(store, archive, seed=seed)
    target = EventStore(store.nc, Namespace.for_tests(f"imported_{uuid.uuid4().hex[:8]}"))
    await target.ensure_stream()
    report = await import_log(target, archive, rules=ImportRules(KeyRegistry()))
    assert report.written == 5

    def stored(messages: list[Any]) -> list[tuple[int, bytes, str | None]]:
        return [(m.sequence, m.data, (m.headers or {}).get(HEADER_VERSION)) for m in messages]

    before = [raw async for batch in store.read_raw() for raw in batch]
    after = [raw async for batch in target.read_raw() for raw in batch]
    # The version 1 events stay version 1, bytes and header alike: their hashes still hold.
    assert stored(after) == stored(before)
    assert [version for _, _, version in stored(after)] == ["1", "1", "1", "2", "2"]
    live = tmp_path / "imported.db"
    await live_rows(target, live)
    checked = await verify(target, KeyRegistry(), live)
    assert checked.failures == [] and checked.differences == []
