"""Export and import-log carry the whole stream: events, a release and the notary's signed
checkpoints, byte for byte at their sequences, so the imported log has the same Merkle tree
and its checkpoints still verify. An archive whose messages are not those its checkpoints
signed is refused, naming the checkpoint.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client as NATS

from events.envelope import seal
from events.keys import KeyRegistry
from events.model import FiguresReleased
from events.signing import new_key_pair, public_key_of
from events.store import EventStore
from events.subjects import Namespace
from replay.archive import export_log, import_log
from replay.archive_check import ArchiveRejectedError, ImportRules
from replay.logcheck import check_log
from replay.manifest import Manifest, file_digest, manifest_path, sign_manifest, write_manifest
from replay.source import StreamSource
from replay.tree import TreeStore
from services.notary.service import Notary
from tests.factories import make_reported, sealed


async def _fresh(nc: NATS) -> EventStore:
    store = EventStore(nc, Namespace.for_tests(uuid.uuid4().hex[:12]))
    await store.ensure_stream()
    return store


async def _messages(store: EventStore) -> list[tuple[int, str, bytes]]:
    prefix = store.ns.prefix
    return [
        (m.sequence, m.subject.removeprefix(prefix), m.data)
        async for batch in store.read_raw(subjects=store.ns.everything)
        for m in batch
    ]


async def _history(store: EventStore, tmp_path: Path, seed: str) -> None:
    """Three reports, a checkpoint, a release, a report, a checkpoint."""
    tree = TreeStore(tmp_path / "tree.db", store.ns.stream, writer=True)
    notary = Notary(store, StreamSource(store), tree, seed, sign_every=0)
    for index in range(3):
        await store.append(sealed(make_reported(activity_id=f"X-{index}"), office="KAZ"), 0)
    await notary.step()
    await notary.sign()
    release = seal(
        FiguresReleased(name="R-1", sequence=3, digest="0" * 64, note="as published"),
        office="HQ",
        actor="test",
    )
    await store.append_release(release)
    await store.append(sealed(make_reported(activity_id="X-3"), office="KAZ"), 0)
    await notary.step()
    await notary.sign()
    tree.close()


async def test_an_export_carries_releases_and_checkpoints_byte_for_byte(
    nc: NATS, store: EventStore, tmp_path: Path
) -> None:
    seed = new_key_pair()[0]
    await _history(store, tmp_path, seed)
    archive = tmp_path / "log.jsonl"
    manifest = await export_log(store, archive, seed=seed)
    assert manifest.count == 3 + 1 + 1 + 1 + 1

    target = await _fresh(nc)
    report = await import_log(target, archive, rules=ImportRules(KeyRegistry()))
    assert report.written == 7
    assert report.checkpoints == 2
    assert await _messages(target) == await _messages(store)
    # The same tree, so the exporter's checkpoints verify on the imported log.
    checked = await check_log(StreamSource(target), [public_key_of(seed)])
    original = await check_log(StreamSource(store), [public_key_of(seed)])
    assert checked.failures == []
    assert checked.checkpoints == 2
    assert checked.root == original.root


async def test_an_archive_that_is_not_what_its_checkpoints_signed_is_refused(
    store: EventStore, nc: NATS, tmp_path: Path
) -> None:
    seed = new_key_pair()[0]
    await _history(store, tmp_path, seed)
    archive = tmp_path / "log.jsonl"
    await export_log(store, archive, seed=seed)
    lines = archive.read_text().splitlines()
    # The second report taken out and the rest moved up: every chain still holds (each
    # activity has one event), but the checkpoint of 3 messages no longer matches.
    kept = [json.loads(line) for number, line in enumerate(lines, start=1) if number != 2]
    for sequence, line in enumerate(kept, start=1):
        line["sequence"] = sequence
    archive.write_text("".join(json.dumps(line) + "\n" for line in kept))
    _resign(archive, seed)

    with pytest.raises(ArchiveRejectedError) as refused:
        await import_log(await _fresh(nc), archive, rules=ImportRules(KeyRegistry()))
    assert refused.value.field == "checkpoint"
    assert "it signs a tree of 3 messages, but only 2 come before it" in str(refused.value)

    # The first two reports swapped: as many messages, every chain holds, another tree.
    first, second = json.loads(lines[0]), json.loads(lines[1])
    first["sequence"], second["sequence"] = 2, 1
    archive.write_text(
        "".join(f"{line}\n" for line in [json.dumps(second), json.dumps(first), *lines[2:]])
    )
    _resign(archive, seed)
    with pytest.raises(ArchiveRejectedError) as refused:
        await import_log(await _fresh(nc), archive, rules=ImportRules(KeyRegistry()))
    assert refused.value.field == "checkpoint"
    assert refused.value.line == 4
    assert "first 3 messages are not those it signed" in str(refused.value)


async def test_checkpoints_signed_by_another_key_than_the_exporters_are_refused(
    store: EventStore, nc: NATS, tmp_path: Path
) -> None:
    seed, forger = new_key_pair()[0], new_key_pair()[0]
    await _history(store, tmp_path, seed)
    archive = tmp_path / "log.jsonl"
    await export_log(store, archive, seed=seed)
    _resign(archive, forger)  # the manifest now says another ledger exported it

    with pytest.raises(ArchiveRejectedError) as refused:
        await import_log(await _fresh(nc), archive, rules=ImportRules(KeyRegistry()))
    assert refused.value.field == "checkpoint"
    assert refused.value.line == 4


def _resign(archive: Path, seed: str) -> None:
    old = msgspec.json.decode(manifest_path(archive).read_bytes(), type=Manifest)
    count = len(archive.read_text().splitlines())
    manifest = sign_manifest(
        msgspec.structs.replace(
            old,
            count=count,
            last_sequence=count,
            sha256=file_digest(archive),
            public_key=public_key_of(seed),
            signature="",
        ),
        seed,
    )
    write_manifest(manifest_path(archive), msgspec.json.encode(manifest))
