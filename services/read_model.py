"""The read side's handle on the live projection: one read-only connection that follows switches.

A rebuild repoints the live link at a new file (``projections/db.py``). Before every query the
handle checks where the link points; when it points elsewhere, the handle opens the new file
and closes the old connection. A query therefore runs wholly on the old file or wholly on the
new one. It also waits, bounded, for the projection to reach a sequence a writer asks for, and keeps
the answers to recent queries for as long as the projection has not changed: readers ask the
same few questions (a country, the year list) far more often than the projector writes, and a
kept answer costs one ``PRAGMA data_version`` instead of the query.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

from projections.db import open_reader, resolve
from projections.errors import NotYetError
from projections.queries import current_sequence

__all__ = ["DEFAULT_KEPT", "DEFAULT_WAIT", "ReadModel"]

DEFAULT_WAIT = 5.0
"""Seconds a reader waits at most for ``min_sequence`` before it is told to retry."""

_POLL = 0.02

DEFAULT_KEPT = 256
"""Answers kept at most; the least recently asked goes first. A page is at most a few hundred KB."""

T = TypeVar("T")


class ReadModel:
    """A read-only connection to the projection at ``path`` (the live link, or any file).

    Not thread-safe: use it from one thread, such as the event loop of an async server.
    """

    def __init__(self, path: Path, *, wait: float = DEFAULT_WAIT, kept: int = DEFAULT_KEPT) -> None:
        """
        :param path: the live projection link, or a plain projection file (e.g. an as-of copy).
        :param wait: the longest :meth:`at_least` waits, in seconds.
        :param kept: how many answers :meth:`query` keeps; 0 keeps none.
        """
        self.path = Path(path)
        self.wait = wait
        self.kept = kept
        self._real: Path | None = None
        self._identity: tuple[int, int] | None = None
        self._conn: sqlite3.Connection | None = None
        self._kept: dict[Hashable, Any] = {}
        self._kept_at: tuple[Path | None, int] | None = None

    def connection(self) -> sqlite3.Connection:
        """The connection to the file the path points at now.

        :raises NotYetError: when there is no projection file.
        """
        # One stat, following the link, tells whether it still points at the open file; the
        # open connection keeps that file's inode from being reused.
        try:
            target = os.stat(self.path)
            identity: tuple[int, int] | None = (target.st_dev, target.st_ino)
        except FileNotFoundError:
            identity = None
        if self._conn is not None and identity == self._identity:
            return self._conn
        real = resolve(self.path)
        try:
            conn = open_reader(real)
        except (FileNotFoundError, sqlite3.OperationalError):
            raise NotYetError(
                f"no projection at {self.path} yet; start `ledger up` or run `ledger rebuild`"
            ) from None
        if self._conn is not None:
            self._conn.close()
        self._conn, self._real, self._identity = conn, real, identity
        return conn

    async def at_least(self, sequence: int | None) -> sqlite3.Connection:
        """The connection once the projection has applied ``sequence`` (at once for ``None``).

        :raises NotYetError: when it has not within :attr:`wait` seconds.
        """
        conn = self.connection()
        if not sequence:  # None or 0: any state will do
            return conn
        deadline = time.monotonic() + self.wait
        while (reached := current_sequence(conn)) < sequence:
            if time.monotonic() >= deadline:
                raise NotYetError(
                    f"min_sequence: the projection is at sequence {reached}, not yet {sequence}; "
                    "retry shortly",
                    sequence=reached,
                )
            await asyncio.sleep(_POLL)
            conn = self.connection()
        return conn

    async def query(
        self, min_sequence: int | None, query: Callable[..., T], *args: Hashable, **kwargs: Hashable
    ) -> T:
        """``query(conn, *args, **kwargs)`` once the projection has applied ``min_sequence``.

        The answer is kept and given again for the same call until the projection changes: a
        commit by the projector, or a switch to a rebuilt file. Errors are not kept.

        :raises NotYetError: as :meth:`at_least`.
        """
        conn = await self.at_least(min_sequence)
        if not self.kept:
            return query(conn, *args, **kwargs)
        # data_version changes whenever another connection commits to the file: exactly when
        # a kept answer may have gone stale.
        version = (self._real, conn.execute("PRAGMA data_version").fetchone()[0])
        if version != self._kept_at:
            self._kept.clear()
            self._kept_at = version
        key = (query, args, tuple(sorted(kwargs.items())))
        if key in self._kept:
            answer = self._kept[key] = self._kept.pop(key)  # now the most recently asked
            return answer
        answer = query(conn, *args, **kwargs)
        if len(self._kept) >= self.kept:
            del self._kept[next(iter(self._kept))]
        self._kept[key] = answer
        return answer

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
        self._conn = self._real = self._identity = None
        self._kept.clear()
        self._kept_at = None
