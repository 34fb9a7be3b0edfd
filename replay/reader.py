"""Replay's own bulk reader: the stream's messages through a minimal NATS client of its own.

Why it exists: with realistic events (about 550 B and five headers), nats-py's ordered push
consumer reads 40-44k msgs/s and is CPU-bound; its header parser alone costs 11-13 µs a
message, and flow-control stalls cap it even when that is fixed (docs/design.md, "Ordered
consumers" and "Throughput of nats-py paths"). A client that speaks the NATS protocol itself,
reads a pull consumer without acks, and takes the sequence and time from the reply subject
read 116k msgs/s and more there. This module is that client, and it is used for bulk reads
only: nats-py stays for everything else, including the fallback below. ``bench/read.py``
compares them: 158k msgs/s against 55k for ``EventStore.read_raw`` (200k messages of 932 B),
5.7 µs of this process's CPU a message against 17.8 µs.

How it reads (:func:`read_stream`):

- one TCP connection over asyncio, ``INFO``/``CONNECT``, nkey authentication when credentials
  are given (the server's nonce signed with the user's seed), and one wildcard subscription on
  an inbox of its own under the user's inbox prefix (docs/design.md, "Permissions");
- the stream's last sequence from ``$JS.API.STREAM.INFO.<stream>``, then an ephemeral pull
  consumer from ``$JS.API.CONSUMER.CREATE.<stream>`` (ack none, by start sequence, an
  ``inactive_threshold`` so that the server removes it if this process goes away), then
  ``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`` requests of one batch each, two in
  flight, each on a reply subject of its own. A pull consumer has no flow control to stall on,
  and the pulls bound what is buffered whatever the caller's pace;
- sequence, time and pending count from the ``$JS.ACK`` reply subject, headers parsed by one
  regular expression (with an exact slow path for anything unusual), bodies as ``bytes``;
- recovery: a gap in the consumer sequence, a deleted consumer (409, 503) or a dropped
  connection make a new consumer at the last delivered sequence + 1, reconnecting first if
  needed; a sequence is never yielded twice, and none that exists is skipped. Sequences that
  jump because messages were deleted are not gaps: the stream's last sequence and the pending
  count say when the read is done.

What it does not do: TLS (``tls://``), websockets, JWT ``.creds`` files, user/password URLs.
For those it raises :class:`UnsupportedConnectionError` before connecting, and the caller
reads through nats-py instead (``EventStore.read_raw``)::

    try:
        async for batch in read_stream(url, stream, subjects, creds=creds):
            ...
    except UnsupportedConnectionError:
        async for batch in store.read_raw():
            ...

Permissions: besides what ``EventStore.read_raw`` needs, a reader must be allowed to publish
``$JS.API.CONSUMER.MSG.NEXT.<stream>.*``. A refused pull raises :class:`ReaderError` at once,
naming the subject, instead of waiting for a timeout. Deleting the consumer at the end takes
``$JS.API.CONSUMER.DELETE.<stream>.*``, which the ledger's roles do not have (it would let
them delete the projectors' durables too): they read with ``delete_consumer=False``, and the
server removes the consumer after :data:`INACTIVE_THRESHOLD`, as it does an ordered
consumer, instead of logging a refused delete for every read.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import datetime as dt
import json
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import nkeys

from events.codec import HEADER_TYPE, HEADER_VERSION
from events.errors import LedgerError, TooManyReadersError
from events.stored import EPOCH, RawMessage

__all__ = [
    "DEFAULT_BATCH",
    "INACTIVE_THRESHOLD",
    "ReaderError",
    "UnsupportedConnectionError",
    "check_connection",
    "parse_headers",
    "read_stream",
    "until_time_ns",
]

_log = logging.getLogger("ledger.reader")

DEFAULT_BATCH = 5000
"""Messages per pull request and per yielded batch. ``bench/read.py --sweep`` read 65k and 74k
msgs/s with 1000 and 2000, and 100-117k with 5000, 10000 and 20000, alike within the noise of
a shared machine; 5000 holds the least in memory of those."""

INACTIVE_THRESHOLD = 60.0
"""Seconds after which the server removes a consumer nobody pulls from: the same as the
ordered consumer of ``EventStore.read_raw``, which ``MAX_CONSUMERS`` is sized for
(services/infra/security.py)."""

_PULLS_IN_FLIGHT = 2
"""Pulls in flight: one being delivered while the other's messages are parsed. One to four
read alike within noise (108-142k msgs/s, 100k messages), so two, for the memory."""

_PULL_EXPIRES = 5.0
"""Seconds a pull waits on the server for messages it cannot deliver yet."""

_STALL = _PULL_EXPIRES + 5.0
"""Seconds without a byte from the server, while pulls are out, after which the connection is
taken for dead: every pull ends within ``_PULL_EXPIRES`` with messages or a 408."""

_RECONNECT_FOR = 30.0
"""Seconds a lost connection is tried again before the read fails."""

_MAX_FRUITLESS = 8
"""Recoveries in a row without a new message before the read gives up."""

_API_TIMEOUT = 10.0
_CONNECT_TIMEOUT = 5.0
_MAX_CONSUMERS_REACHED = 10026  # the account's max_consumers (services/infra/security.py)
_STREAM_NOT_FOUND = 10059


class ReaderError(LedgerError):
    """Raised when the bulk reader cannot read the stream: the server cannot be reached or
    refuses it, or the connection is lost and does not come back."""


class UnsupportedConnectionError(NotImplementedError):
    """Raised, before anything is sent, for a connection the bulk reader does not implement
    (TLS, websockets, JWT credentials, user/password in the URL).

    Not a ledger error but a signal to the caller: read through nats-py instead
    (``EventStore.read_raw``), which speaks all of them.
    """


class _HasConnectOptions(Protocol):
    """What the reader uses of ``services.infra.credentials.Credentials``, which ``replay/``
    may not import (tests/unit/test_import_rules.py)."""

    def connect_options(self) -> dict[str, Any]:
        """``nkeys_seed`` (or ``user_credentials``) and ``inbox_prefix``, as for nats-py."""
        ...


CredentialsLike = _HasConnectOptions | str | os.PathLike[str]
"""A ``Credentials`` object, or the path of a bare nkey seed file."""


def check_connection(url: str, creds: CredentialsLike | None) -> None:
    """Whether the reader speaks this connection, without connecting.

    :raises UnsupportedConnectionError: when it does not (read through nats-py instead).
    :raises ReaderError: when the URL or the credentials are unusable either way.
    """
    _options(url, creds, None)


def until_time_ns(instant: dt.datetime) -> int:
    """The ``until_time_ns`` that keeps what ``EventStore.read_raw(until_time=instant)`` keeps.

    ``read_raw`` compares in whole microseconds, the precision of ``datetime``; a message
    stored within the microsecond of ``instant`` is kept, so the cutoff is that microsecond's
    last nanosecond.
    """
    return (instant - EPOCH) // dt.timedelta(microseconds=1) * 1000 + 999


# -- headers -----------------------------------------------------------------------------------

# The header block every append writes (EventStore.message_for), names in that order, values
# without blanks: one match of the whole block, about 1.2 µs.
_LEDGER_NAMES = (
    HEADER_TYPE,
    HEADER_VERSION,
    "Nats-Msg-Id",
    "Nats-Expected-Last-Subject-Sequence",
    "Nats-Expected-Last-Subject-Sequence-Subject",
)
_LEDGER_BLOCK = re.compile(
    "NATS/1\\.0\r\n"
    + "".join(f"{re.escape(name)}: ([!-~]+)\r\n" for name in _LEDGER_NAMES)
    + "\r\n"
)
# Any other block of plain lines: a name of printable ASCII without ":", then ": ", then a
# value of printable ASCII without blanks. nats-py strips the value, which changes nothing
# here; a block with any other kind of line goes to the slow path, which follows nats-py's
# rules one line at a time.
_HEADER_LINE = re.compile(r"\r\n([!-9;-~]+): ([!-~]+)(?=\r\n)")
_HEADER_START = "NATS/1.0\r\n"


def parse_headers(block: bytes) -> dict[str, str] | None:
    """The headers of a message as nats-py's ``Msg.headers`` gives them; ``None`` for none.

    The fold needs only the type and version, but ``RawMessage.headers`` is a plain dict that
    callers compare, copy and encode, so a lazy mapping would have to imitate all of a dict;
    parsing every header eagerly, cheaply, is simpler and costs little. The block is decoded
    once and matched whole against the ledger's own layout (1.2-1.6 µs), else line by line
    with one regular expression (about 2.3 µs for five headers), where nats-py 2.16's
    ``_parse_header_lines`` takes 6-10 µs measured the same way (``bench/read.py``; 11-13 µs
    within a read, docs/design.md, "Ordered consumers"). A block with an inline status,
    non-ASCII bytes or any other kind of line is read by nats-py's rules instead, so the
    answer is the same whichever way it is read.
    """
    try:
        text = block.decode("ascii")
    except UnicodeDecodeError:
        return _parse_headers_slowly(block)
    ledger = _LEDGER_BLOCK.fullmatch(text)
    if ledger is not None:
        return dict(zip(_LEDGER_NAMES, ledger.groups(), strict=True))
    pairs = _HEADER_LINE.findall(text)
    # Each match starts at the line break before its line, so when every line between the
    # version line and the final empty one matched, there are two line breaks more.
    if (
        len(pairs) != text.count("\r\n") - 2
        or not text.startswith(_HEADER_START)
        or not text.endswith("\r\n\r\n")
    ):
        return _parse_headers_slowly(block)
    return dict(pairs) or None


def _parse_headers_slowly(block: bytes) -> dict[str, str] | None:
    """nats-py 2.16's reading of a header block (``Client._process_headers``), for the blocks
    :func:`parse_headers` leaves aside: names must be ASCII without whitespace, values are
    stripped and decoded as UTF-8 with replacement, the last of equal names wins, and an inline
    status becomes ``Status`` and ``Description``."""
    first, _, rest = block.partition(b"\r\n")
    found: dict[str, str] = {}
    status = first[len(b"NATS/1.0") :].strip()
    if status:
        code, _, description = status.partition(b" ")
        if code.isdigit():
            found["Status"] = code.decode()
        if description:
            found["Description"] = description.decode("utf-8", "replace")
    for line in rest.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        try:
            key = name.strip().decode("ascii")
        except UnicodeDecodeError:
            continue
        if any(c.isspace() for c in key):
            continue
        found[key] = value.strip().decode("utf-8", "replace")
    return found or None


# -- the connection ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Endpoint:
    host: str
    port: int


@dataclass(frozen=True)
class _Options:
    """Where to connect and as whom, checked before anything is sent."""

    endpoints: tuple[_Endpoint, ...]
    seed: bytes | None
    inbox_prefix: str


def _options(url: str, creds: CredentialsLike | None, inbox_prefix: str | None) -> _Options:
    endpoints = tuple(_endpoint(part.strip()) for part in url.split(",") if part.strip())
    if not endpoints:
        raise ReaderError(f"no NATS server in {url!r}")
    seed: bytes | None = None
    prefix = inbox_prefix
    if creds is not None:
        if isinstance(creds, str | os.PathLike):
            path = Path(creds)
        else:
            options = creds.connect_options()
            if "nkeys_seed" not in options:
                raise UnsupportedConnectionError(
                    "the bulk reader signs in with a bare nkey seed only, not a JWT .creds "
                    f"file ({', '.join(sorted(options))}); read through nats-py"
                )
            path = Path(options["nkeys_seed"])
            prefix = prefix or options.get("inbox_prefix")
        seed = _read_seed(path)
    return _Options(endpoints, seed, prefix or "_INBOX")


def _endpoint(url: str) -> _Endpoint:
    if "://" not in url:
        url = f"nats://{url}"
    parts = urlsplit(url)
    if parts.scheme != "nats":
        raise UnsupportedConnectionError(
            f"the bulk reader speaks plain nats:// only, not {parts.scheme}://; "
            "read through nats-py"
        )
    if parts.username or parts.password:
        raise UnsupportedConnectionError(
            "the bulk reader does not send a user, password or token from the URL; "
            "read through nats-py"
        )
    if not parts.hostname:
        raise ReaderError(f"no host in NATS URL {url!r}")
    return _Endpoint(parts.hostname, parts.port or 4222)


def _read_seed(path: Path) -> bytes:
    try:
        text = path.read_bytes().strip()
    except OSError as exc:
        raise ReaderError(f"cannot read credentials {path}: {exc.strerror}") from None
    if b"BEGIN NATS USER JWT" in text or b"BEGIN USER NKEY SEED" in text:
        raise UnsupportedConnectionError(
            f"{path} is a JWT .creds file, which the bulk reader does not implement; "
            "read through nats-py"
        )
    if not text.startswith(b"SU"):
        raise ReaderError(f"{path} holds no NATS user nkey seed (a line starting with SU)")
    return text


_Frame = tuple[bytes, bytes, bytes, bytes]
"""One message off the wire: subject, reply subject, header block (may be empty), body."""

_VIOLATION = re.compile(r"Permissions Violation for (\w+) to \"?([^\"']*)", re.IGNORECASE)


class _Connection(asyncio.Protocol):
    """One connection to a NATS server: the protocol parser and the few operations the
    reader needs.

    ``data_received`` cuts the byte stream into frames. Replies to JetStream API requests are
    handed to the waiting request; every other message on the inbox (the consumer's messages
    and the pulls' status messages) is queued in arrival order for the reader, which is woken.
    """

    def __init__(self, inbox_prefix: str) -> None:
        self.inbox = f"{inbox_prefix}.{secrets.token_hex(8)}"
        self._api_inbox = f"{self.inbox}.a"
        self._api_prefix = self._api_inbox.encode()
        self.frames: list[_Frame] = []
        self.wake = asyncio.Event()
        self.info: dict[str, Any] = {}
        self.lost: str | None = None
        """Why the connection ended, once it has."""
        self.refused: list[tuple[str, str]] = []
        """Permission violations the server reported: (operation, subject)."""
        self._info_seen = asyncio.Event()
        self._pongs: collections.deque[asyncio.Future[None]] = collections.deque()
        self._requests: dict[bytes, tuple[str, asyncio.Future[bytes]]] = {}
        self._next = 0
        self._transport: asyncio.Transport | None = None
        self._buffer = b""

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(f"connection lost ({exc})" if exc else "connection closed by the server")

    def data_received(self, data: bytes) -> None:
        buf = self._buffer + data if self._buffer else data
        pos = 0
        size = len(buf)
        frames = self.frames
        queued = len(frames)
        while True:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                break
            args = buf[pos:end].split(b" ")
            op = args[0]
            if op == b"HMSG" or op == b"MSG":
                # HMSG <subject> <sid> [reply] <header bytes> <total bytes>
                # MSG <subject> <sid> [reply] <total bytes>
                start = end + 2
                stop = start + int(args[-1])
                if stop + 2 > size:
                    break  # the rest of the message is still on its way
                if op == b"HMSG":
                    split = start + int(args[-2])
                    reply = args[3] if len(args) == 6 else b""
                else:
                    split = start
                    reply = args[3] if len(args) == 5 else b""
                frame = (args[1], reply, buf[start:split], buf[split:stop])
                pos = stop + 2
                if not reply and args[1].startswith(self._api_prefix):
                    self._answer(frame)
                else:
                    frames.append(frame)
            else:
                self._control(buf[pos:end])
                pos = end + 2
        self._buffer = buf[pos:] if pos < size else b""
        if len(frames) > queued:
            self.wake.set()

    def _control(self, line: bytes) -> None:
        if line == b"PING":
            self.write(b"PONG\r\n")
        elif line == b"PONG":
            if self._pongs:
                pong = self._pongs.popleft()
                if not pong.done():
                    pong.set_result(None)
        elif line.startswith(b"INFO "):
            self.info = json.loads(line[5:])
            self._info_seen.set()
        elif line.startswith(b"-ERR"):
            self._error(line[4:].strip().strip(b"'").decode("utf-8", "replace"))
        # "+OK" cannot come (verbose is off); anything else is ignored like nats-py does.

    def _error(self, text: str) -> None:
        found = _VIOLATION.search(text)
        if found is None:
            # Every other -ERR is followed by the server closing the connection.
            self._ended(f"the server said: {text}")
            return
        operation, subject = found.group(1), found.group(2)
        _log.info("NATS refused %s to %s", operation.lower(), subject)
        self.refused.append((operation, subject))
        for waited, future in self._requests.values():
            if waited == subject and not future.done():
                future.set_exception(_refused(operation, subject))
        self.wake.set()

    def _answer(self, frame: _Frame) -> None:
        subject, _, head, body = frame
        waiting = self._requests.pop(subject, None)
        if waiting is None or waiting[1].done():
            return
        if head and _status(head)[0] == 503:
            waiting[1].set_exception(ReaderError(f"no JetStream answers {waiting[0]}"))
        else:
            waiting[1].set_result(body)

    def _ended(self, why: str) -> None:
        if self.lost is None:
            self.lost = why
        for _, future in self._requests.values():
            if not future.done():
                future.set_exception(ConnectionError(why))
        self._requests.clear()
        for pong in self._pongs:
            if not pong.done():
                pong.set_exception(ConnectionError(why))
        self._pongs.clear()
        self._info_seen.set()
        self.wake.set()

    # -- operations ---------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send raw protocol bytes; quietly nothing once the connection is gone."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def publish(self, subject: str, payload: bytes, reply: str = "") -> None:
        """A core publish."""
        head = (
            f"PUB {subject} {reply} {len(payload)}\r\n"
            if reply
            else f"PUB {subject} {len(payload)}\r\n"
        )
        self.write(head.encode() + payload + b"\r\n")

    async def handshake(self, seed: bytes | None, timeout: float) -> None:
        """Read INFO, send CONNECT (signed when ``seed`` is given), subscribe to the inbox and
        wait until the server has taken all of it.

        :raises UnsupportedConnectionError: when the server requires TLS.
        :raises ReaderError: when the server refuses the connection or the subscription.
        """
        await asyncio.wait_for(self._info_seen.wait(), timeout)
        if self.lost:
            raise ConnectionError(self.lost)
        if self.info.get("tls_required"):
            raise UnsupportedConnectionError(
                "the server requires TLS, which the bulk reader does not implement; "
                "read through nats-py"
            )
        if not self.info.get("headers"):
            raise ReaderError("the NATS server does not support headers (nats-server < 2.2)")
        connect: dict[str, Any] = {
            "verbose": False,
            "pedantic": False,
            "headers": True,
            "no_responders": True,
            "protocol": 1,
            "lang": "python3-ledger-reader",
            "version": "1",
            "name": "ledger-bulk-reader",
        }
        if seed is not None:
            nonce = self.info.get("nonce")
            if not nonce:
                raise ReaderError("the server sent no nonce to sign; it does not take nkeys")
            pair = nkeys.from_seed(bytearray(seed))
            try:
                connect["nkey"] = pair.public_key.decode()
                signature = pair.sign(nonce.encode())
                connect["sig"] = base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
            finally:
                pair.wipe()
        self.write(
            b"CONNECT "
            + json.dumps(connect, separators=(",", ":")).encode()
            + f"\r\nSUB {self.inbox}.> 1\r\n".encode()
        )
        try:
            await self.ping(timeout)
        except ConnectionError as exc:
            raise ReaderError(f"NATS refused the connection: {exc}") from None
        if self.refused:
            operation, subject = self.refused[0]
            raise _refused(operation, subject)

    async def ping(self, timeout: float) -> None:
        """Round trip to the server: everything sent before has been processed."""
        pong: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pongs.append(pong)
        self.write(b"PING\r\n")
        await asyncio.wait_for(pong, timeout)

    async def request(self, subject: str, payload: bytes, timeout: float = _API_TIMEOUT) -> Any:
        """A JetStream API request; its JSON answer, decoded.

        :raises ReaderError: when the permission is refused or no answer comes in time.
        :raises ConnectionError: when the connection ends meanwhile.
        """
        self._next += 1
        reply = f"{self._api_inbox}{self._next}"
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._requests[reply.encode()] = (subject, future)
        self.publish(subject, payload, reply)
        try:
            body = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise ReaderError(f"no answer to {subject} within {timeout:g}s") from None
        finally:
            self._requests.pop(reply.encode(), None)
        return json.loads(body)

    def close(self) -> None:
        """Drop the connection."""
        if self._transport is not None:
            self._transport.close()


def _refused(operation: str, subject: str) -> ReaderError:
    verb = "subscribe to" if operation.lower().startswith("sub") else "publish to"
    if subject.startswith("$JS.API.CONSUMER.MSG.NEXT."):
        hint = "a bulk reader needs $JS.API.CONSUMER.MSG.NEXT.<stream>.* (replay/reader.py)"
    else:
        hint = "check the credentials and the inbox prefix"
    return ReaderError(f"the server does not let this user {verb} {subject}; {hint}")


def _fatal_refusal(refused: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """The first refusal that stops the read: any but that of a consumer's deletion, which
    is only a courtesy to the server."""
    for operation, subject in refused:
        if not subject.startswith("$JS.API.CONSUMER.DELETE."):
            return operation, subject
    return None


def _status(head: bytes) -> tuple[int, str]:
    """The inline status of a header block (``NATS/1.0 408 Request Timeout``), or (0, "")."""
    first = head.split(b"\r\n", 1)[0]
    parts = first.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return 0, ""
    return int(parts[1]), parts[2].decode("utf-8", "replace") if len(parts) > 2 else ""


def _factory(conn: _Connection) -> Callable[[], _Connection]:
    return lambda: conn


async def _connect(options: _Options, deadline: float) -> _Connection:
    """A connection to the first server of ``options`` that takes one, tried until
    ``deadline`` (monotonic seconds)."""
    loop = asyncio.get_running_loop()
    attempt = 0
    why = ""
    while True:
        for endpoint in options.endpoints:
            conn = _Connection(options.inbox_prefix)
            try:
                await asyncio.wait_for(
                    loop.create_connection(_factory(conn), endpoint.host, endpoint.port),
                    _CONNECT_TIMEOUT,
                )
                await conn.handshake(options.seed, _CONNECT_TIMEOUT)
                return conn
            except (OSError, TimeoutError) as exc:
                conn.close()
                why = f"{endpoint.host}:{endpoint.port}: {exc or type(exc).__name__}"
            except BaseException:
                conn.close()
                raise
        attempt += 1
        if time.monotonic() >= deadline:
            raise ReaderError(f"cannot reach NATS ({why}); is the server up?")
        await asyncio.sleep(min(0.05 * 2**attempt, 1.0))


# -- the read ----------------------------------------------------------------------------------


@dataclass
class _Pull:
    """One pull request in flight: where its messages and status arrive, and how many of its
    messages are still to come."""

    reply: bytes
    remaining: int


class _Recover(Exception):
    """Raised inside the read loop: make a new consumer after the last delivered message."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass
class _Read:
    """The state of one :func:`read_stream` call."""

    options: _Options
    stream: str
    filter_subject: str
    batch_size: int
    cutoff_ns: int | None
    position: int
    """The last sequence handed out (or passed by, when past the cutoff)."""
    last: int = 0
    done: bool = False
    conn: _Connection | None = None
    consumer: bytes = b""
    expected: int = 1
    """The consumer sequence the next message must have."""
    pulls: collections.deque[_Pull] = field(default_factory=collections.deque)
    pull_count: int = 0
    quiet: int = 0
    """Pulls in a row that ended (404, 408) with nothing delivered."""
    stale: list[str] = field(default_factory=list)
    """Consumers replaced during the read, to delete at the end."""

    async def connect(self) -> None:
        self.conn = await _connect(self.options, time.monotonic() + _RECONNECT_FOR)

    async def last_sequence(self) -> int:
        info = await self._api(f"$JS.API.STREAM.INFO.{self.stream}", b"")
        return int(info["state"]["last_seq"])

    async def create_consumer(self) -> int:
        """A new consumer from ``position + 1``; how many messages it has to deliver."""
        config = {
            "deliver_policy": "by_start_sequence",
            "opt_start_seq": self.position + 1,
            "ack_policy": "none",
            "filter_subject": self.filter_subject,
            "replay_policy": "instant",
            "inactive_threshold": int(INACTIVE_THRESHOLD * 1e9),
            # Nothing to keep across a restart: memory, one replica, whatever the stream has.
            "mem_storage": True,
            "num_replicas": 1,
        }
        request = {"stream_name": self.stream, "config": config}
        answer = await self._api(
            f"$JS.API.CONSUMER.CREATE.{self.stream}", json.dumps(request).encode()
        )
        if self.consumer:
            self.stale.append(self.consumer.decode())
        self.consumer = str(answer["name"]).encode()
        self.expected = 1
        self.quiet = 0
        self.pulls.clear()
        return int(answer.get("num_pending", 0))

    async def _api(self, subject: str, payload: bytes) -> Any:
        assert self.conn is not None
        answer = await self.conn.request(subject, payload)
        error = answer.get("error") if isinstance(answer, dict) else None
        if error:
            code = error.get("err_code")
            if code == _MAX_CONSUMERS_REACHED:
                raise TooManyReadersError(self.stream)
            if code == _STREAM_NOT_FOUND:
                raise ReaderError(f"no stream {self.stream} on the server")
            raise ReaderError(f"{subject}: {error.get('description')} ({code})")
        return answer

    def pull(self) -> None:
        """Send pulls until two are in flight, none for more than can be left to read."""
        assert self.conn is not None
        while len(self.pulls) < _PULLS_IN_FLIGHT:
            # An upper bound on what is left: the sequences up to the end, less what the
            # pulls in flight may still bring.
            owed = sum(pull.remaining for pull in self.pulls)
            wanted = min(self.batch_size, self.last - self.position - owed)
            if wanted <= 0:
                return
            self.pull_count += 1
            reply = f"{self.conn.inbox}.{self.pull_count}"
            body = f'{{"batch":{wanted},"expires":{int(_PULL_EXPIRES * 1e9)}}}'.encode()
            self.pulls.append(_Pull(reply.encode(), wanted))
            subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.consumer.decode()}"
            self.conn.publish(subject, body, reply)

    def take(self, frames: Sequence[_Frame], out: list[RawMessage]) -> None:
        """Turn frames into messages in ``out``: the hot loop of the read, about 3.3 µs a
        message (1.3 of them the headers), after 1.5 µs of cutting frames off the wire.

        :raises _Recover: at a gap or a lost consumer; frames after it are dropped, as the
            new consumer sends them again.
        """
        consumer = self.consumer
        position = self.position
        last = self.last
        cutoff = self.cutoff_ns
        expected = self.expected
        append = out.append
        message = RawMessage
        headers = parse_headers
        delivered = 0  # messages not yet counted against the pulls: counted once, after
        try:
            for subject, reply, head, body in frames:
                if not reply.startswith(b"$JS.ACK."):
                    self._settle(delivered)
                    delivered = 0
                    self._status(subject, head)
                    continue
                tokens = reply.split(b".")
                if len(tokens) == 9:
                    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>
                    name, sseq, cseq = tokens[3], int(tokens[5]), int(tokens[6])
                    stamp, pending = int(tokens[7]), tokens[8]
                elif len(tokens) >= 11:
                    # $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.
                    # <cseq>.<time>.<pending>[.<random>]
                    name, sseq, cseq = tokens[5], int(tokens[7]), int(tokens[8])
                    stamp, pending = int(tokens[9]), tokens[10]
                else:
                    raise ReaderError(f"unexpected reply subject {reply!r}")
                if name != consumer:
                    continue  # a replaced consumer's message, still on the wire
                delivered += 1
                if cseq != expected:
                    raise _Recover(f"consumer sequence {cseq} where {expected} was due")
                expected = cseq + 1
                if sseq <= position:
                    continue  # never twice
                if sseq > last or (cutoff is not None and stamp > cutoff):
                    self.done = True
                    return
                append(message(sseq, subject.decode(), stamp, headers(head), body))
                position = sseq
                # Nothing left to read at all (pending 0), or nothing left that was asked for.
                if sseq >= last or pending == b"0":
                    self.done = True
                    return
        finally:
            self.position = position
            self.expected = expected
            self._settle(delivered)

    def _settle(self, delivered: int) -> None:
        """Count ``delivered`` messages against the pulls in flight: the server serves pulls
        in the order it received them, each up to its batch."""
        if delivered:
            self.quiet = 0
        pulls = self.pulls
        while delivered and pulls:
            first = pulls[0]
            used = min(first.remaining, delivered)
            first.remaining -= used
            delivered -= used
            if first.remaining <= 0:
                pulls.popleft()

    def _status(self, subject: bytes, head: bytes) -> None:
        """A status message on a pull's reply subject: the pull has ended."""
        for index, pull in enumerate(self.pulls):
            if pull.reply == subject:
                del self.pulls[index]
                break
        else:
            return  # a status of a pull made for a consumer since replaced
        code, description = _status(head)
        if code in (404, 408):
            # The pull is over; pull() sends another if more is to come. But when every pull
            # in flight ran out empty, what is still missing may have been deleted since the
            # start: a new consumer's pending count says whether anything is left.
            self.quiet += 1
            if self.quiet >= _PULLS_IN_FLIGHT:
                raise _Recover(f"{self.quiet} pulls in a row brought nothing")
            return
        if code == 409 and description.startswith("Exceeded MaxWaiting"):
            return
        if code == 409 and description.startswith(("Exceeded", "Message Size")):
            raise ReaderError(f"the server refused a pull: {description}")
        if code in (409, 503):
            raise _Recover(f"{code} {description or 'no responders'}".strip())
        if code == 100:
            return
        raise ReaderError(f"unexpected status {code} {description} on a pull")

    async def delete_consumers(self) -> None:
        """Best effort: the server also removes them after :data:`INACTIVE_THRESHOLD`."""
        conn = self.conn
        names = [*self.stale, self.consumer.decode()] if self.consumer else self.stale
        if conn is None or conn.lost or not names:
            return
        for name in names:
            with contextlib.suppress(ReaderError, ConnectionError, TimeoutError):
                await conn.request(f"$JS.API.CONSUMER.DELETE.{self.stream}.{name}", b"", 1.0)


async def read_stream(
    url: str,
    stream: str,
    filter_subject: str,
    *,
    from_seq: int = 1,
    until_seq: int | None = None,
    until_time_ns: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    creds: CredentialsLike | None = None,
    inbox_prefix: str | None = None,
    delete_consumer: bool = True,
) -> AsyncIterator[list[RawMessage]]:
    """The stream's messages from ``from_seq`` on, in batches, in stream order, undecoded.

    Every sequence that exists in the range and matches ``filter_subject`` comes exactly
    once. The read stops at the stream's last sequence as of its start, or at ``until_seq``,
    or before the first message stored after ``until_time_ns``, like
    ``EventStore.read_raw``, whose place it can take.

    :param url: the server, ``nats://host:port`` or ``host:port``; several, comma-joined, are
        tried in turn (a cluster's nodes).
    :param stream: the stream's name, e.g. ``LEDGER``.
    :param filter_subject: the subjects to read, e.g. ``ledger.activity.>``.
    :param from_seq: the first sequence to read.
    :param until_seq: the last sequence to read.
    :param until_time_ns: nanoseconds since 1970: stop before the first message stored later.
        :func:`until_time_ns` gives the value that matches a ``datetime`` cutoff of
        ``read_raw``.
    :param batch_size: most messages per batch, and per pull request; two pulls are in flight,
        so up to twice as many messages wait in memory.
    :param creds: ``Credentials`` (``services/infra/credentials.py``) or a seed file's path;
        ``None`` for a server without authentication.
    :param inbox_prefix: where replies arrive; by default the credentials' (each user's own,
        docs/design.md, "Permissions"), else ``_INBOX``.
    :param delete_consumer: delete the consumer at the end (best effort). Pass ``False`` for
        a user that may not (the ledger's roles): the server removes it after
        :data:`INACTIVE_THRESHOLD` anyway, and a refused delete is logged by the server.
    :raises UnsupportedConnectionError: for TLS, websocket or JWT connections: read through
        nats-py instead. Raised before anything is sent.
    :raises TooManyReadersError: when the stream has as many consumers as the server allows.
    :raises ReaderError: when the server cannot be reached, refuses a request, or the
        connection is lost and does not come back within 30 s.
    """
    options = _options(url, creds, inbox_prefix)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    read = _Read(
        options,
        stream,
        filter_subject,
        batch_size,
        until_time_ns,
        position=max(from_seq, 1) - 1,
    )
    try:
        await read.connect()
        read.last = await read.last_sequence()
        if until_seq is not None:
            read.last = min(read.last, until_seq)
        if read.last <= read.position:
            return
        async for batch in _batches(read):
            yield batch
    finally:
        if delete_consumer:
            with contextlib.suppress(Exception):
                await read.delete_consumers()
        if read.conn is not None:
            read.conn.close()


async def _batches(read: _Read) -> AsyncIterator[list[RawMessage]]:
    """The read loop: consumers, pulls and recoveries; yields full batches."""
    ready: list[RawMessage] = []
    fruitless = 0
    fresh = True  # a new consumer is needed
    while not read.done:
        conn = read.conn
        assert conn is not None
        try:
            if fresh:
                fresh = False
                if await read.create_consumer() == 0:
                    break  # nothing (more) in range matches the filter
            read.pull()
            frames, conn.frames = conn.frames, []
            if frames:
                before = read.position
                read.take(frames, ready)
                if read.position > before:
                    fruitless = 0
            elif refusal := _fatal_refusal(conn.refused):
                raise _refused(*refusal)
            elif conn.lost:
                raise ConnectionError(conn.lost)
            elif read.pulls:
                conn.wake.clear()
                try:
                    await asyncio.wait_for(conn.wake.wait(), _STALL)
                except TimeoutError:
                    raise ConnectionError(f"no word from the server for {_STALL:g}s") from None
            else:
                # No pull is out, nothing more to ask for, and not done: the messages still
                # missing must have been deleted meanwhile. A new consumer says what is left.
                raise _Recover("no more to pull")
        except _Recover as signal:
            fruitless += 1
            if fruitless > _MAX_FRUITLESS:
                raise ReaderError(
                    f"the read of {read.stream} is stuck at sequence {read.position}: {signal.why}"
                ) from None
            _log.info("new consumer after sequence %d: %s", read.position, signal.why)
            fresh = True
        except ConnectionError as exc:
            fruitless += 1
            if fruitless > _MAX_FRUITLESS:
                raise ReaderError(f"lost the connection to NATS: {exc}") from None
            _log.info("reconnecting after sequence %d: %s", read.position, exc)
            conn.close()
            await read.connect()
            fresh = True
        size = read.batch_size
        if len(ready) >= size:
            full = len(ready) - len(ready) % size
            for start in range(0, full, size):
                yield ready[start : start + size]
            ready = ready[full:]
    if ready:
        yield ready
