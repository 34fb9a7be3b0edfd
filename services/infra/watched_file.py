"""A file read again whenever it changes: what long-running services keep of a registry.

Intake asks for the key registry and for the registry of users on every command. A ``stat`` is
all that costs until someone runs ``ledger office add`` or ``ledger keys new``; then the new
contents count at once, with no restart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

__all__ = ["WatchedFile"]

T = TypeVar("T")


class WatchedFile(Generic[T]):
    """The parsed contents of one file, parsed again when its modification time or size moves."""

    def __init__(self, path: Path, load: Callable[[Path], T], missing: T) -> None:
        """
        :param path: the file.
        :param load: parses the file; its errors reach the caller of :meth:`current`.
        :param missing: what :meth:`current` returns while there is no file.
        """
        self.path = Path(path)
        self._load = load
        self._missing = missing
        self._stamp: tuple[int, int] | None = None
        self._value = missing

    def current(self) -> T:
        """The contents as the file holds them now."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._value = None, self._missing
            return self._value
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            self._value, self._stamp = self._load(self.path), stamp
        return self._value
