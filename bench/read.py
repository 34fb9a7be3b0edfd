"""Benchmark: the whole stream read three ways, in one process, against one server.

The question it answers: how much faster does replay's own bulk reader (``replay/reader.py``)
read than the nats-py paths it is meant to replace (docs/design.md, "Ordered consumers")?

It fills a fresh stream with N synthetic events (``bench/synthetic.py``, through
``bench.rebuild.fill``: the ledger's five headers, the sizes are printed), then times, each
``--rounds`` times, interleaved, the median reported:

- ``nats-py ordered (count)``: a nats-py ordered push consumer whose callback only counts,
  the raw baseline of ``bench/rebuild.py`` (:func:`bench.rebuild.raw_read`);
- ``EventStore.read_raw``: the same consumer building ``RawMessage`` batches, headers parsed
  by nats-py: what rebuild, replay and verify read through today;
- ``read_stream``: the bulk reader, building the same ``RawMessage`` batches.

Each of the last two only counts what it is handed. Besides messages per second by the
clock, it prints this process's CPU time per message, which a shared machine disturbs less.
It then times header parsing alone, on a header block read from the stream:
:func:`replay.reader.parse_headers` against nats-py's parser. ``--sweep`` also reads with
several batch sizes (the size of each pull).

    python -m bench.read --events 200000
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import timeit
import uuid

import nats
from nats.aio.client import Client as NATS

from bench.common import bench_server, parser, report
from bench.rebuild import fill, raw_read
from events.store import EventStore
from events.stored import RawMessage
from events.subjects import Namespace
from replay.reader import DEFAULT_BATCH, parse_headers, read_stream

_SWEEP = (1000, 2000, 5000, 10_000, 20_000)


async def time_read_raw(url: str, namespace: Namespace, batch: int) -> tuple[int, float]:
    """Read the whole stream with ``EventStore.read_raw``; messages and seconds."""
    nc = await nats.connect(url)
    try:
        store = EventStore(nc, namespace)
        count = 0
        started = time.perf_counter()
        async for got in store.read_raw(batch_size=batch):
            count += len(got)
        return count, time.perf_counter() - started
    finally:
        await nc.close()


async def time_read_stream(url: str, namespace: Namespace, batch: int) -> tuple[int, float]:
    """Read the whole stream with the bulk reader; messages and seconds."""
    count = 0
    started = time.perf_counter()
    async for got in read_stream(url, namespace.stream, namespace.activities, batch_size=batch):
        count += len(got)
    return count, time.perf_counter() - started


async def sample(url: str, namespace: Namespace) -> list[RawMessage]:
    """The first messages of the stream, for their sizes and a header block."""
    async for got in read_stream(url, namespace.stream, namespace.activities, until_seq=1000):
        return got
    raise SystemExit("the stream is empty")


def header_block(headers: dict[str, str]) -> bytes:
    """The header block as the server sends it."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"NATS/1.0\r\n{lines}\r\n".encode()


def time_headers(block: bytes, n: int = 100_000) -> tuple[float, float]:
    """Microseconds per header block: ours, nats-py's line parser (2.16)."""
    body = block[len(b"NATS/1.0\r\n") :]
    assert parse_headers(block) == NATS._parse_header_lines(body)
    ours = min(timeit.repeat(lambda: parse_headers(block), number=n, repeat=5)) / n
    theirs = min(timeit.repeat(lambda: NATS._parse_header_lines(body), number=n, repeat=5)) / n
    return ours * 1e6, theirs * 1e6


async def run(url: str, events: int, batch: int, rounds: int, sweep: bool) -> None:
    """Fill, measure and print."""
    namespace = Namespace.for_tests(f"read{uuid.uuid4().hex[:8]}")
    print(f"filling {events:,} synthetic events ...", file=sys.stderr)
    filled = await fill(url, namespace, events)
    print(f"  {events / filled:,.0f} events/s appended", file=sys.stderr)
    first = await sample(url, namespace)
    body = statistics.mean(len(raw.data) for raw in first)
    block = header_block(first[0].headers or {})
    heads = statistics.mean(len(header_block(raw.headers or {})) for raw in first)
    paths = {
        "nats-py ordered (count)": lambda: raw_read(url, namespace),
        "EventStore.read_raw": lambda: time_read_raw(url, namespace, batch),
        "read_stream": lambda: time_read_stream(url, namespace, batch),
    }
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    for round_ in range(rounds):
        for name, measure in paths.items():
            # This process's CPU time too: the machine is shared, and a reader that waits for
            # a busy core looks slower by the clock than by what it costs.
            used = time.process_time()
            count, took = await measure()
            cpu[name].append((time.process_time() - used) / count * 1e6)
            if count != events:
                raise SystemExit(f"{name} read {count:,} of {events:,} messages")
            seconds[name].append(took)
            print(f"  round {round_ + 1} {name}: {count / took:,.0f} msg/s", file=sys.stderr)
    print(
        f"{events:,} messages of {body + heads:,.0f} B on average ({body:,.0f} B body, "
        f"{heads:,.0f} B headers, {len(first[0].headers or {})} headers); batch {batch:,}; "
        f"median of {rounds} rounds"
    )
    rows = [(name, events, statistics.median(took)) for name, took in seconds.items()]
    report(rows, baseline="nats-py ordered (count)")
    rate = {name: events / took for name, _, took in rows}
    print(
        f"  read_stream / EventStore.read_raw: "
        f"{rate['read_stream'] / rate['EventStore.read_raw']:.2f}"
    )
    print("client CPU per message (median):")
    for name, spent in cpu.items():
        print(f"  {name:<24}  {statistics.median(spent):6.2f} µs")
    ours, theirs = time_headers(block)
    print(
        f"header block of {len(block)} B: parse_headers {ours:.2f} µs, "
        f"nats-py _parse_header_lines {theirs:.2f} µs"
    )
    if sweep:
        print("read_stream by batch (pull) size, best of 2:")
        for size in _SWEEP:
            best = min([(await time_read_stream(url, namespace, size))[1] for _ in range(2)])
            print(f"  batch {size:>6,}  {events / best:>10,.0f} msg/s")


def main() -> None:
    """Parse arguments and run the benchmark."""
    p = parser("Read the whole stream: nats-py paths against replay's bulk reader.", 200_000)
    p.prog = "python -m bench.read"
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="messages per batch")
    p.add_argument("--rounds", type=int, default=3, help="timed reads of each path")
    p.add_argument("--sweep", action="store_true", help="also try several batch sizes")
    args = p.parse_args()
    with bench_server(args.nats_url) as url:
        asyncio.run(run(url, args.events, args.batch, args.rounds, args.sweep))


if __name__ == "__main__":
    main()
