"""Where projection databases live, how they are opened, and how the live one is switched.

The live projection is ``<data dir>/projections/ledger.db``, a symbolic link to a real file
``ledger-<timestamp>.db``. A rebuild writes a new file beside it and then replaces the link in
one ``rename(2)``, so a reader that opens the link gets either the old complete file or the new
complete file, never a half-built one. Readers resolve the link when they open, and keep the
file they got until they reopen. A WAL database is never renamed over another: its ``-wal``
and ``-shm`` files are named after it and would be left pointing at the wrong data.

A projection file is created with mode 0640 (less, if the umask takes more away): it holds
every activity's text, which the owner and its group may read, and no other user of the
machine. SQLite gives the ``-wal`` and ``-shm`` files the database file's mode.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import sqlite3
import threading
from pathlib import Path
from urllib.request import pathname2url

from events.errors import LedgerError
from projections.schema import SCHEMA_VERSION, create_indexes, create_schema

__all__ = [
    "FILE_MODE",
    "LIVE_NAME",
    "ProjectionFileError",
    "WalCheckpointer",
    "building_path",
    "clear_leftovers",
    "ensure_live",
    "finish_bulk",
    "live_path",
    "new_database_path",
    "open_reader",
    "open_writer",
    "prune_old",
    "remove_database",
    "resolve",
    "switch_live",
]

_log = logging.getLogger(__name__)

LIVE_NAME = "ledger.db"

FILE_MODE = 0o640
"""The mode a new projection file is created with, before the umask."""


class ProjectionFileError(LedgerError):
    """Raised when the live projection path is not what the ledger expects (e.g. not a link)."""


def live_path(data_dir: Path) -> Path:
    """The live projection's link inside a data directory."""
    return Path(data_dir) / "projections" / LIVE_NAME


def new_database_path(directory: Path) -> Path:
    """A fresh, unused file name for a new projection database in ``directory``."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    candidate = Path(directory) / f"ledger-{stamp}.db"
    suffix = 0
    while candidate.exists():
        suffix += 1
        candidate = Path(directory) / f"ledger-{stamp}-{suffix}.db"
    return candidate


def remove_database(path: Path) -> None:
    """Delete a database file and the journal, WAL and shared-memory files named after it."""
    for companion in (path, *(Path(f"{path}{end}") for end in ("-journal", "-wal", "-shm"))):
        companion.unlink(missing_ok=True)


def building_path(target: Path) -> Path:
    """Where a replay writes ``target`` until it is complete: a name that says so, with the
    writer's process id, so that :func:`clear_leftovers` can tell a killed writer's file from
    a running one's."""
    return target.with_name(f"{target.name}.{os.getpid()}.building")


_BUILDING = re.compile(r"\.(\d+)\.building")


def clear_leftovers(directory: Path) -> list[Path]:
    """Delete what replays killed before they could clean up left in ``directory``: files
    being built (and their parts and journals) whose writer no longer runs.

    :returns: the files deleted.
    """
    deleted = []
    for path in Path(directory).glob("*.building*"):
        found = _BUILDING.search(path.name)
        if found is None or _running(int(found.group(1))):
            continue
        path.unlink(missing_ok=True)
        deleted.append(path)
    return deleted


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def resolve(path: Path) -> Path:
    """The real file behind ``path`` (the link's target, for the live path)."""
    return Path(os.path.realpath(path))


MMAP_BYTES = 1 << 30
"""How much of a projection file its connections map into memory: address space, not memory
of the process (the pages are the OS's file cache)."""

WAL_CHECKPOINT_PAGES = 16_000
"""Pages the live projection's WAL holds before a commit copies them into the file (SQLite's
default is 1,000). A batch of the live applier dirties ~560 pages of the file's many b-trees
(20 events at 100k, measured), so at 1,000 the copy and its fsync ran every other commit and
took 45% of the applier's time; the hot pages (rollups, index roots) are copied once per
checkpoint whatever their number of commits, so at 16,000 (64 MB of WAL at most) the same
batches took 24% less in all (2.61 s against 3.43 s for 3,000 events in batches of 20)."""


class WalCheckpointer:
    """Copies a live projection's WAL into its file from a thread of its own.

    A writer's own automatic checkpoint runs inside the commit that crosses
    :data:`WAL_CHECKPOINT_PAGES`: at 1,000 reports a second that commit took ~100 ms more
    every ~0.65 s, and every report waiting behind it saw the delay (``bench.latency``). A
    PASSIVE checkpoint on another connection neither blocks nor waits for the writer, and
    SQLite releases the GIL while it copies and syncs, so the applier goes on meanwhile. The
    writer's own automatic checkpoint stays as the backstop, at a threshold four times as
    high, should this thread fall behind or die.
    """

    def __init__(self, path: Path, every: float = 0.25) -> None:
        """
        :param path: the database file (resolved; not the live link, which may switch).
        :param every: seconds between checkpoints.
        """
        self.path = path
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)

    def start(self, writer: sqlite3.Connection) -> None:
        """Take the checkpoints over from ``writer``'s commits, and start."""
        writer.execute(f"PRAGMA wal_autocheckpoint = {4 * WAL_CHECKPOINT_PAGES}")
        self._thread.start()

    def stop(self) -> None:
        """Stop after the checkpoint under way, if any."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 1000")
            while not self._stop.wait(self.every):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # the next round tries again
                    _log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
        finally:
            conn.close()


def open_writer(path: Path, *, bulk: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) a projection database for writing, in WAL mode.

    :param path: the database file, the live link, or ``:memory:``.
    :param bulk: for a rebuild's fresh file, until :func:`finish_bulk`: no fsync, no secondary
        indexes, and no journal. A crash or a rollback then may leave the file inconsistent,
        but a rebuild's file is thrown away on failure.
    :returns: a connection in autocommit mode; the applier opens its own transactions.
    """
    target = path if str(path) == ":memory:" else resolve(path)
    if str(path) != ":memory:":
        _create(Path(target))
    conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
    # A bulk load writes a fresh file that is thrown away if anything fails, so it keeps no
    # journal at all. In WAL mode every page it writes went to the WAL first and was copied
    # into the file at the end (a WAL as large as the file, 200 MB at 200k events). A rollback
    # journal in memory held only the schema's pages during the load, but the merge of a split
    # replay's parts (projections/bulk.py) rewrites pages that existed before it, and copied
    # each of them into memory first: 73 MB more at 1M events.
    conn.execute(f"PRAGMA journal_mode = {'OFF' if bulk else 'WAL'}")
    conn.execute("PRAGMA busy_timeout = 10000")
    # NORMAL in WAL mode survives a killed process (the crash test's case) and loses at most
    # the last transactions on power loss, which the checkpoint then replays.
    conn.execute(f"PRAGMA synchronous = {'OFF' if bulk else 'NORMAL'}")
    conn.execute("PRAGMA cache_size = -32000")
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
    if not bulk:
        # The live applier reads the pages it changes (rollup rows, activities it revises,
        # index leaves) at random keys: through the map, a page read is no read(2). The live
        # applier's batches of 20 took 2.26 s against 2.47 for 3,000 events (100k file).
        conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    create_schema(conn, indexes=not bulk)
    return conn


def finish_bulk(conn: sqlite3.Connection) -> None:
    """Turn a bulk-loaded file into an ordinary projection: indexes, WAL, on disk for good.

    :param conn: the connection :func:`open_writer` gave with ``bulk=True``, after the load's
        last commit.
    """
    # The index sorts take up to the page cache's size again, which put a rebuild of 1M
    # events at 209 MB (bench.rebuild); with the cache cut now, at the end, it stayed at
    # the peak of the load phase for 0.7 s more at 300k.
    conn.execute("PRAGMA cache_size = -4000")
    # The load skipped fsync. With FULL, the commit of the index creation syncs the file,
    # and with it every page written before.
    conn.execute("PRAGMA synchronous = FULL")
    create_indexes(conn)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -32000")


def _create(path: Path) -> None:
    """Create ``path`` empty with :data:`FILE_MODE` unless it exists, before SQLite opens it.

    SQLite would create it 0644 (less the umask): readable by every user of the machine.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def open_reader(path: Path, *, any_thread: bool = False) -> sqlite3.Connection:
    """Open a projection read-only; the live link is resolved now, once.

    :param any_thread: allow the connection to be used from threads other than this one,
        one at a time (a read model's snapshot is read by whichever worker is free).
    :raises FileNotFoundError: when there is no projection yet.
    """
    real = resolve(path)
    if not real.exists():
        raise FileNotFoundError(f"no projection at {path}; run `ledger up` or `ledger rebuild`")
    conn = sqlite3.connect(
        f"file:{pathname2url(str(real))}?mode=ro", uri=True, check_same_thread=not any_thread
    )
    conn.execute("PRAGMA busy_timeout = 10000")
    # Reading the file through a memory map saves a read(2) per page: the country summary's
    # SQL took 20-45% less time at 200k events (bench/query.py). It is address space, not
    # memory of this process; the pages are the OS's file cache.
    conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    return conn


def ensure_live(live: Path) -> Path:
    """Make sure the live path exists; a new empty projection is created behind a fresh link.

    A plain file at ``live`` is accepted as is (tests and the standalone projector use one). A
    link to a file of an older schema version is pointed at a fresh empty file, which the
    projector then fills from sequence 1: projections are disposable.

    :returns: the real file behind ``live``.
    """
    if live.exists() and not (live.is_symlink() and _is_outdated(resolve(live))):
        return resolve(live)
    live.parent.mkdir(parents=True, exist_ok=True)
    target = new_database_path(live.parent)
    open_writer(target).close()
    switch_live(live, target)
    return target


def _is_outdated(path: Path) -> bool:
    conn = sqlite3.connect(f"file:{pathname2url(str(path))}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0] not in (0, SCHEMA_VERSION)
    finally:
        conn.close()


def switch_live(live: Path, target: Path) -> None:
    """Point the live link at ``target`` atomically.

    :raises ProjectionFileError: when ``live`` is a plain file, which a link must not replace
        while a writer may hold it.
    """
    if live.exists() and not live.is_symlink():
        raise ProjectionFileError(
            f"{live} is a plain file, not a link to a projection; move it away first"
        )
    temporary = live.with_name(f".{live.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    # A relative target keeps the link valid when the data directory moves.
    temporary.symlink_to(os.path.relpath(target, live.parent))
    os.replace(temporary, live)


def prune_old(live: Path, keep: int = 2) -> list[Path]:
    """Delete projection files other than the live one and the ``keep - 1`` newest others.

    Readers still holding a deleted file keep reading it: the data lives until they close.

    :returns: the files deleted.
    """
    current = resolve(live)
    others = sorted(
        (p for p in live.parent.glob("ledger-*.db") if resolve(p) != current),
        key=lambda p: p.name,
        reverse=True,
    )
    deleted = []
    for old in others[max(keep - 1, 0) :]:
        remove_database(old)
        deleted.append(old)
    return deleted
