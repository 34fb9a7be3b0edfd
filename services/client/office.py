"""The field offices' client of intake: one call per command, used by the CLI and the tests.

Each call builds a command with a fresh command id (unless given one) and sends it as a NATS
request to the office's intake subject. On a timeout it sends the very same command again:
the id makes intake store it once and answer with the first outcome. A refusal raises the
ledger error that matches its code, so callers handle intake's answers like any other error.

A client given an outbox (``outbox.py``) records in it, a batch at a time, the commands
:meth:`OfficeClient.send_many` sends and their answers; ``delivery.py`` sends single commands
and what waits through it. Without a connection (``nc`` is ``None``) a client only queues.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import getpass
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from functools import partial
from typing import Any, TypeVar

import msgspec
import nats.errors
from nats.aio.client import Client as NATS

from events.commands import (
    Accepted,
    Command,
    DescribeActivity,
    Described,
    Rejected,
    ReleaseFigures,
    Replies,
    Reply,
    ReportActivities,
    ReportActivity,
    Request,
    ReviseActivity,
    WithdrawActivity,
    decode_reply,
    encode_command,
)
from events.decisions import Append, decide, decide_release, loaded_from, rejection_for
from events.envelope import utc_now
from events.errors import (
    ActivityNotFoundError,
    ActivityWithdrawnError,
    FieldIssue,
    InvalidEventError,
    LedgerError,
    ReleaseExistsError,
)
from events.integrity import content_hash
from events.limits import MAX_BATCH_BYTES
from events.model import ActivityChanges, ActivityReported
from events.reference import load_reference
from events.signing import sign_hash
from events.stored import LoadedActivity
from events.subjects import DEFAULT, Namespace
from services.client.errors import ForbiddenError, IntakeUnavailableError, VersionConflict
from services.client.outbox import Outbox, WriteCommand, fingerprint_of
from services.infra.violations import refused_or

__all__ = ["OfficeClient", "default_actor", "new_command_id", "raise_for"]

T = TypeVar("T")
TCommand = TypeVar("TCommand", bound=Command | ReleaseFigures)


def new_command_id() -> str:
    """A fresh, unique command id."""
    return uuid.uuid4().hex


def default_actor() -> str:
    """Who the commands are from when not said: ``LEDGER_ACTOR``, else the login name."""
    return os.environ.get("LEDGER_ACTOR") or getpass.getuser()


NO_RESPONDERS_PATIENCE = 5.0
"""Seconds a command is sent again while no intake listens at all: long enough for an intake
to reconnect to another node (nats-py waits 2 s between attempts), short enough that an office
without any intake running hears so within seconds."""


class OfficeClient:
    """Sends one office's commands to intake and returns the accepted replies."""

    def __init__(
        self,
        nc: NATS | None,
        office: str | None,
        namespace: Namespace = DEFAULT,
        *,
        actor: str | None = None,
        timeout: float = 5.0,
        patience: float = 30.0,
        seeds: dict[str, str] | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        """
        :param nc: a connected client; it needs only publish rights on the intake subject.
            ``None`` when NATS cannot be reached: commands then only go to the outbox.
        :param office: the office the commands are sent as; ``None`` sends each report as the
            office it names (revisions and withdrawals then need an office).
        :param namespace: whose intake to talk to.
        :param actor: recorded as who issued each command; :func:`default_actor` if not given.
        :param timeout: seconds to wait for one answer.
        :param patience: seconds to keep sending a command again while it gets no answer or
            an ``unavailable`` one: long enough to ride out a cluster electing a new leader.
        :param seeds: signing seeds by office; a command of an office found here is signed
            with its key (see :meth:`signed`).
        :param outbox: where single commands (``delivery.py``) and imports keep each command
            before sending it, and its answer after.
        """
        self.nc = nc
        self.outbox = outbox
        self.unreachable = ""
        """Why ``nc`` is ``None``, when it is: what connecting answered."""
        self.office = office
        self.ns = namespace
        self.actor = actor or default_actor()
        self.timeout = timeout
        self.patience = patience
        self.seeds = seeds or {}
        self.ref = load_reference()

    # -- one command each ------------------------------------------------------------------

    async def report(
        self, activity: ActivityReported, *, command_id: str | None = None
    ) -> Accepted:
        """Report a new activity.

        :raises InvalidEventError: naming the field that breaks a rule.
        :raises VersionConflict: when the activity id was already reported.
        :raises ForbiddenError: when the activity belongs to another office.
        :raises IntakeUnavailableError: when no intake answers.
        """
        return await self.send(self.report_command(activity, command_id=command_id))

    async def revise(
        self,
        activity_id: str,
        changes: dict[str, Any] | ActivityChanges,
        reason: str,
        expected_version: int | None = None,
        *,
        command_id: str | None = None,
    ) -> Accepted:
        """Change some fields of an activity.

        :param changes: new values by field name, or ``metrics.<name>`` for one figure.
        :param expected_version: the version the change was based on; a newer activity then
            raises :class:`VersionConflict` instead of being overwritten.
        :raises ActivityNotFoundError: when no such activity was reported.
        :raises ActivityWithdrawnError: when the activity was withdrawn.
        """
        return await self.send(
            self.revise_command(
                activity_id, changes, reason, expected_version, command_id=command_id
            )
        )

    async def withdraw(
        self,
        activity_id: str,
        reason: str,
        expected_version: int | None = None,
        *,
        command_id: str | None = None,
    ) -> Accepted:
        """Withdraw an activity; it stays in history but counts nowhere."""
        return await self.send(
            self.withdraw_command(activity_id, reason, expected_version, command_id=command_id)
        )

    def revise_command(
        self,
        activity_id: str,
        changes: dict[str, Any] | ActivityChanges,
        reason: str,
        expected_version: int | None = None,
        *,
        command_id: str | None = None,
    ) -> ReviseActivity:
        """The command that changes some fields of an activity (see :meth:`revise`)."""
        fields: dict[str, Any] = (
            msgspec.to_builtins(changes) if isinstance(changes, ActivityChanges) else changes
        )
        return ReviseActivity(
            command_id=command_id or new_command_id(),
            issued_at=utc_now(),
            actor=self.actor,
            activity_id=activity_id,
            changes=fields,
            reason=reason,
            expected_version=expected_version,
        )

    def withdraw_command(
        self,
        activity_id: str,
        reason: str,
        expected_version: int | None = None,
        *,
        command_id: str | None = None,
    ) -> WithdrawActivity:
        """The command that withdraws an activity (see :meth:`withdraw`)."""
        return WithdrawActivity(
            command_id=command_id or new_command_id(),
            issued_at=utc_now(),
            actor=self.actor,
            activity_id=activity_id,
            reason=reason,
            expected_version=expected_version,
        )

    def report_command(
        self,
        activity: ActivityReported,
        *,
        command_id: str | None = None,
        issued_at: dt.datetime | None = None,
        correlation_id: str = "",
    ) -> ReportActivity:
        """The command that reports ``activity``, for :meth:`send` or :meth:`send_many`."""
        return ReportActivity(
            command_id=command_id or new_command_id(),
            issued_at=issued_at or utc_now(),
            actor=self.actor,
            correlation_id=correlation_id,
            activity=activity,
        )

    async def release(
        self,
        name: str,
        sequence: int,
        digest: str,
        note: str = "",
        *,
        command_id: str | None = None,
    ) -> Accepted:
        """Release the figures as of ``sequence`` under ``name`` (events/release.py): the
        client's office must be headquarters.

        :param digest: ``projections.digest.digest_at`` of the figures at ``sequence``.
        :raises ForbiddenError: when the office may not release.
        :raises ReleaseExistsError: when the name is taken.
        """
        if self.office is None:
            raise LedgerError("give the office to release as (--office HQ)")
        command = ReleaseFigures(
            command_id=command_id or new_command_id(),
            issued_at=utc_now(),
            actor=self.actor,
            name=name,
            sequence=sequence,
            digest=digest,
            note=note,
        )
        signed = await self.signed(command)
        reply = await self.request(signed)
        if isinstance(reply, Rejected) and reply.code == "conflict":
            raise ReleaseExistsError(name)
        return raise_for(reply, _activity_id(signed))

    def as_office(self, office: str) -> OfficeClient:
        """This client, sending as ``office`` (on the same connection and outbox)."""
        if self.office == office:
            return self
        other = copy.copy(self)
        other.office = office
        return other

    # -- sending ---------------------------------------------------------------------------

    async def send(self, command: Command) -> Accepted:
        """Send a command and return its acceptance, or raise the error its refusal stands for."""
        command = await self.signed(command)
        return raise_for(await self.request(command), _activity_id(command))

    async def describe(self, activity_id: str) -> Described:
        """The activity's stored events, as intake gives them to the office that owns it."""
        if self.office is None:
            raise LedgerError("give the office whose activity to describe (--office)")
        ask = DescribeActivity(
            command_id=new_command_id(),
            issued_at=utc_now(),
            actor=self.actor,
            activity_id=activity_id,
        )
        reply = await self.request(ask)
        if isinstance(reply, Described):
            return reply
        if isinstance(reply, Rejected):
            raise_for(reply, activity_id)
        raise IntakeUnavailableError(f"unexpected answer to describe: {reply}")

    async def signed(self, command: TCommand) -> TCommand:
        """The command with its office's signature, when the client holds that office's seed.

        The office signs the content hash of the event intake will make. The client works that
        event out with intake's own decision function: for a revision or withdrawal it first
        asks intake for the activity's events, and pins the version it signed against, so a
        change in between gives a clear conflict rather than a signature that cannot match.

        :raises LedgerError: the error intake would answer with, when the command would be
            refused anyway (it is then not sent).
        """
        office = self.office_of(command)
        seed = self.seeds.get(office)
        if seed is None or isinstance(command, DescribeActivity) or command.signature:
            return command
        if isinstance(command, ReleaseFigures):
            release = decide_release(command, office, command.issued_at)
            if not isinstance(release, Append):
                raise_for(release, _activity_id(command))
                return command
            return msgspec.structs.replace(
                command, signature=sign_hash(seed, content_hash(release.event))
            )
        loaded = LoadedActivity([])
        if not isinstance(command, ReportActivity):
            described = await self.describe(command.activity_id)
            loaded = loaded_from(described, self.ns.activity(office, command.activity_id))
            if command.expected_version is None:
                command = msgspec.structs.replace(command, expected_version=described.version)
        decision = decide(command, office, loaded, self.ref, command.issued_at)
        if not isinstance(decision, Append):
            raise_for(decision, _activity_id(command))
            return command  # accepted before: a retry of a stored command needs no signature
        signature = sign_hash(seed, content_hash(decision.event))
        return msgspec.structs.replace(command, signature=signature)

    def office_of(self, command: Request) -> str:
        """The office a command is sent as: the client's, else the office a report names."""
        if self.office is not None:
            return self.office
        if isinstance(command, ReportActivities):
            return command.commands[0].activity.office
        if isinstance(command, ReportActivity):
            return command.activity.office
        raise LedgerError("give the office to send revisions and withdrawals as (--office)")

    async def request(self, command: Request) -> Reply:
        """Send a command, retrying unanswered attempts, and return intake's reply as it is.

        :raises IntakeUnavailableError: when intake has not taken it within :attr:`patience`.
        :raises PermissionDeniedError: when the server refuses these credentials the subject.
        """
        if self.nc is None:
            raise IntakeUnavailableError("no connection to NATS")
        nc = self.nc
        subject = self._subject(command)
        data = encode_command(command)
        reason = "no answer"
        started = time.monotonic()
        deadline = started + self.patience
        attempt = 0
        while attempt == 0 or time.monotonic() < deadline:
            if attempt:
                await asyncio.sleep(min(0.2 * 2**attempt, 2.0))
            attempt += 1
            try:
                # A publish the server refuses would only time out; refused_or raises
                # PermissionDeniedError as soon as the server says so.
                msg = await refused_or(
                    nc, nc.request(subject, data, timeout=self.timeout), [subject]
                )
            except nats.errors.NoRespondersError:
                # An intake whose connection is moving to another node (its node died, a
                # leader election) has no subscription for a moment: wait that out, briefly.
                if time.monotonic() - started < min(NO_RESPONDERS_PATIENCE, self.patience):
                    reason = "no intake listening"
                    continue
                raise IntakeUnavailableError(
                    f"no intake service listens on {subject}; start the ledger with "
                    "`ledger up` (or check --nats-url)"
                ) from None
            except nats.errors.TimeoutError:
                reason = f"no answer within {self.timeout:g}s"
                continue
            except nats.errors.Error as exc:
                raise IntakeUnavailableError(f"cannot reach intake: {exc}") from None
            try:
                reply = decode_reply(msg.data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise IntakeUnavailableError(f"unreadable answer from intake: {exc}") from None
            if isinstance(reply, Rejected) and reply.code == "unavailable":
                reason = reply.message
                continue
            return reply
        raise IntakeUnavailableError(
            f"intake did not take the command in {self.patience:g}s, {attempt} attempts "
            f"({reason}); running the same command again is safe"
        )

    async def send_many(
        self, items: Iterable[tuple[T, Command]], window: int = 256, batch: int = 100
    ) -> AsyncIterator[tuple[T, Reply]]:
        """Send many commands with at most ``window`` awaiting their reply; yield each reply.

        Reports of one office travel ``batch`` at a time in one request
        (:class:`ReportActivities`), each still with its own command id, signature and reply;
        other commands travel alone.

        :param items: ``(key, command)`` pairs; the key comes back with the reply, e.g. the
            line number of an imported record.
        :returns: ``(key, reply)`` pairs, as the replies arrive (not in input order).
        :raises IntakeUnavailableError: when intake stops answering; the commands not yet
            answered may or may not be stored, and sending them again is safe.
        """

        async def send(group: list[tuple[T, Command]]) -> list[tuple[T, Reply]]:
            ready: list[tuple[T, Command]] = []
            answered: list[tuple[T, Command, Reply]] = []
            for key, command in group:
                try:
                    ready.append((key, await self.signed(command)))
                except (InvalidEventError, ActivityNotFoundError, ActivityWithdrawnError) as exc:
                    answered.append((key, command, rejection_for(exc)))
            await self._keep_sent([command for _, command in ready])
            if len(ready) == 1 or (ready and not isinstance(ready[0][1], ReportActivity)):
                answered += [(key, c, await self.request(c)) for key, c in ready]
                return await self._recorded(answered)
            for chunk in _within_batch_bytes(ready):
                reply = None
                reports = [c for _, c in chunk if isinstance(c, ReportActivity)]
                if len(chunk) > 1 and len(reports) == len(chunk):
                    reply = await self.request(ReportActivities(commands=reports))
                if isinstance(reply, Replies):
                    answered += [
                        (key, c, r) for (key, c), r in zip(chunk, reply.replies, strict=True)
                    ]
                else:
                    # One refusal for the whole request decided none of its reports (one of
                    # them was too large, say): each goes alone and gets its own answer.
                    answered += [(key, c, await self.request(c)) for key, c in chunk]
            return await self._recorded(answered)

        groups: dict[str, list[tuple[T, Command]]] = {}
        pending: set[asyncio.Task[list[tuple[T, Reply]]]] = set()
        in_flight = max(1, window // max(batch, 1))
        try:
            for key, command in items:
                if isinstance(command, ReportActivity):
                    group = groups.setdefault(self.office_of(command), [])
                    group.append((key, command))
                    if len(group) < batch:
                        continue
                    del groups[self.office_of(command)]
                else:
                    group = [(key, command)]
                while len(pending) >= in_flight:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        for answer in task.result():
                            yield answer
                pending.add(asyncio.create_task(send(group)))
            pending |= {asyncio.create_task(send(group)) for group in groups.values()}
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    for answer in task.result():
                        yield answer
        finally:
            for task in pending:
                task.cancel()

    async def _keep_sent(self, commands: list[Command]) -> None:
        """Record in the outbox, in one transaction, the commands about to be sent."""
        if self.outbox is None or not commands:
            return
        kept: list[tuple[WriteCommand, str, str]] = []
        for command in commands:
            if isinstance(command, WriteCommand):
                office = self.office_of(command)
                kept.append((command, office, fingerprint_of(command, office)))
        await self.outbox.run(partial(self.outbox.add, kept, state="sent"))

    async def _recorded(self, answered: list[tuple[T, Command, Reply]]) -> list[tuple[T, Reply]]:
        """The answers by key, once the outbox has recorded them in one transaction."""
        if self.outbox is not None:
            outcomes = [
                (command.command_id, reply)
                for _, command, reply in answered
                if isinstance(reply, Accepted | Rejected) and isinstance(command, WriteCommand)
            ]
            await self.outbox.run(self.outbox.record, outcomes)
        return [(key, reply) for key, _, reply in answered]

    def _subject(self, command: Request) -> str:
        return self.ns.intake(self.office_of(command))


def raise_for(reply: Reply, activity_id: str) -> Accepted:
    """The acceptance, or the ledger error that stands for the refusal."""
    if isinstance(reply, Accepted):
        return reply
    if isinstance(reply, Described | Replies):
        raise IntakeUnavailableError(f"intake described {activity_id} instead of acting on it")
    match reply.code:
        case "invalid":
            raise InvalidEventError([FieldIssue(reply.field, reply.message)])
        case "unknown_activity":
            raise ActivityNotFoundError(activity_id)
        case "withdrawn":
            raise ActivityWithdrawnError(activity_id)
        case "conflict":
            raise VersionConflict(activity_id, reply.message, reply.version, reply.sequence)
        case "forbidden":
            raise ForbiddenError(reply.message)
    raise IntakeUnavailableError(reply.message)


def _within_batch_bytes(
    commands: list[tuple[T, Command]], limit: int = MAX_BATCH_BYTES - 1024
) -> Iterator[list[tuple[T, Command]]]:
    """The commands in runs whose encoded size stays under intake's bound on a request.

    The kilobyte kept back covers the batch's own framing.
    """
    chunk: list[tuple[T, Command]] = []
    size = 0
    for item in commands:
        length = len(encode_command(item[1])) + 1
        if chunk and size + length > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += length
    if chunk:
        yield chunk


def _activity_id(command: Command | ReleaseFigures) -> str:
    if isinstance(command, ReportActivity):
        return command.activity.activity_id
    if isinstance(command, ReleaseFigures):
        return f"release:{command.name}"
    return command.activity_id
