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
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from events.checkpoint import KEY_NAME, Checkpoint, CheckpointError, open_note
from events.release import decode_release
from events.signing import public_key_of
from events.store import EventStore
from events.stored import RawMessage
from replay.archive_check import (
    ArchiveChecker,
    ArchivedMessage,
    ArchiveError,
    ArchiveRejectedError,
    CheckedLine,
    ImportRules,
)
from replay.manifest import (
    Manifest,
    compare_with_manifest,
    file_digest,
    manifest_path,
    read_manifest,
    sign_manifest,
    verify_manifest,
    write_manifest,
)
from replay.tree import TreeStore

__all__ = ["ImportReport", "export_log", "import_log"]

Progress = Callable[[int], None]


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
    checkpoints: int = 0
    """Signed checkpoints of the exporting ledger's Merkle tree, checked and carried over."""
    public_key: str = ""
    """The key that signed the manifest; empty when the import went without one."""


# -- export -------------------------------------------------------------------------------------


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
        async for batch in store.read_raw(subjects=store.ns.everything):
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
            sha256=file_digest(partial),
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            prefix=store.ns.prefix,
            public_key=public_key_of(seed),
        ),
        seed,
    )
    partial.replace(out)
    write_manifest(manifest_path(out), msgspec.json.format(msgspec.json.encode(manifest)))
    return manifest


def _is_json(data: bytes) -> bool:
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError:
        return False
    return True


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
        source: IO[bytes] = buffered
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
        checkpoints = _check_checkpoints(first.lines(), where, manifest)
        checked = first.checker
        if manifest:
            compare_with_manifest(manifest, where, checked, first.digest)
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
        checkpoints=checkpoints,
        public_key=manifest.public_key if manifest else "",
    )


def _check_checkpoints(lines: Iterator[CheckedLine], where: str, manifest: Manifest | None) -> int:
    """Read every line, and check each checkpoint among them against the archive's own Merkle
    tree: signed by the exporting ledger's key (the manifest's), of a tree the archive held
    before it, with that tree's root. The tree is built in a scratch file, so memory stays
    flat however far back a checkpoint reaches.

    :returns: how many checkpoints the archive holds.
    :raises ArchiveRejectedError: naming the first checkpoint that fails.
    """
    with tempfile.TemporaryDirectory(prefix="ledger-import-") as scratch:
        tree = TreeStore(Path(scratch) / "tree.db", "archive", writer=True)
        try:
            notes: list[CheckedLine] = []
            batch: list[RawMessage] = []
            for line in lines:
                if line.kind == "checkpoint":
                    notes.append(line)
                batch.append(RawMessage(line.sequence, line.subject, 0, None, line.body))
                if len(batch) >= 5000:
                    _grow(tree, batch, notes, where)
                    batch = []
            _grow(tree, batch, notes, where)
            for line in notes:
                checkpoint = _opened(line, where, manifest)
                if checkpoint.size >= line.sequence:
                    raise ArchiveRejectedError(
                        where,
                        line.number,
                        "checkpoint",
                        f"it signs a tree of {checkpoint.size} messages, but only "
                        f"{line.sequence - 1} come before it: do not import the archive",
                    )
                if tree.root(checkpoint.size) != checkpoint.root:
                    raise ArchiveRejectedError(
                        where,
                        line.number,
                        "checkpoint",
                        f"the archive's first {checkpoint.size} messages are not those it "
                        "signed: the archive was changed; import the original",
                    )
            return len(notes)
        finally:
            tree.close()


def _grow(tree: TreeStore, batch: list[RawMessage], notes: list[CheckedLine], where: str) -> None:
    if batch and notes and batch[0].sequence != tree.size() + 1:
        raise ArchiveRejectedError(
            where,
            notes[0].number,
            "checkpoint",
            "the archive does not begin at sequence 1, so its checkpoints cannot be checked: "
            "import a complete export",
        )
    if batch and batch[0].sequence == tree.size() + 1:
        tree.append(batch)


def _opened(line: CheckedLine, where: str, manifest: Manifest | None) -> Checkpoint:
    if manifest is None:
        raise ArchiveRejectedError(
            where,
            line.number,
            "checkpoint",
            "without a manifest there is no key to check the archive's checkpoints against: "
            "put the manifest the export wrote beside the archive",
        )
    try:
        return open_note(line.body, KEY_NAME, manifest.public_key)
    except CheckpointError as why:
        raise ArchiveRejectedError(where, line.number, "checkpoint", str(why)) from None


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
    pending: list[tuple[Any, int, bytes]] = []

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
            # Releases, checkpoints and messages that never were events, each at its place,
            # so that sequences still match.
            await flush()
            if line.kind == "checkpoint":
                await store.append_checkpoint(line.body)
            elif line.kind == "release":
                await store.append_release(decode_release(line.body), line.body)
            else:
                await store.js.publish(store.ns.activity(line.office, line.activity_id), line.body)
            counter.written += 1
            continue
        previous = last_of.get(line.activity_id)
        pending.append((line.envelope, previous + offset if previous else 0, line.body))
        last_of[line.activity_id] = line.sequence
        if len(pending) >= chunk:
            await flush()
    await flush()
