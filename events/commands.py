"""Field offices' commands to intake, and intake's replies, as msgspec Structs.

Commands are requests in the imperative (``ReportActivity``); intake turns an accepted one into
an event in the past tense (``ActivityReported``). They travel as JSON in one tagged union, so
intake decodes each message once and then matches on the type.

The client sets ``command_id`` and ``issued_at`` and keeps both when it retries. The event id
derives from them (:func:`event_id_for`), and the event records the command id as its
``causation_id``, so a retry is recognised and stores nothing new.
"""

from __future__ import annotations

import datetime as dt
import typing
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from events.envelope import new_event_id
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
]

CommandId = Annotated[str, Meta(min_length=1, max_length=128)]
UtcDatetime = Annotated[dt.datetime, Meta(tz=True)]


class _Command(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="command"):
    command_id: CommandId
    """Chosen by the client, unique per intended change, and kept when the command is retried."""
    issued_at: UtcDatetime
    """When the client issued the command (UTC); the event's ``occurred_at`` and id time."""
    actor: str
    """Who issues the command, e.g. ``kaz.officer@example.org``."""
    correlation_id: str = ""
    """Shared by every command of one piece of work, e.g. one import run."""
    signature: str = ""
    """The office's Ed25519 signature of the content hash of the event this command makes
    (:func:`events.integrity.content_hash`); required once the office has a registered key."""


class ReportActivity(_Command, tag="report"):
    """Report a new activity."""

    activity: ActivityReported


class ReviseActivity(_Command, tag="revise"):
    """Change some fields of an activity, saying why."""

    activity_id: str
    changes: dict[str, Any]
    """New values by field: a top-level field of the activity (``year``, ``countries``, ...),
    or ``metrics.<name>`` for one figure (``null`` removes it)."""
    reason: str
    expected_version: int | None = None
    """The activity's version (its number of events) as the client last saw it; when given, a
    newer activity gives ``conflict`` instead of a silent overwrite."""


class WithdrawActivity(_Command, tag="withdraw"):
    """Withdraw an activity: it then counts nowhere, but stays in history."""

    activity_id: str
    reason: str
    expected_version: int | None = None


class DescribeActivity(_Command, tag="describe"):
    """Ask for an activity's events, to build (and sign) a revision against its current state.

    Answered with :class:`Described`; only the activity's own office may ask.
    """

    activity_id: str


Command = ReportActivity | ReviseActivity | WithdrawActivity | DescribeActivity

MAX_BATCH = 500
"""The most reports one :class:`ReportActivities` request may carry."""


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
    alone; the batch only saves the round trips. Answered with :class:`Replies`.
    """

    commands: Annotated[list[ReportActivity], Meta(min_length=1, max_length=MAX_BATCH)]


Request = Command | ReportActivities
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


def event_id_for(command: Command) -> str:
    """The id of the event a command produces: the same for every retry of the command."""
    return new_event_id(command.issued_at, seed=command.command_id)


_encoder = msgspec.json.Encoder()
_command_decoder = msgspec.json.Decoder(Request)
_reply_decoder = msgspec.json.Decoder(Reply)


def encode_command(command: Request) -> bytes:
    """The message body of a command."""
    return _encoder.encode(command)


def decode_command(data: bytes) -> Request:
    """Decode a command body: one command, or a batch of reports.

    :raises msgspec.DecodeError: for bytes that are not JSON.
    :raises msgspec.ValidationError: for JSON that is not a valid command.
    """
    return _command_decoder.decode(data)


def encode_reply(reply: Reply) -> bytes:
    """The message body of a reply."""
    return _encoder.encode(reply)


def decode_reply(data: bytes) -> Reply:
    """Decode a reply body.

    :raises msgspec.DecodeError: for bytes that are not JSON.
    :raises msgspec.ValidationError: for JSON that is not a reply.
    """
    return _reply_decoder.decode(data)
