"""Blue/green rebuild: a fresh projection file from sequence 1, then an atomic switch.

The new file is written beside the live one through the fast read path: the ordered consumer,
and the bulk applier (``projections/bulk.py``), which folds the whole stream in memory with the
live applier's own steps and writes the rollups and the checkpoint once, at the end, in the
transaction that holds every row. Events that arrive during the rebuild are caught up before
the switch. The switch replaces the live link in one rename (``projections/db.py``): readers
holding the old file keep it until they reopen, and nobody ever sees the new file half-built.
The live projector notices the switch and catches up from the new file's checkpoint.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from events.store import EventStore
from events.stored import RawMessage
from projections.bulk import DEFAULT_CACHE, BulkApplier
from projections.db import finish_bulk, new_database_path, open_writer, prune_old, switch_live
from replay.progress import ProgressReporter

__all__ = ["RebuildResult", "build_projection", "rebuild"]

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


async def build_projection(
    store: EventStore,
    target: Path,
    *,
    until_seq: int | None = None,
    keep: Callable[[RawMessage], bool] | None = None,
    batch_size: int = DEFAULT_CACHE,
    progress: bool | None = None,
    label: str = "rebuild",
    on_batch: Callable[[int], None] | None = None,
) -> RebuildResult:
    """Write a complete projection of the stream into a new file ``target``.

    Reads from sequence 1 to ``until_seq`` (or to the end, catching up with events that arrive
    meanwhile) and folds everything in memory with the bulk applier
    (:class:`projections.bulk.BulkApplier`): activities are written many at a time, rollups
    once, and the checkpoint with the last rows, in one transaction. The file is durable when
    this returns; on failure it is removed.

    :param store: the EventStore on the ledger's stream.
    :param target: the new database file; it must not exist.
    :param until_seq: the last sequence to apply; the end of the stream by default.
    :param keep: a filter on messages, e.g. "recorded up to T" for an as-of replay.
    :param batch_size: how many activities to keep in memory; when there are more, the least
        recently changed half is written out. It bounds memory (about 2.5 KB an activity) and
        sets how many rows each write takes.
    :param progress: a rich progress bar when true, log lines when false; by default, a bar
        when standard error is a terminal.
    :param label: the word the progress display starts with.
    :param on_batch: called with the last sequence folded after every batch read (nothing is
        committed before the end).
    """
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    conn = open_writer(target, bulk=True)
    bulk: BulkApplier | None = None
    read = 0
    position = 0  # the last sequence read, kept or not
    try:
        bulk = BulkApplier(conn, cache=batch_size)
        total = await store.last_sequence()
        if until_seq is not None:
            total = min(total, until_seq)
        reporter = ProgressReporter(total, progress, label)
        try:
            with _collector_spared() as spare:
                for _ in range(_CATCH_UP_ROUNDS):
                    last = await store.last_sequence()
                    if until_seq is not None:
                        last = min(last, until_seq)
                    if last <= position:
                        break
                    reporter.total = last
                    async for batch in store.read_raw(
                        position + 1, until_seq=last, batch_size=_READ_BATCH
                    ):
                        position = batch[-1].sequence
                        bulk.add(batch if keep is None else [m for m in batch if keep(m)])
                        read += len(batch)
                        reporter.advance(len(batch))
                        if on_batch is not None:
                            on_batch(bulk.position)
                        spare()
                    if until_seq is not None:
                        break
                checkpoint = bulk.finish()
        finally:
            reporter.close()
        finish_bulk(conn)
    except BaseException:
        if bulk is not None:
            with contextlib.suppress(sqlite3.Error):
                bulk.abort()
        conn.close()
        for leftover in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
            leftover.unlink(missing_ok=True)
        raise
    conn.close()
    seconds = time.perf_counter() - started
    _log.info("built %s: %d events to sequence %d in %.1fs", target, read, checkpoint, seconds)
    return RebuildResult(target, read, checkpoint, seconds)


@contextlib.contextmanager
def _collector_spared() -> Iterator[Callable[[], None]]:
    """Give the load a way to spare the cyclic collector what survives each batch.

    What survives a batch is mostly the activities kept in memory, long-lived by design, ten
    objects and more each; the collector scanned them again at every full collection. Called
    after each batch, the function given freezes what is alive (``gc.freeze``): frozen objects
    are still freed when their last reference goes, only a cycle among them waits for the thaw
    (``gc.unfreeze``) at the end. On 200k synthetic events the bulk applier took 88 µs an event
    without it and 70 µs with it. When something else in the process froze objects first, its
    freeze is left alone and so is the collector.
    """
    if gc.get_freeze_count():
        yield lambda: None
        return
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()


async def rebuild(
    store: EventStore,
    live: Path,
    *,
    batch_size: int = DEFAULT_CACHE,
    progress: bool | None = None,
    switch: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> RebuildResult:
    """Build a fresh projection from sequence 1 and make it the live one.

    :param store: the EventStore on the ledger's stream.
    :param live: the live projection link, e.g. ``<data dir>/projections/ledger.db``.
    :param batch_size: activities kept in memory (see :func:`build_projection`).
    :param progress: a rich progress bar when true, log lines when false; by default, a bar
        when standard error is a terminal.
    :param switch: point the live link at the new file at the end (``False`` builds only).
    :param on_batch: called with the last sequence folded after every batch read.
    """
    live.parent.mkdir(parents=True, exist_ok=True)
    result = await build_projection(
        store,
        new_database_path(live.parent),
        batch_size=batch_size,
        progress=progress,
        on_batch=on_batch,
    )
    if switch:
        switch_live(live, result.path)
        prune_old(live, keep=2)
    return result
