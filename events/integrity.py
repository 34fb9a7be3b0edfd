"""Tamper evidence: the canonical encoding of an event and its SHA-256 hash.

The hash covers the envelope and payload with ``hash`` and ``signature`` left out, encoded as
JSON with sorted keys, so any reader in any language can recompute it from the stored body.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from events.envelope import Envelope

__all__ = ["canonical_bytes", "compute_hash", "has_valid_hash", "with_hash"]

_UNHASHED = ("hash", "signature")


def canonical_bytes(envelope: Envelope[Any]) -> bytes:
    """The bytes the hash is taken over: sorted-key JSON without ``hash`` and ``signature``."""
    body = msgspec.to_builtins(envelope)
    for name in _UNHASHED:
        body.pop(name, None)
    return msgspec.json.encode(body, order="sorted")


def compute_hash(envelope: Envelope[Any]) -> str:
    """Hex SHA-256 of the canonical bytes."""
    return hashlib.sha256(canonical_bytes(envelope)).hexdigest()


def with_hash(envelope: Envelope[Any]) -> Envelope[Any]:
    """A copy of the envelope with its ``hash`` field set."""
    return msgspec.structs.replace(envelope, hash=compute_hash(envelope))


def has_valid_hash(envelope: Envelope[Any]) -> bool:
    """Whether the stored hash matches the event's content."""
    return bool(envelope.hash) and envelope.hash == compute_hash(envelope)
