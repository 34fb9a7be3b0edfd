"""Tamper evidence: the canonical encoding of an event and its SHA-256 hashes.

``hash`` covers the envelope and payload with ``hash`` and ``signature`` left out, encoded as
JSON with sorted keys, so any reader in any language can recompute it from the stored body; each
event's ``prev`` holds the previous event's ``hash``, which chains an activity's events.

The office signs the *content hash*: the same encoding without the two fields that only intake
can fill in, ``recorded_at`` (when the ledger accepted the event: an office that set it could
backdate what the ledger knew) and ``prev`` (which the office cannot read before intake loads
the activity). The chain hash then binds the signed content to its place and time.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from events.envelope import Envelope

__all__ = [
    "canonical_bytes",
    "compute_hash",
    "content_hash",
    "has_valid_hash",
    "stored_hashes",
    "with_hash",
]

_UNHASHED = ("hash", "signature")
_NOT_SIGNED = ("hash", "signature", "recorded_at", "prev")


def canonical_bytes(envelope: Envelope[Any], leave_out: tuple[str, ...] = _UNHASHED) -> bytes:
    """Sorted-key JSON of the event without the fields named in ``leave_out``."""
    body = msgspec.to_builtins(envelope)
    for name in leave_out:
        body.pop(name, None)
    return msgspec.json.encode(body, order="sorted")


def compute_hash(envelope: Envelope[Any]) -> str:
    """Hex SHA-256 of everything but ``hash`` and ``signature``: the chain hash."""
    return hashlib.sha256(canonical_bytes(envelope)).hexdigest()


def content_hash(envelope: Envelope[Any]) -> str:
    """Hex SHA-256 of what the office states, which is what it signs."""
    return hashlib.sha256(canonical_bytes(envelope, _NOT_SIGNED)).hexdigest()


def stored_hashes(data: bytes) -> tuple[str, str]:
    """The chain hash and the content hash of an event as stored, from its stored JSON.

    Not from a decoded copy: decoding fills in fields that a later schema added (with their
    defaults) and upcasts older versions, so re-encoding an old event would give other bytes
    and another hash than those it was sealed with. The stored JSON, with ``hash`` and
    ``signature`` (and, for the content hash, ``recorded_at`` and ``prev``) left out and its
    keys sorted, is what the writer hashed.

    :raises msgspec.DecodeError: when ``data`` is not JSON.
    """
    body = msgspec.json.decode(data)
    if not isinstance(body, dict):
        raise msgspec.DecodeError("an event is a JSON object")
    chain = {name: value for name, value in body.items() if name not in _UNHASHED}
    content = {name: value for name, value in chain.items() if name not in _NOT_SIGNED}
    return (
        hashlib.sha256(msgspec.json.encode(chain, order="sorted")).hexdigest(),
        hashlib.sha256(msgspec.json.encode(content, order="sorted")).hexdigest(),
    )


def with_hash(envelope: Envelope[Any]) -> Envelope[Any]:
    """A copy of the envelope with its ``hash`` field set."""
    return msgspec.structs.replace(envelope, hash=compute_hash(envelope))


def has_valid_hash(envelope: Envelope[Any]) -> bool:
    """Whether the stored hash matches the event's content."""
    return bool(envelope.hash) and envelope.hash == compute_hash(envelope)
