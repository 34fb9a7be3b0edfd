"""Inclusion and consistency proofs of the stream's Merkle tree, as the API and the CLI give
them and as ``ledger proof check`` checks them.

A proof travels as JSON with its hashes in standard base64: ``leaf_index``, ``tree_size``,
``leaf_hash``, ``audit_path`` and ``root_hash`` for an inclusion (RFC 6962's PATH, leaf side
first); ``first``, ``second``, ``first_root``, ``second_root`` and ``proof`` for a consistency
(RFC 6962's PROOF). The checks are events/tlog_verify.py's, which need nothing of the ledger.
"""

from __future__ import annotations

import base64
import binascii

import msgspec

from events.tlog_verify import ProofError, verify_consistency, verify_inclusion
from replay.tree import TreeStore

__all__ = [
    "ConsistencyProof",
    "InclusionProof",
    "check_consistency",
    "check_inclusion",
    "consistency_of",
    "inclusion_of",
]


class InclusionProof(msgspec.Struct, frozen=True):
    """That stream sequence ``leaf_index + 1`` is in the tree of ``tree_size`` leaves."""

    leaf_index: int
    tree_size: int
    leaf_hash: str
    audit_path: list[str]
    root_hash: str


class ConsistencyProof(msgspec.Struct, frozen=True):
    """That the tree of ``second`` leaves extends the tree of ``first``."""

    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]


def inclusion_of(tree: TreeStore, sequence: int, size: int | None = None) -> InclusionProof:
    """The proof that stream sequence ``sequence`` is in the tree of ``size`` leaves (all by
    default).

    :raises BadParameterError: naming the argument out of range.
    """
    size = tree.size() if size is None else size
    path = tree.inclusion(sequence, size)
    return InclusionProof(
        leaf_index=sequence - 1,
        tree_size=size,
        leaf_hash=_text(tree.leaf(sequence)),
        audit_path=[_text(h) for h in path],
        root_hash=_text(tree.root(size)),
    )


def consistency_of(tree: TreeStore, first: int, second: int | None = None) -> ConsistencyProof:
    """The proof that the tree of ``second`` leaves (all by default) extends that of ``first``.

    :raises BadParameterError: naming the argument out of range.
    """
    second = tree.size() if second is None else second
    proof = tree.consistency(first, second)
    return ConsistencyProof(
        first=first,
        second=second,
        first_root=_text(tree.root(first)),
        second_root=_text(tree.root(second)),
        proof=[_text(h) for h in proof],
    )


def check_inclusion(proof: InclusionProof, root: bytes | None = None) -> None:
    """Check an inclusion proof, against ``root`` (e.g. a verified checkpoint's) when given,
    else against the root the proof states.

    :raises ProofError: when it does not hold, or ``root`` is not the one it states.
    """
    stated = _bytes(proof.root_hash, "root_hash")
    if root is not None and root != stated:
        raise ProofError("root_hash: the proof leads to another root than the checkpoint's")
    verify_inclusion(
        proof.leaf_index,
        proof.tree_size,
        _bytes(proof.leaf_hash, "leaf_hash"),
        [_bytes(h, "audit_path") for h in proof.audit_path],
        stated,
    )


def check_consistency(proof: ConsistencyProof) -> None:
    """Check a consistency proof between the two roots it states.

    :raises ProofError: when it does not hold.
    """
    verify_consistency(
        proof.first,
        proof.second,
        _bytes(proof.first_root, "first_root"),
        _bytes(proof.second_root, "second_root"),
        [_bytes(h, "proof") for h in proof.proof],
    )


def _text(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _bytes(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProofError(f"{field}: not standard base64") from None
