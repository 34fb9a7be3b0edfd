"""``ledger import``: a JSON Lines or CSV file of activities, reported through intake.

The file is read one line at a time, never whole, and no line may be longer than
``max_line_bytes`` (1 MiB by default): a longer one is rejected after being skipped in chunks,
so a 1 GB line costs a read, not a gigabyte of memory. Each record becomes a
``ReportActivity`` whose command id is a hash of the record's normalised content, so the same
file imported again, whole or after an interruption, stores nothing twice: intake answers
those lines as already present.

CSV layout (one record per line, header first, UTF-8)::

    activity_id,office,programme,kind,title,summary,countries,year,start_date,end_date,
    partners,source.document,source.paragraph,part_of,notes,metric.<name>...

``countries`` is ``KAZ;UZB`` or ``KAZ:60;UZB:40`` (shares in percent), with ``:venue`` after
a country that only hosted the activity (``AUT:venue;KAZ``), ``partners`` is
``UNDP;WHO``, and each ``metric.<name>`` column holds one figure (empty: not reported). Only
``activity_id``, ``office``, ``programme``, ``kind``, ``title`` and ``year`` are required.
"""

from __future__ import annotations

import csv
import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from events.commands import Accepted, Command, Rejected, ReportActivity
from events.decisions import rejection_for, split_validation_error
from events.envelope import utc_now
from events.errors import FieldIssue, InvalidEventError, LedgerError
from events.model import ActivityReported
from events.reference import load_reference
from events.upcasters import sources_of
from services.client.delivery import send_waiting
from services.client.errors import IntakeUnavailableError
from services.client.fields import parse_field
from services.client.office import OfficeClient
from services.client.outbox import Entry, Outbox, WriteCommand, fingerprint_of

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_MAX_LINE_BYTES",
    "BadImportFileError",
    "ImportRejectedError",
    "ImportSummary",
    "LineRejection",
    "command_id_for",
    "import_file",
    "read_records",
    "write_rejects",
]

DEFAULT_MAX_LINE_BYTES = 1 << 20
"""The longest line accepted: 1 MiB, far above any real activity (about 1 KB)."""

CSV_COLUMNS: tuple[str, ...] = (
    "activity_id",
    "office",
    "programme",
    "kind",
    "title",
    "summary",
    "countries",
    "year",
    "start_date",
    "end_date",
    "partners",
    "source.document",
    "source.paragraph",
    "part_of",
    "notes",
)
"""The CSV columns besides ``metric.<name>``, in the suggested order."""
_REQUIRED = ("activity_id", "office", "programme", "kind", "title", "year")
_CHUNK = 1 << 20


class BadImportFileError(InvalidEventError):
    """Raised when a whole file cannot be imported: empty, unreadable, or a bad CSV header."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__([FieldIssue("", f"{path}: {message}")])


class ImportRejectedError(LedgerError):
    """Raised after an import in which some lines were rejected; the others are stored."""


@dataclass(frozen=True)
class LineRejection:
    """Why one line of the file was not stored."""

    line: int
    code: str
    message: str
    field: str = ""
    activity_id: str = ""


@dataclass
class ImportSummary:
    """What an import did, line by line counted."""

    accepted: int = 0
    already_present: int = 0
    rejections: list[LineRejection] = field(default_factory=list)
    queued: int = 0
    """Lines kept in the outbox because intake could not be reached: sent later."""
    waiting: int = 0
    """Commands the outbox holds unsent once the import is over, these lines included."""

    @property
    def rejected(self) -> int:
        """How many lines were not stored."""
        return len(self.rejections)


Record = ActivityReported | LineRejection


_IMPORT_PREFIX = "import-"


def command_id_for(activity: ActivityReported) -> str:
    """The command id of an imported record: a hash of its content, the same on every run."""
    canonical = msgspec.json.encode(activity, order="sorted")
    return _IMPORT_PREFIX + hashlib.sha256(canonical).hexdigest()[:40]


def read_records(
    stream: IO[bytes], path: Path, *, csv_format: bool, max_line_bytes: int
) -> Iterator[tuple[int, Record]]:
    """Each line of the file as ``(line number, activity or the reason it is unusable)``.

    :raises BadImportFileError: for an empty file or a CSV header it cannot use.
    """
    lines = _lines(stream, max_line_bytes)
    parse = _csv_parser(path, lines) if csv_format else _json_line
    seen = False
    for number, raw in lines:
        if isinstance(raw, LineRejection):
            seen = True
            yield number, raw
            continue
        if not raw.strip():
            continue
        seen = True
        yield number, parse(number, raw)
    if not seen:
        what = "has a header but no rows" if csv_format else "has no records"
        raise BadImportFileError(path, f"the file is empty: it {what}; give one activity per line")


def _lines(stream: IO[bytes], limit: int) -> Iterator[tuple[int, str | LineRejection]]:
    number = 0
    while True:
        raw = stream.readline(limit + 1)
        if not raw:
            return
        number += 1
        if len(raw) > limit and not raw.endswith(b"\n"):
            skipped = len(raw) + _skip_rest_of_line(stream)
            yield (
                number,
                LineRejection(
                    number,
                    "invalid",
                    f"the line is {skipped:,} bytes long, over the limit of {limit:,}; each "
                    "activity must be one line of its own (JSON Lines, not one JSON array)",
                ),
            )
            continue
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark from Excel
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield (
                number,
                LineRejection(
                    number,
                    "invalid",
                    f"not UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}; save the "
                    "file as UTF-8",
                ),
            )


def _skip_rest_of_line(stream: IO[bytes]) -> int:
    skipped = 0
    while chunk := stream.readline(_CHUNK):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return skipped


_json_decoder = msgspec.json.Decoder(ActivityReported)


def activity_from_json(text: str | bytes, where: str = "") -> ActivityReported:
    """One activity from a JSON object in the form of a line of an import file (version 2, or
    version 1 with one ``source``, as data/activities.jsonl has it): ``ledger report``'s input.

    :param where: names the input in an error (a file name).
    :raises InvalidEventError: naming the field and what is wrong with it.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidEventError([FieldIssue("", f"{where} is not UTF-8 text: {exc}")]) from None
    record = _json_line(1, text)
    if isinstance(record, LineRejection):
        message = f"{where} is {record.message}" if where and not record.field else record.message
        raise InvalidEventError([FieldIssue(record.field, message)])
    return record


def _json_line(number: int, text: str) -> Record:
    try:
        if '"source"' in text:
            # A line in the form of schema version 1 (one ``source``), as
            # data/activities.jsonl has it: read it as version 2, as stored events are.
            fields = msgspec.json.decode(text)
            if isinstance(fields, dict):
                sources_of(fields)
                text = msgspec.json.encode(fields).decode()
        return _json_decoder.decode(text)
    except msgspec.ValidationError as exc:
        path, message = split_validation_error(exc)
        return LineRejection(number, "invalid", message, path)
    except msgspec.DecodeError as exc:
        return LineRejection(number, "invalid", f"not a JSON object: {exc}")


def _csv_parser(
    path: Path, lines: Iterator[tuple[int, str | LineRejection]]
) -> Callable[[int, str], Record]:
    header_line = next(lines, None)
    if header_line is None:
        raise BadImportFileError(path, "the file is empty; the first line must be the header")
    _, header_text = header_line
    if isinstance(header_text, LineRejection):
        raise BadImportFileError(path, f"line 1 (the header): {header_text.message}")
    header = [name.strip() for name in next(csv.reader([header_text]), [])]
    _check_header(path, header)

    def parse(number: int, text: str) -> Record:
        cells = next(csv.reader([text]), [])
        if len(cells) != len(header):
            return LineRejection(
                number,
                "invalid",
                f"{len(cells)} cells but the header has {len(header)} columns; quote cells "
                "that contain commas",
            )
        try:
            data = _row_data(header, cells)
            return msgspec.convert(data, ActivityReported, strict=False)
        except InvalidEventError as exc:
            return LineRejection(number, "invalid", str(exc), exc.field)
        except msgspec.ValidationError as exc:
            field, message = split_validation_error(exc)
            return LineRejection(number, "invalid", message, field)

    return parse


def _check_header(path: Path, header: list[str]) -> None:
    metrics = load_reference().metrics
    for name in header:
        if name in CSV_COLUMNS:
            continue
        if name.startswith("metric.") and name.removeprefix("metric.") in metrics:
            continue
        hint = (
            f"unknown metric; known: {', '.join(sorted(metrics))}"
            if name.startswith("metric.")
            else f"known columns: {', '.join(CSV_COLUMNS)}, metric.<name>"
        )
        raise BadImportFileError(path, f"unknown column {name!r} in the header; {hint}")
    missing = [name for name in _REQUIRED if name not in header]
    if missing:
        raise BadImportFileError(path, f"the header lacks the column(s) {', '.join(missing)}")
    doubled = {name for name in header if header.count(name) > 1}
    if doubled:
        raise BadImportFileError(path, f"column(s) {', '.join(sorted(doubled))} appear twice")


def _row_data(header: list[str], cells: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {"metrics": {}}
    source: dict[str, Any] = {}
    for name, cell in zip(header, cells, strict=True):
        value = parse_field(name, cell)
        if name.startswith("metric."):
            if value is not None:
                data["metrics"][name.removeprefix("metric.")] = value
        elif name.startswith("source."):
            if value not in (None, ""):
                source[name.removeprefix("source.")] = value
        elif value not in (None, "") or name in _REQUIRED:
            data[name] = value
    if source:
        data["sources"] = [source]
    return data


async def import_file(
    client: OfficeClient,
    path: Path,
    *,
    window: int = 256,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    csv_format: bool | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Report every activity of a file through intake.

    :param client: sends the commands; its office, when set, must own every record.
    :param path: the JSON Lines or CSV file (CSV when it ends in ``.csv``).
    :param window: the most commands awaiting their reply at once.
    :param max_line_bytes: the longest line accepted.
    :param on_progress: called with the number of bytes read so far.
    When the client keeps an outbox, each batch is recorded there (one transaction a batch)
    before it is sent and its answers after; a client without a connection only queues the
    lines (:attr:`ImportSummary.queued`). The outbox's commands of other runs are sent after
    the file's own, and the lines of an earlier, interrupted run of the same file are sent
    again as lines of this one (their command ids are the same).

    :raises BadImportFileError: when the file cannot be imported at all; nothing is sent.
    :raises IntakeUnavailableError: when intake stops answering; importing again is safe.
    """
    is_csv = path.suffix.lower() == ".csv" if csv_format is None else csv_format
    summary = ImportSummary()
    issued_at = utc_now()
    run = f"import-{uuid.uuid4().hex}"
    if client.outbox is not None and client.nc is not None:
        # What waits from single commands goes first, so that the file's reports do not
        # overtake a queued command about the same activity.
        await send_waiting(client, skip=_is_imported)
    with open(path, "rb") as stream:

        def commands() -> Iterator[tuple[tuple[int, str], Command]]:
            for number, record in read_records(
                stream, path, csv_format=is_csv, max_line_bytes=max_line_bytes
            ):
                if on_progress is not None:
                    on_progress(stream.tell())
                if isinstance(record, LineRejection):
                    summary.rejections.append(record)
                    continue
                command = client.report_command(
                    record,
                    command_id=command_id_for(record),
                    issued_at=issued_at,
                    correlation_id=run,
                )
                yield (number, record.activity_id), command

        if client.outbox is not None and client.nc is None:
            await _queue_all(client, client.outbox, commands(), summary)
            summary.waiting = client.outbox.depth()
            return summary
        async for (number, activity_id), reply in client.send_many(commands(), window=window):
            if isinstance(reply, Accepted):
                if reply.duplicate:
                    summary.already_present += 1
                else:
                    summary.accepted += 1
            elif isinstance(reply, Rejected):
                summary.rejections.append(_rejection(number, activity_id, reply))
            else:
                raise IntakeUnavailableError(f"unexpected answer to a report: {reply}")
    summary.rejections.sort(key=lambda r: r.line)
    if client.outbox is not None:
        await send_waiting(client)
        summary.waiting = client.outbox.depth()
    return summary


def _is_imported(entry: Entry) -> bool:
    return entry.command_id.startswith(_IMPORT_PREFIX)


async def _queue_all(
    client: OfficeClient,
    outbox: Outbox,
    commands: Iterator[tuple[tuple[int, str], Command]],
    summary: ImportSummary,
    batch: int = 500,
) -> None:
    """Keep every command in the outbox, signed, ``batch`` to a transaction."""
    kept: list[tuple[WriteCommand, str, str]] = []
    for (number, activity_id), command in commands:
        if not isinstance(command, ReportActivity):
            continue
        office = command.activity.office if client.office is None else client.office
        try:
            signed = await client.signed(command)
        except InvalidEventError as exc:
            summary.rejections.append(_rejection(number, activity_id, rejection_for(exc)))
            continue
        kept.append((signed, office, fingerprint_of(command, office)))
        if len(kept) >= batch:
            outbox.add(kept)
            summary.queued += len(kept)
            kept = []
    outbox.add(kept)
    summary.queued += len(kept)
    summary.rejections.sort(key=lambda r: r.line)


def _rejection(number: int, activity_id: str, reply: Rejected) -> LineRejection:
    return LineRejection(number, reply.code, reply.message, reply.field, activity_id)


def write_rejects(path: Path, rejections: list[LineRejection]) -> Path:
    """Write the rejected lines as JSON Lines beside the file; remove a stale one if none."""
    target = path.with_name(path.name + ".rejects.jsonl")
    if not rejections:
        target.unlink(missing_ok=True)
        return target
    with open(target, "wb") as out:
        for rejection in rejections:
            out.write(msgspec.json.encode(rejection) + b"\n")
    return target
