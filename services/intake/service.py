"""The intake service: field offices' commands in, validated events into the stream, replies out.

A request-reply subscriber on ``<prefix>.intake.*`` in a queue group, so several instances
share the load and each command reaches one of them. It is a plain nats-py subscription, not a
FastStream one: on the same handler, FastStream 0.7.8 answered 0.11-0.34 of the requests/s of
the subscription below (``python -m bench.transport``; docs/design.md, "Intake and the NATS
queries are plain nats-py subscriptions"). For each
command it decodes once, loads the activity (not for a report: its expected sequence 0 already
says "new"), decides with :func:`events.decisions.decide`, appends with the expected sequence
and replies ``Accepted`` or ``Rejected``. It never lets an error escape: anything unexpected,
such as a lost NATS connection, becomes an ``unavailable`` reply that is safe to retry.

Intake holds two connections. The commands arrive on the ``intake-reply`` user's, which may
publish to the offices' inboxes and nowhere else; the events go out on the ``intake`` user's,
which may append but answers nothing. A command whose reply subject is not an inbox of the
office it came from is dropped unread and logged, with no reply (``services/infra/replies.py``).

Run it with ``ledger up`` (as a stack component) or on its own::

    python -m services.intake --nats-url nats://127.0.0.1:4222 --creds intake.nk \
        --reply-creds intake-reply.nk --users users.json --key-registry registry.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from events.commands import (
    Accepted,
    Command,
    Rejected,
    ReleaseFigures,
    Replies,
    Reply,
    ReportActivities,
    ReportActivity,
    encode_reply,
)
from events.decisions import Append, decide, decide_release, decode_request, rejection_for
from events.envelope import utc_now
from events.errors import Conflict, LedgerError, ReleaseExistsError
from events.reference import Reference, load_reference
from events.store import EventStore
from events.stored import LoadedActivity
from events.subjects import Namespace, is_token
from services.infra.credentials import load_credentials, users_path
from services.infra.logs import setup_logging
from services.infra.metrics import INTAKE_LATENCY, count_reply
from services.infra.office_keys import RegistryFile, registry_path
from services.infra.replies import ReplyGuard
from services.infra.stack import Ledger, connect
from services.infra.violations import refused_or

__all__ = ["Intake", "intake_component", "main", "run_intake"]

log = logging.getLogger(__name__)

_NOTHING = LoadedActivity([])
DEFAULT_WORKERS = 64
"""Commands one instance handles at once; most of each one's time is spent awaiting NATS."""


class Intake:
    """Turns one command message into a reply; used by the broker's handler and by tests."""

    def __init__(
        self,
        store: EventStore,
        ref: Reference | None = None,
        attempts: int = 3,
        keys: RegistryFile | None = None,
    ) -> None:
        """
        :param store: where activities are loaded from and appended to.
        :param ref: the catalogues; the shipped ones by default.
        :param attempts: how often a command without an expected version is decided afresh
            when another writer got in between its load and its append.
        :param keys: the offices' public keys; an office with a key must sign. Without a
            registry no signature is checked (nor stored).
        """
        self.store = store
        self.ref = ref or load_reference()
        self.attempts = attempts
        self.keys = keys

    async def handle(self, subject: str, data: bytes) -> bytes:
        """The encoded reply to a command that arrived on ``subject``; never raises.

        Every answer is counted by outcome and code, and timed (services/infra/metrics.py).
        """
        with INTAKE_LATENCY.time():
            reply = await self._answer(subject, data)
        count_reply(reply)
        return encode_reply(reply)

    async def _answer(self, subject: str, data: bytes) -> Reply:
        try:
            reply = await self.reply_to(subject, data)
        except LedgerError as exc:
            reply = rejection_for(exc)
        except Exception as exc:  # a handler that dies leaves the office waiting for nothing
            log.exception("intake failed on a command from %s", subject)
            reply = Rejected(
                code="unavailable",
                message=f"intake could not handle the command ({type(exc).__name__}); "
                "retrying the same command is safe",
            )
        return reply

    async def reply_to(self, subject: str, data: bytes) -> Reply:
        """Decide and, when accepted, append one command (or each report of a batch).

        :raises LedgerError: when the stream cannot be read or written.
        """
        office = subject.rpartition(".")[2]
        request = decode_request(data)
        if isinstance(request, Rejected):
            return request
        if isinstance(request, ReportActivities):
            return await self._reply_to_batch(office, request.commands)
        if isinstance(request, ReleaseFigures):
            return await self._reply_to_release(office, request)
        return await self._reply_to_command(office, request)

    async def _reply_to_release(self, office: str, command: ReleaseFigures) -> Reply:
        """Append a release, if headquarters sent it and its name is free."""
        registry = self.keys.current() if self.keys is not None else None
        decision = decide_release(command, office, utc_now(), registry)
        if not isinstance(decision, Append):
            return decision
        try:
            result = await self.store.append_release(decision.event)
        except ReleaseExistsError as exc:
            return Rejected(code="conflict", message=str(exc), field="name")
        return Accepted(
            event_id=decision.event.event_id,
            activity_id=decision.event.activity_id,
            sequence=result.sequence,
            version=decision.version,
            duplicate=result.duplicate,
        )

    async def _reply_to_batch(self, office: str, commands: list[ReportActivity]) -> Replies:
        """Each report decided alone, the new ones appended together through the pipeline.

        A report the pipeline cannot store as is (its id is taken, perhaps by an earlier try
        of the same command, or the stream did not answer) goes the single-command way, which
        loads the activity and decides again.
        """
        now = utc_now()
        registry = self.keys.current() if self.keys is not None else None
        replies: list[Accepted | Rejected | None] = []
        appends: list[tuple[int, Append]] = []
        for index, command in enumerate(commands):
            decision = decide(command, office, _NOTHING, self.ref, now, registry)
            if isinstance(decision, Append):
                appends.append((index, decision))
                replies.append(None)
            else:
                replies.append(_report_reply(decision))
        outcomes = await self.store.append_many(
            [(decision.event, decision.expected_sequence) for _, decision in appends],
            find_duplicates=False,  # a refused report is loaded and decided again below
        )
        again: list[int] = []
        for (index, decision), outcome in zip(appends, outcomes, strict=True):
            if outcome.status in ("stored", "duplicate"):
                replies[index] = Accepted(
                    event_id=decision.event.event_id,
                    activity_id=decision.event.activity_id,
                    sequence=outcome.sequence,
                    version=decision.version,  # a report is always its activity's version 1
                    duplicate=outcome.status == "duplicate",
                )
            else:
                again.append(index)
        # A re-run import lands here for every line: decide those again side by side.
        answers = await asyncio.gather(
            *(self._reply_to_command(office, commands[index]) for index in again)
        )
        for index, reply in zip(again, answers, strict=True):
            replies[index] = _report_reply(reply)
        log.info(
            "answered a batch of %d reports, %d new",
            len(commands),
            sum(isinstance(r, Accepted) and not r.duplicate for r in replies),
            extra={"event": "batch_answered", "office": office},
        )
        return Replies(replies=[reply for reply in replies if reply is not None])

    async def _reply_to_command(self, office: str, command: Command) -> Reply:
        activity_id = _activity_id(command)
        if not is_token(activity_id):
            # Checked before loading: the id becomes a token of the subject filter.
            return Rejected(
                code="invalid",
                message=f"{activity_id!r} is not a valid activity id; use 1-64 letters, "
                "digits, '_' or '-'",
                field="activity_id",
            )
        loaded = (
            _NOTHING if isinstance(command, ReportActivity) else await self.store.load(activity_id)
        )
        for _ in range(self.attempts):
            registry = self.keys.current() if self.keys is not None else None
            decision = decide(command, office, loaded, self.ref, utc_now(), registry)
            if not isinstance(decision, Append):
                if isinstance(decision, Rejected):
                    _log_rejection(office, activity_id, command.command_id, decision)
                return decision
            try:
                result = await self.store.append(decision.event, decision.expected_sequence)
            except Conflict:
                # Someone wrote the activity since it was loaded: decide again on what is there
                # now, which also finds this command's own event if a retry raced it.
                loaded = await self.store.load(activity_id)
                continue
            log.debug(
                "stored an event",
                extra={
                    "event": "event_stored",
                    "office": office,
                    "activity_id": activity_id,
                    "sequence": result.sequence,
                    "command_id": command.command_id,
                },
            )
            return Accepted(
                event_id=decision.event.event_id,
                activity_id=activity_id,
                sequence=result.sequence,
                version=decision.version,
                duplicate=result.duplicate,
            )
        return Rejected(
            code="conflict",
            message=f"activity {activity_id!r} keeps changing under this command; reload it "
            "and retry",
            field="activity_id",
            version=loaded.version,
            sequence=loaded.last_sequence,
        )


def _log_rejection(office: str, activity_id: str, command_id: str, rejected: Rejected) -> None:
    # An office's refused command is the operator's business too; its fields go into the
    # JSON line (services/infra/logs.py), and the message is the office's, bounded.
    log.info(
        "rejected a command: %s: %.200s",
        rejected.code,
        rejected.message,
        extra={
            "event": "command_rejected",
            "office": office,
            "activity_id": activity_id,
            "command_id": command_id,
        },
    )


def _report_reply(reply: Reply) -> Accepted | Rejected:
    """The reply to a report, which is never a description."""
    if isinstance(reply, Accepted | Rejected):
        return reply
    raise TypeError(f"a report was answered with {type(reply).__name__}")


def _activity_id(command: Command) -> str:
    if isinstance(command, ReportActivity):
        return command.activity.activity_id
    return command.activity_id


async def run_intake(
    url: str,
    store: EventStore,
    stop: asyncio.Event,
    *,
    workers: int = DEFAULT_WORKERS,
    ready: asyncio.Event | None = None,
    keys: RegistryFile | None = None,
    replies: ReplyGuard | None = None,
    reply_nc: NATS | None = None,
) -> None:
    """Serve intake until ``stop`` is set.

    :param url: the NATS server; kept for symmetry with other components.
    :param store: the stream to load from and append to.
    :param stop: set it to stop serving; commands in progress finish first.
    :param workers: commands handled at once.
    :param ready: set once the subscription is in place at the server.
    :param keys: the key registry that offices' signatures are checked against.
    :param replies: which reply subjects may be answered; by default only nats-py's default
        inboxes, as on a server without authentication.
    :param reply_nc: the connection that receives commands and answers them, as the
        ``intake-reply`` user; the store's own by default.
    """
    intake = Intake(store, keys=keys)
    guard = replies if replies is not None else ReplyGuard("intake-reply")
    front = reply_nc if reply_nc is not None else store.nc
    slots = asyncio.Semaphore(workers)
    running: set[asyncio.Task[None]] = set()

    async def answer(msg: Msg) -> None:
        try:
            data = await intake.handle(msg.subject, msg.data)
            await front.publish(msg.reply, data)
        except nats.errors.Error:
            log.warning("could not reply to a command on %s", msg.subject)
        finally:
            slots.release()

    async def on_command(msg: Msg) -> None:
        office = msg.subject.rpartition(".")[2]
        if not guard.allows(msg.reply or None, office):
            # Checked before anything is decided: a command that cannot be answered where
            # its sender chose is not from a well-behaved client, and is not stored.
            log.warning(
                "violation: dropped a command on %s whose reply subject %.120r is not an "
                "inbox of office %s",
                msg.subject,
                msg.reply,
                office,
            )
            return
        # nats-py awaits this callback before delivering the next message, so waiting for a
        # free slot here is the back-pressure; the work itself runs as its own task.
        await slots.acquire()
        task = asyncio.create_task(answer(msg))
        running.add(task)
        task.add_done_callback(running.discard)

    sub = await front.subscribe(
        store.ns.intake("*"),
        queue=f"{store.ns.prefix}-intake",
        cb=on_command,
        pending_msgs_limit=workers * 64,
    )
    try:
        await front.flush()
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


async def intake_component(ledger: Ledger, stop: asyncio.Event) -> None:
    """The intake service as a part of ``ledger up``, as the intake and intake-reply roles."""
    data_dir = ledger.settings.data_dir
    keys = RegistryFile(registry_path(data_dir))
    async with (
        ledger.connect_as("intake") as store,
        ledger.connect_as("intake-reply") as front,
    ):
        # A server that checks credentials gives every office an inbox of its own.
        users = users_path(data_dir) if ledger.credentials_for("intake-reply") else None
        if users is not None and not users.exists():
            log.warning("no registry of users at %s: intake will answer no office", users)
        await run_intake(
            ledger.url,
            store,
            stop,
            keys=keys,
            replies=ReplyGuard("intake-reply", users),
            reply_nc=front.nc,
        )


async def _serve(args: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    creds = load_credentials(args.creds) if args.creds else None
    reply_creds = load_credentials(args.reply_creds) if args.reply_creds else creds
    if reply_creds is not None and not args.users:
        raise SystemExit(
            "intake: --users (or LEDGER_USERS) is required with credentials: it names each "
            "office's inbox, the only place intake answers (creds/users.json of `ledger deploy`)"
        )
    nc = await connect(args.nats_url, "ledger-intake-store", creds=creds)
    front = await connect(args.nats_url, "ledger-intake-reply", creds=reply_creds)
    try:
        store = EventStore(nc, Namespace(prefix=args.prefix, stream=args.stream))
        # With intake's own credentials this only checks the stream: creating it is the
        # admin's, and the server's refusal then ends the start at once.
        await refused_or(nc, store.ensure_stream())
        ready = asyncio.Event()
        serving = asyncio.create_task(
            run_intake(
                args.nats_url,
                store,
                stop,
                workers=args.workers,
                ready=ready,
                keys=RegistryFile(args.key_registry) if args.key_registry else None,
                replies=ReplyGuard("intake-reply", Path(args.users) if args.users else None),
                reply_nc=front,
            )
        )
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait([serving, waiting], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if ready.is_set():
            print(f"intake ready on {store.ns.intake('*')}", flush=True)
        await serving
    finally:
        await front.drain()
        await nc.drain()


def main(argv: list[str] | None = None) -> None:
    """Run one intake instance in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m services.intake", description=__doc__)
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--prefix", default="ledger", help="subject prefix (default: ledger)")
    parser.add_argument(
        "--key-registry", help="offices' public keys (JSON); offices listed there must sign"
    )
    parser.add_argument("--stream", default="LEDGER", help="stream name (default: LEDGER)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument(
        "--creds",
        default=os.environ.get("LEDGER_CREDS"),
        help="the intake role's NATS credentials [env LEDGER_CREDS]",
    )
    parser.add_argument(
        "--reply-creds",
        default=os.environ.get("LEDGER_REPLY_CREDS"),
        help="the intake-reply role's NATS credentials, which receive and answer commands "
        "[env LEDGER_REPLY_CREDS; default: --creds]",
    )
    parser.add_argument(
        "--users",
        default=os.environ.get("LEDGER_USERS"),
        help="the registry of users (users.json) that names each office's inbox; required "
        "with credentials [env LEDGER_USERS]",
    )
    args = parser.parse_args(argv)
    setup_logging()  # text, or JSON lines with LEDGER_LOG_FORMAT=json
    asyncio.run(_serve(args))
