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
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from events.keys import KeyRegistry
from events.store import EventStore
from events.stored import RawMessage
from projections.bulk import DEFAULT_CACHE, BulkApplier
from projections.db import (
    building_path,
    clear_leftovers,
    finish_bulk,
    new_database_path,
    open_writer,
    prune_old,
    remove_database,
    switch_live,
)
from projections.releases import write_releases
from replay.chain import ChainTally
from replay.partition import (
    CheckedChains,
    Plan,
    Workers,
    available_cores,
    collector_spared,
    fold_part,
    merge_parts,
)
from replay.progress import ProgressReporter
from replay.source import StreamSource, as_source

__all__ = ["RebuildResult", "build_projection", "rebuild"]

_log = logging.getLogger("ledger.rebuild")

_CATCH_UP_ROUNDS = 5
"""Rounds of catching up before the switch; the live projector covers whatever comes later."""

SPLIT_FROM = 50_000
"""Messages from which a replay splits between processes by default: below it, starting a
process (about half a second) costs more than the second core saves."""

MAX_PARTS = 4
"""Processes a replay splits into at most, whatever the cores: every part reads the whole
stream, and the server sends it once to each."""


class RebuildResult(NamedTuple):
    """What a rebuild produced."""

    path: Path
    """The new projection file, now live (unless the switch was not asked for)."""
    events: int
    """Messages read from the stream, quarantined ones included."""
    checkpoint: int
    seconds: float
    parts: int = 1
    """How many processes shared the fold (replay/partition.py)."""
    chains: ChainTally | None = None
    """What the chain checks found, when they were asked for (``verify``)."""

    @property
    def rate(self) -> float:
        """Events per second over the whole rebuild."""
        return self.events / self.seconds if self.seconds else 0.0


async def build_projection(
    stream: StreamSource | EventStore,
    target: Path,
    *,
    until_seq: int | None = None,
    keep: Callable[[RawMessage], bool] | None = None,
    batch_size: int = DEFAULT_CACHE,
    progress: bool | None = None,
    label: str = "rebuild",
    on_batch: Callable[[int], None] | None = None,
    parts: int | None = None,
    fold_until: int | None = None,
    checks: tuple[KeyRegistry, bool] | None = None,
) -> RebuildResult:
    """Write a complete projection of the stream into a new file ``target``.

    Reads from sequence 1 to ``until_seq`` (or to the end, catching up with events that arrive
    meanwhile) and folds everything in memory with the bulk applier
    (:class:`projections.bulk.BulkApplier`): activities are written many at a time, rollups
    once, and the checkpoint with the last rows. A long stream is split by activity between
    processes, one a core (:mod:`replay.partition`). The file is written under a name that
    says it is being built (:func:`projections.db.building_path`) and takes ``target``'s name,
    durable, only when complete; on failure it is removed.

    :param stream: the ledger's stream (:class:`replay.source.StreamSource`; a bare store reads
        through nats-py, in this process only).
    :param target: the new database file; it must not exist.
    :param until_seq: the last sequence to read; the end of the stream by default.
    :param keep: a filter on messages, e.g. "recorded up to T" for an as-of replay; picklable
        (a module-level class) when the replay may split.
    :param batch_size: how many activities to keep in memory, shared by the processes; when
        there are more, the least recently changed half is written out. It bounds memory
        (about 2.5 KB an activity) and sets how many rows each write takes.
    :param progress: a rich progress bar when true, log lines when false; by default, a bar
        when standard error is a terminal.
    :param label: the word the progress display starts with.
    :param on_batch: called with the number of messages read so far, after every batch
        (nothing is committed before the end).
    :param parts: how many processes fold; by default one a core when there are at least
        :data:`SPLIT_FROM` messages to read and the stream is read in bulk, else one.
    :param fold_until: fold only up to this sequence, though reading (and checking) up to
        ``until_seq``.
    :param checks: check every hash chain on the way, with this key registry, and whether
        unsigned events fail (``verify``); the result's ``chains`` says what was found.
    """
    started = time.perf_counter()
    source = as_source(stream)
    store = source.store
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_leftovers(target.parent)
    building = building_path(target)
    last = await store.last_sequence()
    if until_seq is not None:
        last = min(last, until_seq)
    plan = Plan(
        parts=_parts(parts, source, last),
        until_seq=last,
        fold_until=last if fold_until is None else min(fold_until, last),
        keep=keep,
        checks=checks,
    )
    conn = open_writer(building, bulk=True)
    workers: Workers | None = None
    read = 0
    position = 0  # the last sequence read, folded or not
    try:
        bulk = BulkApplier(conn, cache=max(batch_size // plan.parts, 1))
        checker = plan.checker()
        checked = CheckedChains(checker) if checker is not None else None
        reporter = ProgressReporter(last, progress, label)

        def seen(batch: list[RawMessage]) -> None:
            nonlocal read, position
            position = batch[-1].sequence
            read += len(batch)
            reporter.advance(len(batch))
            if workers is not None:
                workers.check()
            if on_batch is not None:
                on_batch(read)
            spare()

        try:
            with collector_spared() as spare:
                if plan.parts > 1:
                    assert source.url is not None  # _parts splits only a bulk read
                    workers = Workers(
                        url=source.url,
                        creds=source.creds,
                        stream=store.ns.stream,
                        subjects=store.ns.activities,
                        target=building,
                        cache=bulk.cache,
                        plan=plan,
                    )
                batches = source.read(1, until_seq=last)
                await fold_part(batches, bulk, 0, plan, checked=checked, on_batch=seen)
                # This process's own marks, while the other parts fold or mark theirs.
                reporter.stage("summing the marks")
                bulk.mark()
                chains = checked.tally() if checked is not None else None
                if workers is not None:
                    reporter.stage(f"taking in the other parts ({plan.parts - 1}) as they end")
                    merged = merge_parts(bulk, await workers.results())
                    if chains is not None and merged is not None:
                        chains += merged
                    workers.close()
                    workers = None
                if until_seq is None:
                    # Events that arrived meanwhile, a round at a time, in this process.
                    for _ in range(_CATCH_UP_ROUNDS):
                        newest = await store.last_sequence()
                        if newest <= position:
                            break
                        reporter.total = newest
                        batches = source.read(position + 1, until_seq=newest)
                        await fold_part(
                            batches, bulk, 0, Plan(1, newest, newest, keep), on_batch=seen
                        )
                reporter.stage("writing the rollups and the checkpoint")
                checkpoint = bulk.finish()
            await _copy_releases(store, conn, None if until_seq is None else checkpoint)
            reporter.stage("creating the indexes and the full-text index")
            finish_bulk(conn)
        finally:
            reporter.close()
        conn.close()
        building.rename(target)
    except BaseException:
        if workers is not None:
            workers.close()
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        conn.close()
        remove_database(building)
        raise
    seconds = time.perf_counter() - started
    _log.info(
        "built %s: %d events to sequence %d in %.1fs (%d processes)",
        target,
        read,
        checkpoint,
        seconds,
        plan.parts,
    )
    return RebuildResult(target, read, checkpoint, seconds, plan.parts, chains)


async def _copy_releases(store: EventStore, conn: sqlite3.Connection, until: int | None) -> None:
    """The stream's releases into the new file (projections/releases.py): all of them, or
    those made by ``until`` for a replay that stops there."""
    found = [raw for raw in await store.releases() if until is None or raw.sequence <= until]
    if not found:
        return
    conn.execute("BEGIN IMMEDIATE")
    write_releases(conn, found)
    conn.execute("COMMIT")


def _parts(asked: int | None, source: StreamSource, last: int) -> int:
    if asked is not None and asked < 1:
        raise ValueError("parts must be at least 1")
    if not source.reads_in_bulk():
        # Every part reads the stream itself, through the bulk reader; nats-py reads in one.
        return 1
    if asked is not None:
        return asked
    return min(available_cores(), MAX_PARTS) if last >= SPLIT_FROM else 1


async def rebuild(
    stream: StreamSource | EventStore,
    live: Path,
    *,
    batch_size: int = DEFAULT_CACHE,
    progress: bool | None = None,
    switch: bool = True,
    on_batch: Callable[[int], None] | None = None,
    parts: int | None = None,
) -> RebuildResult:
    """Build a fresh projection from sequence 1 and make it the live one.

    :param stream: the ledger's stream (as for :func:`build_projection`).
    :param live: the live projection link, e.g. ``<data dir>/projections/ledger.db``.
    :param batch_size: activities kept in memory (see :func:`build_projection`).
    :param progress: a rich progress bar when true, log lines when false; by default, a bar
        when standard error is a terminal.
    :param switch: point the live link at the new file at the end (``False`` builds only).
    :param on_batch: called with the number of messages read so far, after every batch.
    :param parts: how many processes fold (see :func:`build_projection`).
    """
    live.parent.mkdir(parents=True, exist_ok=True)
    result = await build_projection(
        stream,
        new_database_path(live.parent),
        batch_size=batch_size,
        progress=progress,
        on_batch=on_batch,
        parts=parts,
    )
    if switch:
        switch_live(live, result.path)
        prune_old(live, keep=2)
    return result
