"""The notary against a real nats-server: the tree covers every stored message, checkpoints are
signed notes on the stream, and proofs from the tree verify against them (and over HTTP).

Expected roots come from a plain RFC 6962 MTH written here over the payloads the stream holds,
not from the tree under test.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path

import httpx
import msgspec
import pytest

from events.checkpoint import KEY_NAME, open_note, origin_of
from events.signing import new_key_pair, public_key_of
from events.store import EventStore
from events.stored import RawMessage
from events.tlog_verify import ProofError
from projections.db import open_writer
from replay.proofs import (
    ConsistencyProof,
    InclusionProof,
    check_consistency,
    check_inclusion,
    consistency_of,
    inclusion_of,
)
from replay.source import StreamSource
from replay.tree import TreeGapError, TreeLocation, TreeStore
from services.api.app import create_app
from services.notary.service import Notary
from tests.factories import make_reported, sealed


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, as written there."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


async def _payloads(store: EventStore) -> list[RawMessage]:
    return [m async for batch in store.read_raw(subjects=store.ns.everything) for m in batch]


async def _report(store: EventStore, count: int, start: int = 0) -> None:
    for index in range(start, start + count):
        event = sealed(make_reported(activity_id=f"KAZ-NOTARY-{index}"), office="KAZ")
        await store.append(event, 0)


@pytest.fixture
def seed() -> str:
    return new_key_pair()[0]


async def test_tree_and_checkpoints_cover_every_stored_message(
    store: EventStore, tmp_path: Path, seed: str
) -> None:
    tree = TreeStore(tmp_path / "tree.db", store.ns.stream, writer=True)
    notary = Notary(store, StreamSource(store), tree, seed, sign_every=0)
    await _report(store, 5)
    assert await notary.step() == 5
    first = await notary.sign()
    assert first is not None and first.size == 5
    # Nothing new but the checkpoint itself: no second checkpoint.
    assert await notary.step() == 1
    assert await notary.sign() is None
    await _report(store, 4, start=5)
    assert await notary.step() == 4
    second = await notary.sign()
    assert second is not None and second.size == 10  # 5 events, a checkpoint, 4 events
    await notary.step()

    messages = await _payloads(store)
    assert [m.sequence for m in messages] == list(range(1, 12))
    payloads = [m.data for m in messages]
    assert tree.size() == 11
    assert tree.root() == _mth(payloads)

    notes = [m for m in messages if m.subject == store.ns.checkpoints]
    assert [m.sequence for m in notes] == [6, 11]
    public = public_key_of(seed)
    opened = [open_note(m.data, KEY_NAME, public) for m in notes]
    assert [c.size for c in opened] == [5, 10]
    assert [c.root for c in opened] == [_mth(payloads[:5]), _mth(payloads[:10])]
    assert {c.origin for c in opened} == {origin_of(store.ns, public)}

    # Every event is provably in each checkpoint's tree, and the second extends the first.
    for checkpoint in opened:
        for sequence in range(1, checkpoint.size + 1):
            proof = inclusion_of(tree, sequence, checkpoint.size)
            assert (
                base64.b64decode(proof.leaf_hash)
                == hashlib.sha256(b"\x00" + payloads[sequence - 1]).digest()
            )
            check_inclusion(proof, checkpoint.root)
    check_consistency(consistency_of(tree, opened[0].size, opened[1].size))
    tree.close()


async def test_a_proof_against_another_root_fails(
    store: EventStore, tmp_path: Path, seed: str
) -> None:
    tree = TreeStore(tmp_path / "tree.db", store.ns.stream, writer=True)
    await _report(store, 3)
    await Notary(store, StreamSource(store), tree, seed).step()
    proof = inclusion_of(tree, 2, 3)
    with pytest.raises(ProofError, match="root_hash"):
        check_inclusion(proof, root=tree.root(2))
    bent = msgspec.structs.replace(proof, leaf_index=0)
    with pytest.raises(ProofError):
        check_inclusion(bent)
    consistency = consistency_of(tree, 1, 3)
    swapped = ConsistencyProof(
        first=1,
        second=3,
        first_root=consistency.second_root,
        second_root=consistency.first_root,
        proof=consistency.proof,
    )
    with pytest.raises(ProofError):
        check_consistency(swapped)
    tree.close()


def test_a_lost_message_is_named(tmp_path: Path) -> None:
    tree = TreeStore(tmp_path / "tree.db", "S", writer=True)
    tree.append([RawMessage(1, "x", 0, None, b"a"), RawMessage(2, "x", 0, None, b"b")])
    with pytest.raises(TreeGapError, match="sequence 3 is missing"):
        tree.append([RawMessage(4, "x", 0, None, b"d")])
    assert tree.size() == 2  # nothing was added
    # A read that overlaps the tree's end adds only what is new.
    assert tree.append([RawMessage(2, "x", 0, None, b"b"), RawMessage(3, "x", 0, None, b"c")]) == 3
    assert tree.root() == _mth([b"a", b"b", b"c"])
    with pytest.raises(TreeGapError, match="holds the tree of stream S"):
        TreeStore(tmp_path / "tree.db", "OTHER")
    tree.close()


async def test_checkpoint_and_proofs_over_http(
    store: EventStore, tmp_path: Path, seed: str
) -> None:
    tree_file = tmp_path / "tree.db"
    tree = TreeStore(tree_file, store.ns.stream, writer=True)
    notary = Notary(store, StreamSource(store), tree, seed, sign_every=0)
    await _report(store, 6)
    await notary.step()
    await notary.sign()
    await notary.step()
    db = tmp_path / "ledger.db"
    open_writer(db).close()
    # httpx's ASGI transport runs the app on this loop, where the NATS client lives.
    transport = httpx.ASGITransport(
        app=create_app(db, store, tree=TreeLocation(tree_file, store.ns.stream))
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
        answer = await client.get("/v1/checkpoint")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        checkpoint = open_note(answer.content, KEY_NAME, public_key_of(seed))
        assert checkpoint.size == 6

        answer = await client.get("/v1/proofs/inclusion", params={"sequence": 4, "tree_size": 6})
        assert answer.status_code == 200
        proof = InclusionProof(**answer.json())
        assert proof.leaf_index == 3 and proof.tree_size == 6
        check_inclusion(proof, checkpoint.root)

        answer = await client.get("/v1/proofs/consistency", params={"first": 3, "second": 7})
        assert answer.status_code == 200
        check_consistency(ConsistencyProof(**answer.json()))

        answer = await client.get("/v1/proofs/inclusion", params={"sequence": 9})
        assert answer.status_code == 400
        assert answer.json()["field"] == "sequence"
        answer = await client.get("/v1/proofs/inclusion", params={"sequence": 2, "tree_size": 99})
        assert answer.status_code == 400
        assert answer.json()["field"] == "tree_size"
        answer = await client.get("/v1/proofs/consistency", params={"first": 0})
        assert answer.status_code == 400
    tree.close()

    # A server without the tree says so.
    transport = httpx.ASGITransport(app=create_app(db, store))
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
        answer = await client.get("/v1/proofs/inclusion", params={"sequence": 1})
        assert answer.status_code == 503


async def test_a_tree_of_another_history_is_put_aside_and_made_again(
    store: EventStore, tmp_path: Path, seed: str
) -> None:
    tree_file = tmp_path / "tree.db"
    tree = TreeStore(tree_file, store.ns.stream, writer=True)
    # A tree of another stream of the same name: three leaves this stream never held.
    tree.append([RawMessage(i, "x", 0, None, b"elsewhere %d" % i) for i in (1, 2, 3)])
    await _report(store, 4)
    notary = Notary(store, StreamSource(store), tree, seed)
    await notary.reconcile()
    assert notary.tree.size() == 0
    assert (tmp_path / "tree.db.stale").exists()
    await notary.step()
    assert notary.tree.root() == _mth([m.data for m in await _payloads(store)])
    notary.tree.close()


async def test_a_tree_of_this_history_is_kept(store: EventStore, tmp_path: Path, seed: str) -> None:
    tree = TreeStore(tmp_path / "tree.db", store.ns.stream, writer=True)
    await _report(store, 3)
    notary = Notary(store, StreamSource(store), tree, seed)
    await notary.step()
    await notary.reconcile()
    assert notary.tree is tree and tree.size() == 3
    tree.close()


async def test_the_running_notary_follows_the_stream_and_signs(
    store: EventStore, tmp_path: Path, seed: str
) -> None:
    tree = TreeStore(tmp_path / "tree.db", store.ns.stream, writer=True)
    await _report(store, 2)  # before it starts: caught up by the bulk read
    notary = Notary(store, StreamSource(store), tree, seed, sign_every=0.1)
    stop = asyncio.Event()
    running = asyncio.create_task(notary.run(stop))
    await _report(store, 3, start=2)  # while it runs: followed
    public = public_key_of(seed)
    for _ in range(200):
        messages = await _payloads(store)
        last_event = max(m.sequence for m in messages if m.subject != store.ns.checkpoints)
        notes = [m for m in messages if m.subject == store.ns.checkpoints]
        if notes and open_note(notes[-1].data, KEY_NAME, public).size >= last_event:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("no checkpoint covers the 5 events")
    assert last_event >= 5
    stop.set()
    await asyncio.wait_for(running, 10)
    messages = await _payloads(store)
    # Every message is a leaf (the last checkpoint, too, once followed), and the root is the
    # RFC's over them.
    assert tree.size() in (len(messages) - 1, len(messages))
    assert tree.root() == _mth([m.data for m in messages[: tree.size()]])
    tree.close()
