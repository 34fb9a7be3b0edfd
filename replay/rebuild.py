"""Blue/green rebuild: a fresh projection file from sequence 1, then an atomic switch.

The new file is written beside the live one through the fast read path (the ordered consumer,
batched decoding, folding in memory per batch, one transaction per batch with its checkpoint).
Events that arrive during the rebuild are caught up before the switch. The switch replaces the
live link in one rename (``projections/db.py``): readers holding the old file keep it until they
reopen, and nobody ever sees the new file half-built. The live projector notices the switch and
catches up from the new file's checkpoint.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from events.store import EventStore, RawMessage
from projections.apply import Applier
from projections.db import new_database_path, open_writer, prune_old, switch_live
from projections.schema import create_indexes

__all__ = ["RebuildResult", "rebuild"]

_log = logging.getLogger("ledger.rebuild")

_READ_BATCH = 2000
"""Messages per batch from the ordered consumer; it keeps at most 16 batches in flight."""

_CATCH_UP_ROUNDS = 5
"""Rounds of catching up before the switch; the live projector covers whatever comes later."""


class RebuildResult(NamedTuple):
    """What a rebuild produced."""

    path: Path
    """The new projection file, now live (unless the switch was not asked for)."""
    events: int
    """Messages read from the stream, quarantined ones included."""
    checkpoint: int
    seconds: float

    @property
    def rate(self) -> float:
        """Events per second over the whole rebuild."""
        return self.events / self.seconds if self.seconds else 0.0


class _EventsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} events/s" if speed else "- events/s", style="cyan")


class _Reporter:
    """A rich progress bar in a terminal, a log line every few seconds otherwise."""

    def __init__(self, total: int, bar: bool, every: float = 5.0) -> None:
        self.total = total
        self.done = 0
        self.started = time.perf_counter()
        self._next_line = self.started + every
        self._every = every
        self._progress: Progress | None = None
        if bar:
            self._progress = Progress(
                TextColumn("rebuild"),
                BarColumn(),
                MofNCompleteColumn(),
                _EventsPerSecond(),
                TimeRemainingColumn(),
                transient=False,
            )
            self._task = self._progress.add_task("rebuild", total=total)
            self._progress.start()

    def advance(self, count: int) -> None:
        self.done += count
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, total=max(self.total, self.done))
            return
        now = time.perf_counter()
        if now >= self._next_line:
            self._next_line = now + self._every
            rate = self.done / (now - self.started)
            eta = (self.total - self.done) / rate if rate else 0.0
            _log.info(
                "rebuild: %d/%d events, %.0f events/s, ETA %.0fs", self.done, self.total, rate, eta
            )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


async def rebuild(
    store: EventStore,
    live: Path,
    *,
    batch_size: int = 20_000,
    progress: bool | None = None,
    switch: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> RebuildResult:
    """Build a fresh projection from sequence 1 and make it the live one.

    :param store: the EventStore on the ledger's stream.
    :param live: the live projection link, e.g. ``<data dir>/projections/ledger.db``.
    :param batch_size: messages per transaction. Large batches pay: most rollup rows that a
        batch touches are touched by many of its events, and each is written once per batch.
    :param progress: a rich progress bar when true, log lines when false; by default, a bar
        when standard error is a terminal.
    :param switch: point the live link at the new file at the end (``False`` builds only).
    :param on_batch: called with the checkpoint after every committed batch.
    """
    started = time.perf_counter()
    live.parent.mkdir(parents=True, exist_ok=True)
    target = new_database_path(live.parent)
    conn = open_writer(target, bulk=True)
    applier = Applier(conn)
    read = 0
    try:
        total = await store.last_sequence()
        reporter = _Reporter(total, sys.stderr.isatty() if progress is None else progress)
        try:
            for _ in range(_CATCH_UP_ROUNDS):
                last = await store.last_sequence()
                if last <= applier.checkpoint():
                    break
                reporter.total = last
                pending: list[RawMessage] = []
                async for batch in store.read_raw(
                    applier.checkpoint() + 1, until_seq=last, batch_size=_READ_BATCH
                ):
                    pending.extend(batch)
                    if len(pending) >= batch_size or batch[-1].sequence >= last:
                        applier.apply(pending)
                        read += len(pending)
                        reporter.advance(len(pending))
                        if on_batch is not None:
                            on_batch(pending[-1].sequence)
                        pending = []
        finally:
            reporter.close()
        create_indexes(conn)
        # The bulk load skipped fsync; make the file durable before anyone relies on it.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        checkpoint = applier.checkpoint()
    except BaseException:
        conn.close()
        for leftover in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
            leftover.unlink(missing_ok=True)
        raise
    conn.close()
    if switch:
        switch_live(live, target)
        prune_old(live, keep=2)
    seconds = time.perf_counter() - started
    _log.info("rebuilt %s: %d events to sequence %d in %.1fs", target, read, checkpoint, seconds)
    return RebuildResult(target, read, checkpoint, seconds)
