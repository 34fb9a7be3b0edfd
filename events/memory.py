"""An EventStore held in a Python list: the JetStream store's behaviour, without a server.

It stands in for :class:`events.store.EventStore` where a test wants the ledger's append and
read rules but not a nats-server: intake's retries, replay over a handful of events, the store
contract (``tests/store_contract.py``) that both stores must pass. It keeps what the stream
would keep, the same way:

* messages as :class:`~events.stored.RawMessage` (encoded body, the headers the JetStream store
  publishes), numbered from 1 in one sequence shared by every activity;
* an append's expectation is checked against the activity id whatever the office, as the
  JetStream store checks ``ledger.activity.*.<id>``, and *before* the event id is looked up,
  as nats-server does. A retried append with a stale expectation is then told apart from a
  conflict by finding its event id in the activity, exactly as :class:`EventStore` does;
* a repeated event id with a current expectation is a duplicate, even in another activity.

Unlike the stream it forgets nothing: JetStream's duplicate window is 24 hours, far longer than
any process that uses this store. It needs no locks: no method awaits between reading and
changing its state, so one event loop's tasks cannot interleave inside an append.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from events.codec import DEFAULT_CODEC, Codec, encode, headers_for
from events.envelope import Envelope
from events.errors import Conflict

# The result types are the JetStream store's own, so a caller (and the contract test) gets the
# same values from either store. events.store imports nats-py at its top; the package's
# __init__ imports it too, so this costs nothing more than importing ``events`` already does.
from events.stored import (
    EPOCH,
    AppendOutcome,
    AppendResult,
    DecodingReads,
    LoadedActivity,
    RawMessage,
)
from events.subjects import DEFAULT, Namespace

__all__ = ["InMemoryEventStore"]


class InMemoryEventStore(DecodingReads):
    """The ledger's stream as a list, with the append and read rules of the JetStream store."""

    def __init__(
        self,
        namespace: Namespace = DEFAULT,
        *,
        codec: Codec = DEFAULT_CODEC,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        """
        :param namespace: names the subjects the messages are stored under.
        :param codec: decodes stored events, with its upcasters.
        :param clock: nanoseconds since the epoch, read once per stored message; a test can
            pass its own to place messages in time for ``until_time`` reads.
        """
        self.ns = namespace
        self.codec = codec
        self._clock = clock
        self._messages: list[RawMessage] = []
        # Sequences of each activity id's messages, oldest first: the subject filter's answer.
        self._activities: dict[str, list[int]] = {}
        # First sequence of each stored event id: the stream's duplicate window.
        self._event_ids: dict[str, int] = {}

    # -- the stream -------------------------------------------------------------------------

    async def ensure_stream(self, replicas: int = 1) -> None:
        """Nothing to create: the list exists with the store. Kept for the same interface."""

    async def last_sequence(self) -> int:
        """The sequence of the newest event in the stream; 0 when it is empty."""
        return len(self._messages)

    # -- writing ----------------------------------------------------------------------------

    async def append(self, event: Envelope[Any], expected_sequence: int) -> AppendResult:
        """Store one event if its activity is still at ``expected_sequence``.

        :param event: the sealed event.
        :param expected_sequence: the activity's last stream sequence as the writer saw it,
            0 for a new activity.
        :raises Conflict: when the activity has moved on since.
        """
        result = self._append(event, expected_sequence)
        if isinstance(result, Conflict):
            raise result
        return result

    async def append_many(
        self, items: Iterable[tuple[Envelope[Any], int]], *, find_duplicates: bool = True
    ) -> list[AppendOutcome]:
        """Store many events in order, each as :meth:`append` would.

        :param items: ``(event, expected_sequence)`` pairs; a later one may expect the
            sequence an earlier one of the same call is stored at.
        :param find_duplicates: look into the activity of an event whose expectation is stale
            for its id, to tell a retried append (``duplicate``) from a ``conflict``. Turned
            off, such an event is a ``conflict`` with sequence 0, as the JetStream store
            reports it without that look.
        :returns: one outcome per event, in input order; one event's failure raises nothing.
        """
        outcomes = []
        for event, expected in items:
            actual = self._last_of(event.activity_id)
            if not find_duplicates and expected != actual:
                detail = f"wrong last sequence: {actual}"
                outcomes.append(AppendOutcome(event.event_id, "conflict", 0, detail))
                continue
            result = self._append(event, expected)
            if isinstance(result, Conflict):
                outcome = AppendOutcome(event.event_id, "conflict", actual, str(result))
            elif result.duplicate:
                outcome = AppendOutcome(event.event_id, "duplicate", result.sequence)
            else:
                outcome = AppendOutcome(event.event_id, "stored", result.sequence)
            outcomes.append(outcome)
        return outcomes

    def _append(self, event: Envelope[Any], expected: int) -> AppendResult | Conflict:
        """Store ``event`` or say why not; no await, so nothing runs in between."""
        activity_id = event.activity_id
        actual = self._last_of(activity_id)
        if expected != actual:
            # The expectation is checked first, so a retry of a stored append looks stale;
            # its event id in the activity shows it is one.
            for sequence in self._activities.get(activity_id, []):
                headers = self._messages[sequence - 1].headers or {}
                if headers.get("Nats-Msg-Id") == event.event_id:
                    return AppendResult(sequence=sequence, duplicate=True)
            return Conflict(activity_id, expected, actual)
        first = self._event_ids.get(event.event_id)
        if first is not None:
            return AppendResult(sequence=first, duplicate=True)
        sequence = len(self._messages) + 1
        headers = headers_for(event)
        # The headers the JetStream store publishes, which the stream keeps with the message.
        headers["Nats-Msg-Id"] = event.event_id
        headers["Nats-Expected-Last-Subject-Sequence"] = str(expected)
        headers["Nats-Expected-Last-Subject-Sequence-Subject"] = self.ns.activity_filter(
            activity_id
        )
        self._messages.append(
            RawMessage(
                sequence=sequence,
                subject=self.ns.activity(event.office, activity_id),
                time_ns=self._next_time_ns(),
                headers=headers,
                data=encode(event),
            )
        )
        self._activities.setdefault(activity_id, []).append(sequence)
        self._event_ids[event.event_id] = sequence
        return AppendResult(sequence=sequence)

    def _last_of(self, activity_id: str) -> int:
        sequences = self._activities.get(activity_id)
        return sequences[-1] if sequences else 0

    def _next_time_ns(self) -> int:
        # A stream's timestamps never go back; ``until_time`` reads stop at the first later
        # one, so a clock that steps back must not reorder them.
        now = self._clock()
        if self._messages:
            now = max(now, self._messages[-1].time_ns)
        return now

    # -- reading ----------------------------------------------------------------------------

    async def load(self, activity_id: str) -> LoadedActivity:
        """Every event of one activity, oldest first; none for an unknown id."""
        return LoadedActivity(
            [self.decode(self._messages[seq - 1]) for seq in self._activities.get(activity_id, [])]
        )

    async def read_raw(
        self,
        from_seq: int = 1,
        until_seq: int | None = None,
        until_time: dt.datetime | None = None,
        batch_size: int = 1000,
    ) -> AsyncIterator[list[RawMessage]]:
        """The stream's messages in batches of ``batch_size``, undecoded, as replay reads them.

        The end is fixed when the read begins, as with the JetStream store's: events appended
        while the reader works are left for the next read.
        """
        last = len(self._messages)
        if until_seq is not None:
            last = min(last, until_seq)
        # Whole microseconds on both sides, as the JetStream store compares them.
        cutoff_us = (until_time - EPOCH) // dt.timedelta(microseconds=1) if until_time else None
        batch: list[RawMessage] = []
        for raw in self._messages[max(from_seq, 1) - 1 : last]:
            if cutoff_us is not None and raw.time_ns // 1000 > cutoff_us:
                break
            batch.append(raw)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
