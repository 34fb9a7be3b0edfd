"""Replay on every core: the stream split by activity, each part folded by a process of its own.

Why split the work this way and not into a reader and an applier: the profile of a rebuild
(docs/performance.md, "Replay") puts nearly all its time in decoding, folding and writing, and
a tenth in reading once replay reads through its own client (``replay/reader.py``). A reader
in a process of its own could take only that tenth off. Activities, though, are independent:
an event changes only its own activity's state, its chain of hashes is the activity's own, and
rollups are sums, which add up in any grouping. So each of N processes reads the whole stream
(reading is the cheap part), keeps the messages of its own activities, and folds them with a
bulk applier into a file of its own, then sums its own activities' marks (the time-travel
summaries, ``projections/marks.py``). The process that started the replay folds and marks
part 0 into the target meanwhile, then takes in the other parts' rows, marks and sums
(``BulkApplier.merge``) and writes the rollups and the checkpoint once, exactly as a replay in
one process would: the same rows, row for row (``tests/integration/test_partition.py``).
``verify`` checks the hash chains in the same pass, each part those of its own activities.

A message's part is the CRC-32 of its ``payload.activity_id``, the key the fold groups by,
read without decoding the rest of the event, modulo N. A message without one is not an event:
it goes to part 0, which quarantines it (or fails its check) as a single process would.

A part's file sits beside the target, named after it and this process's id, and is removed
when the replay ends whichever way; a part whose parent dies is killed by the kernel
(``PR_SET_PDEATHSIG``), and the next replay in the directory removes what a killed one left
(``projections.db.clear_leftovers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from events.codec import DEFAULT_CODEC
from events.errors import EventDecodeError, LedgerError
from events.keys import KeyRegistry
from events.stored import RawMessage
from projections import marks
from projections.bulk import BulkApplier
from projections.db import open_writer, remove_database
from projections.fold import Bucket, Share
from replay.chain import ChainChecker, ChainTally, Failure
from replay.reader import CredentialsLike, read_stream

__all__ = [
    "CheckedChains",
    "PartError",
    "Plan",
    "Workers",
    "available_cores",
    "collector_spared",
    "fold_part",
    "merge_parts",
    "part_of",
]

_log = logging.getLogger("ledger.replay")

_PR_SET_PDEATHSIG = 1


class PartError(LedgerError):
    """Raised when a part of a split replay failed or its process died."""


class _Payload(msgspec.Struct):
    activity_id: str


class _Head(msgspec.Struct):
    payload: _Payload


_head = msgspec.json.Decoder(_Head)


def part_of(raw: RawMessage, parts: int) -> int:
    """Which of ``parts`` folds this message: by its activity, so that all of an activity's
    events meet in one process; part 0 for a message that names none."""
    try:
        activity_id = _head.decode(raw.data).payload.activity_id
    except (msgspec.DecodeError, msgspec.ValidationError):
        return 0
    return zlib.crc32(activity_id.encode()) % parts


def available_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Plan:
    """What every part of one replay does; sent to each part's process, so picklable.

    :param parts: how many processes share the activities.
    :param until_seq: the last sequence to read.
    :param fold_until: the last sequence to fold (``verify`` folds up to the live checkpoint
        but checks the chains to the end).
    :param keep: a filter on the messages to fold (an as-of replay's cutoff); a picklable
        object, e.g. ``replay.asof.RecordedBy``.
    :param checks: for ``verify``: the key registry and whether every event must be signed.
    :param mark_every: the sequences between two marks (projections/marks.py), the starting
        process's: the parts' marks are added up mark by mark, so all must space them alike.
    """

    parts: int
    until_seq: int
    fold_until: int
    keep: Callable[[RawMessage], bool] | None = None
    checks: tuple[KeyRegistry, bool] | None = None
    mark_every: int = field(default_factory=lambda: marks.MARK_EVERY)

    def checker(self) -> ChainChecker | None:
        """A fresh chain checker for one part, when the plan checks chains."""
        if self.checks is None:
            return None
        registry, require_signatures = self.checks
        return ChainChecker(registry, require_signatures=require_signatures)


class CheckedChains:
    """A part's chain checker with the failures it found (``verify``)."""

    def __init__(self, checker: ChainChecker) -> None:
        self.checker = checker
        self.failures: list[Failure] = []

    def check(self, messages: list[RawMessage]) -> None:
        """Check each message in order, as one of this part's activities' chain."""
        checker, failures = self.checker, self.failures
        for raw in messages:
            try:
                event = DEFAULT_CODEC.decode(raw.data, raw.headers)
            except EventDecodeError as exc:
                failures.append(checker.undecodable(raw.sequence, exc.reason))
                continue
            failures.extend(checker.check(raw.sequence, raw.subject, event, raw.data))

    def tally(self) -> ChainTally:
        """What was checked and found so far."""
        return self.checker.tally(self.failures)


async def fold_part(
    batches: AsyncIterator[list[RawMessage]],
    bulk: BulkApplier,
    part: int,
    plan: Plan,
    *,
    checked: CheckedChains | None = None,
    on_batch: Callable[[list[RawMessage]], None] | None = None,
) -> None:
    """Fold this part's messages of every batch read; check their chains if the plan says.

    :param on_batch: called with every batch read, this part's or not.
    """
    parts, fold_until, keep = plan.parts, plan.fold_until, plan.keep
    async for batch in batches:
        mine = batch if parts == 1 else [raw for raw in batch if part_of(raw, parts) == part]
        if checked is not None:
            checked.check(mine)
        if mine and mine[0].sequence <= fold_until:
            bulk.add(
                raw for raw in mine if raw.sequence <= fold_until and (keep is None or keep(raw))
            )
        if on_batch is not None:
            on_batch(batch)


@contextlib.contextmanager
def collector_spared() -> Iterator[Callable[[], None]]:
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


@dataclass(frozen=True)
class _Job:
    """One part's work, sent to its process."""

    url: str
    creds: CredentialsLike | None
    stream: str
    subjects: str
    part: int
    path: Path
    cache: int
    plan: Plan


class _Result(msgspec.Struct):
    totals: dict[Bucket, Share]
    last: RawMessage | None
    chains: ChainTally | None


def main() -> None:
    """A part's process (started by :class:`Workers`): read its job, pickled, from standard
    input, fold its activities into its own file, and write the answer, pickled, to standard
    output: ``("done", result)`` or ``("failed", why)``.

    A process of its own rather than ``multiprocessing``: a spawned child imports the parent's
    main script again, which fails for a script without a main guard; this one imports only
    what the fold needs.
    """
    _die_with_parent()
    job = pickle.load(sys.stdin.buffer)
    marks.MARK_EVERY = job.plan.mark_every
    answer: tuple[str, Any]
    try:
        answer = ("done", asyncio.run(_fold_alone(job)))
    except BaseException as exc:  # every failure goes back to the parent, named
        answer = ("failed", str(exc) or type(exc).__name__)
    pickle.dump(answer, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    raise SystemExit(0 if answer[0] == "done" else 1)


async def _fold_alone(job: _Job) -> _Result:
    conn = open_writer(job.path, bulk=True)
    try:
        bulk = BulkApplier(conn, cache=job.cache)
        checker = job.plan.checker()
        checked = CheckedChains(checker) if checker is not None else None
        batches = read_stream(
            job.url,
            job.stream,
            job.subjects,
            until_seq=job.plan.until_seq,
            creds=job.creds,
            delete_consumer=job.creds is None,
        )
        with collector_spared() as spare:
            await fold_part(
                batches, bulk, job.part, job.plan, checked=checked, on_batch=lambda _: spare()
            )
            totals, last = bulk.close_part()
    finally:
        conn.close()
    return _Result(totals, last, checked.tally() if checked is not None else None)


def _die_with_parent() -> None:
    """Ask the kernel to kill this process when its parent dies, so that a killed replay
    leaves no part running (Linux; elsewhere the part ends when its pipe breaks)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Workers:
    """The processes of parts 1 to N-1 of a split replay, started together and waited for."""

    def __init__(
        self,
        *,
        url: str,
        creds: CredentialsLike | None,
        stream: str,
        subjects: str,
        target: Path,
        cache: int,
        plan: Plan,
    ) -> None:
        """Start a process for every part but part 0, which the caller folds itself.

        :param target: the replay's file; part ``k`` writes beside it, to
            ``<target>.part<k>``.
        """
        self.plan = plan
        self.paths = [Path(f"{target}.part{k}") for k in range(1, plan.parts)]
        self._procs: list[subprocess.Popen[bytes]] = []
        self._answers: dict[int, tuple[str, Any]] = {}
        # The parts import what this process imports, from where it imports it.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        try:
            for k, path in enumerate(self.paths, start=1):
                path.unlink(missing_ok=True)
                process = subprocess.Popen(
                    [sys.executable, "-c", "from replay.partition import main; main()"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=env,
                )
                self._procs.append(process)
                assert process.stdin is not None
                job = _Job(url, creds, stream, subjects, k, path, cache, plan)
                process.stdin.write(pickle.dumps(job))
                process.stdin.close()
        except BaseException:
            self.close()
            raise

    def check(self) -> None:
        """Raise at once if a part has failed, without waiting for the others.

        :raises PartError: naming the part and its error.
        """
        for index, process in enumerate(self._procs):
            # A part that succeeded may not end before its answer is read (a pipe holds
            # 64 KB); one that ended has said all it will.
            if index not in self._answers and process.poll() is not None:
                self._answers[index] = self._receive(index)
            answer = self._answers.get(index)
            if answer is not None and answer[0] == "failed":
                raise PartError(f"part {index + 1} of the replay failed: {answer[1]}")

    async def results(self) -> list[tuple[Path, _Result]]:
        """Every part's file and result, once all are done.

        :raises PartError: when a part failed or died.
        """
        out = []
        for index, path in enumerate(self.paths):
            if index not in self._answers:
                self._answers[index] = await asyncio.to_thread(self._receive, index)
            self.check()
            out.append((path, self._answers[index][1]))
        return out

    def _receive(self, index: int) -> tuple[str, Any]:
        process = self._procs[index]
        assert process.stdout is not None
        data = process.stdout.read()
        code = process.wait()
        try:
            answer: tuple[str, Any] = pickle.loads(data)
        except Exception:
            return ("failed", f"its process ended without an answer (exit code {code})")
        return answer

    def close(self) -> None:
        """Stop any part still running and remove every part's file."""
        for process in self._procs:
            if process.poll() is None:
                process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
        for path in self.paths:
            remove_database(path)


def merge_parts(bulk: BulkApplier, results: list[tuple[Path, _Result]]) -> ChainTally | None:
    """Take every part's rows and sums into ``bulk``; the parts' chain tallies, added up."""
    chains: ChainTally | None = None
    for path, result in results:
        try:
            bulk.merge(path, result.totals, result.last)
        except sqlite3.Error as exc:
            raise PartError(f"cannot take in the replay's part {path.name}: {exc}") from None
        if result.chains is not None:
            chains = result.chains if chains is None else chains + result.chains
    return chains
