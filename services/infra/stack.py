"""Opening the ledger: find its NATS server, or start the embedded one, and connect.

The order is: an explicit URL (``--nats-url`` or ``LEDGER_NATS_URL``); else the server of a
``ledger up`` running on the same data directory (from ``runtime.json``); else the embedded
server, started for as long as the caller needs it. The embedded default and a cluster run the
same code past this point.

Each connection uses the credentials :func:`services.infra.access.credentials_for` picks: the
embedded server requires them, an external one may not. ``open_ledger`` connects as the admin
by default; the components of ``ledger up`` connect with their own roles through
:meth:`Ledger.connect_as`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS

from events.errors import LedgerError, StreamConfigError
from events.store import EventStore
from replay.source import StreamSource
from services.infra.access import credentials_for, embedded_server, role_credentials
from services.infra.config import Settings, server_urls
from services.infra.credentials import Credentials
from services.infra.embedded import EmbeddedNats
from services.infra.runtime import DataDirLock, read_runtime
from services.infra.violations import Violations, refused_or

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
    creds: Credentials | None = None
    """The credentials this connection used, if any."""

    @property
    def source(self) -> StreamSource:
        """The stream as replay reads it: through its own bulk reader, as this connection's
        user, when the connection is one that reader speaks (replay/source.py)."""
        return StreamSource(self.store, self.url, self.creds)

    def credentials_for(self, role: str) -> Credentials | None:
        """What a component of ``role`` connects with: the role's own file under the data
        directory when there is one, else the ledger's own credentials."""
        return role_credentials(self.settings.data_dir, role) or self.creds

    @asynccontextmanager
    async def connect_as(self, role: str) -> AsyncIterator[EventStore]:
        """A connection of its own, as ``role``, with an EventStore on the ledger's stream."""
        nc = await connect(self.url, f"ledger-{role}", creds=self.credentials_for(role))
        try:
            yield EventStore(nc, self.settings.namespace)
        finally:
            await nc.drain()


async def connect(
    url: str, name: str = "ledger", timeout: float = 10.0, *, creds: Credentials | None = None
) -> NATS:
    """Connect to NATS at ``url``, turning a refusal into a clear error.

    :param creds: the user to connect as; ``None`` for a server without authentication.
    """
    # nats-py reports every reconnect attempt on the error callback, and the caller sees a
    # failure by exception; only permission violations are kept (services/infra/violations.py).
    violations = Violations(creds.inbox_prefix if creds else "_INBOX")
    options = creds.connect_options() if creds else {}
    # Once connected, reconnect for ever (a server restart must not end a service); but
    # nats-py would also retry a first connection for ever, so bound that by a timeout, and
    # stop at once when the server refuses the credentials (it would only refuse again).
    attempt = asyncio.ensure_future(
        nats.connect(
            server_urls(url),
            name=name,
            connect_timeout=2,
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            error_cb=violations.error_cb,
            **options,
        )
    )
    refused = asyncio.ensure_future(violations.credentials_refused.wait())
    try:
        done, _ = await asyncio.wait(
            {attempt, refused}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        refused.cancel()
    if attempt not in done:
        attempt.cancel()
        await asyncio.gather(attempt, return_exceptions=True)
    if refused in done:
        who = f"the credentials in {creds.path}" if creds else "a client without credentials"
        raise ConnectionFailedError(
            f"NATS at {url} refused {who}; give the right file with --creds / LEDGER_CREDS "
            "(see `ledger office add`)"
        )
    try:
        if attempt not in done:
            raise TimeoutError
        nc = attempt.result()
    except (OSError, nats.errors.Error, TimeoutError) as exc:
        raise ConnectionFailedError(
            f"cannot reach NATS at {url} ({type(exc).__name__}); is the server up? "
            "Check --nats-url / LEDGER_NATS_URL, or run `ledger up`"
        ) from None
    violations.attach(nc)
    return nc


@asynccontextmanager
async def open_ledger(
    settings: Settings, *, hold_data_dir: bool = False, name: str = "ledger", role: str = "admin"
) -> AsyncIterator[Ledger]:
    """Open the ledger as the module docstring describes, and close all of it on exit.

    :param settings: where the server and data directory are.
    :param hold_data_dir: take the data directory's lock even when connecting to an external
        server; ``ledger up`` does, so that two stacks never share one directory.
    :param name: the client name the server shows for this connection.
    :param role: whose credentials of the data directory to use, when ``--creds`` gives none;
        only the admin creates the stream, any other role only checks that it exists.
    :raises AlreadyRunningError: when ``hold_data_dir`` is set and another process runs.
    :raises PermissionDeniedError: when the credentials may not even read the stream's info.
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
            server = stack.enter_context(embedded_server(settings))
            url = server.url
        creds = credentials_for(settings, role)
        nc = await connect(url, name, creds=creds)
        stack.push_async_callback(nc.drain)
        store = EventStore(nc, settings.namespace)
        if role == "admin":
            api = f"$JS.API.STREAM.{{}}.{settings.namespace.stream}"
            await refused_or(
                nc,
                store.ensure_stream(settings.replicas),
                [api.format("INFO"), api.format("CREATE")],
            )
        else:
            await _check_stream(store)
        yield Ledger(
            settings=settings, nc=nc, store=store, url=url, server=server, lock=lock, creds=creds
        )


async def _check_stream(store: EventStore) -> None:
    """Check that the stream exists, for a role that may not create it."""
    try:
        subject = f"$JS.API.STREAM.INFO.{store.ns.stream}"
        await refused_or(store.nc, store.js.stream_info(store.ns.stream), [subject])
    except nats.js.errors.NotFoundError:
        raise StreamConfigError(
            f"stream {store.ns.stream} does not exist, and these credentials may not create it; "
            "start the ledger once with `ledger up` (it connects as admin)"
        ) from None
