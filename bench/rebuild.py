"""Benchmark: rebuild of all projections against a raw ordered-consumer read of the stream.

Fills a fresh stream with N synthetic events (``bench/synthetic.py``), then times, in the same
run, (a) a plain nats-py ordered-consumer read of the whole stream that does nothing with the
messages, and (b) ``replay.rebuild`` of every projection, through replay's own reader, in a
child process so that its peak RSS is its own. Then, each in a process of its own, ``ledger
verify`` (hash chains and a second rebuild, compared table by table) and an as-of replay to
the middle of the history. Prints each beside the goals of issue 15: rebuild at least as fast
as the raw read, peak RSS under 200 MB at 1M events, verify of 1M in under 40 s and as-of in
under 30 s.

A second baseline, raw sqlite3, bounds what any fold could reach: the rebuilt file's rows
copied into a fresh file in key order by ``executemany`` and its indexes created, with no
fold at all (:func:`sqlite_floor`). A rebuild writes at least those rows, so it cannot be
faster than this on one core, nor than half of it on two.

    python -m bench.rebuild --events 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import resource
import sqlite3
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

PHASES = ("rebuild", "floor", "verify", "tree", "asof")
"""Each runs in a process of its own, so that each one's peak RSS is its own."""


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


async def _child(url: str, namespace: Namespace, live: Path, batch: int, phase: str) -> None:
    from events.keys import KeyRegistry
    from replay.asof import replay_as_of
    from replay.logcheck import check_log
    from replay.rebuild import rebuild
    from replay.source import StreamSource
    from replay.verify import verify

    nc = await nats.connect(url)
    source = StreamSource(EventStore(nc, namespace), url)
    cpu_started = time.process_time()
    started = time.perf_counter()
    figures: dict[str, float] = {}
    if phase == "rebuild":
        result = await rebuild(source, live, batch_size=batch, progress=False)
        figures["events"] = result.events
    elif phase == "floor":
        figures["events"] = await source.store.last_sequence()
        figures["rows"], seconds = sqlite_floor(live.resolve(), live.with_name("floor.db"))
        # Only the writes count: the reads of the rebuilt file are not a rebuild's work.
        started = time.perf_counter() - seconds
    elif phase == "verify":
        report = await verify(source, KeyRegistry(), live)
        if not report.ok:
            raise SystemExit(f"verify failed on an untouched stream: {report}")
        figures["events"] = report.events
    elif phase == "tree":
        # What `ledger verify` adds for the verifiable log: the Merkle tree recomputed.
        log = await check_log(source, [])
        if not log.ok:
            raise SystemExit(f"the log check failed on an untouched stream: {log}")
        figures["events"] = log.leaves
    else:
        # As of the middle of the synthetic history: one event a second from its epoch.
        last = await source.store.last_sequence()
        middle = synthetic_epoch() + dt.timedelta(seconds=last // 2)
        result = await replay_as_of(
            source, live.with_name("asof.db"), until_time=middle, progress=False
        )
        figures["events"] = result.events
    figures["seconds"] = time.perf_counter() - started
    figures["cpu_seconds"] = time.process_time() - cpu_started
    figures["peak_kb"] = _peak_rss_kb()
    # The processes a split replay started (replay/partition.py), all waited for by now: the
    # largest one's peak, and their CPU. A part starts from a fresh interpreter, so its peak
    # is its own (the exec carries over only this process's resident set at the start, before
    # the replay grew it).
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures["parts_peak_kb"] = children.ru_maxrss
    figures["parts_cpu_seconds"] = children.ru_utime + children.ru_stime
    await nc.drain()
    print(json.dumps(figures))


def sqlite_floor(source: Path, out: Path) -> tuple[int, float]:
    """Copy every row of the projection ``source`` into a fresh file ``out`` with raw sqlite3,
    as cheaply as SQLite allows: no journal, no sync, each table in its key order (appends to
    its b-tree), its indexes and the full-text index created after the load, as a bulk
    rebuild does. Return the rows written and the seconds spent writing them (reads apart).
    """
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(out, isolation_level=None)
    dst.execute("PRAGMA journal_mode = OFF")
    dst.execute("PRAGMA synchronous = OFF")
    dst.execute("PRAGMA cache_size = -32000")
    schema = src.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'activities_fts_%'"
    ).fetchall()
    tables = [(name, sql) for kind, name, sql in schema if kind == "table"]
    later = [sql for kind, name, sql in schema if kind == "index" or name == "activities_fts"]
    rows = 0
    spent = 0.0
    dst.execute("BEGIN")
    for name, sql in tables:
        if name == "activities_fts":
            continue
        dst.execute(sql)
        width = len(src.execute(f"SELECT * FROM {name} LIMIT 0").description)
        insert = f"INSERT INTO {name} VALUES ({', '.join('?' * width)})"
        cursor = src.execute(f"SELECT * FROM {name}")
        while chunk := cursor.fetchmany(20_000):
            started = time.perf_counter()
            dst.executemany(insert, chunk)
            spent += time.perf_counter() - started
            rows += len(chunk)
    started = time.perf_counter()
    for sql in later:
        dst.execute(sql)
    dst.execute("INSERT INTO activities_fts (activities_fts) VALUES ('rebuild')")
    dst.execute("COMMIT")
    spent += time.perf_counter() - started
    src.close()
    dst.close()
    return rows, spent


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


def run_child(url: str, namespace: Namespace, live: Path, batch: int, phase: str) -> dict:
    """Run one phase in a fresh Python process and return its figures, peak RSS included."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.rebuild",
            "--child",
            phase,
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
    parser.add_argument("--child", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--stream", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--live", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        namespace = Namespace(prefix=args.prefix, stream=args.stream)
        asyncio.run(_child(args.nats_url, namespace, Path(args.live), args.batch, args.child))
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
            phases = {phase: run_child(url, namespace, live, args.batch, phase) for phase in PHASES}
        finally:
            if server is not None:
                server.stop()
    show(count, raw_seconds, phases)


def show(count: int, raw_seconds: float, phases: dict[str, dict]) -> None:
    """Print each phase's figures beside the goals of issue 15 (docs/performance.md)."""
    raw_rate = count / raw_seconds
    child = phases["rebuild"]
    rebuild_rate = child["events"] / child["seconds"]
    millions = count / 1_000_000
    print(f"events                 {count:>12,}")
    print(f"raw ordered read       {raw_rate:>12,.0f} events/s ({raw_seconds:.1f}s)")
    print(f"rebuild                {rebuild_rate:>12,.0f} events/s ({child['seconds']:.1f}s)")
    print(f"ratio                  {rebuild_rate / raw_rate:>12.2f}   (goal >= 1.0)")
    floor = phases["floor"]
    floor_rate = floor["events"] / floor["seconds"]
    print(
        f"raw sqlite3 floor      {floor_rate:>12,.0f} events/s on one core "
        f"({floor['seconds']:.1f}s: the rebuilt file's {floor['rows']:,} rows, "
        f"{floor['rows'] / count:.1f} an event, and its indexes)"
    )
    print(
        f"  on two cores at best {2 * floor_rate:>12,.0f} events/s: "
        f"{2 * floor_rate / raw_rate:.2f} of the raw read; the rebuild is "
        f"{rebuild_rate / (2 * floor_rate):.2f} of it"
    )
    for phase, figures in phases.items():
        if phase == "floor":
            continue
        # CPU of the phase's processes against its wall time: near 2.0 means both cores
        # worked throughout; near 1.0, one did.
        cpu = figures["cpu_seconds"] + figures["parts_cpu_seconds"]
        print(
            f"{phase:<8} {figures['seconds']:7.1f} s  "
            f"{figures['events'] / figures['seconds']:>9,.0f} ev/s  "
            f"CPU {1e6 * cpu / max(figures['events'], 1):4.0f} µs/event "
            f"({cpu / figures['seconds']:.2f} cores)  "
            f"peak RSS {figures['peak_kb'] / 1024:4.0f} MB, "
            f"of a part {figures['parts_peak_kb'] / 1024:4.0f} MB (goal < 200 MB at 1M)"
        )
    verify = phases["verify"]["seconds"] + phases["tree"]["seconds"]
    print(f"verify  {verify / millions:7.1f} s per million events with the tree (goal < 40)")
    print(f"as-of   {phases['asof']['seconds'] / millions:7.1f} s per million events (goal < 30)")


if __name__ == "__main__":
    main()
