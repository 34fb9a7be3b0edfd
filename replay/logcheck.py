"""The log check of ``ledger verify``: the stream's Merkle tree recomputed from the stored bytes,
against every signed checkpoint on the stream and, optionally, one kept from before.

One pass reads every message in order and hashes its payload as a leaf (events/tlog_verify.py),
keeping only the tree's right edge, so memory stays flat. A first, short read of the checkpoint
subject says at which sizes the roots are needed. The check finds:

- a message removed (a sequence missing from the stream);
- a message whose bytes changed since the notary hashed it (its leaf differs from the notary's
  tree file, when there is one: the first such sequence is named), or since a checkpoint was
  signed (that checkpoint's root differs);
- a checkpoint not signed by a trusted ledger key (the ledger's own, or that of a ledger whose
  export it imported), or of a tree larger than the log before it;
- a history served differently from the one a kept checkpoint saw (``given``: its root differs
  from today's tree at its size, or the log is now shorter).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from events.checkpoint import KEY_NAME, Checkpoint, CheckpointError, open_note
from events.tlog import stored_hash_index
from events.tlog_verify import leaf_hash, node_hash
from replay.source import StreamSource
from replay.tree import TreeStore

__all__ = ["LogReport", "RightEdge", "check_log", "open_trusted"]

_EMPTY_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
"""SHA-256 of nothing: the root of the empty tree."""


class RightEdge:
    """A Merkle tree grown one leaf at a time, holding only its complete subtrees' roots."""

    def __init__(self) -> None:
        self.size = 0
        self._edge: list[tuple[int, bytes]] = []  # (leaves under it, hash), largest first

    def add(self, leaf: bytes) -> None:
        """Add a leaf *hash*."""
        self.size += 1
        width, value = 1, leaf
        while self._edge and self._edge[-1][0] == width:
            left_width, left = self._edge.pop()
            width, value = left_width + width, node_hash(left, value)
        self._edge.append((width, value))

    def root(self) -> bytes:
        """The RFC 6962 root of the leaves so far: the subtrees folded from the right."""
        if not self._edge:
            return _EMPTY_ROOT
        value = self._edge[-1][1]
        for _, left in reversed(self._edge[:-1]):
            value = node_hash(left, value)
        return value


@dataclass
class LogReport:
    """What the log check found."""

    leaves: int = 0
    root: str = ""
    """The whole tree's root, hex."""
    checkpoints: int = 0
    """Checkpoints on the stream, each checked."""
    extends: int | None = None
    """The size of the kept checkpoint that today's log was shown to extend, if one was given."""
    tree_compared: bool = False
    """Whether every leaf was compared with the notary's tree file."""
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing failed."""
        return not self.failures


async def check_log(
    source: StreamSource,
    keys: Sequence[str],
    *,
    given: Checkpoint | None = None,
    tree: TreeStore | None = None,
    progress: Callable[[int], None] | None = None,
) -> LogReport:
    """Recompute the stream's tree and check it against its checkpoints (see the module).

    :param keys: the public keys of the notaries trusted to have signed checkpoints: the
        ledger's own, and those of the ledgers whose exports it imported (their checkpoints
        came with their history). Each checkpoint must be signed by one of them, and name it
        in its origin.
    :param given: a checkpoint kept from before (already opened against the key).
    :param tree: the notary's tree file, to name the first message whose bytes changed.
    :param progress: called with the number of messages read so far.
    """
    report = LogReport()
    ns = source.store.ns
    notes: list[tuple[int, Checkpoint]] = []
    async for batch in source.read(1, subjects=ns.checkpoints):
        for message in batch:
            try:
                opened = open_trusted(message.data, keys)
            except CheckpointError as why:
                report.failures.append(f"checkpoint at sequence {message.sequence}: {why}")
                continue
            if opened.size >= message.sequence:
                report.failures.append(
                    f"checkpoint at sequence {message.sequence}: it claims {opened.size} "
                    "leaves, more than the log held before it"
                )
            else:
                notes.append((message.sequence, opened))
    wanted = {checkpoint.size for _, checkpoint in notes}
    if given is not None:
        wanted.add(given.size)
    roots: dict[int, bytes] = {}
    edge = RightEdge()
    bad_leaf: int | None = None
    tree_size = tree.size() if tree is not None else 0
    async for batch in source.read(1, subjects=ns.everything):
        hashes = []
        for message in batch:
            if message.sequence != edge.size + 1:
                report.failures.append(
                    f"sequence {edge.size + 1} is missing from the stream (the next message "
                    f"is {message.sequence}): a message was removed"
                )
                report.leaves = edge.size
                return report
            hashed = leaf_hash(message.data)
            hashes.append(hashed)
            edge.add(hashed)
            if edge.size in wanted:
                roots[edge.size] = edge.root()
        if tree is not None and bad_leaf is None:
            bad_leaf = _first_changed(tree, tree_size, batch[0].sequence, hashes)
        if progress is not None:
            progress(edge.size)
    report.leaves = edge.size
    report.root = edge.root().hex()
    report.tree_compared = tree is not None and tree_size > 0
    if bad_leaf is not None:
        report.failures.append(
            f"sequence {bad_leaf}: its stored bytes are not those the notary hashed; the "
            "message was changed"
        )
    previous: Checkpoint | None = None
    for sequence, checkpoint in notes:
        report.checkpoints += 1
        if roots.get(checkpoint.size) != checkpoint.root:
            report.failures.append(
                f"checkpoint at sequence {sequence} (tree of {checkpoint.size}): its root is not "
                "the root of the stored messages: a message up to it was changed"
            )
        if previous is not None and checkpoint.size < previous.size:
            report.failures.append(
                f"checkpoint at sequence {sequence}: tree of {checkpoint.size}, smaller than "
                f"the one before it ({previous.size})"
            )
        previous = checkpoint
    if given is not None:
        if given.size > edge.size:
            report.failures.append(
                f"--checkpoint: it saw {given.size} messages; the log now has {edge.size}: "
                "messages were removed"
            )
        elif roots.get(given.size) != given.root:
            report.failures.append(
                f"--checkpoint: today's log does not extend it: its first {given.size} "
                "messages are not the ones the checkpoint signed"
            )
        else:
            report.extends = given.size
    return report


def open_trusted(note: bytes, keys: Sequence[str]) -> Checkpoint:
    """The checkpoint in ``note``, signed by one of ``keys`` and naming that key in its
    origin (events/checkpoint.py's :func:`~events.checkpoint.origin_of`).

    :raises CheckpointError: when none of the keys signed it, or its origin names another.
    """
    if not keys:
        raise CheckpointError("no ledger key to check it against: give the ledger's (--key)")
    for key in keys:
        try:
            opened = open_note(note, KEY_NAME, key)
        except CheckpointError as why:
            if "no signature by key" in str(why):
                continue  # another key's note, perhaps
            if "does not verify" in str(why):
                raise CheckpointError(
                    f"{why} (key {key}): the note was changed after it was signed"
                ) from None
            raise  # malformed: the same for every key
        if not opened.origin.endswith(f"/{key}"):
            raise CheckpointError(
                f"origin {opened.origin!r} does not name the key that signed it ({key})"
            )
        return opened
    raise CheckpointError(
        f"not signed by the ledger's key{'s' if len(keys) > 1 else ''} ({', '.join(keys)})"
    )


def _first_changed(tree: TreeStore, tree_size: int, first: int, hashes: list[bytes]) -> int | None:
    """The first sequence from ``first`` whose leaf is not the one the notary stored."""
    count = min(len(hashes), tree_size - first + 1)
    if count <= 0:
        return None
    stored = tree.read([stored_hash_index(0, first - 1 + i) for i in range(count)])
    for offset in range(count):
        if stored[offset] != hashes[offset]:
            return first + offset
    return None
