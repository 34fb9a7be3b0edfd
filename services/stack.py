"""Opening the ledger: find its NATS server, or start the embedded one, and connect.

The order is: an explicit URL (``--nats-url`` or ``LEDGER_NATS_URL``); else the server of a
``ledger up`` running on the same data directory (from ``runtime.json``); else the embedded
server, started for as long as the caller needs it. The embedded default and a cluster run the
same code past this point.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import nats
import nats.errors
from nats.aio.client import Client as NATS

from events.errors import LedgerError
from events.store import EventStore
from services.config import Settings, server_urls
from services.embedded import EmbeddedNats
from services.runtime import DataDirLock, read_runtime

__all__ = ["ConnectionFailedError", "Ledger", "connect", "open_ledger"]


class ConnectionFailedError(LedgerError):
    """Raised when the NATS server cannot be reached."""


@dataclass
class Ledger:
    """An open connection to the ledger, with what was started to get it."""

    settings: Settings
    nc: NATS
    store: EventStore
    url: str
    server: EmbeddedNats | None = None
    """The embedded server, when this process started it."""
    lock: DataDirLock | None = None
    """The data directory's lock, when this process holds it."""


async def connect(url: str, name: str = "ledger", timeout: float = 10.0) -> NATS:
    """Connect to NATS at ``url``, turning a refusal into a clear error."""

    async def _no_error_spam(exc: Exception) -> None:
        # nats-py reports every reconnect attempt; the caller sees a failure by exception.
        return None

    try:
        # Once connected, reconnect for ever (a server restart must not end a service); but
        # nats-py would also retry a first connection for ever, so bound that by a timeout.
        return await asyncio.wait_for(
            nats.connect(
                server_urls(url),
                name=name,
                connect_timeout=2,
                max_reconnect_attempts=-1,
                allow_reconnect=True,
                error_cb=_no_error_spam,
            ),
            timeout,
        )
    except (OSError, nats.errors.Error, TimeoutError) as exc:
        raise ConnectionFailedError(
            f"cannot reach NATS at {url} ({type(exc).__name__}); is the server up? "
            "Check --nats-url / LEDGER_NATS_URL, or run `ledger up`"
        ) from None


@asynccontextmanager
async def open_ledger(
    settings: Settings, *, hold_data_dir: bool = False, name: str = "ledger"
) -> AsyncIterator[Ledger]:
    """Open the ledger as the module docstring describes, and close all of it on exit.

    :param settings: where the server and data directory are.
    :param hold_data_dir: take the data directory's lock even when connecting to an external
        server; ``ledger up`` does, so that two stacks never share one directory.
    :param name: the client name the server shows for this connection.
    :raises AlreadyRunningError: when ``hold_data_dir`` is set and another process runs.
    """
    async with AsyncExitStack() as stack:
        url = settings.nats_url
        server: EmbeddedNats | None = None
        lock: DataDirLock | None = None
        if url is None and not hold_data_dir:
            running = read_runtime(settings.data_dir)
            url = running.nats_url if running else None
        if url is None or hold_data_dir:
            lock = stack.enter_context(DataDirLock(settings.data_dir))
        if url is None:
            server = stack.enter_context(EmbeddedNats(settings.data_dir / "nats"))
            url = server.url
        nc = await connect(url, name)
        stack.push_async_callback(nc.drain)
        store = EventStore(nc, settings.namespace)
        await store.ensure_stream(settings.replicas)
        yield Ledger(settings=settings, nc=nc, store=store, url=url, server=server, lock=lock)
