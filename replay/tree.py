"""The stream's Merkle tree on disk: every stored hash of events/tlog.py, in one SQLite file.

Leaf i is the exact payload of stream sequence i + 1, whatever its subject (activity events,
releases, checkpoints). The notary (services/notary) appends each message as it reads the
stream, so the tree is never recomputed to grow; a root or a proof then reads O(log n) of the
stored hashes. The file is derived data, like a projection: :func:`replay.logcheck.check_log`
recomputes the tree from the stream and compares, and a lost file is rebuilt by reading the
stream again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple
from urllib.request import pathname2url

from events.errors import LedgerError
from events.stored import RawMessage
from events.tlog import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    stored_hash_count,
    stored_hash_index,
    stored_hashes_for_leaf_hash,
    tree_hash,
)
from projections.errors import BadParameterError

__all__ = ["TreeGapError", "TreeLocation", "TreeStore", "tree_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    position INTEGER PRIMARY KEY,   -- events/tlog.py's stored_hash_index
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tree (
    stream TEXT NOT NULL,           -- the stream whose messages are the leaves
    leaves INTEGER NOT NULL         -- how many: the tree covers sequences 1..leaves
);
"""


def tree_path(data_dir: Path, stream: str) -> Path:
    """Where a data directory keeps the Merkle tree of the stream ``stream``."""
    return Path(data_dir) / "tree" / f"{stream}.db"


class TreeLocation(NamedTuple):
    """Where a stream's tree is kept, and which stream it is of: what a reader opens."""

    path: Path
    stream: str


class TreeGapError(LedgerError):
    """A message the tree needs next is not what the stream gave: a lost or reordered one."""


class TreeStore:
    """The Merkle tree of one stream, in ``path`` (created when ``writer``)."""

    def __init__(self, path: Path, stream: str, *, writer: bool = False) -> None:
        """
        :param path: the tree's file, e.g. ``<data dir>/tree.db``.
        :param stream: the stream's name; a file of another stream's tree is refused.
        :param writer: open read-write (the notary); readers open it read-only.
        :raises FileNotFoundError: for a reader, when there is no tree yet.
        :raises TreeGapError: when the file holds another stream's tree.
        """
        self.path = Path(path)
        self.stream = stream
        if writer:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.executescript(_SCHEMA)
            if self.conn.execute("SELECT 1 FROM tree").fetchone() is None:
                self.conn.execute("INSERT INTO tree VALUES (?, 0)", (stream,))
        else:
            if not self.path.exists():
                raise FileNotFoundError(f"no Merkle tree at {self.path} yet; `ledger up` makes it")
            self.conn = sqlite3.connect(f"file:{pathname2url(str(self.path))}?mode=ro", uri=True)
        self.conn.execute("PRAGMA busy_timeout = 10000")
        (kept,) = self.conn.execute("SELECT stream FROM tree").fetchone()
        if kept != stream:
            raise TreeGapError(f"{self.path} holds the tree of stream {kept}, not {stream}")

    def close(self) -> None:
        """Close the file."""
        self.conn.close()

    def renew(self) -> TreeStore:
        """Put this file aside as ``<name>.stale`` and open an empty tree in its place (the
        writer's; this one is closed)."""
        self.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self.path.replace(self.path.with_name(self.path.name + ".stale"))
        return TreeStore(self.path, self.stream, writer=True)

    def size(self) -> int:
        """How many leaves the tree has: the stream's sequences 1..size."""
        (leaves,) = self.conn.execute("SELECT leaves FROM tree").fetchone()
        return int(leaves)

    def read(self, positions: Sequence[int]) -> list[bytes]:
        """The stored hashes at ``positions``, in that order (events/tlog.py's reader)."""
        wanted = list(positions)
        found: dict[int, bytes] = {}
        # SQLite binds at most 32,766 variables; a proof needs a few dozen.
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            found.update(
                self.conn.execute(
                    f"SELECT position, hash FROM hashes WHERE position IN ({marks})", chunk
                )
            )
        missing = [p for p in wanted if p not in found]
        if missing:
            raise TreeGapError(f"{self.path} lacks stored hash {missing[0]}: rebuild the tree")
        return [found[p] for p in wanted]

    def append(self, messages: Sequence[RawMessage]) -> int:
        """Add the next messages of the stream as leaves, in one transaction.

        :returns: the tree's size after.
        :raises TreeGapError: when the messages do not continue the tree, one sequence after
            the other; nothing is added then.
        """
        size = self.size()
        leaves: list[bytes] = []
        for message in messages:
            if message.sequence <= size:
                continue  # already a leaf: a read that overlapped the last one
            expected = size + len(leaves) + 1
            if message.sequence != expected:
                raise TreeGapError(
                    f"stream {self.stream}: sequence {expected} is missing (the next message "
                    f"read is {message.sequence}); the log has lost a message"
                )
            leaves.append(leaf_hash(message.data))
        if not leaves:
            return size
        recent: dict[int, bytes] = {}

        def read(positions: Sequence[int]) -> list[bytes]:
            older = [p for p in positions if p not in recent]
            known = dict(zip(older, self.read(older), strict=True)) if older else {}
            return [recent[p] if p in recent else known[p] for p in positions]

        position = stored_hash_count(size)
        rows = []
        for offset, leaf in enumerate(leaves):
            for stored in stored_hashes_for_leaf_hash(size + offset, leaf, read):
                recent[position] = stored
                rows.append((position, stored))
                position += 1
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany("INSERT INTO hashes VALUES (?, ?)", rows)
            self.conn.execute("UPDATE tree SET leaves = ?", (size + len(leaves),))
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return size + len(leaves)

    def leaf(self, sequence: int) -> bytes:
        """The leaf hash of stream sequence ``sequence``, as the notary read it."""
        self._check_size(sequence, "sequence")
        return self.read([stored_hash_index(0, sequence - 1)])[0]

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree of the first ``size`` leaves (all of them by default)."""
        size = self.size() if size is None else size
        self._check_size(size, "tree_size", zero=True)
        return tree_hash(size, self.read)

    def inclusion(self, sequence: int, size: int | None = None) -> list[bytes]:
        """The audit path of stream sequence ``sequence`` (leaf ``sequence - 1``) in the tree
        of ``size`` leaves (all of them by default)."""
        size = self.size() if size is None else size
        self._check_size(size, "tree_size")
        if not 1 <= sequence <= size:
            raise BadParameterError(
                "sequence", f"must be 1..{size} (the tree's size), not {sequence}"
            )
        return inclusion_proof(sequence - 1, size, self.read)

    def consistency(self, first: int, second: int | None = None) -> list[bytes]:
        """The proof that the tree of ``second`` leaves extends the one of ``first``."""
        second = self.size() if second is None else second
        self._check_size(second, "second")
        if not 1 <= first <= second:
            raise BadParameterError("first", f"must be 1..{second} (second), not {first}")
        return consistency_proof(first, second, self.read)

    def _check_size(self, size: int, name: str, *, zero: bool = False) -> None:
        leaves = self.size()
        if not (0 if zero else 1) <= size <= leaves:
            raise BadParameterError(
                name, f"must be {0 if zero else 1}..{leaves} (the tree's size), not {size}"
            )
