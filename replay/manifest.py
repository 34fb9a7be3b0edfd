"""The signed manifest beside an archive: what the export wrote, and the checks an import makes.

``<archive>.manifest.json`` states how many messages the archive holds, its first and last
sequence and the SHA-256 of the file as written, signed with the exporting ledger's Ed25519
key, so that an auditor can tell a genuine export from an edited or cut one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import msgspec

from events.signing import sign_hash, signature_is_valid
from replay.archive_check import ArchiveChecker, ArchiveRejectedError

__all__ = [
    "MANIFEST_FORMAT",
    "Manifest",
    "compare_with_manifest",
    "file_digest",
    "manifest_path",
    "read_manifest",
    "sign_manifest",
    "verify_manifest",
    "write_manifest",
]

MANIFEST_FORMAT = "activity-ledger-archive-manifest/1"
_MAX_MANIFEST = 64 << 10
"""A manifest is a few hundred bytes; anything much bigger is not one."""


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What an export wrote, signed by the exporting ledger."""

    format: str = MANIFEST_FORMAT
    count: int
    first_sequence: int
    """0 when the archive is empty, as is ``last_sequence``."""
    last_sequence: int
    sha256: str
    """Hex SHA-256 of the archive file as written: the compressed bytes of a ``.gz``."""
    created_at: str
    """When the export finished, ISO 8601 UTC."""
    prefix: str
    """The exporting ledger's subject prefix; every line's subject starts with it."""
    public_key: str
    """The exporting ledger's Ed25519 public key (an nkey, ``U...``)."""
    signature: str = ""
    """The key's signature over the hex SHA-256 of :func:`_manifest_body`."""


def manifest_path(archive: Path) -> Path:
    """Where the manifest of an archive is: ``<archive>.manifest.json`` beside it."""
    archive = Path(archive)
    return archive.with_name(archive.name + ".manifest.json")


def file_digest(path: Path) -> str:
    """The hex SHA-256 of a file, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(path: Path, data: bytes) -> None:
    """Write a manifest file whole or not at all: beside its name, then renamed."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data + b"\n")
    os.replace(tmp, path)


def _manifest_body(manifest: Manifest) -> bytes:
    """The canonical bytes a manifest's signature covers: every field but the signature,
    as JSON with sorted keys."""
    body = msgspec.to_builtins(manifest)
    body.pop("signature", None)
    return msgspec.json.encode(body, order="sorted")


def sign_manifest(manifest: Manifest, seed: str) -> Manifest:
    """The manifest with its signature by the key of ``seed`` filled in.

    :param manifest: the manifest; its ``public_key`` must belong to ``seed``.
    :param seed: the exporting ledger's signing seed.
    """
    digest = hashlib.sha256(_manifest_body(manifest)).hexdigest()
    return msgspec.structs.replace(manifest, signature=sign_hash(seed, digest))


def verify_manifest(manifest: Manifest, where: str, expect_key: str | None = None) -> None:
    """Check a manifest's format, signature and, when pinned, its key.

    :param where: the manifest's file name, for the error.
    :param expect_key: the only public key the exporting ledger may have.
    :raises ArchiveRejectedError: naming the field that fails.
    """
    if manifest.format != MANIFEST_FORMAT:
        raise ArchiveRejectedError(
            where, None, "format", f"{manifest.format!r} is not {MANIFEST_FORMAT!r}"
        )
    digest = hashlib.sha256(_manifest_body(manifest)).hexdigest()
    if not signature_is_valid(manifest.public_key, digest, manifest.signature):
        raise ArchiveRejectedError(
            where,
            None,
            "signature",
            f"not a valid signature by {manifest.public_key or 'an empty key'}: the manifest "
            "was altered or forged; ask the exporting ledger for a new export",
        )
    if expect_key is not None and manifest.public_key != expect_key.strip():
        raise ArchiveRejectedError(
            where,
            None,
            "public_key",
            f"signed by {manifest.public_key}, not by the expected key {expect_key.strip()}: "
            "the archive comes from another ledger; do not import it",
        )


def read_manifest(archive: Path) -> Manifest | None:
    """The manifest beside ``archive``, or ``None`` when there is none.

    :raises ArchiveRejectedError: for a file that is not a manifest.
    """
    path = manifest_path(archive)
    try:
        with open(path, "rb") as source:
            data = source.read(_MAX_MANIFEST + 1)
    except FileNotFoundError:
        return None
    if len(data) > _MAX_MANIFEST:
        raise ArchiveRejectedError(
            str(path), None, "size", f"longer than {_MAX_MANIFEST} bytes: not a manifest"
        )
    try:
        return msgspec.json.decode(data, type=Manifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ArchiveRejectedError(
            str(path), None, "manifest", f"not a manifest ({exc}); export the log again"
        ) from None


def compare_with_manifest(
    manifest: Manifest, where: str, checker: ArchiveChecker, digest: str
) -> None:
    """Check that the archive as read is the one the manifest describes.

    :raises ArchiveRejectedError: naming the first figure that differs.
    """
    read = {
        "sha256": digest,
        "count": checker.count,
        "first_sequence": checker.first,
        "last_sequence": checker.last,
    }
    for name, actual in read.items():
        stated = getattr(manifest, name)
        if stated != actual:
            raise ArchiveRejectedError(
                where,
                None,
                name,
                f"the manifest says {stated}, the archive has {actual}: the archive was changed "
                "or cut after export; import the original file",
            )
