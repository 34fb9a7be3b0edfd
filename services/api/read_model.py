"""The read side's handle on the live projection: queries in worker threads, that follow switches.

Queries run in a small pool of worker threads, never on the event loop, so that one slow query
(a long list, a year's page at a million events) holds one worker and no other request. SQLite
connections belong to the thread that opened them, so each thread, the loop's included, has
its own read-only connection. A rebuild repoints the live link at a new file
(``projections/db.py``); before every query a thread checks where the link points, and when it
points elsewhere the thread opens the new file and closes its old connection. A query therefore
runs wholly on the old file or wholly on the new one.

The event loop's own connection reads only what costs microseconds whatever the size of the
projection: the checkpoint row (``/healthz``, waiting for ``min_sequence``) and
``PRAGMA data_version``. That keeps ``/healthz`` answering while every worker is busy.

The handle also waits, bounded, for the projection to reach a sequence a writer asks for, and
keeps the answers to recent queries for as long as the projection has not changed: readers ask
the same few questions (a country, the year list) far more often than the projector writes, and
a kept answer costs one ``PRAGMA data_version`` on the loop instead of the query.

A long download reads a :class:`Snapshot`: a connection of its own in one read transaction,
read a page at a time by whichever worker is free, so that every page comes from one state.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

from projections.db import open_reader, resolve
from projections.errors import NotYetError
from projections.queries import current_sequence

__all__ = ["DEFAULT_KEPT", "DEFAULT_WAIT", "DEFAULT_WORKERS", "ReadModel", "Snapshot"]

DEFAULT_WAIT = 5.0
"""Seconds a reader waits at most for ``min_sequence`` before it is told to retry."""

_POLL = 0.02

DEFAULT_KEPT = 256
"""Answers kept at most; the least recently asked goes first. A page is at most a few hundred KB."""

DEFAULT_WORKERS = 2
"""Threads that run queries: a slow one holds one, and the other goes on answering. More threads
would only take turns at Python's lock with each other and with the loop: at 20k events and 8
connections, four workers answered an uncached country summary at 540 req/s, two at 710, one
at 815 (bench/query.py); SQLite leaves the lock while it reads, so two also use two cores."""

T = TypeVar("T")


class Snapshot:
    """A connection of its own, in one read transaction: every page of a download from one state.

    Read by the read model's workers, one call at a time (:meth:`run`); :meth:`close` ends it.
    """

    def __init__(self, conn: sqlite3.Connection, pool: concurrent.futures.Executor) -> None:
        self._conn = conn
        self._pool = pool
        self._pending: concurrent.futures.Future[Any] | None = None
        self._closed = False

    async def run(self, call: Callable[[sqlite3.Connection], T]) -> T:
        """``call(conn)`` in a worker thread, on the snapshot's connection.

        :raises RuntimeError: after :meth:`close`.
        """
        if self._closed:
            raise RuntimeError("the snapshot is closed")
        self._pending = self._pool.submit(call, self._conn)
        return await asyncio.wrap_future(self._pending)

    def close(self) -> None:
        """End the read transaction and close the connection, once its last call has returned.

        A download dropped mid-page leaves that page's call running in its worker; closing the
        connection under it would fail that call, so the close waits for it.
        """
        if self._closed:
            return
        self._closed = True
        if self._pending is not None:
            self._pending.add_done_callback(lambda _: self._conn.close())
        else:
            self._conn.close()


class ReadModel:
    """Read-only connections to the projection at ``path`` (the live link, or any file).

    Use it from one event loop: its kept answers are the loop's. The queries it runs go to its
    worker threads.
    """

    def __init__(
        self,
        path: Path,
        *,
        wait: float = DEFAULT_WAIT,
        kept: int = DEFAULT_KEPT,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        """
        :param path: the live projection link, or a plain projection file (e.g. an as-of copy).
        :param wait: the longest :meth:`at_least` waits, in seconds.
        :param kept: how many answers :meth:`query` keeps; 0 keeps none.
        :param workers: how many threads run queries.
        """
        self.path = Path(path)
        self.wait = wait
        self.kept = kept
        self.workers = workers
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[sqlite3.Connection] = set()
        self._generation = 0
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._kept: dict[Hashable, Any] = {}
        self._kept_at: tuple[Path | None, int] | None = None

    # -- connections, one per thread -----------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection to the file the path points at now.

        On the event loop, use it only for reads that cost microseconds (see the module's
        docstring); everything else goes through :meth:`run` or :meth:`query`.

        :raises NotYetError: when there is no projection file.
        """
        # One stat, following the link, tells whether it still points at the open file; the
        # open connection keeps that file's inode from being reused.
        try:
            target = os.stat(self.path)
            identity: tuple[int, int] | None = (target.st_dev, target.st_ino)
        except FileNotFoundError:
            identity = None
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        fresh = getattr(local, "generation", -1) == self._generation
        if conn is not None and fresh and identity == local.identity:
            return conn
        real = resolve(self.path)
        try:
            # Any thread may close it (close() does, for every thread); only its own uses it.
            opened = open_reader(real, any_thread=True)
        except (FileNotFoundError, sqlite3.OperationalError):
            raise NotYetError(
                f"no projection at {self.path} yet; start `ledger up` or run `ledger rebuild`"
            ) from None
        with self._lock:
            self._open.add(opened)
            if conn is not None and conn in self._open:
                self._open.discard(conn)
                conn.close()
        local.conn, local.real, local.identity = opened, real, identity
        local.generation = self._generation
        return opened

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix="ledger-read"
            )
        return self._pool

    def _call(self, call: Callable[[sqlite3.Connection], T]) -> T:
        return call(self.connection())

    async def run(self, call: Callable[[sqlite3.Connection], T]) -> T:
        """``call(conn)`` in a worker thread, on that thread's connection; nothing is kept.

        :raises NotYetError: when there is no projection file.
        """
        return await asyncio.get_running_loop().run_in_executor(self._executor(), self._call, call)

    async def snapshot(self) -> Snapshot:
        """A :class:`Snapshot` of the projection as it is now; the caller closes it.

        :raises NotYetError: when there is no projection file.
        """

        def begin() -> sqlite3.Connection:
            try:
                conn = open_reader(resolve(self.path), any_thread=True)
            except (FileNotFoundError, sqlite3.OperationalError):
                raise NotYetError(
                    f"no projection at {self.path} yet; start `ledger up` or run `ledger rebuild`"
                ) from None
            # Deferred: the first read fixes the state every later read of it sees.
            conn.execute("BEGIN")
            return conn

        pool = self._executor()
        conn = await asyncio.get_running_loop().run_in_executor(pool, begin)
        return Snapshot(conn, pool)

    # -- waiting and kept answers --------------------------------------------------------------

    async def at_least(self, sequence: int | None) -> int:
        """Wait until the projection has applied ``sequence`` (at once for ``None`` or 0).

        :returns: the sequence the projection has applied.
        :raises NotYetError: when it has not within :attr:`wait` seconds, or there is no
            projection file.
        """
        reached = current_sequence(self.connection())
        if not sequence:  # None or 0: any state will do
            return reached
        deadline = time.monotonic() + self.wait
        while reached < sequence:
            if time.monotonic() >= deadline:
                raise NotYetError(
                    f"min_sequence: the projection is at sequence {reached}, not yet {sequence}; "
                    "retry shortly",
                    sequence=reached,
                )
            await asyncio.sleep(_POLL)
            reached = current_sequence(self.connection())
        return reached

    async def query(
        self, min_sequence: int | None, query: Callable[..., T], *args: Hashable, **kwargs: Hashable
    ) -> T:
        """``query(conn, *args, **kwargs)`` in a worker, once the projection has ``min_sequence``.

        The answer is kept and given again for the same call until the projection changes: a
        commit by the projector, or a switch to a rebuilt file. Errors are not kept.

        :raises NotYetError: as :meth:`at_least`.
        """
        if min_sequence:
            # Without one, the worker's own connection finds the file (or that there is none):
            # no read on the loop.
            await self.at_least(min_sequence)

        def call(conn: sqlite3.Connection) -> T:
            return query(conn, *args, **kwargs)

        if not self.kept:
            return await self.run(call)
        # data_version changes whenever another connection commits to the file: exactly when
        # a kept answer may have gone stale. It is read on the loop's connection, before the
        # query, so the worker reads that state or a newer one, never an older one.
        conn = self.connection()
        version = (self._local.real, conn.execute("PRAGMA data_version").fetchone()[0])
        if version != self._kept_at:
            self._kept.clear()
            self._kept_at = version
        key = (query, args, tuple(sorted(kwargs.items())))
        if key in self._kept:
            answer = self._kept[key] = self._kept.pop(key)  # now the most recently asked
            return answer
        answer = await self.run(call)
        # While it ran, another request may have seen a newer version and cleared the kept
        # answers; this one is then not kept, rather than kept as if it were of the newer.
        if self._kept_at == version:
            if len(self._kept) >= self.kept:
                del self._kept[next(iter(self._kept))]
            self._kept[key] = answer
        return answer

    def close(self) -> None:
        """Stop the workers and close every thread's connection."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._lock:
            self._generation += 1
            for conn in self._open:
                conn.close()
            self._open.clear()
        self._kept.clear()
        self._kept_at = None
