"""Live path benchmark: from intake's acknowledgement to the API showing the event, and catch-up.

Two measurements, each beside a raw baseline taken in the same run:

1. **Ack to visible.** It starts ``ledger up`` as its own process on a fresh data directory
   (embedded nats-server with its users, intake, the projector and the API on a free port), and
   reports new activities through intake at a steady ``--rate`` for ``--seconds``, as the admin
   (who may send for every office; unsigned, since no office has a signing key here). Sends are
   scheduled by absolute time, each as its own request, so a slow reply never delays the next
   send; the rate achieved is printed. A poller asks ``/v1/activities/{id}`` for the oldest
   acknowledged activity it has not yet seen, over one keep-alive connection; each answer
   carries the projection's sequence (``as_of``), and since the projector commits in stream
   order, every activity at or below it is visible from that answer on. An activity's latency
   is the time from its acknowledgement reaching this process to the first answer that shows
   it: an upper bound, too high by at most one poll (interval plus round trip, both printed).
   The baseline is a bare JetStream publish-ack round trip on the same server at the same rate.
   It measures both places the projector can run (``--projector``), one after the other: on
   ``ledger up``'s event loop, beside intake and the API, and in a process of its own
   (``ledger up --projector-process``, as the compose file runs it).

   This bench found that the API's sockets lacked ``TCP_NODELAY``, which held the body of every
   keep-alive answer after the first for the client's delayed ACK (40 ms on Linux);
   ``services/api/server.py`` now sets it. The poller still sets ``TCP_QUICKACK`` after each
   request, so that an older server measures the projector too, not that stall.

2. **Catch-up.** On another server (``--nats-url``, or a fresh embedded one) and a stream of
   its own, it starts the projector alone (``python -m services.projector``), stops it, appends
   ``--backlog`` synthetic events, rebuilds a projection of them with ``build_projection`` (the
   baseline), then starts the projector again and times it until its checkpoint reaches the
   last sequence (it catches up through the bulk reader, 5,000 events a transaction), and until
   its durable consumer has nothing left to deliver.

    python -m bench.latency --rate 1000 --seconds 60 --backlog 100000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.js import api

from bench.common import bench_server
from bench.rebuild import fill
from bench.synthetic import synthetic_activities
from events.commands import Accepted
from events.store import EventStore
from events.subjects import Namespace
from projections.db import open_reader
from projections.queries import current_sequence
from replay.rebuild import build_projection
from services.client.office import OfficeClient
from services.infra.access import credentials_for
from services.infra.config import Settings
from services.infra.stack import connect
from services.projector.service import DURABLE

P99_GOAL_MS = 100.0
CATCH_UP_GOAL = 0.5
_RAW_STREAM = "BENCH_LATENCY_RAW"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)] if ordered else 0.0


def _ms(values: list[float]) -> str:
    p50, p99 = _percentile(values, 0.5) * 1000, _percentile(values, 0.99) * 1000
    return f"p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {max(values, default=0.0) * 1000:7.1f} ms"


TOPOLOGIES = {"in-process": (), "own-process": ("--projector-process",)}
"""Where the projector runs under ``ledger up``: the flags that say so."""


# -- ledger up as a child process --------------------------------------------------------------


@contextlib.contextmanager
def ledger_up(data_dir: Path, nats_url: str | None, *flags: str) -> Iterator[dict]:
    """``ledger up --port 0 [flags]`` on ``data_dir`` in a process of its own; its
    ``runtime.json``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_DATA_DIR"] = str(data_dir)
    if nats_url:
        env["LEDGER_NATS_URL"] = nats_url
    command = [sys.executable, "-c", "from services.cli.main import main; main()"]
    log = (data_dir.parent / f"ledger-up-{data_dir.name}.log").open("w")
    proc = subprocess.Popen(
        [*command, "up", "--port", "0", *flags], env=env, stdout=log, stderr=log
    )
    try:
        runtime_file = data_dir / "runtime.json"
        deadline = time.monotonic() + 60
        while not runtime_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"ledger up did not start; see {log.name}")
            time.sleep(0.05)
        yield json.loads(runtime_file.read_text())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class Http:
    """One keep-alive HTTP/1.1 connection of raw sockets: cheap, so the poller takes little CPU."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.sock = writer.get_extra_info("socket")
        self.quickack = hasattr(socket, "TCP_QUICKACK")

    @classmethod
    async def open(cls, url: str) -> Http:
        """Connect to ``http://host:port``."""
        host, _, port = url.removeprefix("http://").partition(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def get(self, path: str) -> tuple[int, bytes]:
        """The status and body of ``GET path``."""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        if self.quickack:
            # The API's accepted sockets lack TCP_NODELAY (see the module docstring), so its
            # body waits for our ACK of its head, which Linux delays by 40 ms unless told not to.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await self.reader.readexactly(length)
        return int(head[9:12]), body

    def close(self) -> None:
        """Close the connection."""
        self.writer.close()


# -- ack to visible ------------------------------------------------------------------------------


@dataclass
class Visibility:
    """Acknowledged activities not yet seen through the API, and the latencies of those seen."""

    pending: list[tuple[int, str, float]] = field(default_factory=list)
    """(sequence, activity id, time of its ack), a heap by sequence."""
    seen_up_to: int = 0
    """The highest projection sequence an answer has shown."""
    latencies: list[float] = field(default_factory=list)
    timeline: list[tuple[float, float]] = field(default_factory=list)
    """(time of the ack, latency) of each recorded activity, for ``--dump``."""
    poll_rtts: list[float] = field(default_factory=list)
    recording: bool = True

    def acked(self, sequence: int, activity_id: str, at: float) -> None:
        """Intake acknowledged ``activity_id`` at ``at``, stored at ``sequence``."""
        if sequence <= self.seen_up_to:
            # The projection showed it before its acknowledgement reached us.
            if self.recording:
                self.latencies.append(0.0)
                self.timeline.append((at, 0.0))
            return
        heapq.heappush(self.pending, (sequence, activity_id, at))

    def seen(self, sequence: int, at: float) -> None:
        """An answer at ``at`` showed the projection at ``sequence``."""
        self.seen_up_to = max(self.seen_up_to, sequence)
        while self.pending and self.pending[0][0] <= self.seen_up_to:
            _, _, acked_at = heapq.heappop(self.pending)
            if self.recording:
                self.latencies.append(at - acked_at)
                self.timeline.append((acked_at, at - acked_at))


_AS_OF = msgspec.json.Decoder(dict)


async def poll(api_url: str, vis: Visibility, stop: asyncio.Event, interval: float) -> None:
    """Ask for the oldest pending activity until ``stop`` and nothing is pending."""
    http = await Http.open(api_url)
    try:
        while not (stop.is_set() and not vis.pending):
            if not vis.pending:
                await asyncio.sleep(interval)
                continue
            sequence, activity_id, _ = vis.pending[0]
            started = time.perf_counter()
            status, body = await http.get(f"/v1/activities/{activity_id}")
            now = time.perf_counter()
            vis.poll_rtts.append(now - started)
            if status == 200:
                vis.seen(max(sequence, _AS_OF.decode(body)["as_of"]["sequence"]), now)
            elif status != 404:
                raise SystemExit(f"/v1/activities/{activity_id}: HTTP {status} {body[:200]!r}")
            else:
                await asyncio.sleep(interval)
    finally:
        http.close()


async def _scheduled(rate: float, count: int, send: object) -> float:
    """Call ``send(i)`` as a task at ``start + i / rate`` for ``i < count``; the seconds taken."""
    assert callable(send)
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    start = loop.time()
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(send(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return loop.time() - start


async def live(nats_url: str, api_url: str, data_dir: Path, args: argparse.Namespace) -> None:
    """Report activities through intake at ``args.rate`` and time each to its visibility."""
    settings = Settings(nats_url=nats_url, data_dir=data_dir)
    nc = await connect(nats_url, "bench-latency", creds=credentials_for(settings, "admin"))
    try:
        client = OfficeClient(nc, None, settings.namespace, actor="bench", timeout=10)
        await _wait_for_intake(nc, settings.namespace)
        count = int(args.rate * args.seconds)
        warm = int(args.rate * 2)
        tag = uuid.uuid4().hex[:6].upper()
        activities = list(synthetic_activities(warm + count, seed=7, prefix=f"L{tag}"))
        vis = Visibility(recording=False)
        intake_rtts: list[float] = []
        stop = asyncio.Event()
        poller = asyncio.create_task(poll(api_url, vis, stop, args.poll_ms / 1000))

        def sender(offset: int) -> object:
            async def send(i: int) -> None:
                activity = activities[offset + i]
                command = client.report_command(activity, command_id=f"{tag}-{offset + i}")
                started = time.perf_counter()
                reply = await client.request(command)
                acked = time.perf_counter()
                if not isinstance(reply, Accepted):
                    raise SystemExit(f"intake refused {activity.activity_id}: {reply}")
                if vis.recording:
                    intake_rtts.append(acked - started)
                vis.acked(reply.sequence, activity.activity_id, acked)

            return send

        print(f"warming up: {warm:,} reports at {args.rate:,.0f}/s", file=sys.stderr)
        await _scheduled(args.rate, warm, sender(0))
        while vis.pending:
            await asyncio.sleep(0.01)
        vis.recording, vis.poll_rtts = True, []
        print(f"measuring: {count:,} reports at {args.rate:,.0f}/s", file=sys.stderr)
        took = await _scheduled(args.rate, count, sender(warm))
        stop.set()
        await asyncio.wait_for(poller, 60)
        raw = await raw_round_trips(nc, args.rate, min(args.seconds, 10.0))
    finally:
        await nc.close()

    if args.dump:
        start = min(at for at, _ in vis.timeline)
        rows = sorted((round(at - start, 4), round(lat, 4)) for at, lat in vis.timeline)
        Path(args.dump).write_text(json.dumps(rows))
    p99 = _percentile(vis.latencies, 0.99) * 1000
    print(
        f"\nlive path, {args.topology}: {count:,} reports through intake in {took:.1f} s "
        f"= {count / took:,.0f}/s achieved (asked {args.rate:,.0f}/s), each its own request"
    )
    print(f"  intake round trip (send to ack)    {_ms(intake_rtts)}")
    print(f"  ack to visible in the API          {_ms(vis.latencies)}   goal p99 < 100 ms")
    print(
        f"  measurement: a poll every {args.poll_ms:g} ms + its round trip "
        f"(p50 {_percentile(vis.poll_rtts, 0.5) * 1000:.1f} ms, {len(vis.poll_rtts):,} polls)"
    )
    print(f"  raw JetStream publish-ack          {_ms(raw)}   (baseline, same server and rate)")
    base = _percentile(raw, 0.5)
    print(
        f"  ack to visible p50 / raw p50 {_percentile(vis.latencies, 0.5) / base:.1f}x; "
        f"p99 {p99:.1f} ms against the goal of < {P99_GOAL_MS:g} ms: "
        f"{'met' if p99 < P99_GOAL_MS else 'missed'}"
    )


async def _wait_for_intake(nc: NATS, namespace: Namespace) -> None:
    """Until intake answers at all: the stack writes runtime.json before intake subscribes."""
    for _ in range(400):
        try:
            await nc.request(namespace.intake("HQ"), b"{}", timeout=0.5)
            return
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            await asyncio.sleep(0.05)
    raise SystemExit("intake did not answer")


async def raw_round_trips(nc: NATS, rate: float, seconds: float) -> list[float]:
    """Bare JetStream publish-ack round trips at ``rate``, on a scratch stream of their own."""
    js = nc.jetstream()
    subject = "bench.latency.raw"
    await js.add_stream(api.StreamConfig(name=_RAW_STREAM, subjects=[subject]))
    body = msgspec.json.encode({"pad": "x" * 600})  # about the size of a stored report
    rtts: list[float] = []

    async def send(_: int) -> None:
        started = time.perf_counter()
        await js.publish(subject, body)
        rtts.append(time.perf_counter() - started)

    try:
        await _scheduled(rate, int(rate * seconds), send)
    finally:
        await js.delete_stream(_RAW_STREAM)
    return rtts


# -- catch-up ------------------------------------------------------------------------------------


def _projector(url: str, ns: Namespace, db: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "services.projector", "--nats-url", url, "--db", str(db)]
    command += ["--stream", ns.stream, "--prefix", ns.prefix]
    with log.open("a") as out:
        return subprocess.Popen(command, stdout=out, stderr=out)


def _checkpoint(db: Path) -> int:
    try:
        conn = open_reader(db)
    except (FileNotFoundError, OSError):
        return -1
    try:
        return current_sequence(conn)
    except Exception:
        return -1  # created, not yet initialised
    finally:
        conn.close()


async def catch_up(url: str, backlog: int, scratch: Path) -> None:
    """Time the projector over a backlog against a bulk rebuild of the same stream."""
    ns = Namespace.for_tests(f"latency{uuid.uuid4().hex[:8]}")
    nc = await nats.connect(url)
    store = EventStore(nc, ns)
    await store.ensure_stream()
    db, log = scratch / "live" / "ledger.db", scratch / "projector.log"
    db.parent.mkdir()
    # As after an outage: the projector has run (its durable consumer and database exist), and
    # the backlog arrived while it was stopped.
    proc = _projector(url, ns, db, log)
    for _ in range(600):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await store.js.consumer_info(ns.stream, DURABLE)
            if _checkpoint(db) == 0:
                break
        await asyncio.sleep(0.05)
    else:
        raise SystemExit(f"the projector did not start; see {log}")
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)

    print(f"appending a backlog of {backlog:,} synthetic events ...", file=sys.stderr)
    await fill(url, ns, backlog)
    last = await store.last_sequence()
    rebuilt = await build_projection(store, scratch / "rebuilt.db", progress=False)
    rebuild_rate = rebuilt.events / rebuilt.seconds

    started = time.perf_counter()
    proc = _projector(url, ns, db, log)
    caught_up = drained = None
    try:
        while drained is None:
            if proc.poll() is not None:
                raise SystemExit(f"the projector exited; see {log}")
            now = time.perf_counter() - started
            if caught_up is None and _checkpoint(db) >= last:
                caught_up = now
            if caught_up is not None:
                info = await store.js.consumer_info(ns.stream, DURABLE)
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    drained = now
            if now > 600:
                raise SystemExit("the projector did not catch up in 10 minutes")
            await asyncio.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        await nc.close()
    assert caught_up is not None
    rate = backlog / caught_up
    print(f"\ncatch-up over a backlog of {backlog:,} events (stream sequence {last:,}):")
    print(
        f"  bulk rebuild (build_projection)    {rebuilt.seconds:7.1f} s  "
        f"{rebuild_rate:9,.0f} ev/s   (baseline)"
    )
    print(
        f"  projector restart to checkpoint    {caught_up:7.1f} s  {rate:9,.0f} ev/s   "
        f"ratio {rate / rebuild_rate:.2f}, goal >= {CATCH_UP_GOAL}: "
        f"{'met' if rate / rebuild_rate >= CATCH_UP_GOAL else 'missed'}"
    )
    print(
        f"  durable consumer drained after     {drained:7.1f} s   (the backlog's deliveries, "
        "skipped by the checkpoint, ahead of any new event)"
    )


def main() -> None:
    """Parse the flags and run both measurements."""
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0, help="reports a second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to publish")
    parser.add_argument("--backlog", type=int, default=100_000, help="catch-up events")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="pause between API polls")
    parser.add_argument(
        "--nats-url", default=None, help="an external server for both parts (no embedded one)"
    )
    parser.add_argument("--dump", help="write (ack time, latency) pairs here, as JSON")
    parser.add_argument(
        "--projector",
        choices=sorted(TOPOLOGIES),
        action="append",
        help="where the projector runs: on ledger up's event loop, in a process of its own "
        "(ledger up --projector-process), or both, one after the other (the default)",
    )
    parser.add_argument("--skip-live", action="store_true", help="only the catch-up")
    parser.add_argument("--skip-catch-up", action="store_true", help="only the live path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ledger-bench-latency-") as tmp:
        scratch = Path(tmp)
        for topology in [] if args.skip_live else args.projector or sorted(TOPOLOGIES):
            data_dir = scratch / f"data-{topology}"
            data_dir.mkdir()
            args.topology = f"projector {topology}"
            with ledger_up(data_dir, args.nats_url, *TOPOLOGIES[topology]) as runtime:
                asyncio.run(live(runtime["nats_url"], runtime["api_url"], data_dir, args))
        if not args.skip_catch_up:
            with bench_server(args.nats_url) as url:
                asyncio.run(catch_up(url, args.backlog, scratch))


if __name__ == "__main__":
    main()
