"""``runtime.json`` and the data directory's lock: how ``ledger`` commands find a running stack.

``ledger up`` holds an exclusive ``flock`` on ``<data dir>/ledger.lock`` for as long as it runs
and writes the addresses of what it serves into ``<data dir>/runtime.json``. The kernel drops
the lock when the process dies, however it dies, so a stale ``runtime.json`` is recognised by
the lock being free, never by guessing from a pid.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from pathlib import Path
from typing import IO

import msgspec

from events.errors import LedgerError

__all__ = ["AlreadyRunningError", "DataDirLock", "Runtime", "read_runtime"]


class Runtime(msgspec.Struct, frozen=True, kw_only=True):
    """What a running ``ledger up`` serves, and where."""

    pid: int
    nats_url: str
    api_url: str = ""
    started_at: dt.datetime
    embedded: bool = True
    """Whether the NATS server is the embedded one that this process started."""
    nats_pid: int | None = None
    """Process id of the embedded nats-server."""
    nats_monitor_url: str = ""
    """The embedded nats-server's monitoring endpoint on 127.0.0.1 (``/healthz``, ``/varz``);
    empty for an external server."""


class AlreadyRunningError(LedgerError):
    """Raised when another process already runs the stack on the same data directory."""

    def __init__(self, data_dir: Path, runtime: Runtime | None) -> None:
        self.runtime = runtime
        who = f"pid {runtime.pid}, NATS at {runtime.nats_url}" if runtime else "another process"
        super().__init__(
            f"a ledger is already running on {data_dir} ({who}); stop it first, or give "
            "another --data-dir"
        )


def _runtime_path(data_dir: Path) -> Path:
    return data_dir / "runtime.json"


class DataDirLock:
    """Exclusive use of a data directory; ``runtime.json`` is written and removed with it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock.

        :raises AlreadyRunningError: when another process holds it.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.data_dir / "ledger.lock", "a+")  # noqa: SIM115 - held while we run
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise AlreadyRunningError(self.data_dir, read_runtime(self.data_dir)) from None
        self._file = handle

    def publish(self, runtime: Runtime) -> None:
        """Write ``runtime.json`` atomically, so a reader never sees half of it."""
        path = _runtime_path(self.data_dir)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(runtime)))
        os.replace(tmp, path)

    def release(self) -> None:
        """Remove ``runtime.json`` and drop the lock."""
        if self._file is None:
            return
        _runtime_path(self.data_dir).unlink(missing_ok=True)
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
        self._file = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_runtime(data_dir: Path) -> Runtime | None:
    """The running stack's addresses, or ``None`` when nothing runs on ``data_dir``."""
    path = _runtime_path(Path(data_dir))
    lock = Path(data_dir) / "ledger.lock"
    if not path.exists() or not lock.exists():
        return None
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: the stack is alive
        else:
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None  # free: the file is left over from a process that died
    try:
        return msgspec.json.decode(path.read_bytes(), type=Runtime)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
