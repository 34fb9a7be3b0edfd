"""The bulk applier: a rebuild or an as-of replay folds the whole stream in memory.

A rebuild starts from an empty file that nobody reads until it is complete (docs/design.md,
"Replay and audit"), so it need not pay what the live applier pays to keep a file correct
after every batch. :class:`BulkApplier` folds with the live applier's own steps
(:func:`~projections.apply.decode_batch`, :func:`~projections.apply.fold_batch`,
:func:`~projections.fold.add_footprint`, the same row writers; there is no second copy of the
counting rules), but:

- rollups are summed in one dict of integer millionths for the whole replay and written once,
  at the end, instead of read, added to and written back after every batch;
- activities stay in memory while they are recent, and are written many thousand at a time
  when they leave it. An activity that an event needs after it left is read back from the file,
  exactly as the live applier reads it: its footprint then comes off the sums, and its new one
  goes on when it is written again;
- everything goes into one transaction, which also writes the checkpoint, at :meth:`finish`;
  until then the file holds no checkpoint at all, and a replay that fails is thrown away;
- the marks (projections/marks.py) are summed once the folding is done (:meth:`mark`); a part
  of a split replay sums its own activities' while the other parts fold or sum theirs, and
  :meth:`merge` adds them up; :meth:`finish` sums those past some part's last message again.

Memory is bounded by ``cache``, the number of activities kept, whatever the stream's length. An
activity kept costs about 2.5 KB of a rebuild's peak RSS (its state alone is 1.4 KB; the rest is
event ids, bookkeeping and the allocator's slack): at 200k synthetic events the peak was 98 MB
with a cache of 1,000, 149 MB with the default 20,000 and 347 MB with 100,000. A larger cache
only saves reading back activities revised long after their report.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from itertools import islice
from pathlib import Path

from events.codec import DEFAULT_CODEC, Codec
from events.stored import RawMessage
from projections.apply import (
    BatchResult,
    Folded,
    decode_batch,
    fold_batch,
    in_stream_order,
    load_activities,
    make_timeline_monotone,
    read_checkpoint,
    write_activities,
    write_checkpoint,
    write_quarantine,
    write_rollups,
    write_timeline,
)
from projections.fold import Bucket, Share, add_footprint, add_shares, net_deltas
from projections.marks import add_marks, drop_marks_after, write_marks
from projections.schema import PROJECTION

__all__ = ["DEFAULT_CACHE", "BulkApplier", "BulkError"]

DEFAULT_CACHE = 20_000
"""Activities kept in memory by default; half of them are written when it is exceeded."""

_PER_ACTIVITY = (
    "activities",
    "activity_countries",
    "reported",
    "footprints",
    "activity_documents",
    "activities_past",
    "activity_countries_past",
    "quarantine",
    "timeline",
)
"""The tables whose rows belong to one activity (or one message) each, which parts of a split
replay write apart; the rollups and the checkpoint are the merge's own."""

_QUARANTINE_CHUNK = 1000
"""Quarantined messages held before they are written: a stream of poison stays bounded too."""


class BulkError(RuntimeError):
    """Raised when a bulk applier is used on a file that is not fresh, or after :meth:`finish`."""


class BulkApplier:
    """Folds a whole replay into one fresh projection file, written once at the end."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        codec: Codec = DEFAULT_CODEC,
        projection: str = PROJECTION,
        cache: int = DEFAULT_CACHE,
    ) -> None:
        """
        :param conn: an empty projection in autocommit mode, as
            ``projections.db.open_writer(path, bulk=True)`` gives.
        :param codec: decodes and upcasts the stored events.
        :param projection: the checkpoint's name.
        :param cache: how many activities to keep in memory at most; when there are more, the
            least recently changed half is written to the file.
        :raises BulkError: when the file already holds a projection.

        The applier opens the file's one transaction here; :meth:`finish` commits it, and
        :meth:`abort` rolls it back.
        """
        if cache < 1:
            raise ValueError("cache must be at least 1")
        self.conn = conn
        self.codec = codec
        self.projection = projection
        self.cache = cache
        if (
            read_checkpoint(conn, projection)
            or conn.execute("SELECT 1 FROM activities LIMIT 1").fetchone()
        ):
            raise BulkError("a bulk applier fills an empty projection file only")
        self._recent: dict[str, Folded] = {}
        """Activities in memory, least recently changed first."""
        self._totals: dict[Bucket, list[int]] = {}
        """Every rollup row so far: the footprints of the activities written to the file."""
        self._quarantine: list[tuple[RawMessage, str]] = []
        self._last: RawMessage | None = None
        self._written = False
        """Whether any activity is in the file, so that one absent from memory may be there."""
        self._finished = False
        self._floor = 0
        """The running maximum of the recorded instants of the messages folded so far."""
        self._merged = False
        self._marked = 0
        """Every mark up to this sequence is in the file, whole."""
        conn.execute("BEGIN IMMEDIATE")

    @property
    def position(self) -> int:
        """The last sequence folded so far (durable only after :meth:`finish`)."""
        return self._last.sequence if self._last else 0

    @property
    def kept(self) -> int:
        """How many activities are in memory now."""
        return len(self._recent)

    def add(self, messages: Iterable[RawMessage]) -> BatchResult:
        """Fold messages, in stream order, into memory; write activities that leave it.

        :param messages: stored messages; any at or below one already folded are skipped.
        :returns: what was folded; its ``checkpoint`` is the position, not yet committed.
        """
        if self._finished:
            raise BulkError("the bulk applier has finished")
        batch = in_stream_order(messages)
        fresh = [raw for raw in batch if raw.sequence > self.position]
        skipped = len(batch) - len(fresh)
        if not fresh:
            return BatchResult(0, skipped, 0, self.position)
        decoded, quarantine = decode_batch(self.codec, fresh)
        self._floor = write_timeline(self.conn, fresh, decoded, self._floor)
        recent = self._recent
        ids = {envelope.activity_id for _, envelope in decoded}
        present = {activity_id for activity_id in ids if activity_id in recent}
        if self._written and len(present) < len(ids):
            # An activity that is not in memory may be in the file; read it back as the live
            # applier would. Ids that are in neither are new.
            recent.update(load_activities(self.conn, ids - present))
        touched = fold_batch(recent, decoded, quarantine)
        # Changed activities move to the end, so the ones written out are those left longest
        # untouched: a correction is likelier soon after a report than years later. Those read
        # back or new in this batch were added at the end already.
        for activity_id in present & touched:
            recent[activity_id] = recent.pop(activity_id)
        self._quarantine += quarantine
        self._last = fresh[-1]
        if len(recent) > self.cache:
            self._write_out(len(recent) - self.cache // 2)
        elif len(self._quarantine) >= _QUARANTINE_CHUNK:
            self._write_quarantine()
        return BatchResult(len(fresh) - len(quarantine), skipped, len(quarantine), self.position)

    def finish(self) -> int:
        """Write every activity, the rollups, the quarantine and the checkpoint; commit.

        :returns: the checkpoint: the last sequence folded, 0 if there was none.
        """
        if self._finished:
            raise BulkError("the bulk applier has finished")
        self._finished = True
        try:
            self._write_out(len(self._recent))
            if self._merged:
                # Marks past the last one whole for every part lack some part's activities:
                # summed again here, over every activity, like those no part reached.
                drop_marks_after(self.conn, self._marked)
            write_marks(self.conn, self._marked, self.position)
            write_rollups(self.conn, self._totals)
            if self._merged:
                make_timeline_monotone(self.conn)
            if self._last is not None:
                write_checkpoint(self.conn, self.projection, self._last)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        self._totals.clear()
        return self.position

    def mark(self) -> None:
        """Write every activity in memory to the file, then the marks up to the last sequence
        folded: in a split replay, each part's while the other parts still fold theirs.
        """
        if self._finished:
            raise BulkError("the bulk applier has finished")
        try:
            self._write_out(len(self._recent))
            write_marks(self.conn, self._marked, self.position)
        except BaseException:
            self._finished = True
            self.conn.execute("ROLLBACK")
            raise
        self._marked = self.position

    def close_part(self) -> tuple[dict[Bucket, Share], RawMessage | None]:
        """End a part of a replay split by activity (``replay/partition.py``): write every
        activity and the quarantine, then the marks (as :meth:`mark`), commit, and give what
        :meth:`merge` takes in.

        :returns: the rollup sums of this part's activities and the last message it folded,
            up to which its marks go.
        """
        self.mark()
        self._finished = True
        self.conn.execute("COMMIT")
        totals, self._totals = net_deltas(self._totals), {}
        return totals, self._last

    def merge(self, part: Path, totals: dict[Bucket, Share], last: RawMessage | None) -> None:
        """Take in a part that another applier folded from the same messages: its rows, its
        marks, its rollup sums and its last message. Call :meth:`mark` first: then the marks
        up to the earliest last message of all are whole, and :meth:`finish` sums the rest.

        The part's activities must be none of this applier's (a split by activity id): rows
        are copied, not folded again, and the sums simply add. The rows this applier wrote so
        far are committed first, since SQLite attaches a file only outside a transaction;
        the file still has no checkpoint until :meth:`finish`, so it still is not a
        projection if anything fails before.

        :param part: the part's file, as :meth:`close_part` left it.
        """
        if self._finished:
            raise BulkError("the bulk applier has finished")
        conn = self.conn
        conn.execute("COMMIT")
        conn.execute("ATTACH DATABASE ? AS part", (f"file:{part}?mode=ro",))
        try:
            conn.execute("BEGIN IMMEDIATE")
            for table in _PER_ACTIVITY:
                conn.execute(f"INSERT INTO main.{table} SELECT * FROM part.{table}")
            add_marks(conn, "part")
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.execute("DETACH DATABASE part")
            conn.execute("BEGIN IMMEDIATE")
        add_shares(self._totals, totals)
        self._merged = True
        if last is not None:
            # A part with no messages at all adds nothing to any mark; one that stopped
            # earlier left the marks after its last message without its activities.
            self._marked = min(self._marked, last.sequence)
            if last.sequence > self.position:
                self._last = last
        self._written = True

    def abort(self) -> None:
        """Give up: roll back whatever was written (the caller throws the file away)."""
        if not self._finished:
            self._finished = True
            self.conn.execute("ROLLBACK")

    def _write_out(self, count: int) -> None:
        """Write the ``count`` least recently changed activities and drop them from memory."""
        recent = self._recent
        leaving = [(i, recent.pop(i)) for i in list(islice(recent, count))]
        changed = sorted((item for item in leaving if item[1].changed), key=_by_id)
        totals = self._totals
        for _, item in changed:
            # The same telescoping as the live applier's: the file's footprint off, the new on.
            add_footprint(totals, item.loaded, -1, item.loaded_rows())
            add_footprint(totals, item.state, 1, item.rows())
        write_activities(self.conn, changed)
        self._write_quarantine()
        self._written = self._written or bool(changed)

    def _write_quarantine(self) -> None:
        write_quarantine(self.conn, self._quarantine)
        self._quarantine = []


def _by_id(item: tuple[str, Folded]) -> str:
    return item[0]
