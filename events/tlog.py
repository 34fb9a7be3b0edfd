"""The ledger's Merkle tree (RFC 6962) over the stream, kept as a flat list of stored hashes.

Leaf ``i`` (from 0) is the stream's message at sequence ``i + 1``. The tree lives in storage as
an append-only sequence of *stored hashes*: for each new leaf, its leaf hash, then the hash of
every complete, power-of-two-aligned subtree that the leaf completes. The hash of level ``L``,
index ``k`` (leaves ``k * 2**L`` up to, not including, ``(k + 1) * 2**L``) thus has a fixed
place in that sequence (:func:`stored_hash_index`), and the storage needs no other index.

Every root and proof is made of such complete subtrees, so it costs O(log n) stored hashes,
which each function asks of a :data:`HashReader` in one call: a SQLite-backed reader answers
with one query.

The verifier's half (hashing, :func:`verify_inclusion`, :func:`verify_consistency`) is in
:mod:`events.tlog_verify`, short enough for an auditor to read; it is re-exported here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from events.tlog_verify import (
    HASH_SIZE,
    ProofError,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "HashReader",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "stored_hash_count",
    "stored_hash_index",
    "stored_hashes",
    "stored_hashes_for_leaf_hash",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]

HashReader = Callable[[Sequence[int]], list[bytes]]
"""Reads stored hashes: given their positions, returns the hashes in the same order."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the tree of no leaves (RFC 6962: the hash of the empty string)."""


def stored_hash_count(n: int) -> int:
    """How many stored hashes the tree of ``n`` leaves has."""
    _check_at_least("n", n, 0)
    # Leaf m stores 1 hash plus one per trailing zero bit of m + 1 (the levels it completes);
    # the trailing zeros of 1..n add up to n - popcount(n), as in Legendre's formula for n!.
    return 2 * n - n.bit_count()


def stored_hash_index(level: int, index: int) -> int:
    """The position in the stored sequence of the hash of subtree ``index`` at ``level``.

    Level 0 holds the leaves; subtree ``index`` of level ``L`` covers leaves
    ``index * 2**L`` to ``(index + 1) * 2**L - 1``.
    """
    _check_at_least("level", level, 0)
    _check_at_least("index", index, 0)
    # The subtree is stored with its last leaf, after that leaf's hashes of lower levels.
    last_leaf = ((index + 1) << level) - 1
    return stored_hash_count(last_leaf) + level


def stored_hashes(n: int, data: bytes, read: HashReader) -> list[bytes]:
    """The hashes to append to the stored sequence when leaf ``n`` (payload ``data``) is added.

    :param read: reads the stored hashes of the first ``n`` leaves.
    """
    return stored_hashes_for_leaf_hash(n, leaf_hash(data), read)


def stored_hashes_for_leaf_hash(n: int, leaf: bytes, read: HashReader) -> list[bytes]:
    """As :func:`stored_hashes`, from the leaf's hash, for callers that hash leaves in bulk."""
    _check_at_least("n", n, 0)
    if len(leaf) != HASH_SIZE:
        raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, not {len(leaf)}")
    # Leaf n completes one subtree per trailing 1-bit of n; at each of those levels the new
    # node's left sibling is already stored.
    levels = (~n & (n + 1)).bit_length() - 1
    siblings = _read(read, [stored_hash_index(level, (n >> level) - 1) for level in range(levels)])
    hashes = [leaf]
    for sibling in siblings:
        hashes.append(node_hash(sibling, hashes[-1]))
    return hashes


def tree_hash(n: int, read: HashReader) -> bytes:
    """The RFC 6962 root of the first ``n`` leaves."""
    _check_at_least("n", n, 0)
    if n == 0:
        return EMPTY_ROOT
    return _subtree_hashes([(0, n)], read)[0]


def inclusion_proof(index: int, size: int, read: HashReader) -> list[bytes]:
    """RFC 6962's audit path PATH(index, D[size]) of leaf ``index``, leaf side first.

    :raises ValueError: unless ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise ValueError(f"no leaf {index} in a tree of size {size}")
    # Walk RFC 6962's recursion down to the leaf; each step's other half is a hash of the
    # path, and the path lists them from the leaf up.
    siblings: list[tuple[int, int]] = []
    low, high = 0, size
    while high - low > 1:
        split = low + _largest_power_of_two_below(high - low)
        if index < split:
            siblings.append((split, high))
            high = split
        else:
            siblings.append((low, split))
            low = split
    return _subtree_hashes(siblings[::-1], read)


def consistency_proof(first: int, second: int, read: HashReader) -> list[bytes]:
    """RFC 6962's PROOF(first, D[second]) that the tree of ``second`` leaves extends ``first``.

    The proof is empty when the sizes are equal.

    :raises ValueError: unless ``1 <= first <= second``; RFC 9162 defines no proof from the
        empty tree.
    """
    if not 1 <= first <= second:
        raise ValueError(
            f"no consistency proof from tree size {first} to {second}: "
            "the sizes must satisfy 1 <= first <= second"
        )
    nodes: list[tuple[int, int]] = []
    low, high = 0, second
    while high != first:
        split = low + _largest_power_of_two_below(high - low)
        if first <= split:
            nodes.append((split, high))
            high = split
        else:
            nodes.append((low, split))
            low = split
    # The subtree reached holds the first tree's last leaves. When it is the whole first tree
    # (the walk never turned right) the verifier has its root already, so it is left out.
    if low != 0:
        nodes.append((low, high))
    return _subtree_hashes(nodes[::-1], read)


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_hashes(ranges: Sequence[tuple[int, int]], read: HashReader) -> list[bytes]:
    """The RFC 6962 hash of each range of leaves ``(low, high)``, from one read.

    Each range must start at a multiple of the power of two at or above its length, which the
    ranges of RFC 6962's recursion do: then it splits into complete stored subtrees, largest
    first, and its hash folds theirs from the right, as the recursion would.
    """
    parts = [_complete_subtrees(low, high) for low, high in ranges]
    hashes = iter(_read(read, [position for part in parts for position in part]))
    result = []
    for part in parts:
        pieces = [next(hashes) for _ in part]
        folded = pieces[-1]
        for piece in reversed(pieces[:-1]):
            folded = node_hash(piece, folded)
        result.append(folded)
    return result


def _complete_subtrees(low: int, high: int) -> list[int]:
    """The stored positions of the complete subtrees that make leaves ``low`` to ``high - 1``."""
    positions = []
    size = high - low
    for level in reversed(range(size.bit_length())):
        if size >> level & 1:
            positions.append(stored_hash_index(level, low >> level))
            low += 1 << level
    return positions


def _read(read: HashReader, positions: list[int]) -> list[bytes]:
    if not positions:
        return []
    hashes = read(positions)
    # A reader that answers short, or with a truncated hash, would otherwise yield a wrong root
    # that nothing downstream could tell from a forged one.
    if len(hashes) != len(positions):
        raise ValueError(f"asked for {len(positions)} stored hashes, got {len(hashes)}")
    for position, value in zip(positions, hashes, strict=True):
        if len(value) != HASH_SIZE:
            raise ValueError(f"stored hash {position} is {len(value)} bytes, not {HASH_SIZE}")
    return hashes


def _check_at_least(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
