"""Opaque cursors for keyset pagination of lists ordered by activity id.

Two lists page this way: activities (:func:`projections.queries.list_activities`) and the
activities that make up a figure (:func:`projections.queries.provenance`). A cursor carries
the last activity id of a page and a fingerprint of the filters it was made
for, encoded as URL-safe base64 JSON. It is opaque to readers but checked on the way back: a
cursor that does not decode, or that belongs to other filters, is refused with a clear error
rather than giving a page of some other list.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

import msgspec

from projections.errors import BadParameterError

__all__ = ["decode_cursor", "encode_cursor"]


class _Cursor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    after: str
    filters: str


def _fingerprint(filters: dict[str, Any]) -> str:
    canonical = msgspec.json.encode(dict(sorted(filters.items())))
    return hashlib.sha256(canonical).hexdigest()[:16]


def encode_cursor(after: str, filters: dict[str, Any]) -> str:
    """The cursor that continues a list after activity ``after`` with these filters."""
    data = msgspec.json.encode(_Cursor(after, _fingerprint(filters)))
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(cursor: str, filters: dict[str, Any]) -> str:
    """The activity id a cursor continues after.

    :raises BadParameterError: naming ``cursor`` when it is not one this ledger made, or was
        made for other filters.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parsed = msgspec.json.decode(base64.urlsafe_b64decode(padded), type=_Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise BadParameterError(
            "cursor", "is not a cursor this ledger gave; start again without cursor"
        ) from None
    if parsed.filters != _fingerprint(filters):
        raise BadParameterError(
            "cursor",
            "was made for other filters; use it with the same filters, or start again "
            "without cursor",
        )
    return parsed.after
