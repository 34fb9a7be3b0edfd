"""The live projector: a FastStream pull subscriber that folds the stream into SQLite.

A durable JetStream pull consumer hands over batches; each batch is applied in one SQLite
transaction with its checkpoint (``projections/apply.py``) and only then acknowledged. A crash
between commit and ack means a redelivery, which the checkpoint skips. Poison goes to
``quarantine`` and is acknowledged like any other message, so nothing crash-loops and the
consumer never sticks.

A batch starts the moment an event is stored: FastStream waits for one message (a lingering
pull request), and the handler then takes whatever else the consumer has, waiting at most
``LINGER``. FastStream's own batch loop fetches until the batch is full or its timeout has
passed, and that timeout (0.5 s) was the floor of the live path at any rate below
``batch_size / timeout`` (``bench/latency.py``).

Whenever the database's checkpoint and the consumer disagree (a rebuild switched the live file,
the file was deleted, or a second instance took part of the stream), the projector first
catches up through the ordered consumer from ``checkpoint + 1``, then goes on.

Run it alone with ``python -m services.projector --nats-url URL --db PATH``; ``ledger up``
runs it as a component.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import sqlite3
from pathlib import Path
from typing import Annotated, Any

import nats.errors
from faststream import Context
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.security import NatsCredentials, NatsNKey
from nats.aio.msg import Msg
from nats.js import api

from events.errors import LedgerError
from events.store import EventStore
from events.stored import RawMessage
from events.subjects import Namespace
from projections import marks
from projections.apply import Applier
from projections.db import (
    WalCheckpointer,
    ensure_live,
    live_path,
    open_reader,
    open_writer,
    resolve,
)
from projections.releases import write_releases
from replay.source import StreamSource
from services.infra.config import server_urls
from services.infra.credentials import Credentials, load_credentials
from services.infra.logs import setup_logging
from services.infra.metrics import (
    PROJECTOR_APPLIED,
    PROJECTOR_CHECKPOINT,
    PROJECTOR_LAG,
    QUARANTINED,
    REBUILD_PROGRESS,
)
from services.infra.stack import Ledger, connect
from services.infra.violations import Violations

__all__ = [
    "DURABLE",
    "LINGER",
    "DurableNameError",
    "Projector",
    "durable_name",
    "projector_component",
    "run_projector",
]

DURABLE = "projector"
"""The durable consumer's name; instances that share it share the work."""

IDLE_WAIT = 1.0
"""Seconds each of FastStream's waits for the first message of a batch lasts, before it asks
again: an idle projector sends one pull request a second."""

CATCH_UP_BATCH = 5000
"""Messages a catch-up applies in one transaction. The live applier reads and writes the
rollup rows a batch touches once per batch, so its cost per event falls with the batch: ~390 µs
in batches of 20, ~160 µs in batches of 500 (bench/latency.py), less again in thousands."""

LINGER = 0.02
"""Seconds the projector waits, once a batch has its first message, for more to fill it.

With FastStream's batch loop and its 0.5 s timeout, intake's acknowledgement to the API took
p50 323 ms and p99 914 ms at 200 events/s; now p50 7 ms and p99 22 ms (``bench/latency.py``,
docs/performance.md, "Live path"). The wait keeps batches from shrinking to one event at high
rates: the live applier costs ~390 µs an event in batches of 20 against ~160 µs in batches of
500. Under a backlog the batch is full at once and nothing waits."""

_log = logging.getLogger("ledger.projector")

_broker_log = logging.getLogger("ledger.projector.broker")
# FastStream logs every subscriber start and stop at INFO; only its warnings belong on a
# terminal that `ledger up` or `ledger demo` is printing to.
_broker_log.setLevel(logging.WARNING)


class Projector:
    """Keeps one projection database up to date with the stream."""

    def __init__(
        self,
        store: EventStore,
        db: Path,
        *,
        batch_size: int = CATCH_UP_BATCH,
        source: StreamSource | None = None,
    ) -> None:
        """
        :param store: the ledger's stream.
        :param db: the live projection: a link that a rebuild may switch, or a plain file.
        :param batch_size: messages per transaction when catching up.
        :param source: how to read the stream when catching up (replay's bulk reader when
            it can); the store through nats-py by default.
        """
        self.store = store
        self.source = source if source is not None else StreamSource(store)
        self.db = Path(db)
        self.batch_size = batch_size
        self._lock = asyncio.Lock()
        self._releases = -1
        """The sequence of the newest release copied into the file; -1: copy them all."""
        self._real: Path | None = None
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: WalCheckpointer | None = None
        self.applier: Applier | None = None
        self._next_mark = 0
        """The checkpoint at which to look for marks to fill next (projections/marks.py)."""
        self._marking: asyncio.Task[list[int]] | None = None
        self._checkpoint_seen = 0

    def open(self) -> Applier:
        """Open (creating if needed) the database that the live path points at now."""
        self._real = ensure_live(self.db)
        self._conn = open_writer(self._real)
        self._checkpointer = WalCheckpointer(self._real)
        self._checkpointer.start(self._conn)
        # Marks are filled from a thread (_fill_marks_when_due), not in the batches.
        self.applier = Applier(self._conn, marks=False)
        self._next_mark = 0  # a new file: look for missing marks after the first batch
        checkpoint = self.applier.checkpoint()
        _log.info(
            "projecting into %s from sequence %d",
            self._real,
            checkpoint,
            extra={"event": "projection_opened", "sequence": checkpoint},
        )
        PROJECTOR_CHECKPOINT.set(checkpoint)
        self._count_quarantine()
        return self.applier

    def close(self) -> None:
        """Close the database."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._conn is not None:
            self._conn.close()
        self._conn = self.applier = None
        self._checkpointer = None

    def _applier(self) -> Applier:
        return self.applier if self.applier is not None else self.open()

    async def _follow_switch(self) -> None:
        """Reopen when a rebuild has pointed the live path at another file, then catch up."""
        if self._real is not None and resolve(self.db) != self._real:
            _log.info("live projection switched to %s", resolve(self.db))
            self.close()
            self.open()
            self._releases = -1
            await self._catch_up()

    async def copy_releases(self) -> int:
        """Copy the stream's releases into the file when one was made since the last copy.

        Releases are not folded (events/release.py); the file keeps them so that
        ``?release=NAME`` resolves with the figures. They are few, so all are copied again.

        :returns: how many were copied (0 when none is new).
        """
        newest = await self.store.newest_release()
        if newest == self._releases:
            return 0
        found = await self.store.releases()
        async with self._lock:
            conn = self._conn
            if conn is None:
                return 0
            conn.execute("BEGIN IMMEDIATE")
            try:
                copied = write_releases(conn, found)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        self._releases = newest
        return copied

    async def _catch_up(self, until: int | None = None) -> int:
        """Apply everything after the checkpoint through the bulk read (the fast path).

        Its progress is the rebuild progress of the metrics: a catch-up from an empty or a
        switched file is a rebuild from the stream.
        """
        applier = self._applier()
        applied = 0
        start = applier.checkpoint()
        end = until if until is not None else await self.store.last_sequence()
        REBUILD_PROGRESS.set(0 if end > start else 1)
        try:
            async for batch in self.source.read(
                start + 1, until_seq=until, batch_size=self.batch_size
            ):
                result = applier.apply(batch)
                applied += result.applied
                self._measure(result.applied, result.quarantined, result.checkpoint)
                if end > start:
                    REBUILD_PROGRESS.set(min((result.checkpoint - start) / (end - start), 1.0))
        finally:
            REBUILD_PROGRESS.set(1)
        return applied

    def _measure(self, applied: int, quarantined: int, checkpoint: int) -> None:
        """Count a batch into the metrics, log what went to quarantine, and fill the marks
        the batch made due."""
        PROJECTOR_APPLIED.inc(applied)
        PROJECTOR_CHECKPOINT.set(checkpoint)
        self._fill_marks_when_due(checkpoint)
        if quarantined:
            _log.warning(
                "put %d events into quarantine; see `ledger status`",
                quarantined,
                extra={"event": "events_quarantined", "sequence": checkpoint},
            )
            self._count_quarantine()

    def _fill_marks_when_due(self, checkpoint: int) -> None:
        """Start filling the marks up to ``checkpoint`` in a thread once one is due; while a
        filling runs, it looks again when that one ends."""
        self._checkpoint_seen = checkpoint
        if self._real is None or checkpoint < self._next_mark:
            return
        if self._marking is not None and not self._marking.done():
            return
        self._next_mark = (checkpoint // marks.MARK_EVERY + 1) * marks.MARK_EVERY
        self._marking = asyncio.get_running_loop().create_task(
            asyncio.to_thread(_fill_marks, self._real, checkpoint)
        )
        self._marking.add_done_callback(self._marks_filled)

    def _marks_filled(self, task: asyncio.Task[list[int]]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:  # the next due mark tries again, with every one missing
            _log.warning("could not write the marks: %s", error, extra={"event": "marks_failed"})
            return
        if written := task.result():
            _log.info("wrote the marks at %s", written, extra={"event": "marks_written"})
        self._fill_marks_when_due(self._checkpoint_seen)

    def _count_quarantine(self) -> None:
        if self._conn is not None:
            QUARANTINED.set(self._conn.execute("SELECT count(*) FROM quarantine").fetchone()[0])

    async def catch_up(self) -> int:
        """Apply everything already in the stream after the checkpoint.

        :returns: how many events were applied.
        """
        async with self._lock:
            await self._follow_switch()
            return await self._catch_up()

    async def watch(
        self, stop: asyncio.Event, interval: float = 0.5, stalled_after: float = 2.0
    ) -> None:
        """Until ``stop``: follow a switch of the live file, and never fall behind for long.

        The durable consumer normally delivers every event. When the stream is ahead and the
        checkpoint has not moved for ``stalled_after`` seconds, the watch catches up through
        the ordered consumer itself; the durable consumer's later deliveries of those events
        are then skipped by the checkpoint. This is what keeps the projector from getting
        stuck when a delivery path stalls: FastStream 0.7.8's pull loop lets a plain
        ``asyncio.TimeoutError`` from nats-py's ``fetch`` escape (it catches only nats-py's
        own ``TimeoutError``), and the restarted loop has been seen to deliver nothing more.
        """
        behind_since: float | None = None
        seen = -1
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                break
            try:
                async with self._lock:
                    await self._follow_switch()
                    checkpoint = self._applier().checkpoint()
                await self.copy_releases()
                last = await self.store.last_sequence()
                PROJECTOR_LAG.set(max(last - checkpoint, 0))
                now = asyncio.get_running_loop().time()
                if last <= checkpoint:
                    behind_since = None
                elif behind_since is None or checkpoint != seen:
                    behind_since = now  # behind, but moving: give the consumer its time
                elif now - behind_since >= stalled_after:
                    async with self._lock:
                        applied = await self._catch_up(until=last)
                    _log.warning("deliveries stalled; caught up %d events directly", applied)
                    behind_since = None
                seen = checkpoint
            except Exception:
                _log.exception("watching the live projection failed; retrying")

    async def handle(self, messages: list[Msg]) -> None:
        """Apply one delivered batch, then acknowledge it; never raise.

        A batch that does not start right after the checkpoint, or has holes, is replaced by a
        catch-up read up to its last sequence. On a database error nothing is acknowledged,
        and JetStream redelivers the batch later.
        """
        try:
            raws = [_raw_message(msg) for msg in messages]
            async with self._lock:
                await self._follow_switch()
                applier = self._applier()
                checkpoint = applier.checkpoint()
                fresh = sorted({raw.sequence for raw in raws if raw.sequence > checkpoint})
                if fresh and fresh != list(range(checkpoint + 1, fresh[-1] + 1)):
                    await self._catch_up(until=fresh[-1])
                elif fresh:
                    result = applier.apply(raws)
                    self._measure(result.applied, result.quarantined, result.checkpoint)
        except Exception:
            _log.exception("could not apply a batch of %d; it will be redelivered", len(messages))
            for msg in messages:
                with contextlib.suppress(Exception):
                    await msg.nak(delay=1.0)
            return
        for msg in messages:
            await msg.ack()


def _fill_marks(path: Path, upto: int) -> list[int]:
    """Fill the marks of ``path`` missing up to ``upto``, on connections of this thread."""
    reader, writer = open_reader(path), open_writer(path)
    try:
        return marks.fill_marks(reader, writer, upto)
    finally:
        reader.close()
        writer.close()


def _raw_message(msg: Msg) -> RawMessage:
    # The reply subject carries the stream sequence and the stored time in nanoseconds; reading
    # them here keeps the exact time that a rebuild (ordered consumer) also sees.
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9:
        sequence, time_ns = int(tokens[5]), int(tokens[7])
    else:
        sequence, time_ns = int(tokens[7]), int(tokens[9])
    return RawMessage(sequence, msg.subject, time_ns, msg.headers, msg.data or b"")


async def _more(pull: Any, count: int, timeout: float) -> list[Msg]:
    """Up to ``count`` more messages from the pull subscription, waiting at most ``timeout``.

    FastStream's loop awaits the handler before it fetches again, so this fetch has the
    subscription to itself. Any failure only leaves the batch as it is: what was not fetched
    is delivered later.
    """
    try:
        messages: list[Msg] = await pull.fetch(count, timeout=timeout)
    except (TimeoutError, nats.errors.Error):
        return []
    return messages


def build_broker(
    projector: Projector,
    url: str,
    namespace: Namespace,
    *,
    durable: str = DURABLE,
    batch_size: int = 500,
    timeout: float = LINGER,
    creds: Credentials | None = None,
) -> NatsBroker:
    """A FastStream broker with the projector's durable pull subscriber on the stream.

    :param timeout: once a message has arrived, the longest the projector waits for more to
        fill its batch (see ``LINGER``).
    :param creds: the projector role's credentials, when the server requires them.
    """
    options: dict[str, Any] = {}
    inbox = api.INBOX_PREFIX
    if creds is not None:
        security = (
            NatsCredentials.from_file(creds.path) if creds.decorated else NatsNKey(creds.path)
        )
        # A refused subject would otherwise only show as fetches that time out.
        violations = Violations(creds.inbox_prefix)
        options = {
            "security": security,
            "inbox_prefix": creds.inbox_prefix,
            "error_cb": violations.error_cb,
        }
        # nats-py's pull subscription takes its own inbox prefix, "_INBOX." unless told.
        inbox = f"{creds.inbox_prefix}.".encode()
    # A cluster's URL names several nodes; nats-py wants them as a list.
    broker = NatsBroker(server_urls(url), logger=_broker_log, log_level=logging.DEBUG, **options)

    # FastStream waits for a single message, however long that takes (a lingering pull
    # request, renewed every IDLE_WAIT), so an event is fetched the moment it is stored; the
    # handler then takes whatever else the consumer has, waiting at most ``timeout``.
    subscriber = broker.subscriber(
        namespace.activities,
        stream=JStream(namespace.stream, declare=False),
        durable=durable,
        pull_sub=PullSub(batch_size=1, timeout=IDLE_WAIT, batch=True),
        ack_policy=AckPolicy.MANUAL,
        inbox_prefix=inbox,
        config=api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=30.0,
            # Every batch is acknowledged before the next fetch, so this is never the limit.
            max_ack_pending=max(batch_size * 4, 1000),
        ),
    )

    @subscriber
    async def on_batch(message: Annotated[Any, Context("message")]) -> None:
        # The handler takes the raw messages, not a decoded body: poison must reach the
        # applier's quarantine rather than fail in FastStream's decoder.
        messages = list(message.raw_message)
        pull = getattr(subscriber, "subscription", None)
        if pull is not None and len(messages) < batch_size:
            messages += await _more(pull, batch_size - len(messages), timeout)
        await projector.handle(messages)

    return broker


async def run_projector(
    store: EventStore,
    url: str,
    db: Path,
    stop: asyncio.Event,
    *,
    durable: str = DURABLE,
    batch_size: int = 500,
    creds: Credentials | None = None,
) -> None:
    """Run the projector until ``stop`` is set.

    :param store: the EventStore on the ledger's stream, for catching up.
    :param url: the NATS server, for FastStream's own connection.
    :param db: the live projection path.
    :param creds: what FastStream's connection uses, when the server requires credentials.
    """
    projector = Projector(store, db, source=StreamSource(store, url, creds))
    projector.open()
    try:
        await projector.catch_up()
        await projector.copy_releases()
        broker = build_broker(
            projector, url, store.ns, durable=durable, batch_size=batch_size, creds=creds
        )
        await broker.start()
        try:
            await projector.watch(stop)
        finally:
            await broker.stop()
    finally:
        projector.close()


async def projector_component(ledger: Ledger, stop: asyncio.Event) -> None:
    """The projector as a ``ledger up`` component, on ``<data dir>/projections/ledger.db``.

    It connects as the projector role, which may read the stream and use its durable consumer.
    """
    async with ledger.connect_as("projector") as store:
        await run_projector(
            store,
            ledger.url,
            live_path(ledger.settings.data_dir),
            stop,
            durable=durable_name(),
            creds=ledger.credentials_for("projector"),
        )


class DurableNameError(LedgerError):
    """Raised when ``LEDGER_PROJECTOR_DURABLE`` cannot name a consumer."""


_DURABLE_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")


def durable_name() -> str:
    """The durable consumer ``ledger up`` projects through: ``LEDGER_PROJECTOR_DURABLE``.

    Instances that share a durable share the events between them, so each reader that keeps a
    projection file of its own (the compose file's API replicas) needs its own name;
    ``{hostname}`` in the value stands for the machine's name.

    :raises DurableNameError: when the name is not letters, digits, ``-`` and ``_`` (the
        server refuses ``.``, ``*``, ``>`` and spaces in a consumer's name).
    """
    given = os.environ.get("LEDGER_PROJECTOR_DURABLE") or DURABLE
    name = given.replace("{hostname}", socket.gethostname()).replace(".", "-")
    if not _DURABLE_NAME.fullmatch(name):
        raise DurableNameError(
            f"LEDGER_PROJECTOR_DURABLE={given!r} cannot name a consumer: use letters, digits, "
            "'-' and '_', at most 255 characters ({hostname} stands for the machine's name)"
        )
    return name


def _consumer_name(text: str) -> str:
    if not _DURABLE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} cannot name a consumer: use letters, digits, '-' and '_'"
        )
    return text


async def _main(args: argparse.Namespace) -> None:
    creds = load_credentials(args.creds) if args.creds else None
    nc = await connect(args.nats_url, "ledger-projector", creds=creds)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        store = EventStore(nc, Namespace(prefix=args.prefix, stream=args.stream))
        await run_projector(
            store,
            args.nats_url,
            Path(args.db),
            stop,
            durable=args.durable,
            batch_size=args.batch,
            creds=creds,
        )
    finally:
        await nc.drain()


def main(argv: list[str] | None = None) -> None:
    """Run the projector alone, e.g. ``python -m services.projector --nats-url URL --db P``."""
    parser = argparse.ArgumentParser(prog="python -m services.projector", description=__doc__)
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--db", required=True, help="the live projection path (link or file)")
    parser.add_argument("--stream", default=Namespace().stream)
    parser.add_argument("--prefix", default=Namespace().prefix)
    parser.add_argument("--durable", default=DURABLE, type=_consumer_name)
    parser.add_argument("--batch", type=int, default=500, help="messages per pull")
    parser.add_argument(
        "--creds",
        default=os.environ.get("LEDGER_CREDS"),
        help="the projector role's NATS credentials [env LEDGER_CREDS]",
    )
    setup_logging(level=logging.INFO)  # text, or JSON lines with LEDGER_LOG_FORMAT=json
    asyncio.run(_main(parser.parse_args(argv)))
