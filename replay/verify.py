"""``verify``: is the log intact, and does the live projection say what the log says?

Two checks. The log: every hash, every ``prev`` link and every signature, in one pass over the
stream (:mod:`replay.chain`). The projection: a fresh rebuild into a temporary file up to the
live projection's checkpoint, compared with the live file table by table. The live file is
read inside one read transaction, so the projector may go on writing without disturbing the
comparison.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

import msgspec

from events.errors import EventDecodeError
from events.keys import KeyRegistry
from events.store import EventStore
from projections.db import open_reader, resolve
from projections.schema import table_names
from replay.chain import ChainChecker, Failure
from replay.rebuild import build_projection

__all__ = ["TableDifference", "VerifyReport", "compare_projections", "verify"]

Progress = Callable[[int], None]


class TableDifference(msgspec.Struct, frozen=True):
    """Rows of one table that only one side has."""

    table: str
    only_live: int
    only_rebuilt: int
    example: str = ""
    """One of the differing rows, for a first look."""


class VerifyReport(msgspec.Struct):
    """What ``verify`` found."""

    events: int = 0
    activities: int = 0
    signed: int = 0
    unsigned: int = 0
    failures: list[Failure] = []
    compared_at: int | None = None
    """The checkpoint at which live and rebuilt projections were compared; None if not."""
    tables: int = 0
    differences: list[TableDifference] = []

    @property
    def ok(self) -> bool:
        """Whether nothing failed."""
        return not self.failures and not self.differences


async def verify(
    store: EventStore,
    registry: KeyRegistry,
    live: Path | None = None,
    *,
    require_signatures: bool = False,
    progress: Progress | None = None,
    rebuild_progress: bool | None = False,
) -> VerifyReport:
    """Check the whole log and, when ``live`` is given and exists, the live projection.

    :param registry: the public keys each office signs with.
    :param live: the live projection (link or file); skipped when ``None`` or missing.
    :param require_signatures: fail unsigned events even of offices without a key.
    :param progress: called with the number of events checked so far.
    """
    report = VerifyReport()
    checker = ChainChecker(registry, require_signatures=require_signatures)
    async for batch in store.read_raw():
        for raw in batch:
            try:
                record = store.decode(raw)
            except EventDecodeError as exc:
                report.failures.append(checker.undecodable(raw.sequence, exc.reason))
                continue
            report.failures.extend(checker.check(raw.sequence, raw.subject, record.event))
        if progress:
            progress(checker.events)
    report.events, report.activities = checker.events, checker.activities
    report.signed, report.unsigned = checker.signed, checker.unsigned
    if live is not None and resolve(live).exists():
        await _compare_with_rebuild(store, live, report, rebuild_progress)
    return report


async def _compare_with_rebuild(
    store: EventStore, live: Path, report: VerifyReport, progress: bool | None
) -> None:
    conn = open_reader(live)
    try:
        conn.execute("BEGIN")  # one snapshot of the live file for the whole comparison
        row = conn.execute("SELECT max(sequence) FROM checkpoint").fetchone()
        checkpoint = row[0] or 0
        with tempfile.TemporaryDirectory(prefix="ledger-verify-") as tmp:
            fresh = Path(tmp, "rebuilt.db")
            await build_projection(
                store, fresh, until_seq=checkpoint, progress=progress, label="verify"
            )
            # Attaching inside the read transaction keeps the live snapshot; detaching must
            # wait until it ends.
            conn.execute("ATTACH DATABASE ? AS rebuilt", (f"file:{fresh}?mode=ro",))
            report.compared_at = checkpoint
            report.differences = compare_projections(conn, "main", "rebuilt")
            report.tables = len(table_names())
            conn.execute("COMMIT")
            conn.execute("DETACH DATABASE rebuilt")
    finally:
        conn.close()


def compare_projections(conn: sqlite3.Connection, left: str, right: str) -> list[TableDifference]:
    """The tables in which two attached projections differ, row for row.

    :param conn: a connection that sees both databases.
    :param left: the schema name of one (``main`` for the connection's own file).
    :param right: the schema name of the other.
    """
    differences = []
    for table in table_names():
        left_only = f"SELECT * FROM {left}.{table} EXCEPT SELECT * FROM {right}.{table}"
        right_only = f"SELECT * FROM {right}.{table} EXCEPT SELECT * FROM {left}.{table}"
        (in_left,) = conn.execute(f"SELECT count(*) FROM ({left_only})").fetchone()
        (in_right,) = conn.execute(f"SELECT count(*) FROM ({right_only})").fetchone()
        if in_left or in_right:
            example = conn.execute(f"{left_only if in_left else right_only} LIMIT 1").fetchone()
            differences.append(TableDifference(table, in_left, in_right, repr(example)[:200]))
    return differences
