"""Field offices' commands to intake, and intake's replies, as msgspec Structs.

Commands are requests in the imperative (``ReportActivity``); intake turns an accepted one into
an event in the past tense (``ActivityReported``). They travel as JSON in one tagged union, so
intake decodes each message once and then matches on the type.

The client sets ``command_id`` and ``issued_at`` and keeps both when it retries. The event id
derives from them and from the office and activity (:func:`event_id_for`), and the event records
the command id as its ``causation_id``, so a retry is recognised and stores nothing new.

Commands come from outside, so :func:`decode_command` bounds them before msgspec parses a byte:
the request's size, each report's size within a batch, and the JSON nesting depth (see
:mod:`events.limits`). Whatever the bytes, it raises only the errors intake turns into an
``invalid`` reply.
"""

from __future__ import annotations

import datetime as dt
import typing
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from events.envelope import new_event_id
from events.errors import FieldIssue, InvalidEventError
from events.limits import (
    MAX_ACTOR,
    MAX_BATCH,
    MAX_BATCH_BYTES,
    MAX_CHANGES,
    MAX_CODE,
    MAX_COMMAND_BYTES,
    MAX_DEPTH,
    MAX_ID,
    MAX_REASON,
    MAX_SIGNATURE,
)
from events.model import ActivityReported

__all__ = [
    "ERROR_CODES",
    "MAX_BATCH",
    "Accepted",
    "Command",
    "DescribeActivity",
    "Described",
    "ErrorCode",
    "Rejected",
    "ReleaseFigures",
    "Replies",
    "Reply",
    "ReportActivities",
    "ReportActivity",
    "Request",
    "ReviseActivity",
    "WithdrawActivity",
    "decode_command",
    "decode_reply",
    "encode_command",
    "encode_reply",
    "event_id_for",
    "nesting_exceeds",
]

# Limits on what an office sends; stored events carry none (events/model.py says why).
Code = Annotated[str, Meta(max_length=MAX_CODE)]
Reason = Annotated[str, Meta(max_length=MAX_REASON)]
CommandId = Annotated[str, Meta(min_length=1, max_length=MAX_ID)]
UtcDatetime = Annotated[dt.datetime, Meta(tz=True)]
ChangePath = Annotated[str, Meta(max_length=len("metrics.") + MAX_CODE)]
"""A revised field's name, or ``metrics.<name>``."""


class _Command(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="command"):
    command_id: CommandId
    """Chosen by the client, unique per intended change, and kept when the command is retried."""
    issued_at: UtcDatetime
    """When the client issued the command (UTC); the event's ``occurred_at`` and id time."""
    actor: Annotated[str, Meta(max_length=MAX_ACTOR)]
    """Who issues the command, e.g. ``kaz.officer@example.org``."""
    correlation_id: Annotated[str, Meta(max_length=MAX_ID)] = ""
    """Shared by every command of one piece of work, e.g. one import run."""
    signature: Annotated[str, Meta(max_length=MAX_SIGNATURE)] = ""
    """The office's Ed25519 signature of the content hash of the event this command makes
    (:func:`events.integrity.content_hash`); required once the office has a registered key."""


class ReportActivity(_Command, frozen=True, tag="report"):
    """Report a new activity."""

    activity: ActivityReported


class ReviseActivity(_Command, frozen=True, tag="revise"):
    """Change some fields of an activity, saying why."""

    activity_id: Code
    changes: Annotated[dict[ChangePath, Any], Meta(max_length=MAX_CHANGES)]
    """New values by field: a top-level field of the activity (``year``, ``countries``, ...),
    or ``metrics.<name>`` for one figure (``null`` removes it)."""
    reason: Reason
    expected_version: int | None = None
    """The activity's version (its number of events) as the client last saw it; when given, a
    newer activity gives ``conflict`` instead of a silent overwrite."""


class WithdrawActivity(_Command, frozen=True, tag="withdraw"):
    """Withdraw an activity: it then counts nowhere, but stays in history."""

    activity_id: Code
    reason: Reason
    expected_version: int | None = None


class DescribeActivity(_Command, frozen=True, tag="describe"):
    """Ask for an activity's events, to build (and sign) a revision against its current state.

    Answered with :class:`Described`; only the activity's own office may ask.
    """

    activity_id: Code


Command = ReportActivity | ReviseActivity | WithdrawActivity | DescribeActivity


Digest = Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]


class ReleaseFigures(_Command, frozen=True, tag="release"):
    """Release the figures as of a sequence under a name (events/release.py); HQ only."""

    name: Code
    sequence: Annotated[int, Meta(ge=0)]
    digest: Digest
    """``projections.digest.digest_at`` of the figures at ``sequence``."""
    note: Reason = ""


class ReportActivities(
    Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="report_batch",
    tag_field="command",
):
    """Many reports in one request: the bulk path an import takes.

    Each report keeps its own command id, signature and reply, exactly as if it had been sent
    alone; the batch only saves the round trips. Answered with :class:`Replies`. At most
    :data:`~events.limits.MAX_BATCH` reports, at most 64 KiB each and 1 MiB in all.
    """

    commands: Annotated[list[ReportActivity], Meta(min_length=1, max_length=MAX_BATCH)]


Request = Command | ReportActivities | ReleaseFigures
"""Anything an office may send to intake."""

ErrorCode = Literal[
    "invalid", "unknown_activity", "conflict", "withdrawn", "forbidden", "unavailable"
]
ERROR_CODES: tuple[str, ...] = typing.get_args(ErrorCode)
"""Every code a :class:`Rejected` reply can carry; ``unavailable`` is transient: retry as is."""


class Accepted(Struct, frozen=True, kw_only=True, tag="accepted", tag_field="outcome"):
    """The command's event is in the stream."""

    event_id: str
    activity_id: str
    sequence: int
    """Stream sequence of the event."""
    version: int
    """The activity's version once the event is counted: 1 after its report."""
    duplicate: bool = False
    """True when this command had been accepted before; nothing new was stored."""


class Rejected(Struct, frozen=True, kw_only=True, tag="rejected", tag_field="outcome"):
    """The command was refused; nothing was stored."""

    code: ErrorCode
    message: str
    """What is wrong and how to fix it."""
    field: str = ""
    """Dotted path of the offending field, when one field is to blame."""
    version: int | None = None
    """For ``conflict``: the activity's current version."""
    sequence: int | None = None
    """For ``conflict``: the stream sequence of the activity's latest event."""


class Described(Struct, frozen=True, kw_only=True, tag="described", tag_field="outcome"):
    """An activity's stored events, oldest first, as the stream holds them."""

    activity_id: str
    version: int
    sequence: int
    """Stream sequence of the activity's latest event."""
    events: list[msgspec.Raw]
    """Each event's stored JSON body."""
    sequences: list[int]
    """The stream sequence of each event."""


class Replies(Struct, frozen=True, kw_only=True, tag="replies", tag_field="outcome"):
    """One reply per report of a :class:`ReportActivities`, in the same order."""

    replies: list[Accepted | Rejected]


Reply = Accepted | Rejected | Described | Replies


def event_id_for(command: Command | ReleaseFigures, office: str) -> str:
    """The id of the event a command produces: the same for every retry of the command.

    The id is a UUIDv7 whose time is ``issued_at`` and whose other bits come from the office,
    the activity and the command id together. JetStream deduplicates on the id across the whole
    stream, so two offices (or two activities) whose clients happen to pick the same command id
    in the same millisecond must not share it: the second event would be taken for a retry of
    the first and silently not stored.

    :param command: the command, as the office sent it.
    :param office: the office token of the intake subject the command came on.
    """
    # JSON keeps the three parts apart whatever characters they hold, so no two different
    # triples give the same seed.
    seed = _encoder.encode([office, _activity_id(command), command.command_id]).decode()
    return new_event_id(command.issued_at, seed=seed)


def _activity_id(command: Command | ReleaseFigures) -> str:
    if isinstance(command, ReportActivity):
        return command.activity.activity_id
    if isinstance(command, ReleaseFigures):
        return f"release:{command.name}"
    return command.activity_id


_encoder = msgspec.json.Encoder()
_command_decoder = msgspec.json.Decoder(Request)
_reply_decoder = msgspec.json.Decoder(Reply)


class _Outline(Struct):
    """A request's tag and, for a batch, each report as raw bytes: enough to measure them."""

    command: str = ""
    commands: list[msgspec.Raw] = []


_outline_decoder = msgspec.json.Decoder(_Outline)

_NOT_MARK = bytes(b for b in range(256) if b not in b'"[]{}')
_CURLY_AS_SQUARE = bytes.maketrans(b"{}", b"[]")


def nesting_exceeds(data: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON in ``data`` nests arrays and objects more than ``limit`` levels deep.

    A scan of bytes, not a parse: it cannot recurse, and every step is one of ``bytes``' C
    loops. It drops escaped backslashes and escaped quotes (so that neither ends a string),
    keeps only quotes and brackets, drops the strings with what they hold (so that brackets in
    text do not count), and then removes innermost ``[]`` pairs up to ``limit`` times. Each
    pass takes exactly one level off every nest, so what is left is nothing (balanced and at
    most ``limit`` deep), a pair that was deeper (it shows as ``[]``), or openers and closers
    without a partner. More than ``limit`` openers that never close count as too deep as well:
    a parser would descend into them before finding the end of the input.

    For text that is not JSON the answer may be off, but then the parser fails at the first
    bad byte anyway, and :func:`decode_command` still turns a ``RecursionError`` into a refusal.

    :param data: the encoded request.
    :param limit: the deepest nesting allowed; the outermost object is level 1.
    """
    if b"\\" in data:
        # Escaped backslashes first, so that in ``\\"`` the quote is seen to end the string.
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = data.translate(None, delete=_NOT_MARK)
    # Two adjacent quotes are an empty string, or the end of one string and the start of the
    # next with nothing between them: dropping either pair leaves the text outside strings as
    # it was, and most strings hold no bracket, so little is left to split.
    marks = marks.replace(b'""', b"")
    if b'"' in marks:
        marks = b"".join(marks.split(b'"')[::2])
    brackets = marks.translate(_CURLY_AS_SQUARE)
    if b"[" * (limit + 1) in brackets:
        return True  # the plain deep nest, found without a pass
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    if not brackets:
        return False
    if b"[]" in brackets:
        return True
    # No pair is left, so what remains is ']' * m + '[' * n: n openers that never close.
    return len(brackets.lstrip(b"]")) > limit


def encode_command(command: Request) -> bytes:
    """The message body of a command."""
    return _encoder.encode(command)


def decode_command(data: bytes) -> Request:
    """Decode a command body: one command, or a batch of reports.

    Before parsing, it refuses a request over 1 MiB, a single command (or one report of a
    batch) over 64 KiB, and JSON nested more than 16 levels (:mod:`events.limits`).

    :raises InvalidEventError: for a request too large or too deeply nested, or for bytes the
        parser cannot take for another reason (such as a number it cannot represent); the
        field is empty, as the request as a whole is to blame, or ``commands.<i>`` for one
        report of a batch.
    :raises msgspec.DecodeError: for bytes that are not JSON (including text that is not
        UTF-8).
    :raises msgspec.ValidationError: for JSON that is not a valid command, naming the field.
    """
    size = len(data)
    if size > MAX_BATCH_BYTES:
        raise _whole(
            f"the request is {size:,} bytes; at most {MAX_BATCH_BYTES:,} bytes (1 MiB) are "
            f"accepted, and at most {MAX_COMMAND_BYTES:,} (64 KiB) for one command"
        )
    if nesting_exceeds(data):
        raise _whole(
            f"the JSON nests deeper than {MAX_DEPTH} levels of arrays and objects; a command "
            "needs far fewer"
        )
    try:
        if size > MAX_COMMAND_BYTES:
            _check_batch_sizes(data, size)
        return _command_decoder.decode(data)
    except (msgspec.DecodeError, InvalidEventError):
        # Both are ValueErrors, but already say what is wrong (a ValidationError, a subclass
        # of DecodeError, names the field), and intake maps each of them to "invalid".
        raise
    except (RecursionError, ValueError, OverflowError) as exc:
        # msgspec raises its own errors for malformed or invalid JSON; anything else it lets
        # through (a depth the scan above did not foresee, a number Python cannot convert)
        # must still reach the office as "invalid", not as "unavailable, retry".
        raise _whole(f"the command cannot be decoded ({type(exc).__name__}: {exc})") from None


def _check_batch_sizes(data: bytes, size: int) -> None:
    """Refuse a request over 64 KiB unless it is a batch whose reports are each within 64 KiB."""
    outline = _outline_decoder.decode(data)
    if outline.command != "report_batch":
        raise _whole(
            f"the command is {size:,} bytes; one command may be at most {MAX_COMMAND_BYTES:,} "
            "bytes (64 KiB); shorten its texts or lists"
        )
    issues = [
        FieldIssue(
            f"commands.{index}",
            f"this report is {len(raw):,} bytes; one report may be at most "
            f"{MAX_COMMAND_BYTES:,} bytes (64 KiB)",
        )
        for index, raw in enumerate(outline.commands)
        if len(raw) > MAX_COMMAND_BYTES
    ]
    if issues:
        raise InvalidEventError(issues)


def _whole(message: str) -> InvalidEventError:
    """An error about the request as a whole, which no single field is to blame for."""
    return InvalidEventError([FieldIssue("", message)])


def encode_reply(reply: Reply) -> bytes:
    """The message body of a reply."""
    return _encoder.encode(reply)


def decode_reply(data: bytes) -> Reply:
    """Decode a reply body.

    :raises msgspec.DecodeError: for bytes that are not JSON.
    :raises msgspec.ValidationError: for JSON that is not a reply.
    """
    return _reply_decoder.decode(data)
