"""Export the whole log to JSON Lines, and import such an archive into a fresh stream.

Each line is one stream message: its sequence, the time the stream stored it, its subject and
the event exactly as stored (the body is embedded byte for byte, so hashes still verify). A
message that is not even JSON is kept as base64 under ``raw``. ``.gz`` files are compressed.

An import checks every hash and ``prev`` link of the archive before it writes anything, then
appends the events in their original order with their original event ids. Into an empty stream
every event lands at its original sequence, messages that were never valid events included.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from events.codec import DEFAULT_CODEC
from events.errors import EventDecodeError, LedgerError
from events.keys import KeyRegistry
from events.store import EventStore
from replay.chain import ChainChecker

__all__ = ["ArchiveError", "ArchivedMessage", "export_log", "import_log", "read_archive"]

Progress = Callable[[int], None]


class ArchiveError(LedgerError):
    """Raised when an archive cannot be read, fails its checks, or cannot be imported."""


class ArchivedMessage(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One stream message in an archive."""

    sequence: int
    time_ns: int
    subject: str
    event: msgspec.Raw = msgspec.Raw()
    """The stored body, when it is JSON; empty otherwise."""
    raw: str = ""
    """Base64 of a stored body that is not JSON."""


def _open(path: Path, mode: str, compressed: bool | None = None) -> IO[bytes]:
    if compressed if compressed is not None else path.suffix == ".gz":
        return gzip.open(path, mode + "b")  # type: ignore[return-value]
    return open(path, mode + "b")


async def export_log(store: EventStore, out: Path, progress: Progress | None = None) -> int:
    """Write every message of the stream to ``out``; return how many.

    The file is written beside its final name and renamed when complete, so an interrupted
    export never leaves a truncated archive under the name asked for.
    """
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    encoder = msgspec.json.Encoder()
    count = 0
    with _open(partial, "w", compressed=out.suffix == ".gz") as sink:
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
            count += len(batch)
            if progress:
                progress(count)
    partial.replace(out)
    return count


def _is_json(data: bytes) -> bool:
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError:
        return False
    return True


def read_archive(path: Path) -> Iterator[tuple[int, ArchivedMessage]]:
    """``(line number, message)`` for every line of an archive.

    :raises ArchiveError: naming the line, for a line that is not an archived message.
    """
    decoder = msgspec.json.Decoder(ArchivedMessage)
    try:
        with _open(Path(path), "r") as source:
            for number, line in enumerate(source, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, decoder.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise ArchiveError(f"{path}:{number}: not an archived message: {exc}") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ArchiveError(f"{path}: cannot read the archive: {exc}") from None


def check_archive(path: Path) -> int:
    """Check every hash and ``prev`` link and the order of sequences; return the line count.

    :raises ArchiveError: at the first problem, naming the line and sequence.
    """
    checker = ChainChecker(KeyRegistry())
    expected_sequence = None
    count = 0
    for number, message in read_archive(path):
        count += 1
        if expected_sequence is not None and message.sequence != expected_sequence:
            raise ArchiveError(
                f"{path}:{number}: sequence {message.sequence} follows {expected_sequence - 1}; "
                "the archive is incomplete or out of order"
            )
        expected_sequence = message.sequence + 1
        if not message.event:
            continue
        try:
            envelope = DEFAULT_CODEC.decode(bytes(message.event))
        except EventDecodeError:
            continue  # never an event: it is carried over as it was
        for failure in checker.check(message.sequence, message.subject, envelope):
            if failure.check in ("hash", "prev"):
                raise ArchiveError(
                    f"{path}:{number}: sequence {message.sequence}: {failure.check}: "
                    f"{failure.message}"
                )
    return count


async def import_log(
    store: EventStore,
    path: Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
    chunk: int = 5000,
) -> int:
    """Load an archive into the store's stream; return how many messages were written.

    :param force: import into a stream that already has messages (repeats of event ids still
        stored in the duplicate window are recognised and skipped).
    :raises ArchiveError: when the archive fails its checks (nothing is written then), when
        the stream is not empty and ``force`` is not set, or when the stream refuses an event.
    """
    check_archive(path)
    # Into an empty stream every message lands at its archived sequence; into a non-empty one
    # (with force) they all shift by the same offset.
    offset = await store.last_sequence()
    if offset and not force:
        raise ArchiveError(
            f"stream {store.ns.stream} already holds {offset} messages; import into an empty "
            "stream, or pass --force to add to it"
        )
    last_of: dict[str, int] = {}
    pending: list[tuple[Any, int]] = []
    written = 0

    async def flush() -> None:
        nonlocal written
        outcomes = await store.append_many(pending)
        bad = [o for o in outcomes if o.status not in ("stored", "duplicate")]
        if bad:
            raise ArchiveError(
                f"the stream refused {len(bad)} events, first {bad[0].event_id}: {bad[0].detail}"
            )
        written += len(pending)
        pending.clear()
        if progress:
            progress(written)

    for _, message in read_archive(path):
        envelope = None
        if message.event:
            try:
                envelope = DEFAULT_CODEC.decode(bytes(message.event))
            except EventDecodeError:
                envelope = None
        if envelope is None:
            # Keep a message that never was an event at its place, so sequences still match.
            await flush()
            body = bytes(message.event) if message.event else base64.b64decode(message.raw)
            # The archive may come from a ledger with another subject prefix.
            where = message.subject.partition(".activity.")[2] or "unknown.unknown"
            await store.js.publish(f"{store.ns.prefix}.activity.{where}", body)
            written += 1
            continue
        previous = last_of.get(envelope.activity_id)
        pending.append((envelope, previous + offset if previous else 0))
        last_of[envelope.activity_id] = message.sequence
        if len(pending) >= chunk:
            await flush()
    await flush()
    return written
