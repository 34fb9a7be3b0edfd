"""The read side's handle on the live projection: one read-only connection that follows switches.

A rebuild repoints the live link at a new file (``projections/db.py``). Before every query the
handle resolves the link; when it points elsewhere, the handle opens the new file and closes
the old connection. A query therefore runs wholly on the old file or wholly on the new one.
It also waits, bounded, for the projection to reach a sequence a writer asks for.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from projections.db import open_reader, resolve
from projections.errors import NotYetError
from projections.queries import current_sequence

__all__ = ["DEFAULT_WAIT", "ReadModel"]

DEFAULT_WAIT = 5.0
"""Seconds a reader waits at most for ``min_sequence`` before it is told to retry."""

_POLL = 0.02


class ReadModel:
    """A read-only connection to the projection at ``path`` (the live link, or any file).

    Not thread-safe: use it from one thread, such as the event loop of an async server.
    """

    def __init__(self, path: Path, *, wait: float = DEFAULT_WAIT) -> None:
        """
        :param path: the live projection link, or a plain projection file (e.g. an as-of copy).
        :param wait: the longest :meth:`at_least` waits, in seconds.
        """
        self.path = Path(path)
        self.wait = wait
        self._real: Path | None = None
        self._conn: sqlite3.Connection | None = None

    def connection(self) -> sqlite3.Connection:
        """The connection to the file the path points at now.

        :raises NotYetError: when there is no projection file.
        """
        real = resolve(self.path)
        if self._conn is not None and real == self._real:
            return self._conn
        try:
            conn = open_reader(real)
        except (FileNotFoundError, sqlite3.OperationalError):
            raise NotYetError(
                f"no projection at {self.path} yet; start `ledger up` or run `ledger rebuild`"
            ) from None
        if self._conn is not None:
            self._conn.close()
        self._conn, self._real = conn, real
        return conn

    async def at_least(self, sequence: int | None) -> sqlite3.Connection:
        """The connection once the projection has applied ``sequence`` (at once for ``None``).

        :raises NotYetError: when it has not within :attr:`wait` seconds.
        """
        conn = self.connection()
        if sequence is None:
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

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
        self._conn = self._real = None
