"""Serving the query API with uvicorn inside the stack's own event loop.

The socket is bound before the server runs, so that ``ledger up`` knows its URL (port 0 picks a
free port, which tests use), writes it into ``runtime.json`` and prints it, and so that a port
already in use is a clear error rather than uvicorn's ``sys.exit``. Signals stay with
:func:`services.bootstrap.run_stack`: uvicorn's own handlers are switched off, and the server stops
when the stack's stop event is set.

Binding checks the address as ``ledger up`` does (:func:`services.api.auth.check_bind_host`),
so no caller can serve beyond loopback without ``public`` and a token. A request's line and
headers are bounded to :data:`MAX_HEAD_BYTES`: a longer head gets 431 and the connection is
closed, before any of it reaches the app. uvicorn bounds the head only for its h11 parser
(``h11_max_incomplete_event_size``); with httptools, which it prefers, a header is buffered
whole however long, so :class:`_BoundedHead` counts the bytes as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
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
from replay.tree import TreeLocation, tree_path
from services.api.app import create_app
from services.api.auth import SECURITY_HEADERS, check_bind_host, require_token
from services.infra.credentials import Credentials
from services.infra.stack import Ledger, connect

__all__ = ["MAX_HEAD_BYTES", "ApiServer", "PortInUseError", "serve_file"]

_log = logging.getLogger("ledger.api")

MAX_HEAD_BYTES = 16 * 1024
"""The longest request line and headers the API reads; browsers send a few KB at most."""

_TOO_LARGE = (
    '{"code":"header_too_large","message":"the request\'s line and headers exceed '
    f'{MAX_HEAD_BYTES // 1024} KiB"}}'
).encode()


class PortInUseError(LedgerError):
    """Raised when the API's address cannot be bound (in use, or not an address of this host)."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The stack owns SIGINT and SIGTERM; uvicorn would take them over and re-raise them.
        yield


@functools.cache
def _http_protocol() -> dict[str, Any]:
    """uvicorn's options for a parser that bounds the request head."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools: h11 has the knob itself (and answers 400, not 431)
        return {"http": "h11", "h11_max_incomplete_event_size": MAX_HEAD_BYTES}

    class _BoundedHead(HttpToolsProtocol):
        """httptools' protocol, refusing a request whose head passes :data:`MAX_HEAD_BYTES`.

        The bytes of a head are counted as they are read, and fed to the parser only up to the
        bound, so a long header is never buffered. The count starts again when a request is
        complete; the start of a pipelined request read with the end of the one before it
        goes uncounted, so the bound holds to within one read (256 KiB at most).
        """

        _head_bytes = 0
        _in_head = True

        def data_received(self, data: bytes) -> None:
            if not self._in_head:
                super().data_received(data)
                return
            room = MAX_HEAD_BYTES - self._head_bytes
            if len(data) <= room:
                self._head_bytes += len(data)
                super().data_received(data)
                return
            self._head_bytes = MAX_HEAD_BYTES
            if room:
                super().data_received(data[:room])
            if self._in_head:
                self._refuse()
            elif not self.transport.is_closing():
                super().data_received(data[room:])

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head, self._head_bytes = True, 0

        def _refuse(self) -> None:
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete:
                head = [
                    b"HTTP/1.1 431 Request Header Fields Too Large",
                    b"content-type: application/json",
                    b"content-length: " + str(len(_TOO_LARGE)).encode(),
                    b"connection: close",
                    *(name + b": " + value for name, value in SECURITY_HEADERS),
                ]
                self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + _TOO_LARGE)
            # With an answer still being written to the request before, only closing is safe.
            self.transport.close()

    return {"http": _BoundedHead}


class ApiServer:
    """The API on one host and port; bind first, then serve until told to stop."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        token: str | None = None,
        *,
        public: bool = False,
    ) -> None:
        """
        :param token: when set, every request needs ``Authorization: Bearer <token>``
            (``LEDGER_API_TOKEN``; see ``services/api/auth.py``).
        :param public: the operator asked for an address other machines reach (``--public``);
            it needs ``token``.
        """
        self.host = host
        self.port = port
        self.token = token
        self.public = public
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """The base URL, with the port actually bound."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def bind(self) -> str:
        """Bind and listen now; the URL is known from here on.

        :raises PublicBindError: for an address beyond loopback without ``public``.
        :raises TokenRequiredError: for ``public`` without a token.
        :raises PortInUseError: when the address is taken or invalid.
        """
        check_bind_host(self.host, self.public, self.token)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # With the protocol named, asyncio sets TCP_NODELAY on every accepted socket; with 0
        # it does not, and each keep-alive answer's body waited 40 ms for the client's
        # delayed ACK of its head (bench/latency.py found it: 44 ms a request, 0.1 ms now).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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
        sock = self._socket
        assert sock is not None  # bind() sets it
        config = uvicorn.Config(
            require_token(app, self.token),
            lifespan="off",
            access_log=False,
            log_level="warning",
            # uvicorn's own handlers would print its records in its own format; without a
            # config they reach the ledger's one handler (services/infra/logs.py).
            log_config=None,
            timeout_keep_alive=30,
            **_http_protocol(),
        )
        server = _Server(config)

        async def stop_when_told() -> None:
            await stop.wait()
            server.should_exit = True

        stopper = asyncio.create_task(stop_when_told())
        try:
            await server.serve(sockets=[sock])
        finally:
            stopper.cancel()
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    def component(self) -> Any:
        """A ``ledger up`` component serving the data directory's live projection."""

        async def run(ledger: Ledger, stop: asyncio.Event) -> None:
            live = live_path(ledger.settings.data_dir)
            ensure_live(live)
            # History reads the stream as the query role, which may read and nothing more.
            async with ledger.connect_as("query") as store:
                tree = TreeLocation(
                    tree_path(ledger.settings.data_dir, store.ns.stream), store.ns.stream
                )
                monitor = ledger.server.monitor_url if ledger.server is not None else ""
                app = create_app(live, store, tree=tree, monitor_url=monitor)
                await self.serve(app, stop)

        return run


async def serve_file(
    db: Path, server: ApiServer, nats_url: str | None = None, creds: Credentials | None = None
) -> None:
    """Serve one projection file read-only, without projector or intake, until a signal.

    :param db: a projection file or link, e.g. the output of an as-of replay.
    :param nats_url: a NATS server for the history route; without it history answers 503.
    :param creds: the credentials to read history with, when the server requires them.
    """
    if not Path(db).exists():
        raise FileNotFoundError(f"no projection at {db}; give the file an as-of replay wrote")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    nc = await connect(nats_url, "ledger-api", creds=creds) if nats_url else None
    try:
        store = EventStore(nc) if nc is not None else None
        # A file served alone follows no stream, even with one for history: it has no lag.
        await server.serve(create_app(Path(db), store, follows_stream=False), stop)
    finally:
        if nc is not None:
            await nc.drain()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
