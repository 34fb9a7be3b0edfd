"""The verifier's half of the ledger's Merkle tree: RFC 6962 hashing and proof checks.

Anyone holding a signed checkpoint (:mod:`events.checkpoint`) can check, with this module alone,
that an event is in the log (:func:`verify_inclusion`) and that a later checkpoint extends an
earlier one (:func:`verify_consistency`). It is kept apart from :mod:`events.tlog`, which builds
the tree and its proofs, so that an auditor has only this page to read.

Hashes are SHA-256 with RFC 6962's domain separation: a leaf is hashed behind a 0x00 byte and an
inner node behind 0x01, so no leaf can pass for a node. The two checks follow RFC 9162, sections
2.1.3.2 and 2.1.4.2, step by step; they return None when the proof holds and raise
:class:`ProofError`, naming what failed, when it does not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from events.errors import LedgerError

__all__ = [
    "HASH_SIZE",
    "ProofError",
    "leaf_hash",
    "node_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""


class ProofError(LedgerError):
    """Raised when an inclusion or consistency proof does not hold, or cannot be checked."""


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 hash of a leaf: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an inner node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` (a leaf *hash*) is leaf ``index`` of the tree of ``size`` leaves.

    :param proof: the audit path, leaf side first, as :func:`events.tlog.inclusion_proof` makes.
    :param root: the tree's root, e.g. from a verified checkpoint.
    :raises ProofError: when the proof does not lead from the leaf to ``root``.
    """
    what = f"inclusion proof of leaf {index} in tree of size {size}"
    if not 0 <= index < size:
        raise ProofError(f"{what}: the leaf index must be at least 0 and below the size")
    _check_hashes(what, leaf=leaf, root=root, proof=proof)
    # RFC 9162 2.1.3.2: fn walks up the leaf's path and sn up the last leaf's path. Where they
    # are equal the leaf's subtree is the tree's right edge, whose levels without a right
    # sibling are skipped.
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofError(f"{what} has more hashes than a tree of that size needs")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"{what} has fewer hashes than a tree of that size needs")
    if r != root:
        raise ProofError(f"{what} does not lead to the root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``second`` leaves extends the tree of ``first`` leaves.

    Equal sizes need an empty proof and equal roots. A first size of 0 is refused: RFC 9162
    defines no proof from the empty tree, and every tree extends it anyway.

    :param proof: as :func:`events.tlog.consistency_proof` makes it.
    :raises ProofError: when the proof does not lead to both roots.
    """
    what = f"consistency proof from tree size {first} to {second}"
    if not 1 <= first <= second:
        raise ProofError(f"{what}: the sizes must satisfy 1 <= first <= second")
    _check_hashes(what, first_root=first_root, second_root=second_root, proof=proof)
    if first == second:
        if proof:
            raise ProofError(f"{what} must be empty, as the sizes are equal")
        if first_root != second_root:
            raise ProofError(f"{what}: trees of equal size have different roots")
        return
    if not proof:
        raise ProofError(f"{what} is empty")
    # RFC 9162 2.1.4.2. A first tree whose size is a power of two is a complete subtree of the
    # second, and the proof leaves its root out: the verifier has it already.
    path = [first_root, *proof] if (first & (first - 1)) == 0 else list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"{what} has more hashes than those sizes need")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"{what} has fewer hashes than those sizes need")
    if fr != first_root:
        raise ProofError(f"{what} does not lead to the first root")
    if sr != second_root:
        raise ProofError(f"{what} does not lead to the second root")


def _check_hashes(what: str, proof: Sequence[bytes], **named: bytes) -> None:
    # A hash of another length cannot be a node of this tree; saying so beats "does not lead
    # to the root", which would send the reader looking for the wrong fault.
    for name, value in named.items():
        if len(value) != HASH_SIZE:
            raise ProofError(f"{what}: {name} is {len(value)} bytes, not {HASH_SIZE}")
    for position, value in enumerate(proof):
        if len(value) != HASH_SIZE:
            raise ProofError(
                f"{what}: hash {position} of the proof is {len(value)} bytes, not {HASH_SIZE}"
            )
