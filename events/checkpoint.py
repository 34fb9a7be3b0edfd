"""Signed checkpoints: the ledger's tree heads, as C2SP tlog-checkpoints in C2SP signed notes.

A checkpoint states that the log named ``origin`` had ``size`` leaves with RFC 6962 root
``root`` (:mod:`events.tlog`). Its body is exactly three lines::

    <origin>
    <tree size, decimal, no leading zeros>
    <root hash, standard base64 with padding>

The signed note is the body, a blank line, then one or more signature lines
``— <key name> <base64(4-byte key ID || 64-byte Ed25519 signature)>``, each signing the body
bytes. The key ID of an Ed25519 key is the first four bytes of
SHA-256(key name || 0x0A || 0x01 || 32-byte public key) (c2sp.org/signed-note).

Keys are user nkeys, as the offices' (:mod:`events.signing`). Notes come from outside, so
:func:`open_note` checks the signature before it reads the body, bounds the input, and raises
:class:`CheckpointError` naming what is wrong. The C2SP format allows extension lines after the
root; this ledger writes none and accepts none.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

import msgspec
import nacl.exceptions
import nacl.signing
import nkeys

from events.errors import LedgerError
from events.signing import public_key_of, raw_public_key
from events.subjects import Namespace

__all__ = [
    "KEY_NAME",
    "MAX_NOTE_BYTES",
    "Checkpoint",
    "CheckpointError",
    "body",
    "open_note",
    "origin_of",
    "parse_body",
    "sign",
]

KEY_NAME = "activity-ledger"
"""The name on the ledger's signature line of every checkpoint."""

MAX_NOTE_BYTES = 64 * 1024
"""The largest note :func:`open_note` reads: room for hundreds of signature lines."""

_ROOT_BYTES = 32
_MAX_SIZE = 2**64 - 1  # C2SP and RFC 6962 count leaves in a uint64
_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_ED25519 = b"\x01"  # the signature type byte of c2sp.org/signed-note
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # every ASCII control character but newline
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class CheckpointError(LedgerError):
    """Raised when a checkpoint or its signed note is malformed, unsigned or wrongly signed."""


class Checkpoint(msgspec.Struct, frozen=True):
    """The head of the log's tree at one size."""

    origin: str
    """The log's name, e.g. ``ledger.example.org/activities``."""
    size: int
    """How many leaves the tree has."""
    root: bytes
    """The tree's 32-byte RFC 6962 root."""


def body(checkpoint: Checkpoint) -> bytes:
    """The checkpoint's three lines, which its signatures sign.

    :raises CheckpointError: when a field cannot be written as C2SP requires.
    """
    _check_origin(checkpoint.origin)
    if not 0 <= checkpoint.size <= _MAX_SIZE:
        raise CheckpointError(f"checkpoint size {checkpoint.size} is not between 0 and 2**64 - 1")
    _check_root_length(checkpoint.root)
    root = base64.b64encode(checkpoint.root).decode("ascii")
    return f"{checkpoint.origin}\n{checkpoint.size}\n{root}\n".encode()


def parse_body(text: bytes) -> Checkpoint:
    """The checkpoint a body states, checked line by line. (It checks no signature.)

    :raises CheckpointError: naming the line that is wrong.
    """
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError("checkpoint body is not UTF-8") from exc
    if not decoded.endswith("\n"):
        raise CheckpointError("checkpoint body does not end in a newline")
    lines = decoded[:-1].split("\n")
    if len(lines) != 3:
        raise CheckpointError(
            f"checkpoint body has {len(lines)} lines; it must have 3: origin, size and root"
        )
    origin, size, root = lines
    _check_origin(origin)
    return Checkpoint(origin, _parse_size(size), _parse_root(root))


def sign(checkpoint: Checkpoint, key_name: str, seed: str) -> str:
    """The checkpoint as a signed note, signed by the user nkey ``seed`` under ``key_name``.

    :raises CheckpointError: when the checkpoint or the key name cannot be written.
    """
    _check_key_name(key_name)
    text = body(checkpoint)
    key_id = _key_id(key_name, raw_public_key(public_key_of(seed)))
    signature: bytes = nkeys.from_seed(seed.encode()).sign(text)
    encoded = base64.b64encode(key_id + signature).decode("ascii")
    return f"{text.decode()}\n{_SIGNATURE_PREFIX}{key_name} {encoded}\n"


def open_note(note: str | bytes, key_name: str, public_key: str) -> Checkpoint:
    """The checkpoint of a signed note, once its signature by ``key_name`` verifies.

    Signature lines of other keys are ignored. Should the key have signed more than once, its
    first signature line decides, as in Go's ``note.Open``.

    :param public_key: the signer's user public nkey (``U...``).
    :raises CheckpointError: when the note is malformed or too large, carries no signature of
        the key, the signature does not verify, or the body is not a checkpoint.
    """
    _check_key_name(key_name)
    try:
        key = raw_public_key(public_key)
    except ValueError as exc:
        raise CheckpointError(f"the public key of {key_name!r} is not a user nkey") from exc
    text, signatures = _split_note(note)
    wanted = _key_id(key_name, key)
    signature = _signature_of(signatures, key_name, wanted, first_line=text.count("\n") + 2)
    if signature is None:
        raise CheckpointError(f"note has no signature by key {key_name!r} (ID {wanted.hex()})")
    body_bytes = text.encode()
    try:
        nacl.signing.VerifyKey(key).verify(body_bytes, signature)
    except (nacl.exceptions.BadSignatureError, ValueError) as exc:
        raise CheckpointError(f"the signature by key {key_name!r} does not verify") from exc
    return parse_body(body_bytes)


def _split_note(note: str | bytes) -> tuple[str, list[str]]:
    """The note's text (with its final newline) and its signature lines (without theirs)."""
    # A str has no more characters than UTF-8 bytes: refuse a huge one before encoding it.
    if len(note) > MAX_NOTE_BYTES:
        raise CheckpointError(f"note is larger than {MAX_NOTE_BYTES} bytes")
    try:
        raw = note.encode("utf-8") if isinstance(note, str) else bytes(note)
        text = raw.decode("utf-8")
    except UnicodeError as exc:
        raise CheckpointError("note is not UTF-8") from exc
    if len(raw) > MAX_NOTE_BYTES:
        raise CheckpointError(f"note is larger than {MAX_NOTE_BYTES} bytes")
    control = _CONTROL.search(text)
    if control:
        line = text.count("\n", 0, control.start()) + 1
        raise CheckpointError(
            f"line {line} of the note holds control character U+{ord(control.group()):04X}"
        )
    # The text may hold empty lines; the signatures start after the last one.
    split = text.rfind("\n\n")
    if split < 0:
        raise CheckpointError("note has no blank line between its text and its signatures")
    signatures = text[split + 2 :]
    if not signatures:
        raise CheckpointError("note has no signature line after its blank line")
    if not signatures.endswith("\n"):
        raise CheckpointError("the last line of the note does not end in a newline")
    return text[: split + 1], signatures[:-1].split("\n")


def _signature_of(lines: list[str], key_name: str, key_id: bytes, first_line: int) -> bytes | None:
    """The signature of the first line by (``key_name``, ``key_id``), if any.

    Every line must be well formed, whoever signed it: a note is accepted whole or not at all.
    """
    found = None
    for number, line in enumerate(lines, start=first_line):
        name, signature = _parse_signature_line(line, number)
        if found is None and name == key_name and signature[:4] == key_id:
            found = signature[4:]
    return found


def _parse_signature_line(line: str, number: int) -> tuple[str, bytes]:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise CheckpointError(
            f"line {number} of the note is not a signature line "
            "(an em dash, a space, the key name, a space, the base64 signature)"
        )
    name, _, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not _is_key_name(name):
        raise CheckpointError(f"line {number} of the note has no valid key name")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise CheckpointError(f"line {number} of the note: the signature is not base64") from exc
    # A key ID and at least one byte of signature.
    if len(signature) < 5:
        raise CheckpointError(f"line {number} of the note: the signature is too short")
    return name, signature


def _key_id(key_name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(key_name.encode() + b"\n" + _ED25519 + public_key).digest()[:4]


def _is_key_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(char.isspace() for char in name)


def _check_key_name(name: str) -> None:
    if not _is_key_name(name):
        raise CheckpointError(
            f"key name {name!r} is not valid: it must be non-empty, without spaces or '+'"
        )


def _check_origin(origin: str) -> None:
    if not origin:
        raise CheckpointError("checkpoint origin (line 1) is empty")
    if "\n" in origin:
        raise CheckpointError("checkpoint origin contains a newline")
    if _CONTROL.search(origin):
        raise CheckpointError("checkpoint origin contains a control character")


def _parse_size(text: str) -> int:
    # Bounded before int(): a 60 KB line of digits is no size, and converting it costs.
    if len(text) > len(str(_MAX_SIZE)) or not _DECIMAL.fullmatch(text):
        raise CheckpointError(
            f"checkpoint size (line 2) {text[:40]!r} is not a decimal number without "
            "leading zeros, at most 2**64 - 1"
        )
    size = int(text)
    if size > _MAX_SIZE:
        raise CheckpointError(f"checkpoint size (line 2) {size} is larger than 2**64 - 1")
    return size


def _parse_root(text: str) -> bytes:
    try:
        root = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise CheckpointError("checkpoint root (line 3) is not base64") from exc
    # One root, one spelling (no stray padding bits), so a checkpoint has exactly one body.
    if base64.b64encode(root).decode("ascii") != text:
        raise CheckpointError("checkpoint root (line 3) is not canonical base64 with padding")
    _check_root_length(root)
    return root


def _check_root_length(root: bytes) -> None:
    if len(root) != _ROOT_BYTES:
        raise CheckpointError(
            f"checkpoint root (line 3) is {len(root)} bytes; an RFC 6962 root is {_ROOT_BYTES}"
        )


def origin_of(ns: Namespace, public_key: str) -> str:
    """A ledger's checkpoint origin: its stream, and the key that signs for it, so that two
    ledgers' checkpoints are never taken for each other's."""
    return f"activity-ledger/{ns.stream}/{public_key}"
