"""Query API benchmark: p50/p99 latency and requests/s over loopback, beside the raw query call.

It fills a projection with N synthetic events straight through the applier (no NATS: the
applier is what both the live projector and a rebuild run), keeps it in a cache directory for
the next run, serves the API with uvicorn in a child process, and drives it with a small
keep-alive HTTP/1.1 client of raw sockets (much cheaper than an HTTP library, so the client
takes little of the two cores from the server). It measures the country summary and a
filtered activity list, with the read model's kept answers and with none kept, and the same
query functions called in-process: the baseline.

    python -m bench.query --events 200000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.synthetic import synthetic_events
from events.codec import encode, headers_for
from events.stored import RawMessage
from projections import queries
from projections.apply import Applier
from projections.db import open_reader, open_writer
from projections.schema import SCHEMA_VERSION, create_indexes
from services.api.read_model import DEFAULT_KEPT

COUNTRY = "/v1/countries/{country}"
ACTIVITIES = "/v1/activities?country={country}&year=2015&limit=50"


def build(path: Path, events: int) -> None:
    """A projection of ``events`` synthetic events at ``path``, reused when already complete."""
    if path.exists():
        conn = open_reader(path)
        done = queries.current_sequence(conn)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.close()
        if done == events and version == SCHEMA_VERSION:
            print(f"reusing {path} ({events:,} events)")
            return
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
    started = time.perf_counter()
    conn = open_writer(path, bulk=True)
    applier = Applier(conn)
    batch: list[RawMessage] = []
    for sequence, (event, _) in enumerate(synthetic_events(events), start=1):
        batch.append(
            RawMessage(
                sequence,
                f"ledger.activity.{event.office}.{event.activity_id}",
                sequence * 1_000_000_000,
                headers_for(event),
                encode(event),
            )
        )
        if len(batch) == 20_000:
            applier.apply(batch)
            batch = []
    if batch:
        applier.apply(batch)
    create_indexes(conn)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(f"built {path}: {events:,} events in {time.perf_counter() - started:.0f} s")


def serve(path: Path, port: int, kept: int) -> None:
    """Run the API over ``path`` on loopback (the child process), as ``ledger up`` serves it.

    :param kept: answers the read model keeps; 0 computes every answer.
    """
    import uvicorn

    from services.api.app import create_app

    app = create_app(path, kept=kept)
    # `ledger up` runs on asyncio's own loop; uvicorn would pick uvloop when it is installed.
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop="asyncio"
    )


async def _one_connection(
    port: int, paths: list[str], latencies: list[float], deadline: float
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    index = 0
    try:
        while time.perf_counter() < deadline:
            path = paths[index % len(paths)]
            index += 1
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{path}: {head[:40]!r}")
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def drive(port: int, paths: list[str], seconds: float, connections: int) -> list[float]:
    """Requests from ``connections`` keep-alive connections for ``seconds``; their latencies."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    await asyncio.gather(
        *(_one_connection(port, paths, latencies, deadline) for _ in range(connections))
    )
    return latencies


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


def in_process(path: Path, countries: list[str], seconds: float) -> dict[str, tuple[float, float]]:
    """The baseline: the same query functions, called directly; (calls/s, p99 s) each."""
    conn = open_reader(path)
    calls = {
        "country summary": lambda c: queries.country_summary(conn, c),
        "activity list": lambda c: queries.list_activities(conn, country=c, year=2015, limit=50),
    }
    results = {}
    for name, call in calls.items():
        latencies = []
        deadline = time.perf_counter() + seconds
        index = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            call(countries[index % len(countries)])
            latencies.append(time.perf_counter() - started)
            index += 1
        results[name] = (len(latencies) / seconds, _percentile(latencies, 0.99))
    conn.close()
    return results


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    """Build or reuse the projection, then measure HTTP and in-process queries."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "ledger-bench-query"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per endpoint")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--kept", type=int, default=DEFAULT_KEPT, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.kept)
        return
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    path = args.cache_dir / f"query-{args.events}.db"
    build(path, args.events)
    conn = open_reader(path)
    countries = [cell.country for cell in queries.list_countries(conn).items][:50]
    conn.close()
    baseline = in_process(path, countries, min(args.seconds, 5.0))
    print(
        f"{args.events:,} events, {args.connections} keep-alive connections, "
        f"{args.seconds:.0f} s per endpoint, one uvicorn worker; the same 50 countries in turn"
    )
    # Kept answers are what readers meet between two projector commits; with none kept, every
    # request runs its query, as right after a commit.
    for regime, kept in (("answers kept", DEFAULT_KEPT), ("none kept", 0)):
        print(f" {regime}:")
        with _server(path, kept) as port:
            for name, template in (("country summary", COUNTRY), ("activity list", ACTIVITIES)):
                paths = [template.format(country=c) for c in countries]
                asyncio.run(drive(port, paths, 1.0, args.connections))  # warm-up
                latencies = asyncio.run(drive(port, paths, args.seconds, args.connections))
                rate = len(latencies) / args.seconds
                raw_rate, raw_p99 = baseline[name]
                print(
                    f"  {name:<16} HTTP p50 {statistics.median(latencies) * 1000:6.2f} ms"
                    f"  p99 {_percentile(latencies, 0.99) * 1000:6.2f} ms  {rate:8,.0f} req/s"
                    f"  | in-process {raw_rate:8,.0f} calls/s (p99 {raw_p99 * 1000:.2f} ms)"
                    f"  ratio {rate / raw_rate:.2f}"
                )


def _server(path: Path, kept: int) -> contextlib.AbstractContextManager[int]:
    """The API over ``path`` in a child process; its port."""
    return child_server("bench.query", "--serve", str(path), "--kept", str(kept))


@contextlib.contextmanager
def child_server(module: str, *args: str) -> Iterator[int]:
    """``python -m module *args --port P`` in a child process, once it listens on P; P."""
    port = _free_port()
    child = subprocess.Popen([sys.executable, "-m", module, *args, "--port", str(port)])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        child.terminate()
        child.wait(10)


if __name__ == "__main__":
    main()
