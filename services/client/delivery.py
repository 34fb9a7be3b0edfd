"""Sending through the outbox: one command kept, then sent after what waited before it.

:func:`submit` is what ``ledger report``, ``revise`` and ``withdraw`` do with their command;
:func:`send_waiting` is what ``ledger outbox send``, ``ledger up`` and every office command
do first. Both keep the rules of ``outbox.py``: a command is committed before it is sent and
its answer after, an activity's commands go in order, and a rejected one is never sent again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from events.commands import Accepted, Command, Rejected, Reply, ReportActivity
from events.decisions import rejection_for
from events.errors import (
    ActivityNotFoundError,
    ActivityWithdrawnError,
    InvalidEventError,
    LedgerError,
)
from services.client.errors import ForbiddenError, IntakeUnavailableError, VersionConflict
from services.client.office import OfficeClient, raise_for
from services.client.outbox import (
    Entry,
    Outbox,
    WriteCommand,
    activity_of,
    fingerprint_of,
    sendable,
)

__all__ = ["Queued", "send_waiting", "submit"]


@dataclass(frozen=True)
class Queued:
    """A command kept in the outbox, not stored yet: intake could not be reached, or an
    earlier command of the same activity holds it."""

    command_id: str
    activity_id: str
    waiting: int
    """How many commands the outbox holds unsent, this one included."""
    behind: Entry | None = None
    """The earlier command of the activity it waits behind, if one holds it."""
    reason: str = ""
    """Why intake could not be reached, when it could not."""


async def submit(client: OfficeClient, command: WriteCommand) -> Accepted | Queued:
    """Keep the command in the client's outbox, send what waits there in order, and say what
    became of the command.

    The same command typed again (:meth:`Outbox.same_as`) is not queued twice: a stored one is
    answered with its recorded outcome (``duplicate``), a rejected one raises its recorded
    refusal again, and a waiting one is sent under its first command id.

    A report is signed now (its event depends on nothing stored). A revision or withdrawal is
    signed when it is sent, against the activity as intake then has it, and its signed bytes
    are recorded before they go. One queued behind unsettled commands of its activity gets,
    unless the office gave one, the expected version those commands lead to: a revision of a
    queued report expects version 1.

    :raises LedgerError: the error that stands for intake's refusal.
    """
    outbox = _outbox_of(client)
    office = client.office_of(command)
    same = outbox.same_as(command, office)
    if same is not None and same.state == "stored":
        return same.accepted()
    if same is not None and same.state == "rejected":
        refusal = same.rejected()
        message = (
            f"{refusal.message} (intake answered so before: the outbox keeps it as "
            f"{same.command_id}; `ledger outbox drop {same.command_id}` lets the same command "
            "be sent again)"
        )
        raise_for(msgspec.structs.replace(refusal, message=message), same.activity_id)
    if same is None:
        fingerprint = fingerprint_of(command, office)
        if isinstance(command, ReportActivity):
            command = await client.signed(command)
        elif command.expected_version is None:
            pinned = outbox.version_after_queued(office, command.activity_id)
            if pinned is not None:
                command = msgspec.structs.replace(command, expected_version=pinned)
        outbox.add([(command, office, fingerprint)])
    command_id = same.command_id if same is not None else command.command_id
    answers, reason = await send_waiting(client)
    if command_id in answers:
        return raise_for(answers[command_id], activity_of(command))
    _, held = sendable(outbox.pending())
    return Queued(
        command_id,
        activity_of(command),
        outbox.depth(),
        behind=held.get(command_id),
        reason=reason,
    )


async def send_waiting(
    client: OfficeClient, skip: Callable[[Entry], bool] | None = None
) -> tuple[dict[str, Accepted | Rejected], str]:
    """Send the outbox's unsettled commands that the client may send, in order, and record
    each outcome.

    A client of one office sends only that office's commands (its credentials allow no other);
    a client without an office sends them all, each as its office.

    :param skip: rows left for later (and the rows of their activities behind them).
    :returns: intake's answer by command id, and why sending stopped early ("" when everything
        that could go went).
    """
    outbox = _outbox_of(client)
    answers: dict[str, Accepted | Rejected] = {}
    if client.nc is None:
        return answers, client.unreachable or "no connection to NATS"
    while True:
        ready, _ = sendable(outbox.pending())
        ready = [
            row
            for row in ready
            if row.command_id not in answers
            and client.office in (None, row.office)
            and not (skip and skip(row))
        ]
        if not ready:
            return answers, ""
        try:
            for office, rows in _by_office(ready).items():
                answers.update(await _send_rows(client.as_office(office), outbox, rows))
        except IntakeUnavailableError as exc:
            return answers, str(exc)


async def _send_rows(
    client: OfficeClient, outbox: Outbox, rows: list[Entry]
) -> dict[str, Accepted | Rejected]:
    """Send rows of one office: reports in batches, the others one by one."""
    answers: dict[str, Accepted | Rejected] = {}
    reports: list[tuple[str, Command]] = []
    for row in rows:
        command = row.command
        if isinstance(command, ReportActivity):
            reports.append((row.command_id, command))
            continue
        try:
            command = await client.signed(command)
        except IntakeUnavailableError:
            raise
        except LedgerError as exc:
            refusal = _refusal_for(exc)
            if refusal is None:
                raise
            outbox.record([(row.command_id, refusal)])
            answers[row.command_id] = refusal
            continue
        outbox.mark_sent([command])
        reply = _settled(await client.request(command))
        outbox.record([(row.command_id, reply)])
        answers[row.command_id] = reply
    # send_many records the reports' sending and answers in the outbox, a batch at a time.
    async for command_id, answer in client.send_many(reports):
        answers[command_id] = _settled(answer)
    return answers


def _outbox_of(client: OfficeClient) -> Outbox:
    if client.outbox is None:
        raise LedgerError("this client keeps no outbox; give it one to queue commands")
    return client.outbox


def _by_office(rows: list[Entry]) -> dict[str, list[Entry]]:
    grouped: dict[str, list[Entry]] = {}
    for row in rows:
        grouped.setdefault(row.office, []).append(row)
    return grouped


def _settled(reply: Reply) -> Accepted | Rejected:
    """Intake's answer to one write command: accepted or rejected, anything else unusable."""
    if isinstance(reply, Accepted | Rejected):
        return reply
    raise IntakeUnavailableError(f"unexpected answer to a command: {type(reply).__name__}")


def _refusal_for(exc: LedgerError) -> Rejected | None:
    """The refusal a command met before it was sent (while being signed), or ``None`` for an
    error that is no refusal of the command."""
    if isinstance(exc, VersionConflict):
        return Rejected(
            code="conflict",
            message=str(exc),
            field="expected_version",
            version=exc.version,
            sequence=exc.sequence,
        )
    if isinstance(exc, ForbiddenError):
        return Rejected(code="forbidden", message=str(exc), field="activity_id")
    if isinstance(exc, InvalidEventError | ActivityNotFoundError | ActivityWithdrawnError):
        return rejection_for(exc)
    return None
