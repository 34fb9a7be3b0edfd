"""The EventStore: the ledger's events on a JetStream stream.

Appends are optimistic: each carries the activity's last stream sequence as the writer saw it
(``Nats-Expected-Last-Subject-Sequence``, 0 for a new activity) and the event id as
``Nats-Msg-Id``, so a stale writer gets :class:`Conflict` and a retried publish is stored once.
The expectation is checked against ``ledger.activity.*.<id>``, every office's subject for the
id, so two offices cannot both create the same activity id.

Reads of the whole stream go through an ordered push consumer, the fastest path nats-py has
(docs/design.md, "Throughput of nats-py paths": 150-190k msgs/s, against about 30k for pull
``fetch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api

from events.codec import DEFAULT_CODEC, Codec, encode, headers_for, stored_headers
from events.envelope import Envelope
from events.errors import (
    Conflict,
    LedgerError,
    ReleaseExistsError,
    StreamConfigError,
    TooManyReadersError,
)
from events.pipeline import NO_ACK, Ack, AckPipeline
from events.stored import (
    EPOCH,
    AppendOutcome,
    AppendResult,
    DecodingReads,
    LoadedActivity,
    RawMessage,
    nanoseconds,
)
from events.subjects import DEFAULT, Namespace

__all__ = ["DUPLICATE_WINDOW", "EventStore"]

DUPLICATE_WINDOW = 24 * 3600.0
"""Seconds during which a repeated ``Nats-Msg-Id`` is recognised and not stored again."""

_WRONG_LAST_SEQUENCE = 10071
_CREATE_ATTEMPTS = 3
_MAX_CONSUMERS_REACHED = 10026  # the account's max_consumers (services/infra/security.py)
_NO_ACK_ADVICE = "no acknowledgement from the stream; it is safe to retry with the same event id"
_LAST_SEQ_IN_ERROR = re.compile(r"wrong last sequence:\s*(\d+)")


class EventStore(DecodingReads):
    """Append to and read the ledger's stream."""

    def __init__(
        self,
        nc: NATS,
        namespace: Namespace = DEFAULT,
        *,
        codec: Codec = DEFAULT_CODEC,
        window: int = 2000,
        timeout: float = 10.0,
    ) -> None:
        """
        :param nc: a connected nats-py client.
        :param namespace: the stream and subjects to use.
        :param codec: decodes stored events, with its upcasters.
        :param window: how many publishes :meth:`append_many` keeps in flight.
        :param timeout: seconds to wait for one acknowledgement.
        """
        self.nc = nc
        self.ns = namespace
        self.codec = codec
        self.window = window
        self.timeout = timeout
        self.js = nc.jetstream(timeout=timeout)

    # -- the stream -------------------------------------------------------------------------

    def stream_config(self, replicas: int = 1) -> api.StreamConfig:
        """The settings the design requires of the stream (docs/design.md, "Stream and
        subjects")."""
        return api.StreamConfig(
            name=self.ns.stream,
            subjects=[self.ns.activities, self.ns.releases, self.ns.checkpoints],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW,
            deny_delete=True,
            deny_purge=True,
            allow_rollup_hdrs=False,
            allow_direct=True,
            max_msgs=-1,
            max_bytes=-1,
            max_age=0,
        )

    async def stream_problems(self, replicas: int = 1) -> list[str]:
        """How the existing stream is weaker than :meth:`stream_config`; empty when it is not.

        Reads the stream's settings and changes nothing (``ledger doctor``).

        :raises StreamConfigError: when there is no stream.
        """
        try:
            info = await self.js.stream_info(self.ns.stream)
        except nats.js.errors.NotFoundError:
            raise StreamConfigError(
                f"stream {self.ns.stream} does not exist; `ledger up` creates it"
            ) from None
        return _weaker_settings(info.config, self.stream_config(replicas))

    async def ensure_stream(self, replicas: int = 1) -> api.StreamInfo:
        """Create the stream, or check that the existing one is at least as strict.

        :raises StreamConfigError: when the existing stream allows deletes, purges or rollups,
            expires or caps messages, keeps duplicates for less than 24 h, has other subjects,
            or has fewer replicas than asked for.
        """
        wanted = self.stream_config(replicas)
        try:
            info = await self.js.stream_info(self.ns.stream)
        except nats.js.errors.NotFoundError:
            return await self.js.add_stream(wanted)
        config = info.config
        wanted_subjects = list(wanted.subjects or [])
        # A stream made before releases (issue 16) or checkpoints (issue 17) lacks only their
        # subjects; it gets them once nothing else is found wanting, its one change.
        older = config.subjects != wanted_subjects and any(
            config.subjects == wanted_subjects[:known] for known in (1, 2)
        )
        if older:
            config.subjects = wanted_subjects
        problems = _weaker_settings(config, wanted)
        if older and not problems:
            info = await self.js.update_stream(config)
        if problems:
            raise StreamConfigError(
                f"stream {self.ns.stream} is weaker than the ledger requires: "
                + "; ".join(problems)
                + ". Move the data to a new stream with `ledger export` and `ledger import-log`."
            )
        return info

    async def last_sequence(self, subjects: str | None = None) -> int:
        """The sequence of the newest activity event in the stream (what the fold reads,
        what a projection's checkpoint reaches), or of the newest message of ``subjects``;
        0 when there is none.

        Not the stream's own last sequence: a release (events/release.py) stored after the
        last activity event is no event a projection applies, and nothing should wait for it.
        """
        try:
            msg = await self.js.get_last_msg(self.ns.stream, subjects or self.ns.activities)
        except nats.js.errors.NotFoundError:
            return 0
        return msg.seq or 0

    async def append_checkpoint(self, note: bytes) -> int:
        """Store a signed checkpoint (events/checkpoint.py) on the checkpoint subject; its
        sequence. The note's digest is its message id: Ed25519 signs deterministically, so a
        second notary signing the same tree, or a repeated import, is a duplicate the stream
        drops rather than a second leaf."""
        ack = await self.js.publish(
            self.ns.checkpoints,
            note,
            headers={"Nats-Msg-Id": f"checkpoint-{hashlib.sha256(note).hexdigest()}"},
        )
        return ack.seq

    async def follow(
        self, from_seq: int, subjects: str, *, batch_size: int = 5000
    ) -> AsyncGenerator[list[RawMessage], None]:
        """Every message of ``subjects`` from ``from_seq`` on, in stream order, in batches as
        they are stored, without end: one ordered consumer for as long as the caller reads
        (close the iterator to stop). A batch is what has arrived by the time the caller
        asks, at most ``batch_size``: under load they grow, idle they are single messages.

        The ordered consumer recreates itself after a gap in its deliveries, from the last
        sequence it delivered, so nothing is skipped or repeated.
        """
        queue: asyncio.Queue[RawMessage] = asyncio.Queue(maxsize=batch_size * 4)

        async def on_message(msg: Msg) -> None:
            sequence, time_ns = _sequence_and_time(msg.reply)
            await queue.put(RawMessage(sequence, msg.subject, time_ns, msg.headers, msg.data))

        sub = await self.js.subscribe(
            subjects,
            stream=self.ns.stream,
            cb=on_message,
            ordered_consumer=True,
            config=api.ConsumerConfig(
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=from_seq,
                inactive_threshold=60.0,
            ),
            pending_msgs_limit=batch_size * 4,
            pending_bytes_limit=-1,
        )
        try:
            while True:
                batch = [await queue.get()]
                while len(batch) < batch_size and not queue.empty():
                    batch.append(queue.get_nowait())
                yield batch
        finally:
            await _quietly_unsubscribe(sub)

    async def stored_sequence(self) -> int:
        """The stream's own last sequence, whatever the subject: how many leaves its Merkle
        tree has (the stream refuses deletes, so sequences 1..n all exist)."""
        info = await self.js.stream_info(self.ns.stream)
        return info.state.last_seq or 0

    # -- writing ----------------------------------------------------------------------------

    def message_for(
        self, event: Envelope[Any], expected_sequence: int, stored: bytes | None = None
    ) -> tuple[str, bytes, dict[str, str]]:
        """The subject, body and headers that appending ``event`` publishes.

        :param stored: the event's bytes as another stream stored them (an import): written
            as they are, with the schema version they state, never re-encoded.
        """
        headers = headers_for(event) if stored is None else stored_headers(stored)
        headers["Nats-Msg-Id"] = event.event_id
        headers["Nats-Expected-Last-Subject-Sequence"] = str(expected_sequence)
        headers["Nats-Expected-Last-Subject-Sequence-Subject"] = self.ns.activity_filter(
            event.activity_id
        )
        subject = self.ns.activity(event.office, event.activity_id)
        return subject, encode(event) if stored is None else stored, headers

    async def append(self, event: Envelope[Any], expected_sequence: int) -> AppendResult:
        """Store one event if its activity is still at ``expected_sequence``.

        :param event: the sealed event.
        :param expected_sequence: the activity's last stream sequence as the writer saw it,
            0 for a new activity.
        :raises Conflict: when the activity has moved on since.
        """
        subject, data, headers = self.message_for(event, expected_sequence)
        try:
            ack = await self.js.publish(subject, data, headers=headers)
        except nats.js.errors.APIError as exc:
            outcome = await self._rejected(
                exc.err_code or 0, exc.description or "", event, expected_sequence
            )
            if isinstance(outcome, AppendResult):
                return outcome
            raise outcome from None
        except (nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError):
            raise LedgerError(f"event {event.event_id}: {_NO_ACK_ADVICE}") from None
        return AppendResult(sequence=ack.seq, duplicate=bool(ack.duplicate))

    async def append_many(
        self,
        items: Iterable[tuple[Envelope[Any], int] | tuple[Envelope[Any], int, bytes]],
        *,
        find_duplicates: bool = True,
    ) -> list[AppendOutcome]:
        """Store many events, pipelined with at most ``window`` acknowledgements outstanding.

        :param items: ``(event, expected_sequence)`` pairs, as for :meth:`append`, or triples
            with the event's stored bytes to write as they are (:meth:`message_for`).
        :param find_duplicates: look into the activity of each refused event for its id, to
            tell a retried append (``duplicate``) from a ``conflict``. A caller that loads the
            activity after a conflict anyway (intake) saves the look by turning it off.
        :returns: one outcome per event, in input order; one event's failure raises nothing.
        """
        pipeline = AckPipeline(self.nc, self.window, self.timeout)
        try:
            sent = []
            for event, expected, *stored in items:
                subject, data, headers = self.message_for(event, expected, *stored)
                sent.append((event, expected, await pipeline.publish(subject, data, headers)))
            acks = await pipeline.settle([future for _, _, future in sent])
        finally:
            await pipeline.close()
        outcomes: list[AppendOutcome | None] = [
            _stored(event, ack) if ack.ok else None
            for (event, _, _), ack in zip(sent, acks, strict=True)
        ]
        # A refused append may need a look at its activity (a duplicate in disguise?); those
        # looks run side by side, a bounded number at a time. Stored ones need no task.
        looks = asyncio.Semaphore(64)

        async def refused(index: int) -> None:
            event, expected, _ = sent[index]
            ack = acks[index]
            if not find_duplicates and ack.error_code == _WRONG_LAST_SEQUENCE:
                outcomes[index] = AppendOutcome(event.event_id, "conflict", 0, ack.description)
                return
            async with looks:
                outcomes[index] = await self._refused_outcome(event, expected, ack)

        await asyncio.gather(*(refused(i) for i, o in enumerate(outcomes) if o is None))
        return [o for o in outcomes if o is not None]

    async def _refused_outcome(
        self, event: Envelope[Any], expected: int, ack: Ack
    ) -> AppendOutcome:
        """The outcome of an append the stream did not store as asked."""
        if ack.error_code == NO_ACK:
            return AppendOutcome(event.event_id, "error", 0, _NO_ACK_ADVICE)
        result = await self._rejected(ack.error_code, ack.description, event, expected)
        if isinstance(result, AppendResult):
            return AppendOutcome(event.event_id, "duplicate", result.sequence)
        if isinstance(result, Conflict):
            return AppendOutcome(event.event_id, "conflict", result.actual or 0, str(result))
        return AppendOutcome(event.event_id, "error", 0, str(result))

    async def _rejected(
        self, error_code: int, description: str, event: Envelope[Any], expected: int
    ) -> AppendResult | LedgerError:
        """Why the stream refused an event: a duplicate in disguise, a conflict, or an error."""
        if error_code != _WRONG_LAST_SEQUENCE:
            return LedgerError(f"the stream refused event {event.event_id}: {description}")
        # nats-server checks the expected sequence before the duplicate window, so a retry of an
        # append that was stored looks like a conflict. Its event id then sits in the activity.
        stored = await self._stored_sequence(event)
        if stored:
            return AppendResult(sequence=stored, duplicate=True)
        match = _LAST_SEQ_IN_ERROR.search(description)
        actual = int(match.group(1)) if match else await self._last_sequence_of(event)
        return Conflict(event.activity_id, expected, actual)

    async def _stored_sequence(self, event: Envelope[Any]) -> int:
        """The sequence at which this event id is stored in its activity, or 0."""
        for raw in await self._load_raw(event.activity_id):
            if (raw.headers or {}).get("Nats-Msg-Id") == event.event_id:
                return raw.sequence
        return 0

    async def _last_sequence_of(self, event: Envelope[Any]) -> int | None:
        try:
            msg = await self.js.get_last_msg(
                self.ns.stream, self.ns.activity_filter(event.activity_id)
            )
        except nats.js.errors.NotFoundError:
            return 0
        except nats.js.errors.APIError:
            return None
        return msg.seq

    async def append_release(
        self, event: Envelope[Any], stored: bytes | None = None
    ) -> AppendResult:
        """Store a release (events/release.py) on its own subject, once per name.

        :param stored: its bytes as another stream stored them (an import), written as is.
        :raises ReleaseExistsError: when another release has the name.
        """
        name = event.payload.name
        subject = self.ns.release(name)
        headers = headers_for(event) if stored is None else stored_headers(stored)
        headers["Nats-Msg-Id"] = event.event_id
        headers["Nats-Expected-Last-Subject-Sequence"] = "0"
        try:
            ack = await self.js.publish(
                subject, encode(event) if stored is None else stored, headers=headers
            )
        except nats.js.errors.APIError as exc:
            if exc.err_code != _WRONG_LAST_SEQUENCE:
                raise LedgerError(f"the stream refused release {name}: {exc.description}") from None
            found = await self.release(name)
            if found is not None and (found.headers or {}).get("Nats-Msg-Id") == event.event_id:
                return AppendResult(sequence=found.sequence, duplicate=True)
            raise ReleaseExistsError(name) from None
        except (nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError):
            raise LedgerError(f"release {name}: {_NO_ACK_ADVICE}") from None
        return AppendResult(sequence=ack.seq, duplicate=bool(ack.duplicate))

    async def release(self, name: str) -> RawMessage | None:
        """The stored release of that name, as stored; ``None`` when there is none."""
        try:
            msg = await self.js.get_last_msg(self.ns.stream, self.ns.release(name))
        except nats.js.errors.NotFoundError:
            return None
        assert msg.seq is not None and msg.subject is not None
        return RawMessage(
            msg.seq, msg.subject, _parse_time_ns(msg.time), msg.headers, msg.data or b""
        )

    async def recorded_at(self, sequence: int) -> dt.datetime | None:
        """When the event at ``sequence`` was recorded (its envelope's ``recorded_at``);
        ``None`` for sequence 0 or a message that is not there."""
        if sequence < 1:
            return None
        try:
            msg = await self.js.get_msg(self.ns.stream, seq=sequence)
        except nats.js.errors.NotFoundError:
            return None
        return _recorded.decode(msg.data or b"{}").recorded_at

    async def newest_release(self) -> int:
        """The sequence of the newest release; 0 when there is none."""
        try:
            msg = await self.js.get_last_msg(self.ns.stream, self.ns.releases)
        except nats.js.errors.NotFoundError:
            return 0
        return msg.seq or 0

    async def releases(self) -> list[RawMessage]:
        """Every stored release, in stream order (a few: one per publication)."""
        found: list[RawMessage] = []
        try:
            last = await self.js.get_last_msg(self.ns.stream, self.ns.releases)
        except nats.js.errors.NotFoundError:
            return found
        final = last.seq
        assert final is not None
        done = asyncio.Event()

        async def on_message(msg: Msg) -> None:
            seq, time_ns = _sequence_and_time(msg.reply)
            if seq <= final:
                found.append(RawMessage(seq, msg.subject, time_ns, msg.headers, msg.data))
            if seq >= final:
                done.set()

        sub = await self.js.subscribe(
            self.ns.releases, stream=self.ns.stream, cb=on_message, ordered_consumer=True
        )
        try:
            await asyncio.wait_for(done.wait(), self.timeout)
        finally:
            await _quietly_unsubscribe(sub)
        return found

    # -- reading ----------------------------------------------------------------------------

    async def load(self, activity_id: str) -> LoadedActivity:
        """Every event of one activity, read through the stream leader (read-after-write safe).

        An activity has a handful of events, so it walks them with ``next_by_subj`` requests
        rather than setting up a consumer.
        """
        return LoadedActivity([self.decode(raw) for raw in await self._load_raw(activity_id)])

    async def _load_raw(self, activity_id: str) -> list[RawMessage]:
        # The last message on the wildcard says whether the activity exists, and on which
        # office's subject, in one request the server answers from its subject index. The
        # walk then follows that literal subject: a ``next_by_subj`` on a wildcard makes the
        # server scan the stream from the start (measured: a re-run import of 10,000 lines
        # took 53 s that way).
        try:
            last = await self.js.get_last_msg(self.ns.stream, self.ns.activity_filter(activity_id))
        except nats.js.errors.NotFoundError:
            return []
        last_seq = last.seq
        # A message get always answers with the sequence and subject, but nats-py's
        # RawStreamMsg declares every field optional.
        assert last_seq is not None
        found: list[RawMessage] = []
        seq = 1
        while True:
            msg = (
                last
                if seq == last_seq
                else await self.js.get_msg(self.ns.stream, seq=seq, subject=last.subject, next=True)
            )
            assert msg.seq is not None and msg.subject is not None
            found.append(
                RawMessage(
                    sequence=msg.seq,
                    subject=msg.subject,
                    time_ns=_parse_time_ns(msg.time),
                    headers=msg.headers,
                    data=msg.data or b"",
                )
            )
            if msg.seq >= last_seq:
                return found
            seq = msg.seq + 1

    async def read_raw(
        self,
        from_seq: int = 1,
        until_seq: int | None = None,
        until_time: dt.datetime | None = None,
        batch_size: int = 1000,
        *,
        subjects: str | None = None,
    ) -> AsyncIterator[list[RawMessage]]:
        """The stream's activity events in batches, undecoded: the fast path for replay.

        An ordered consumer pushes messages into a bounded queue of batches; when the reader
        falls behind, the queue fills, the consumer stops answering flow control, and the
        server waits, so memory stays bounded whatever the stream's size.

        :param subjects: the messages of these subjects instead (a wildcard); ``ns.everything``
            reads all of them, what the stream's Merkle tree covers.
        """
        last = await self.last_sequence(subjects)
        if until_seq is not None:
            last = min(last, until_seq)
        if last < from_seq:
            return
        # Compared in whole microseconds, the precision of datetime, with integer arithmetic:
        # float seconds since 1970 carry only about 0.2 microseconds of precision.
        cutoff_us = (until_time - EPOCH) // dt.timedelta(microseconds=1) if until_time else None
        queue: asyncio.Queue[list[RawMessage] | None] = asyncio.Queue(maxsize=8)
        batch: list[RawMessage] = []
        done = False

        async def on_message(msg: Msg) -> None:
            nonlocal batch, done
            if done:
                return
            seq, time_ns = _sequence_and_time(msg.reply)
            if cutoff_us is not None and time_ns // 1000 > cutoff_us:
                done = True
            else:
                batch.append(RawMessage(seq, msg.subject, time_ns, msg.headers, msg.data))
                done = seq >= last
            if done or len(batch) >= batch_size:
                if batch:
                    await queue.put(batch)
                    batch = []
                if done:
                    await queue.put(None)

        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=from_seq,
            inactive_threshold=60.0,
        )
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                sub = await self.js.subscribe(
                    subjects or self.ns.activities,
                    stream=self.ns.stream,
                    cb=on_message,
                    ordered_consumer=True,
                    config=config,
                    pending_msgs_limit=batch_size * 16,
                    pending_bytes_limit=-1,
                )
                break
            except nats.js.errors.APIError as exc:
                if exc.err_code == _MAX_CONSUMERS_REACHED:
                    raise TooManyReadersError(self.ns.stream) from None
                raise
            except nats.errors.TimeoutError:
                # Right after a node of a cluster dies, the JetStream API can be silent while
                # a new leader is elected; a consumer the lost request did create expires
                # unused after its inactive threshold.
                if attempt + 1 == _CREATE_ATTEMPTS:
                    raise
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            done = True
            await _quietly_unsubscribe(sub)


class _Recorded(msgspec.Struct):
    recorded_at: dt.datetime | None = None


_recorded = msgspec.json.Decoder(_Recorded)


def _stored(event: Envelope[Any], ack: Ack) -> AppendOutcome:
    return AppendOutcome(event.event_id, "duplicate" if ack.duplicate else "stored", ack.sequence)


def _sequence_and_time(reply: str) -> tuple[int, int]:
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> (9 tokens), or the
    # newer form with domain and account hash in front (12 tokens). Parsing by hand skips the
    # datetime that nats-py's Msg.metadata builds for every message.
    tokens = reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[7])
    return int(tokens[7]), int(tokens[9])


def _parse_time_ns(value: dt.datetime | str | None) -> int:
    if value is None:
        return 0
    if isinstance(value, dt.datetime):
        return nanoseconds(value)
    # RFC 3339 with nanoseconds, which datetime cannot hold.
    head, _, frac = value.rstrip("Z").partition(".")
    base = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC)
    nanos = int((frac + "000000000")[:9]) if frac else 0
    return int(base.timestamp()) * 1_000_000_000 + nanos


async def _quietly_unsubscribe(sub: Any) -> None:
    with contextlib.suppress(nats.errors.Error, asyncio.CancelledError):
        await sub.unsubscribe()


def _weaker_settings(have: api.StreamConfig, want: api.StreamConfig) -> list[str]:
    problems = []
    for flag in ("deny_delete", "deny_purge"):
        if not getattr(have, flag):
            problems.append(f"{flag} is off")
    if have.allow_rollup_hdrs:
        problems.append("rollups are allowed")
    if (have.duplicate_window or 0) < DUPLICATE_WINDOW:
        problems.append(f"duplicate window is {have.duplicate_window or 0:g}s, under 24 h")
    if (have.num_replicas or 1) < (want.num_replicas or 1):
        problems.append(f"{have.num_replicas} replicas, {want.num_replicas} wanted")
    if have.max_age:
        problems.append(f"messages expire after {have.max_age:g}s")
    for limit in ("max_msgs", "max_bytes", "max_msgs_per_subject"):
        value = getattr(have, limit)
        if value not in (None, -1, 0):
            problems.append(f"{limit} is capped at {value}")
    if sorted(have.subjects or []) != sorted(want.subjects or []):
        problems.append(f"subjects are {have.subjects}, not {want.subjects}")
    return problems
