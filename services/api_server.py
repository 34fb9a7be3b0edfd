"""Serving the query API with uvicorn inside the stack's own event loop.

The socket is bound before the server runs, so that ``ledger up`` knows its URL (port 0 picks a
free port, which tests use), writes it into ``runtime.json`` and prints it, and so that a port
already in use is a clear error rather than uvicorn's ``sys.exit``. Signals stay with
:func:`services.up.run_stack`: uvicorn's own handlers are switched off, and the server stops
when the stack's stop event is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from events.errors import LedgerError
from events.store import EventStore
from projections.db import ensure_live, live_path
from services.api_auth import require_token
from services.credentials import Credentials
from services.stack import Ledger, connect

__all__ = ["ApiServer", "PortInUseError", "serve_file"]

_log = logging.getLogger("ledger.api")


class PortInUseError(LedgerError):
    """Raised when the API's address cannot be bound (in use, or not an address of this host)."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The stack owns SIGINT and SIGTERM; uvicorn would take them over and re-raise them.
        yield


class ApiServer:
    """The API on one host and port; bind first, then serve until told to stop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8000, token: str | None = None) -> None:
        """
        :param token: when set, every request needs ``Authorization: Bearer <token>``
            (``LEDGER_API_TOKEN``; see ``services/api_auth.py``).
        """
        self.host = host
        self.port = port
        self.token = token
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """The base URL, with the port actually bound."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def bind(self) -> str:
        """Bind and listen now; the URL is known from here on.

        :raises PortInUseError: when the address is taken or invalid.
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(1024)
        except OSError as exc:
            sock.close()
            raise PortInUseError(
                f"cannot serve the API on {self.host}:{self.port} ({exc.strerror}); "
                "give another --port (0 picks a free one) or stop what uses it"
            ) from None
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._socket = sock
        return self.url

    async def serve(self, app: Any, stop: asyncio.Event) -> None:
        """Serve ``app`` on the bound socket until ``stop`` is set."""
        if self._socket is None:
            self.bind()
        config = uvicorn.Config(
            require_token(app, self.token),
            lifespan="off",
            access_log=False,
            log_level="warning",
            timeout_keep_alive=30,
        )
        server = _Server(config)

        async def stop_when_told() -> None:
            await stop.wait()
            server.should_exit = True

        stopper = asyncio.create_task(stop_when_told())
        try:
            await server.serve(sockets=[self._socket])
        finally:
            stopper.cancel()
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    def component(self) -> Any:
        """A ``ledger up`` component serving the data directory's live projection."""

        async def run(ledger: Ledger, stop: asyncio.Event) -> None:
            from services.api import create_app

            live = live_path(ledger.settings.data_dir)
            ensure_live(live)
            # History reads the stream as the query role, which may read and nothing more.
            async with ledger.connect_as("query") as store:
                await self.serve(create_app(live, store), stop)

        return run


async def serve_file(
    db: Path, server: ApiServer, nats_url: str | None = None, creds: Credentials | None = None
) -> None:
    """Serve one projection file read-only, without projector or intake, until a signal.

    :param db: a projection file or link, e.g. the output of an as-of replay.
    :param nats_url: a NATS server for the history route; without it history answers 503.
    :param creds: the credentials to read history with, when the server requires them.
    """
    from services.api import create_app

    if not Path(db).exists():
        raise FileNotFoundError(f"no projection at {db}; give the file an as-of replay wrote")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    nc = await connect(nats_url, "ledger-api", creds=creds) if nats_url else None
    try:
        store = EventStore(nc) if nc is not None else None
        await server.serve(create_app(Path(db), store), stop)
    finally:
        if nc is not None:
            await nc.drain()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
