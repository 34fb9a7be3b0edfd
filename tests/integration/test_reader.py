"""replay/reader.py against a real nats-server: the bulk reader reads what nats-py reads.

Each test fills a stream of its own and reads it back through :func:`read_stream`, comparing
with ``EventStore.read_raw`` (nats-py's ordered consumer) where that can read the stream too.
Failures are real ones: a TCP proxy that resets the connection mid-message or goes silent, a
server killed and started again on its port, a consumer deleted through the JetStream API,
messages deleted from a stream that allows it (before the read and during it), and a server
that requires nkey users, one of them without the permission the reader needs: its
configuration adds ``$JS.API.CONSUMER.MSG.NEXT.<stream>.*`` to an auditor's permissions
(``services/infra/security.py``), the line the reader roles need.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS

from bench.synthetic import synthetic_events
from events.errors import LedgerError
from events.signing import new_key_pair
from events.store import EventStore
from events.stored import RawMessage
from events.subjects import Namespace
from replay.reader import (
    ReaderError,
    UnsupportedConnectionError,
    parse_headers,
    read_stream,
    until_time_ns,
)
from services.infra.credentials import Credentials, load_credentials
from services.infra.embedded import EmbeddedNats
from services.infra.security import inbox_prefix_for, permissions_for

_READER_LOG = "ledger.reader"


async def _fill(store: EventStore, n: int) -> None:
    outcomes = await store.append_many(synthetic_events(n, seed=7, prefix="R"))
    assert [o.status for o in outcomes] == ["stored"] * n


async def _read_all(url: str, ns: Namespace, **options: Any) -> list[RawMessage]:
    return await _collect(read_stream(url, ns.stream, ns.activities, **options))


async def _read_raw(store: EventStore, **options: Any) -> list[RawMessage]:
    return [raw async for batch in store.read_raw(**options) for raw in batch]


# -- what it reads ----------------------------------------------------------------------------


async def test_every_sequence_once_and_the_same_as_nats_py(
    nats_server: EmbeddedNats, store: EventStore
) -> None:
    await _fill(store, 3000)
    sizes = []
    ours: list[RawMessage] = []
    async for batch in read_stream(
        nats_server.url, store.ns.stream, store.ns.activities, batch_size=700
    ):
        sizes.append(len(batch))
        ours.extend(batch)

    assert [raw.sequence for raw in ours] == list(range(1, 3001))
    assert ours == await _read_raw(store)  # subject, time, headers and body alike
    assert sizes == [700] * 4 + [200]
    assert ours[0].headers is not None and ours[0].headers["Ledger-Type"] == "ActivityReported"


async def test_from_and_until_sequence(nats_server: EmbeddedNats, store: EventStore) -> None:
    await _fill(store, 1200)
    url, ns = nats_server.url, store.ns

    middle = await _read_all(url, ns, from_seq=301, until_seq=900, batch_size=100)
    assert [raw.sequence for raw in middle] == list(range(301, 901))
    assert middle == await _read_raw(store, from_seq=301, until_seq=900)
    assert [r.sequence for r in await _read_all(url, ns, from_seq=1200)] == [1200]
    assert [r.sequence for r in await _read_all(url, ns, until_seq=1)] == [1]
    assert await _read_all(url, ns, from_seq=1201) == []
    assert await _read_all(url, ns, until_seq=0) == []
    # Past the end: the stream's last sequence as of the start is where it stops.
    assert len(await _read_all(url, ns, until_seq=5000)) == 1200


async def test_until_time_stops_where_read_raw_stops(
    nats_server: EmbeddedNats, store: EventStore
) -> None:
    await _fill(store, 800)
    everything = await _read_raw(store)
    cut = everything[499]

    by_ns = await _read_all(nats_server.url, store.ns, until_time_ns=cut.time_ns)
    assert by_ns == [raw for raw in everything if raw.time_ns <= cut.time_ns]
    assert by_ns[-1].sequence >= 500

    # A datetime cutoff, as read_raw takes it (whole microseconds), through until_time_ns().
    instant = cut.time
    ours = await _read_all(nats_server.url, store.ns, until_time_ns=until_time_ns(instant))
    assert ours == await _read_raw(store, until_time=instant)
    assert await _read_all(nats_server.url, store.ns, until_time_ns=0) == []


async def test_a_filter_that_leaves_out_the_end_still_ends_at_once(
    nats_server: EmbeddedNats, store: EventStore
) -> None:
    await _fill(store, 1000)
    everything = await _read_raw(store)
    # The office of the first message; the stream's last message may be another's.
    office = everything[0].subject.split(".")[2]
    wanted = [raw for raw in everything if raw.subject.split(".")[2] == office]
    assert wanted[-1].sequence < 1000 or len(wanted) < 1000

    read = read_stream(
        nats_server.url,
        store.ns.stream,
        f"{store.ns.prefix}.activity.{office}.>",
        batch_size=50,
    )
    # Within a second, not after a pull's 5 s expiry: the pending count says when it is over.
    got = await asyncio.wait_for(_collect(read), 2.0)
    assert got == wanted


async def _collect(read: AsyncIterator[list[RawMessage]]) -> list[RawMessage]:
    return [raw async for batch in read for raw in batch]


# -- recovery ---------------------------------------------------------------------------------


class _FaultyProxy:
    """A TCP proxy to the server whose first connection fails after ``fail_after`` bytes from
    the server, in the middle of whatever it is sending: it is reset (``freeze=False``), or
    it stays open and forwards nothing more (``freeze=True``). Later connections pass."""

    def __init__(self, target: str, fail_after: int, *, freeze: bool = False) -> None:
        host, _, port = target.split("://", 1)[-1].rpartition(":")
        self.target = (host, int(port))
        self.fail_after = fail_after
        self.freeze = freeze
        self.connections = 0
        self.failures = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"nats://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        budget = self.fail_after if self.connections == 1 else None
        server_r, server_w = await asyncio.open_connection(*self.target)
        up = asyncio.create_task(self._pipe(client_r, server_w, None, client_w))
        down = asyncio.create_task(self._pipe(server_r, client_w, budget, server_w))
        self._tasks |= {up, down}
        await asyncio.gather(up, down, return_exceptions=True)

    async def _pipe(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        budget: int | None,
        other: asyncio.StreamWriter,
    ) -> None:
        try:
            while data := await source.read(65536):
                if budget is not None and len(data) >= budget:
                    sink.write(data[:budget])
                    await sink.drain()
                    self.failures += 1
                    if self.freeze:
                        await asyncio.sleep(3600)  # until the test stops the proxy
                    break
                if budget is not None:
                    budget -= len(data)
                sink.write(data)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        # A real drop: both TCP connections reset, not a polite close.
        sink.transport.abort()
        other.transport.abort()


async def test_a_dropped_connection_is_resumed_exactly_once(
    nats_server: EmbeddedNats, store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    await _fill(store, 2000)
    # 150 kB is about 160 messages: the reset falls inside the first pulls, mid-message.
    proxy = _FaultyProxy(nats_server.url, fail_after=150_000)
    url = await proxy.start()
    try:
        with caplog.at_level(logging.INFO, logger=_READER_LOG):
            ours = await _read_all(url, store.ns, batch_size=300)
    finally:
        await proxy.stop()

    assert (proxy.failures, proxy.connections) == (1, 2)
    assert "reconnecting after sequence" in caplog.text
    assert [raw.sequence for raw in ours] == list(range(1, 2001))
    assert ours == await _read_raw(store)


async def test_a_silent_connection_is_given_up_and_resumed(
    nats_server: EmbeddedNats,
    store: EventStore,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The TCP connection stays up but nothing comes through: a hung server or a dead path.
    monkeypatch.setattr("replay.reader._STALL", 0.5)
    await _fill(store, 1000)
    proxy = _FaultyProxy(nats_server.url, fail_after=150_000, freeze=True)
    url = await proxy.start()
    try:
        with caplog.at_level(logging.INFO, logger=_READER_LOG):
            ours = await asyncio.wait_for(_read_all(url, store.ns, batch_size=300), 5.0)
    finally:
        await proxy.stop()

    assert (proxy.failures, proxy.connections) == (1, 2)
    assert "no word from the server" in caplog.text
    assert [raw.sequence for raw in ours] == list(range(1, 1001))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_server_restart_is_waited_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = EmbeddedNats(tmp_path / "nats", port=_free_port(), server_name="reader-restart")
    url = server.start()
    ns = Namespace.for_tests("restart")
    try:
        nc = await nats.connect(url)
        store = EventStore(nc, ns)
        await store.ensure_stream()
        await _fill(store, 1500)
        await nc.close()
        ours: list[RawMessage] = []
        with caplog.at_level(logging.INFO, logger=_READER_LOG):
            async for batch in read_stream(url, ns.stream, ns.activities, batch_size=200):
                if not ours:
                    # A crash, then the server back on its port half a second later; the
                    # reader finds it down meanwhile and tries again.
                    server.kill()
                    asyncio.get_running_loop().call_later(0.5, server.start)
                ours.extend(batch)
    finally:
        server.stop()

    assert "reconnecting after sequence" in caplog.text
    assert [raw.sequence for raw in ours] == list(range(1, 1501))


async def test_a_deleted_consumer_is_replaced(
    nats_server: EmbeddedNats, nc: NATS, store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    await _fill(store, 2000)
    js = nc.jetstream()
    ours: list[RawMessage] = []
    deleted = []
    with caplog.at_level(logging.INFO, logger=_READER_LOG):
        async for batch in read_stream(
            nats_server.url, store.ns.stream, store.ns.activities, batch_size=100
        ):
            ours.extend(batch)
            if len(ours) in (100, 1000):
                for info in await js.consumers_info(store.ns.stream):
                    assert await js.delete_consumer(store.ns.stream, info.name)
                    deleted.append(info.name)

    assert len(deleted) == 2
    assert caplog.text.count("new consumer after sequence") >= 2
    # The reader deleted its consumers; nothing is left behind.
    assert await js.consumers_info(store.ns.stream) == []
    assert [raw.sequence for raw in ours] == list(range(1, 2001))
    assert ours == await _read_raw(store)


async def test_a_stream_with_deleted_messages_reads_around_the_gaps(
    nats_server: EmbeddedNats, nc: NATS, namespace: Namespace
) -> None:
    js = nc.jetstream()
    # Not the ledger's stream settings: this one allows deletes.
    await js.add_stream(name=namespace.stream, subjects=[namespace.activities])
    for i in range(1, 301):
        await js.publish(
            namespace.activity("HQ", f"A{i % 7}"),
            f'{{"n":{i}}}'.encode(),
            headers={"Ledger-Type": "Test", "Ledger-Version": "1", "Odd": f"x  {i} "},
        )
    gone = {1, 2, 50, 51, 52, 150, 298, 299, 300}
    for seq in sorted(gone):
        await js.delete_msg(namespace.stream, seq)
    assert (await js.stream_info(namespace.stream)).state.last_seq == 300

    ours = await asyncio.wait_for(_read_all(nats_server.url, namespace, batch_size=40), 3.0)

    assert [raw.sequence for raw in ours] == [s for s in range(1, 301) if s not in gone]
    assert [json.loads(raw.data)["n"] for raw in ours] == [raw.sequence for raw in ours]
    assert ours[0].headers == {"Ledger-Type": "Test", "Ledger-Version": "1", "Odd": "x  3"}
    middle = await _read_all(nats_server.url, namespace, from_seq=50, until_seq=150)
    assert [raw.sequence for raw in middle] == [s for s in range(50, 151) if s not in gone]


async def test_messages_deleted_during_the_read_end_it_cleanly(
    nats_server: EmbeddedNats,
    nc: NATS,
    namespace: Namespace,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr("replay.reader._PULL_EXPIRES", 0.3)
    js = nc.jetstream()
    await js.add_stream(name=namespace.stream, subjects=[namespace.activities])
    for i in range(1, 401):
        await js.publish(namespace.activity("HQ", "A"), str(i).encode())
    ours: list[RawMessage] = []
    with caplog.at_level(logging.INFO, logger=_READER_LOG):
        read = read_stream(nats_server.url, namespace.stream, namespace.activities, batch_size=50)
        async for batch in read:
            if not ours:
                # The reader holds its first batch and sends no pull meanwhile; the second
                # pull (51-100) arrives, each message saying more is pending. Then
                # everything after it goes: no message will ever say "pending 0".
                await asyncio.sleep(0.3)
                for seq in range(101, 401):
                    await js.delete_msg(namespace.stream, seq)
            ours.extend(batch)

    assert [raw.sequence for raw in ours] == list(range(1, 101))
    assert "pulls in a row brought nothing" in caplog.text


# -- credentials and permissions --------------------------------------------------------------


def _seed_file(folder: Path, name: str) -> tuple[Path, str]:
    seed, public = new_key_pair()
    path = folder / f"{name}.nk"
    path.write_text(seed + "\n")
    path.chmod(0o600)
    return path, public


_MSG_NEXT = "$JS.API.CONSUMER.MSG.NEXT.{stream}.*"
"""The permission line a reader needs beyond today's (services/infra/security.py)."""


@pytest.fixture(scope="module")
def nkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server that takes only nkey users: an admin, a reader with an auditor's permissions
    (``reader-pulls``), and one with an auditor's permissions but the pull (``auditor``, as
    auditors were before the bulk reader)."""
    folder = tmp_path_factory.mktemp("reader-nkeys")
    ns = Namespace.for_tests("readerauth")
    users = []
    for name in ("admin", "reader-pulls", "auditor"):
        _, public = _seed_file(folder, name)
        if name == "admin":
            permissions: dict = {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
        else:
            permissions = permissions_for("auditor", ns, public)
            if name == "auditor":
                pull = _MSG_NEXT.format(stream=ns.stream)
                allowed = permissions["publish"]["allow"]
                permissions["publish"]["allow"] = [s for s in allowed if s != pull]
        users.append(f"      {json.dumps({'nkey': public, 'permissions': permissions})}")
    config = (
        "accounts {\n  LEDGER {\n    jetstream: enabled\n    users: [\n"
        + ",\n".join(users)
        + "\n    ]\n  }\n}\n"
    )
    server = EmbeddedNats(folder / "nats", server_name="reader-nkeys", extra_config=config)
    server.start()

    async def fill() -> None:
        nc = await nats.connect(server.url, nkeys_seed=str(folder / "admin.nk"))
        try:
            store = EventStore(nc, ns)
            await store.ensure_stream()
            await _fill(store, 500)
        finally:
            await nc.close()

    try:
        asyncio.run(fill())
        yield server.url, folder
    finally:
        server.stop()


async def test_nkey_authentication_with_credentials(nkey_server: tuple[str, Path]) -> None:
    url, folder = nkey_server
    ns = Namespace.for_tests("readerauth")
    creds = load_credentials(folder / "reader-pulls.nk")
    # Done within a second: the refused DELETE at the end is not waited out either.
    ours = await asyncio.wait_for(_read_all(url, ns, creds=creds, batch_size=200), 5.0)
    assert [raw.sequence for raw in ours] == list(range(1, 501))

    # The same as nats-py reads as the same user.
    nc = await nats.connect(url, **creds.connect_options())
    try:
        assert ours == await _read_raw(EventStore(nc, ns))
    finally:
        await nc.close()
    # A bare seed path works too, given the user's inbox prefix.
    by_path = await _read_all(
        url,
        ns,
        creds=folder / "reader-pulls.nk",
        inbox_prefix=inbox_prefix_for(creds.public_key),
        until_seq=10,
        delete_consumer=False,  # the ledger's roles may not delete consumers
    )
    assert [raw.sequence for raw in by_path] == list(range(1, 11))


async def test_a_reader_without_the_pull_permission_is_told_at_once(
    nkey_server: tuple[str, Path],
) -> None:
    url, folder = nkey_server
    ns = Namespace.for_tests("readerauth")
    creds = load_credentials(folder / "auditor.nk")
    with pytest.raises(ReaderError, match=r"\$JS\.API\.CONSUMER\.MSG\.NEXT\.T_READERAUTH\."):
        await asyncio.wait_for(_read_all(url, ns, creds=creds), 3.0)


async def test_wrong_or_missing_credentials_are_refused(
    nkey_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, folder = nkey_server
    ns = Namespace.for_tests("readerauth")
    stranger, _ = _seed_file(tmp_path, "stranger")
    with pytest.raises(ReaderError, match="refused the connection"):
        await asyncio.wait_for(_read_all(url, ns, creds=stranger), 3.0)
    with pytest.raises(ReaderError, match="refused the connection"):
        await asyncio.wait_for(_read_all(url, ns), 3.0)
    # The right user, but an inbox that is not its own (docs/design.md, "Permissions").
    with pytest.raises(ReaderError, match=r"not let this user subscribe to _INBOX\."):
        await asyncio.wait_for(_read_all(url, ns, creds=folder / "reader-pulls.nk"), 3.0)


async def test_what_it_does_not_implement_is_refused_before_connecting(tmp_path: Path) -> None:
    seed, public = new_key_pair()
    jwt_file = tmp_path / "user.creds"
    jwt_file.write_text(
        "-----BEGIN NATS USER JWT-----\neyJ0eXAi.e30.sig\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
    decorated = Credentials(path=jwt_file, public_key=public, decorated=True)
    cases: list[tuple[str, object]] = [
        ("tls://127.0.0.1:4222", None),
        ("wss://127.0.0.1:443", None),
        ("nats://user:secret@127.0.0.1:4222", None),
        ("nats://127.0.0.1:1", decorated),
        ("nats://127.0.0.1:1", jwt_file),
    ]
    for url, creds in cases:
        with pytest.raises(UnsupportedConnectionError, match="read through nats-py"):
            await _read_all(url, Namespace(), creds=creds)
    # Not a ledger error: a signal to fall back, which no edge should ever answer.
    assert not issubclass(UnsupportedConnectionError, LedgerError)


async def test_an_unreachable_server_fails_with_a_ledger_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("replay.reader._RECONNECT_FOR", 0.2)
    with pytest.raises(ReaderError, match="cannot reach NATS"):
        await _read_all("nats://127.0.0.1:1", Namespace())


# -- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        [b"Ledger-Type: ActivityReported", b"Ledger-Version: 1"],
        [b"Odd Header: value with  spaces ", b"Tabbed:\tvalue\t"],
        [b"Compact:value", b"Empty:", b"Blank: ", b"Same: one", b"Same: two"],
        [b" Lead: x", b"No colon here", b"", b"Next: y"],
        ["Caf\u00e9: cr\u00e8me".encode(), "Name: cr\u00e8me br\u00fbl\u00e9e".encode()],
        [b"Bad: \xff\xfe"],
    ],
)
def test_headers_are_read_as_nats_py_reads_them(lines: list[bytes]) -> None:
    body = b"".join(line + b"\r\n" for line in lines)
    block = b"NATS/1.0\r\n" + body + b"\r\n"
    # nats-py's own parser of the lines after the version line (nats.aio.client, 2.16).
    assert parse_headers(block) == (NATS._parse_header_lines(body) or None)


def test_a_block_without_headers_is_none() -> None:
    assert parse_headers(b"NATS/1.0\r\n\r\n") is None


async def test_a_read_stopped_early_leaves_no_consumer(
    nats_server: EmbeddedNats, nc: NATS, store: EventStore
) -> None:
    await _fill(store, 300)
    read: Any = read_stream(nats_server.url, store.ns.stream, store.ns.activities, batch_size=50)
    async for _ in read:
        break
    await read.aclose()  # what a loop's owner does, or the event loop when it collects it

    assert await nc.jetstream().consumers_info(store.ns.stream) == []


def test_both_forms_of_the_reply_subject_give_sequence_and_time() -> None:
    # nats-server 2.15 sends the 9-token form; servers with a JetStream domain or account hash
    # send the 12-token one. The frames here are as _Connection cuts them off the wire.
    from replay.reader import _Options, _Read

    read = _Read(_Options((), None, "_INBOX"), "S", "s.>", 10, None, position=0, last=3)
    read.consumer = b"C1"
    block = b"NATS/1.0\r\nLedger-Type: T\r\n\r\n"
    frames = [
        (b"s.a", b"$JS.ACK.S.C1.1.1.1.1700000000000000001.2", block, b"one"),
        (b"s.b", b"$JS.ACK.hub.ACCHASH.S.C1.1.2.2.1700000000000000002.1.r4nd0m", block, b"two"),
        (b"s.c", b"$JS.ACK.S.OLD.1.3.9.1700000000000000003.0", block, b"stale consumer"),
        (b"s.c", b"$JS.ACK._.ACCHASH.S.C1.1.3.3.1700000000000000003.0", block, b"three"),
    ]
    out: list[RawMessage] = []
    read.take(frames, out)

    assert [(r.sequence, r.subject, r.time_ns, r.data) for r in out] == [
        (1, "s.a", 1700000000000000001, b"one"),
        (2, "s.b", 1700000000000000002, b"two"),
        (3, "s.c", 1700000000000000003, b"three"),
    ]
    assert out[0].headers == {"Ledger-Type": "T"}
    assert read.done and read.position == 3
