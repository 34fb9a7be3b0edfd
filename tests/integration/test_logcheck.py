"""The log check of ``ledger verify`` against a real nats-server: an intact log passes, and each
kind of tampering is caught and named.

- a message deleted (on a stream made without ``deny_delete``, as the ledger never makes one);
- the past rewritten: the stream replaced by one whose third message differs, as an import of
  another history would leave it, checked with the notary's tree and a checkpoint kept earlier;
- the log cut short: the stream replaced by one without its last messages;
- a checkpoint that another key signed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from events.checkpoint import KEY_NAME, Checkpoint, origin_of, sign
from events.envelope import Envelope
from events.signing import new_key_pair, public_key_of
from events.store import EventStore
from replay.logcheck import RightEdge, check_log
from replay.source import StreamSource
from replay.tree import TreeStore
from services.notary.service import Notary
from tests.factories import make_reported, sealed


def _events(ids: list[str]) -> list[Envelope[Any]]:
    return [sealed(make_reported(activity_id=i), office="KAZ") for i in ids]


async def _report(store: EventStore, ids: list[str] | list[Envelope[Any]]) -> None:
    for item in ids:
        await store.append(item if isinstance(item, Envelope) else _events([item])[0], 0)


async def _notarised(store: EventStore, tree_file: Path, seed: str) -> Checkpoint:
    tree = TreeStore(tree_file, store.ns.stream, writer=True)
    notary = Notary(store, StreamSource(store), tree, seed, sign_every=0)
    await notary.step()
    checkpoint = await notary.sign()
    await notary.step()
    tree.close()
    assert checkpoint is not None
    return checkpoint


async def _check(store: EventStore, seed: str, **kwargs):
    return await check_log(StreamSource(store), [public_key_of(seed)], **kwargs)


async def _replace_stream(store: EventStore, *, deny_delete: bool = True) -> None:
    """The stream deleted and made again empty, with the same name and subjects."""
    await store.js.delete_stream(store.ns.stream)
    config = store.stream_config()
    config.deny_delete = deny_delete
    config.deny_purge = deny_delete
    await store.js.add_stream(config)


def test_the_right_edge_gives_rfc_6962_roots() -> None:
    # Roots of the first sizes of the tree of "", 0x00, 0x10, ... (RFC 6962 test data, as
    # Certificate Transparency's and Go's sumdb/tlog tests use it).
    leaves = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031")]
    expected = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    ]
    edge = RightEdge()
    assert edge.root() == hashlib.sha256(b"").digest()
    for leaf, root in zip(leaves, expected, strict=True):
        edge.add(hashlib.sha256(b"\x00" + leaf).digest())
        assert edge.root().hex() == root


async def test_an_intact_log_passes_and_extends_a_kept_checkpoint(
    store: EventStore, tmp_path: Path
) -> None:
    seed = new_key_pair()[0]
    await _report(store, ["A-1", "A-2", "A-3"])
    kept = await _notarised(store, tmp_path / "tree.db", seed)
    await _report(store, ["A-4", "A-5"])
    later = await _notarised(store, tmp_path / "tree.db", seed)
    tree = TreeStore(tmp_path / "tree.db", store.ns.stream)
    report = await _check(store, seed, given=kept, tree=tree)
    tree.close()
    assert report.failures == []
    assert report.leaves == 3 + 1 + 2 + 1  # events, checkpoint, events, checkpoint
    assert report.checkpoints == 2
    assert report.extends == 3
    assert report.tree_compared
    assert later.size == 6


async def test_a_deleted_message_is_named(store: EventStore, tmp_path: Path) -> None:
    seed = new_key_pair()[0]
    await _replace_stream(store, deny_delete=False)
    await _report(store, ["B-1", "B-2", "B-3", "B-4"])
    kept = await _notarised(store, tmp_path / "tree.db", seed)
    await store.js.delete_msg(store.ns.stream, 3)
    report = await _check(store, seed, given=kept)
    assert not report.ok
    assert any("sequence 3 is missing" in failure for failure in report.failures)


async def test_a_rewritten_past_is_named_at_its_first_changed_message(
    store: EventStore, tmp_path: Path
) -> None:
    seed = new_key_pair()[0]
    events = _events(["C-1", "C-2", "C-3", "C-4"])
    await _report(store, events)
    kept = await _notarised(store, tmp_path / "tree.db", seed)
    # Another history under the same name: the same events but the third.
    await _replace_stream(store)
    await _report(store, [*events[:2], *_events(["C-X"]), events[3]])
    await store.js.publish(store.ns.checkpoints, b"not a note")  # and a forged checkpoint
    tree = TreeStore(tmp_path / "tree.db", store.ns.stream)
    report = await _check(store, seed, given=kept, tree=tree)
    tree.close()
    assert not report.ok
    failures = "\n".join(report.failures)
    assert "sequence 3: its stored bytes are not those the notary hashed" in failures
    assert "today's log does not extend it" in failures
    assert "checkpoint at sequence 5" in failures


async def test_a_log_cut_short_is_caught(store: EventStore, tmp_path: Path) -> None:
    seed = new_key_pair()[0]
    events = _events(["D-1", "D-2", "D-3"])
    await _report(store, events)
    kept = await _notarised(store, tmp_path / "tree.db", seed)
    await _replace_stream(store)
    await _report(store, events[:2])  # the last event gone, as if never reported
    report = await _check(store, seed, given=kept)
    assert any("messages were removed" in failure for failure in report.failures)


async def test_a_checkpoint_of_another_key_fails(store: EventStore) -> None:
    seed, other = new_key_pair()[0], new_key_pair()[0]
    await _report(store, ["E-1"])
    forged = sign(
        Checkpoint(origin=origin_of(store.ns, public_key_of(seed)), size=1, root=b"\0" * 32),
        KEY_NAME,
        other,
    )
    await store.js.publish(store.ns.checkpoints, forged.encode())
    report = await _check(store, seed)
    assert len(report.failures) == 1
    assert "checkpoint at sequence 2" in report.failures[0]
