"""The live projection's WAL is copied into its file by a thread, not by the writer's commits."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

from projections.db import WAL_CHECKPOINT_PAGES, WalCheckpointer, open_writer

ROWS = 5_000


def rows_in_the_file_alone(path: Path, scratch: Path) -> int:
    """What the database file holds without its WAL: a copy of the file alone, opened."""
    copy = scratch / "alone.db"
    for leftover in scratch.glob("alone.db*"):
        leftover.unlink()
    shutil.copyfile(path, copy)
    conn = sqlite3.connect(copy)
    try:
        return conn.execute("SELECT count(*) FROM timeline").fetchone()[0]
    except sqlite3.DatabaseError:  # copied while a checkpoint wrote it: not yet
        return -1
    finally:
        conn.close()


def test_committed_pages_reach_the_file_while_the_writer_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    writer = open_writer(path)
    checkpointer = WalCheckpointer(path, every=0.05)
    checkpointer.start(writer)
    try:
        # The writer's own checkpoint stays, as a backstop only.
        backstop = writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        assert backstop == 4 * WAL_CHECKPOINT_PAGES
        writer.execute("BEGIN IMMEDIATE")
        writer.executemany("INSERT INTO timeline VALUES (?, ?)", [(i, i) for i in range(ROWS)])
        writer.execute("COMMIT")
        # Far below the backstop's threshold: only the thread can have copied these pages.
        assert Path(f"{path}-wal").stat().st_size < backstop * 4096
        deadline = time.monotonic() + 30
        while rows_in_the_file_alone(path, scratch) != ROWS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rows_in_the_file_alone(path, scratch) == ROWS
        # The writer is not held up by the thread: it commits again at once.
        writer.execute("INSERT INTO timeline VALUES (?, ?)", (ROWS, ROWS))
    finally:
        checkpointer.stop()
        writer.close()
    assert not checkpointing()


def test_stop_before_any_round_ends_the_thread(tmp_path: Path) -> None:
    writer = open_writer(tmp_path / "live.db")
    checkpointer = WalCheckpointer(tmp_path / "live.db", every=3600)
    checkpointer.start(writer)
    checkpointer.stop()  # does not wait for the hour
    writer.close()
    assert not checkpointing()


def checkpointing() -> bool:
    return any(t.name == "wal-checkpoint" and t.is_alive() for t in threading.enumerate())
