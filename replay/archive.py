"""Export the whole log to JSON Lines with a signed manifest, and import such an archive.

Each line is one stream message: its sequence, the time the stream stored it, its subject and
the event exactly as stored (the body is embedded byte for byte, so hashes still verify). A
message that is not even JSON is kept as base64 under ``raw``. ``.gz`` files are compressed.

Beside the archive, ``<archive>.manifest.json`` states how many messages it holds, its first
and last sequence and the SHA-256 of the file as written, signed with the exporting ledger's
Ed25519 key, so that an auditor can tell a genuine export from an edited one.

An archive is input from outside the ledger, so an import trusts nothing in it. It reads the
whole file once and checks every line before it writes anything: the line's length and the
total size (a gzip bomb fails fast, in flat memory), the order of sequences, the subject
against the event's own office and activity id, the office against the catalogue, the id as a
subject token, every hash and ``prev`` link, and every signature against the importing
ledger's key registry; then the manifest. Only then does it read the file again and append the
events in their original order with their original event ids, a block of lines at a time and
only blocks whose bytes are the ones checked (the file may have changed in between). Into an
empty stream every event lands at its original sequence.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from events.codec import DEFAULT_CODEC
from events.envelope import Envelope
from events.errors import EventDecodeError, LedgerError
from events.keys import KeyRegistry
from events.reference import load_reference
from events.signing import public_key_of, sign_hash, signature_is_valid
from events.store import EventStore
from events.subjects import Namespace, is_token
from replay.chain import ChainChecker, Failure

__all__ = [
    "DEFAULT_MAX_SIZE",
    "MANIFEST_FORMAT",
    "MAX_LINE",
    "ArchiveChecker",
    "ArchiveError",
    "ArchiveRejectedError",
    "ArchivedMessage",
    "CheckedLine",
    "ImportReport",
    "ImportRules",
    "Manifest",
    "export_log",
    "import_log",
    "manifest_path",
    "read_manifest",
    "sign_manifest",
    "verify_manifest",
]

Progress = Callable[[int], None]

MAX_LINE = 1 << 20
"""The longest line an import reads, newline left out: 1 MiB, what one NATS message holds."""
DEFAULT_MAX_SIZE = 4 << 30
"""The most an archive may decompress to, unless the importer allows more: 4 GiB."""
MANIFEST_FORMAT = "activity-ledger-archive-manifest/1"
_MAX_MANIFEST = 64 << 10
"""A manifest is a few hundred bytes; anything much bigger is not one."""


class ArchiveError(LedgerError):
    """Raised when an archive cannot be read, fails its checks, or cannot be imported."""


class ArchiveRejectedError(ArchiveError):
    """Raised when the archive or its manifest breaks a rule: bad input, nothing written.

    The message names the file, the line (when there is one), the field and what to do.
    """

    def __init__(self, where: str, line: int | None, field: str, message: str) -> None:
        """
        :param where: the file that broke the rule.
        :param line: its line number, counted from 1; ``None`` for the file as a whole.
        :param field: what on that line is wrong, e.g. ``event.signature``.
        :param message: what is wrong and what to do about it.
        """
        self.where = where
        self.line = line
        self.field = field
        self.reason = message
        location = f"{where}:{line}" if line is not None else where
        super().__init__(f"{location}: {field}: {message}")


class ArchivedMessage(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One stream message in an archive."""

    sequence: int
    time_ns: int
    subject: str
    event: msgspec.Raw = msgspec.Raw()
    """The stored body, when it is JSON; empty otherwise."""
    raw: str = ""
    """Base64 of a stored body that is not JSON."""


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


class ImportReport(msgspec.Struct, kw_only=True):
    """What an import read and wrote."""

    count: int
    """Messages in the archive."""
    written: int
    """Messages written to the stream (repeats the stream already had count as written)."""
    signed: int
    unsigned: int
    non_events: int = 0
    """Lines carried over that are not events (only with ``allow_non_events``)."""
    public_key: str = ""
    """The key that signed the manifest; empty when the import went without one."""


@dataclass(frozen=True)
class ImportRules:
    """What an import accepts.

    :param registry: the importing ledger's key registry: an office with a key in it must have
        signed every event, with one of its keys.
    :param allow_non_events: carry over lines that are not ledger events (as old archives of
        streams with such messages have), instead of refusing the archive.
    :param max_line: the longest line, newline left out, in bytes.
    :param max_size: the most the archive may hold once decompressed, in bytes.
    :param offices: the office codes an event may name; the catalogue's by default.
    """

    registry: KeyRegistry
    allow_non_events: bool = False
    max_line: int = MAX_LINE
    max_size: int = DEFAULT_MAX_SIZE
    offices: frozenset[str] = field(
        default_factory=lambda: frozenset(load_reference().offices), repr=False
    )


class CheckedLine(msgspec.Struct, frozen=True):
    """One line that passed every check, ready to write."""

    number: int
    sequence: int
    office: str
    activity_id: str
    envelope: Envelope[Any] | None
    """The event; ``None`` for a message carried over that is not one."""
    body: bytes = b""
    """The stored bytes of a message that is not an event."""


# -- export -------------------------------------------------------------------------------------


def manifest_path(archive: Path) -> Path:
    """Where the manifest of an archive is: ``<archive>.manifest.json`` beside it."""
    archive = Path(archive)
    return archive.with_name(archive.name + ".manifest.json")


def _open_for_writing(path: Path, compressed: bool) -> IO[bytes]:
    if compressed:
        return gzip.open(path, "wb")  # type: ignore[return-value]
    return open(path, "wb")


async def export_log(
    store: EventStore, out: Path, *, seed: str, progress: Progress | None = None
) -> Manifest:
    """Write every message of the stream to ``out`` and its signed manifest beside it.

    The archive is written beside its final name and renamed when complete, so an interrupted
    export never leaves a truncated archive under the name asked for; the manifest follows it
    the same way, so a manifest always describes a complete archive.

    :param seed: the exporting ledger's signing seed (an nkey ``SU...``).
    :param progress: called with the number of messages written so far.
    :returns: the manifest as written.
    """
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    encoder = msgspec.json.Encoder()
    count = first = last = 0
    with _open_for_writing(partial, compressed=out.suffix == ".gz") as sink:
        async for batch in store.read_raw():
            lines = []
            for message in batch:
                line = ArchivedMessage(
                    sequence=message.sequence, time_ns=message.time_ns, subject=message.subject
                )
                if _is_json(message.data):
                    line.event = msgspec.Raw(message.data)
                else:
                    line.raw = base64.b64encode(message.data).decode()
                lines.append(encoder.encode(line))
            sink.write(b"\n".join(lines) + b"\n")
            first = first or batch[0].sequence
            last = batch[-1].sequence
            count += len(batch)
            if progress:
                progress(count)
    manifest = sign_manifest(
        Manifest(
            count=count,
            first_sequence=first,
            last_sequence=last,
            sha256=_file_digest(partial),
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            prefix=store.ns.prefix,
            public_key=public_key_of(seed),
        ),
        seed,
    )
    partial.replace(out)
    _write_atomically(manifest_path(out), msgspec.json.format(msgspec.json.encode(manifest)))
    return manifest


def _is_json(data: bytes) -> bool:
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError:
        return False
    return True


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data + b"\n")
    os.replace(tmp, path)


# -- the manifest -------------------------------------------------------------------------------


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


def _compare_with_manifest(
    manifest: Manifest, where: str, checker: ArchiveChecker, digest: str
) -> None:
    """Whether the archive as read is the one the manifest describes."""
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


# -- checking lines (pure) ----------------------------------------------------------------------

_CHAIN_ADVICE = {
    "hash": "the event was changed after it was sealed; import the original archive",
    "prev": "an event of the activity is missing, moved or inserted; import the complete "
    "original archive",
    "signature": "the event is not its office's; do not import the archive, or import with "
    "the key registry that holds the office's key (--registry)",
    "subject": "the event was stored under another activity's subject",
}

_FIELD_OF_CHECK = {
    "hash": "event.hash",
    "prev": "event.prev",
    "signature": "event.signature",
    "subject": "subject",
}


class ArchiveChecker:
    """Checks an archive's lines in order; nothing but the lines goes in, no I/O.

    Each line must follow the one before it in sequence, carry a ledger event (or, when the
    rules allow, a message that is not one) on the subject of its own office and activity id
    under the archive's prefix, name a catalogued office and an id that is a subject token,
    and pass the hash, ``prev`` and signature checks of :class:`~replay.chain.ChainChecker`.
    """

    def __init__(
        self, rules: ImportRules, where: str, prefix: str | None = None, *, chain: bool = True
    ) -> None:
        """
        :param rules: what the import accepts.
        :param where: the archive's name, for errors.
        :param prefix: the subject prefix every line must use (the manifest's); by default
            the first line's.
        :param chain: run the hash, ``prev`` and signature checks; only a reader that proves
            its lines identical to lines already checked may leave them out.
        """
        self.rules = rules
        self.where = where
        self.prefix = prefix
        self.chain = ChainChecker(rules.registry)
        self.run_chain = chain
        self.count = 0
        self.first = 0
        self.last = 0
        self.non_events = 0

    def refuse(self, number: int, field: str, message: str) -> ArchiveRejectedError:
        """The error for one line: the caller raises it."""
        return ArchiveRejectedError(self.where, number, field, message)

    def check(self, number: int, message: ArchivedMessage) -> CheckedLine:
        """Check one decoded line in the context of the lines before it.

        :param number: the line's number in the file, from 1.
        :raises ArchiveRejectedError: at the first rule the line breaks.
        """
        self._check_sequence(number, message.sequence)
        namespace = self._namespace(number, message.subject)
        envelope = self._event_of(number, message)
        if envelope is None:
            office, activity_id = self._check_carried_subject(number, namespace, message.subject)
            self.non_events += 1
            checked = CheckedLine(
                number, message.sequence, office, activity_id, None, self._body_of(number, message)
            )
        else:
            self._check_event(number, namespace, message, envelope)
            checked = CheckedLine(
                number, message.sequence, envelope.office, envelope.activity_id, envelope
            )
        self.count += 1
        self.first = self.first or message.sequence
        self.last = message.sequence
        return checked

    def _check_sequence(self, number: int, sequence: int) -> None:
        if sequence < 1:
            raise self.refuse(
                number, "sequence", f"{sequence} is not a stream sequence (1 or more)"
            )
        if self.last and sequence != self.last + 1:
            raise self.refuse(
                number,
                "sequence",
                f"{sequence} follows {self.last}; the archive is incomplete or out of order: "
                "import the complete original archive",
            )

    def _namespace(self, number: int, subject: str) -> Namespace:
        prefix, separator, _ = subject.partition(".activity.")
        if not separator or not prefix:
            raise self.refuse(
                number, "subject", f"{subject!r} is not an activity subject <prefix>.activity...."
            )
        if self.prefix is None:
            self.prefix = prefix
        elif prefix != self.prefix:
            raise self.refuse(
                number,
                "subject",
                f"{subject!r} is not under the archive's prefix {self.prefix!r}; an export "
                "holds one ledger's subjects only",
            )
        return Namespace(prefix=prefix)

    def _event_of(self, number: int, message: ArchivedMessage) -> Envelope[Any] | None:
        """The line's event; ``None`` for a message that is not one and may be carried over."""
        if message.event and message.raw:
            raise self.refuse(number, "raw", "a line holds either an event or raw bytes, not both")
        reason = "the message is not JSON (stored as raw base64)"
        if message.event:
            try:
                return DEFAULT_CODEC.decode(bytes(message.event))
            except EventDecodeError as exc:
                reason = f"not a ledger event: {exc.reason}"
        if not self.rules.allow_non_events:
            raise self.refuse(
                number,
                "event",
                f"{reason}. A ledger only stores events, so this line was not written by "
                "one; for an old archive of a stream that held such messages, import with "
                "--allow-non-events to carry them over unchanged",
            )
        return None

    def _body_of(self, number: int, message: ArchivedMessage) -> bytes:
        if message.event:
            return bytes(message.event)
        try:
            return base64.b64decode(message.raw, validate=True)
        except ValueError:
            raise self.refuse(number, "raw", "not base64; export the log again") from None

    def _check_identity(
        self, number: int, office: str, activity_id: str, fields: tuple[str, str]
    ) -> None:
        """The office is catalogued and the id a subject token; ``fields`` name where each is."""
        if office not in self.rules.offices:
            raise self.refuse(
                number,
                fields[0],
                f"unknown office {office[:80]!r}; only the offices of "
                "events/reference/offices.json have events: do not import the archive",
            )
        if not is_token(activity_id):
            raise self.refuse(
                number,
                fields[1],
                f"{activity_id[:80]!r} is not a valid activity id (1-64 letters, digits, _ "
                "or -), so no ledger stored it: do not import the archive",
            )

    def _check_carried_subject(
        self, number: int, namespace: Namespace, subject: str
    ) -> tuple[str, str]:
        office, _, activity_id = subject.removeprefix(f"{namespace.prefix}.activity.").partition(
            "."
        )
        self._check_identity(number, office, activity_id, ("subject", "subject"))
        return office, activity_id

    def _check_event(
        self, number: int, namespace: Namespace, message: ArchivedMessage, event: Envelope[Any]
    ) -> None:
        self._check_identity(
            number, event.office, event.activity_id, ("event.office", "event.payload.activity_id")
        )
        expected = namespace.activity(event.office, event.activity_id)
        if message.subject != expected:
            raise self.refuse(
                number,
                "subject",
                f"{message.subject!r}, but the event is {event.office}/{event.activity_id} and "
                f"belongs on {expected!r}: do not import the archive",
            )
        if not self.run_chain:
            return
        failures = self.chain.check(message.sequence, message.subject, event)
        if failures:
            raise self._chain_refusal(number, failures[0])

    def _chain_refusal(self, number: int, failure: Failure) -> ArchiveRejectedError:
        advice = _CHAIN_ADVICE.get(failure.check, "do not import the archive")
        return self.refuse(
            number,
            _FIELD_OF_CHECK.get(failure.check, failure.check),
            f"sequence {failure.sequence}, activity {failure.activity_id}: {failure.message}; "
            f"{advice}",
        )


# -- reading (the I/O edge) ---------------------------------------------------------------------


class _Digesting(io.RawIOBase):
    """Hands on a file's bytes and hashes them as they pass, so the digest covers exactly the
    bytes the checks saw."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer) or 0  # type: ignore[attr-defined]
        self.sha256.update(memoryview(buffer)[:count])
        return count

    def finish(self) -> str:
        """Hash whatever the reader above left unread, and give the hex digest of the file."""
        while chunk := self._raw.read(1 << 20):
            self.sha256.update(chunk)
        return self.sha256.hexdigest()


def _bounded_lines(
    source: IO[bytes], where: str, rules: ImportRules
) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` for each non-blank line, never holding more than one line of at
    most ``rules.max_line`` bytes, and never reading past ``rules.max_size`` in all."""
    total = 0
    number = 0
    while line := source.readline(rules.max_line + 1):
        number += 1
        total += len(line)
        if total > rules.max_size:
            raise ArchiveRejectedError(
                where,
                number,
                "size",
                f"the archive holds more than {rules.max_size:,} bytes once decompressed; if "
                "it is a genuine export that large, import with a larger --max-size",
            )
        if len(line) > rules.max_line and not line.endswith(b"\n"):
            raise ArchiveRejectedError(
                where,
                number,
                "line",
                f"longer than {rules.max_line:,} bytes; no export writes such a line, so the "
                "archive is not one: do not import it",
            )
        if line.strip():
            yield number, line


_BLOCK = 1000
"""Lines per block: the second pass writes a block only once its bytes match the first's."""


class _ArchiveReader:
    """Reads an archive's lines through a checker, a block at a time.

    The first pass notes the SHA-256 of each block of lines it checked (``blocks``); a second
    pass given those digests hands on no block whose bytes differ, so whatever it yields was
    checked in full, even if the file was changed in between. After the last line, ``digest``
    is the SHA-256 of the whole file.
    """

    def __init__(
        self,
        raw: IO[bytes],
        where: str,
        compressed: bool,
        checker: ArchiveChecker,
        checked_blocks: list[str] | None = None,
    ) -> None:
        self._raw = raw
        self._where = where
        self._compressed = compressed
        self._checked_blocks = checked_blocks
        self.checker = checker
        self.blocks: list[str] = []
        self.digest = ""

    def lines(self) -> Iterator[CheckedLine]:
        """Every line of the archive, checked, in order."""
        decoder = msgspec.json.Decoder(ArchivedMessage)
        digesting = _Digesting(self._raw)
        buffered = io.BufferedReader(digesting, buffer_size=1 << 16)
        source: IO[bytes] = buffered  # type: ignore[assignment]
        if self._compressed:
            source = gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[assignment]
        block: list[CheckedLine] = []
        block_digest = hashlib.sha256()
        try:
            for number, line in _bounded_lines(source, self._where, self.checker.rules):
                try:
                    message = decoder.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise self.checker.refuse(
                        number, "line", f"not an archived message ({exc}); export the log again"
                    ) from None
                block.append(self.checker.check(number, message))
                block_digest.update(line)
                if len(block) == _BLOCK:
                    yield from self._release(block, block_digest.hexdigest())
                    block, block_digest = [], hashlib.sha256()
            if block:
                yield from self._release(block, block_digest.hexdigest())
            self.digest = digesting.finish()
        except (OSError, EOFError, zlib.error) as exc:
            raise ArchiveError(f"{self._where}: cannot read the archive: {exc}") from None

    def _release(self, block: list[CheckedLine], digest: str) -> list[CheckedLine]:
        index = len(self.blocks)
        self.blocks.append(digest)
        expected = self._checked_blocks
        if expected is not None and (index >= len(expected) or expected[index] != digest):
            raise ArchiveRejectedError(
                self._where,
                block[0].number,
                "line",
                f"lines {block[0].number}-{block[-1].number} differ from the lines checked "
                "before writing began",
            )
        return block


# -- import -------------------------------------------------------------------------------------


async def import_log(
    store: EventStore,
    path: Path,
    *,
    rules: ImportRules,
    require_manifest: bool = True,
    expect_key: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    chunk: int = 5000,
) -> ImportReport:
    """Check an archive and its manifest, then load it into the store's stream.

    :param rules: what the archive may hold; among them the importing ledger's key registry.
    :param require_manifest: refuse an archive without a manifest beside it.
    :param expect_key: the exporting ledger's public key: refuse a manifest signed by another.
    :param force: import into a stream that already has messages (repeats of event ids still
        stored in the duplicate window are recognised and skipped).
    :param progress: called with the number of messages written so far.
    :raises ArchiveRejectedError: when the archive or its manifest fails a check; nothing is
        written then.
    :raises ArchiveError: when the stream is not empty and ``force`` is not set, or when the
        stream refuses an event.
    """
    path = Path(path)
    where = str(path)
    manifest = _manifest_for(path, require_manifest, expect_key)
    prefix = manifest.prefix if manifest else None
    compressed = path.suffix == ".gz"
    # One open file for both passes: a file put in its place meanwhile is never read.
    with open(path, "rb", buffering=0) as raw:
        first = _ArchiveReader(raw, where, compressed, ArchiveChecker(rules, where, prefix))
        for _ in first.lines():
            pass
        checked = first.checker
        if manifest:
            _compare_with_manifest(manifest, where, checked, first.digest)
        # Into an empty stream every message lands at its archived sequence; into a non-empty
        # one (with force) they all shift by the same offset.
        offset = await store.last_sequence()
        if offset and not force:
            raise ArchiveError(
                f"stream {store.ns.stream} already holds {offset} messages; import into an "
                "empty stream, or pass --force to add to it"
            )
        raw.seek(0)
        # The file may have been changed in place since: the second pass writes only blocks
        # whose bytes are those checked, so it need not check signatures and hashes again.
        second = _ArchiveReader(
            raw,
            where,
            compressed,
            ArchiveChecker(rules, where, prefix, chain=False),
            checked_blocks=first.blocks,
        )
        counter = _Counter()
        try:
            await _write(store, second.lines(), offset, progress, chunk, counter)
        except ArchiveRejectedError as exc:
            raise _changed_meanwhile(where, counter.written, str(exc)) from None
    if second.digest != first.digest:
        raise _changed_meanwhile(where, counter.written, "its digest differs from the first read")
    return ImportReport(
        count=checked.count,
        written=counter.written,
        signed=checked.chain.signed,
        unsigned=checked.chain.unsigned,
        non_events=checked.non_events,
        public_key=manifest.public_key if manifest else "",
    )


def _changed_meanwhile(where: str, written: int, detail: str) -> ArchiveError:
    return ArchiveError(
        f"{where}: the file changed while it was imported ({detail}); {written} messages, each "
        "of which passed every check, were written. Compare the stream with the original archive"
    )


class _Counter:
    """How many messages a write has stored so far, readable after it fails."""

    written = 0


def _manifest_for(path: Path, required: bool, expect_key: str | None) -> Manifest | None:
    manifest = read_manifest(path)
    where = str(manifest_path(path))
    if manifest is None:
        if required or expect_key is not None:
            raise ArchiveRejectedError(
                where,
                None,
                "manifest",
                "missing: nothing shows the archive is a complete, unchanged export. Put the "
                "manifest the export wrote beside the archive, or import without one with "
                "--no-manifest (and without --expect-key)",
            )
        return None
    verify_manifest(manifest, where, expect_key)
    return manifest


async def _write(
    store: EventStore,
    lines: Iterator[CheckedLine],
    offset: int,
    progress: Progress | None,
    chunk: int,
    counter: _Counter,
) -> None:
    """Append checked lines in order, counting them in ``counter``."""
    last_of: dict[str, int] = {}
    pending: list[tuple[Any, int]] = []

    async def flush() -> None:
        outcomes = await store.append_many(pending)
        bad = [o for o in outcomes if o.status not in ("stored", "duplicate")]
        if bad:
            raise ArchiveError(
                f"the stream refused {len(bad)} events, first {bad[0].event_id}: {bad[0].detail}"
            )
        counter.written += len(pending)
        pending.clear()
        if progress:
            progress(counter.written)

    for line in lines:
        if line.envelope is None:
            # Keep a message that never was an event at its place, so sequences still match.
            await flush()
            await store.js.publish(store.ns.activity(line.office, line.activity_id), line.body)
            counter.written += 1
            continue
        previous = last_of.get(line.activity_id)
        pending.append((line.envelope, previous + offset if previous else 0))
        last_of[line.activity_id] = line.sequence
        if len(pending) >= chunk:
            await flush()
    await flush()
