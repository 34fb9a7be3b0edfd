"""Office signatures: Ed25519 keys in the NATS ecosystem's own nkey format.

An office holds a user nkey seed (``SU...``) and registers its public key (``U...``). It signs
the hex ``hash`` of each event; anyone holding the public key can check the signature offline.
Signatures travel as unpadded URL-safe base64.
"""

from __future__ import annotations

import base64
import binascii
import os

import nacl.exceptions
import nacl.signing
import nkeys

__all__ = ["new_key_pair", "public_key_of", "raw_public_key", "sign_hash", "signature_is_valid"]


def new_key_pair() -> tuple[str, str]:
    """A fresh ``(seed, public_key)`` pair, both as nkey strings."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    pair = nkeys.from_seed(seed)
    return seed.decode(), pair.public_key.decode()


def public_key_of(seed: str) -> str:
    """The public key that belongs to a seed."""
    public_key: bytes = nkeys.from_seed(seed.encode()).public_key
    return public_key.decode()


def sign_hash(seed: str, event_hash: str) -> str:
    """The signature of an event hash by the key of ``seed``."""
    raw = nkeys.from_seed(seed.encode()).sign(event_hash.encode())
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signature_is_valid(public_key: str, event_hash: str, signature: str) -> bool:
    """Whether ``signature`` is the holder of ``public_key``'s signature of ``event_hash``."""
    try:
        verify_key = nacl.signing.VerifyKey(raw_public_key(public_key))
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        verify_key.verify(event_hash.encode(), raw)
    except (ValueError, binascii.Error, nacl.exceptions.BadSignatureError, TypeError):
        return False
    return True


def raw_public_key(public_key: str) -> bytes:
    """The 32-byte Ed25519 key inside a user public nkey (``U...``).

    :raises ValueError: when ``public_key`` is not a user public nkey.
    """
    # An nkey public key is base32 of: one prefix byte, the 32-byte Ed25519 key, a CRC-16.
    decoded = base64.b32decode(public_key + "=" * (-len(public_key) % 8))
    if len(decoded) != 35 or decoded[0] != nkeys.PREFIX_BYTE_USER:
        raise ValueError("not a user public nkey")
    body, crc = decoded[:-2], decoded[-2:]
    if bytes(nkeys.crc16_checksum(body)) != crc:
        raise ValueError("bad nkey checksum")
    return body[1:]
