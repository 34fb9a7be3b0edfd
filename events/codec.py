"""Encoding and decoding of stored events, with upcasters for old schema versions.

An event is JSON in the message body; its type and schema version also travel in the headers
``Ledger-Type`` and ``Ledger-Version``, so a reader can route or skip a message without decoding
it. Events of the current version decode in one step through a typed msgspec decoder. Older ones
decode to plain data, pass through the registered upcasters one version at a time, and are then
converted: old events are never rewritten, and replay forever.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from events.envelope import Envelope
from events.errors import EventDecodeError
from events.model import SCHEMA_VERSION, event_types
from events.upcasters import UPCASTERS

__all__ = [
    "HEADER_TYPE",
    "HEADER_VERSION",
    "Codec",
    "Upcaster",
    "decode",
    "encode",
    "headers_for",
    "stored_headers",
]

HEADER_TYPE = "Ledger-Type"
HEADER_VERSION = "Ledger-Version"

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns an envelope of version ``n``, as plain data, into one of version ``n + 1``."""

_encoder = msgspec.json.Encoder()


class _Head(msgspec.Struct):
    type: str = ""
    version: int = 0


def encode(envelope: Envelope[Any]) -> bytes:
    """The message body of an event."""
    return _encoder.encode(envelope)


def headers_for(envelope: Envelope[Any]) -> dict[str, str]:
    """The routing headers of an event: its type and schema version."""
    return {HEADER_TYPE: envelope.type, HEADER_VERSION: str(envelope.version)}


class _Stated(msgspec.Struct):
    type: str
    version: int


_stated = msgspec.json.Decoder(_Stated)


def stored_headers(data: bytes) -> dict[str, str]:
    """The routing headers of an event as stored: the type and schema version its bytes
    state, which for an event of an older version are not those of its decoded copy.

    :raises msgspec.DecodeError: when ``data`` states no type and version.
    """
    stated = _stated.decode(data)
    return {HEADER_TYPE: stated.type, HEADER_VERSION: str(stated.version)}


class Codec:
    """Decodes stored events of any known type and version into current envelopes."""

    def __init__(
        self,
        upcasters: Mapping[tuple[str, int], Upcaster] | None = None,
        current: Mapping[str, int] | None = None,
    ) -> None:
        """
        :param upcasters: by ``(type, from_version)``, the function to the next version.
        :param current: the current version of each type; ``SCHEMA_VERSION`` for all by default.
        """
        self._types = event_types()
        self._upcasters = dict(upcasters or {})
        self._current = {name: SCHEMA_VERSION for name in self._types} | dict(current or {})
        # mypy cannot check a generic parametrised by a class known only at run time.
        self._decoders: dict[str, msgspec.json.Decoder[Envelope[Any]]] = {
            name: msgspec.json.Decoder(Envelope[cls])  # type: ignore[valid-type]
            for name, cls in self._types.items()
        }
        self._head = msgspec.json.Decoder(_Head)

    def decode(self, data: bytes, headers: Mapping[str, str] | None = None) -> Envelope[Any]:
        """Decode one message body into a current envelope.

        :param data: the message body.
        :param headers: the message headers, if any; they save a look into the body.
        :raises EventDecodeError: for bytes that are not an event of a known type and version.
        """
        kind, version = self._route(data, headers)
        decoder = self._decoders.get(kind)
        if decoder is None:
            raise EventDecodeError(f"unknown event type {kind!r}")
        current = self._current[kind]
        try:
            if version == current:
                envelope = decoder.decode(data)
            elif version < current:
                envelope = self._upcast(kind, version, data)
            else:
                raise EventDecodeError(
                    f"{kind} version {version} is newer than this program knows "
                    f"({current}); upgrade the ledger"
                )
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise EventDecodeError(f"bad {kind} v{version}: {exc}") from None
        if envelope.type != kind:
            raise EventDecodeError(f"body says {envelope.type!r} but headers say {kind!r}")
        return envelope

    def _route(self, data: bytes, headers: Mapping[str, str] | None) -> tuple[str, int]:
        if headers and HEADER_TYPE in headers:
            try:
                return headers[HEADER_TYPE], int(headers.get(HEADER_VERSION, "0"))
            except ValueError:
                raise EventDecodeError(f"bad {HEADER_VERSION} header") from None
        try:
            head = self._head.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise EventDecodeError(f"not an event: {exc}") from None
        return head.type, head.version

    def _upcast(self, kind: str, version: int, data: bytes) -> Envelope[Any]:
        body = msgspec.json.decode(data)
        if not isinstance(body, dict):
            raise EventDecodeError("not an event: the body is not a JSON object")
        while version < self._current[kind]:
            step = self._upcasters.get((kind, version))
            if step is None:
                raise EventDecodeError(f"no upcaster from {kind} version {version}")
            try:
                body = step(body)
            except (KeyError, TypeError, AttributeError) as exc:
                raise EventDecodeError(f"bad {kind} v{version}: no {exc} where expected") from None
            version += 1
            body["version"] = version
        # Re-encoding lets the typed decoder parse dates and check every field, exactly as it
        # does for current events.
        return self._decoders[kind].decode(msgspec.json.encode(body))


DEFAULT_CODEC = Codec(UPCASTERS)
decode = DEFAULT_CODEC.decode
