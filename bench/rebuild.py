"""Benchmark: rebuild of all projections against a raw ordered-consumer read of the stream.

Fills a fresh stream with N synthetic events (``bench/synthetic.py``), then times, in the same
run, (a) a plain nats-py ordered-consumer read of the whole stream that does nothing with the
messages, and (b) ``replay.rebuild`` of every projection, in a child process so that its peak
RSS is its own. Prints events/s for both, their ratio (goal: at least 0.5) and the peak RSS of
the rebuild (goal: under 200 MB for 1M events). The same child then times ``ledger verify``
(hash chains, then a second rebuild compared table by table) and an as-of replay.

    python -m bench.rebuild --events 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import nats
from nats.js import api

from bench.synthetic import synthetic_epoch, synthetic_events
from events.store import EventStore
from events.subjects import Namespace
from services.infra.embedded import EmbeddedNats

_FILL_CHUNK = 50_000


async def fill(url: str, namespace: Namespace, n: int) -> float:
    """Append ``n`` synthetic events; return the seconds it took."""
    nc = await nats.connect(url)
    store = EventStore(nc, namespace)
    await store.ensure_stream()
    started = time.perf_counter()
    events = synthetic_events(n, seed=1)
    done = 0
    while chunk := list(itertools.islice(events, _FILL_CHUNK)):
        outcomes = await store.append_many(chunk)
        failed = [o for o in outcomes if o.status != "stored"]
        if failed:
            raise SystemExit(f"fill failed: {failed[0]}")
        done += len(chunk)
        print(f"  filled {done:,}/{n:,}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    await nc.drain()
    return time.perf_counter() - started


async def raw_read(url: str, namespace: Namespace) -> tuple[int, float]:
    """Read the whole stream through an ordered consumer, doing nothing with the messages."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    last = (await js.stream_info(namespace.stream)).state.last_seq
    finished = asyncio.Event()
    count = 0

    async def on_message(msg: nats.aio.msg.Msg) -> None:
        nonlocal count
        count += 1
        if count >= last:
            finished.set()

    started = time.perf_counter()
    sub = await js.subscribe(
        namespace.activities,
        stream=namespace.stream,
        cb=on_message,
        ordered_consumer=True,
        config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL),
        pending_msgs_limit=100_000,
        pending_bytes_limit=-1,
    )
    await finished.wait()
    seconds = time.perf_counter() - started
    await sub.unsubscribe()
    await nc.drain()
    return count, seconds


async def _child(url: str, namespace: Namespace, live: Path, batch: int) -> None:
    from events.keys import KeyRegistry
    from replay.asof import replay_as_of
    from replay.rebuild import rebuild
    from replay.verify import verify

    nc = await nats.connect(url)
    store = EventStore(nc, namespace)
    cpu_started = time.process_time()
    result = await rebuild(store, live, batch_size=batch, progress=False)
    cpu_seconds = time.process_time() - cpu_started
    peak_kb = _peak_rss_kb()
    started = time.perf_counter()
    report = await verify(store, KeyRegistry(), live)
    verify_seconds = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"verify failed on an untouched stream: {report}")
    # As of the middle of the synthetic history: one event a second from its epoch.
    middle = synthetic_epoch() + dt.timedelta(seconds=result.events // 2)
    started = time.perf_counter()
    await replay_as_of(store, live.with_name("asof.db"), until_time=middle, progress=False)
    asof_seconds = time.perf_counter() - started
    await nc.drain()
    figures = {
        "events": result.events,
        "seconds": result.seconds,
        "cpu_seconds": cpu_seconds,
        "peak_kb": peak_kb,
        "verify_seconds": verify_seconds,
        "asof_seconds": asof_seconds,
    }
    print(json.dumps(figures))


def _peak_rss_kb() -> int:
    """This process's own peak resident set, in KB.

    Not ``getrusage``: Linux carries ``ru_maxrss`` over an exec, so a child forked from the
    parent that filled the stream (and still holds those events) reported the parent's peak,
    which grows with N: 961 MB at 1M events, against ~200 MB of the rebuild's own.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_rebuild_child(url: str, namespace: Namespace, live: Path, batch: int) -> dict:
    """Rebuild in a fresh Python process and return its figures, peak RSS included."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.rebuild",
            "--child",
            "--nats-url",
            url,
            "--stream",
            namespace.stream,
            "--prefix",
            namespace.prefix,
            "--live",
            str(live),
            "--batch",
            str(batch),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Parse arguments and run the benchmark (or, with ``--child``, only the rebuild)."""
    parser = argparse.ArgumentParser(prog="python -m bench.rebuild", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--batch", type=int, default=20_000, help="activities the rebuild keeps in memory"
    )
    parser.add_argument("--nats-url", help="use this server instead of an embedded one")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stream", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--live", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        namespace = Namespace(prefix=args.prefix, stream=args.stream)
        asyncio.run(_child(args.nats_url, namespace, Path(args.live), args.batch))
        return
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as scratch:
        server = None
        url = args.nats_url
        if url is None:
            server = EmbeddedNats(Path(scratch) / "nats", server_name="ledger-bench")
            url = server.start()
        try:
            namespace = Namespace.for_tests(f"rebuild{uuid.uuid4().hex[:8]}")
            print(f"filling {args.events:,} synthetic events ...", file=sys.stderr)
            filled = asyncio.run(fill(url, namespace, args.events))
            print(f"  {args.events / filled:,.0f} events/s appended", file=sys.stderr)
            count, raw_seconds = asyncio.run(raw_read(url, namespace))
            live = Path(scratch) / "projections" / "ledger.db"
            child = run_rebuild_child(url, namespace, live, args.batch)
        finally:
            if server is not None:
                server.stop()
    raw_rate = count / raw_seconds
    rebuild_rate = child["events"] / child["seconds"]
    print(f"events                 {count:>12,}")
    print(f"raw ordered read       {raw_rate:>12,.0f} events/s ({raw_seconds:.1f}s)")
    print(f"rebuild                {rebuild_rate:>12,.0f} events/s ({child['seconds']:.1f}s)")
    # CPU of the rebuild's own process against its wall time: near 1.0 means it is bound by
    # its own work on one core, not by waiting for the server.
    cpu_per_event = 1e6 * child["cpu_seconds"] / max(child["events"], 1)
    print(
        f"rebuild CPU            {child['cpu_seconds']:>12.1f} s    "
        f"({cpu_per_event:.0f} µs an event, {child['cpu_seconds'] / child['seconds']:.2f} of wall)"
    )
    print(f"ratio                  {rebuild_rate / raw_rate:>12.2f}   (goal >= 0.5)")
    print(f"rebuild peak RSS       {child['peak_kb'] / 1024:>12.0f} MB (goal < 200 MB)")
    verify_rate = count / child["verify_seconds"]
    print(
        f"verify (chain + rebuild + compare) {child['verify_seconds']:.1f}s "
        f"({verify_rate:,.0f} events/s; goal: 1M in under 30 s)"
    )
    print(f"as-of replay (half the history)    {child['asof_seconds']:.1f}s")


if __name__ == "__main__":
    main()
