"""Time-travel benchmark: answers as of random past sequences, over HTTP and in-process.

It uses the projection of ``bench.query`` (N synthetic events through the applier, kept in a
cache directory), and measures, at random past sequences:

- an as-of country summary and an as-of filtered activity list, over HTTP with 8 keep-alive
  connections and no answers kept (every request runs its query), beside the same query
  functions called in-process, the baseline;
- the first answer at a sequence never asked before, one request at a time;
- the present's country summary over the same server, for comparison;
- what the time-travel tables add to the file (SQLite's ``dbstat``).

    python -m bench.asof --events 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from bench.query import _percentile, _server, build, drive
from projections import queries
from projections.db import open_reader
from projections.temporal import Scope

COUNTRY = "/v1/countries/{country}?as_of_sequence={sequence}"
ACTIVITIES = "/v1/activities?country={country}&year=2015&limit=50&as_of_sequence={sequence}"
PRESENT = "/v1/countries/{country}"

PAST = (
    "footprints",
    "activity_documents",
    "activities_past",
    "activity_countries_past",
    "marks",
    "marks_by_year",
    "marks_by_programme",
)
"""The tables (and their indexes) that only time travel reads."""
TIMELINE = ("timeline",)


def table_sizes(path: Path) -> dict[str, int]:
    """Bytes per table, its indexes counted with it (SQLite's ``dbstat``)."""
    conn = open_reader(path)
    try:
        owners = dict(
            conn.execute(
                "SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"
            )
        )
        sizes: dict[str, int] = {}
        for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            owner = owners.get(name, name)
            sizes[owner] = sizes.get(owner, 0) + size
        return sizes
    finally:
        conn.close()


def in_process(
    path: Path, pairs: list[tuple[str, int]], seconds: float
) -> dict[str, tuple[float, float]]:
    """The baseline: the same query functions, called directly; (calls/s, p99 s) each."""
    conn = open_reader(path)
    calls = {
        "as-of country": lambda c, k: queries.country_summary(
            conn, c, scope=Scope(as_of_sequence=k)
        ),
        "as-of list": lambda c, k: queries.list_activities(
            conn, country=c, year=2015, limit=50, scope=Scope(as_of_sequence=k)
        ),
    }
    results = {}
    for name, call in calls.items():
        latencies = []
        deadline = time.perf_counter() + seconds
        index = 0
        while time.perf_counter() < deadline:
            country, sequence = pairs[index % len(pairs)]
            started = time.perf_counter()
            call(country, sequence)
            latencies.append(time.perf_counter() - started)
            index += 1
        results[name] = (len(latencies) / seconds, _percentile(latencies, 0.99))
    conn.close()
    return results


async def _first_answers(port: int, paths: list[str]) -> list[float]:
    """One request at a time, each at a sequence not asked before; their latencies."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies = []
    try:
        for path in paths:
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{path}: {head[:40]!r}")
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()
    return latencies


def main() -> None:
    """Build or reuse the projection, then measure as-of answers and the file's growth."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "ledger-bench-query"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per endpoint")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    path = args.cache_dir / f"query-{args.events}.db"
    build(path, args.events)

    sizes = table_sizes(path)
    total = sum(sizes.values())
    past = sum(sizes.get(name, 0) for name in PAST)
    line = sum(sizes.get(name, 0) for name in TIMELINE)
    present = total - past - line
    print(
        f"file {total / 1e6:,.0f} MB: the present's tables {present / 1e6:,.0f} MB, the past "
        f"{past / 1e6:,.0f} MB ({', '.join(f'{n} {sizes.get(n, 0) / 1e6:,.0f}' for n in PAST)}), "
        f"timeline {line / 1e6:,.0f} MB; growth x{total / present:.2f}"
    )

    conn = open_reader(path)
    countries = [cell.country for cell in queries.list_countries(conn).items][:50]
    last = queries.current_sequence(conn)
    conn.close()
    rng = random.Random(7)
    pairs = [(rng.choice(countries), rng.randrange(1, last)) for _ in range(5000)]
    baseline = in_process(path, pairs, min(args.seconds, 5.0))
    print(
        f"{args.events:,} events, {args.connections} keep-alive connections, "
        f"{args.seconds:.0f} s per endpoint, one uvicorn worker, no answers kept; "
        "random countries at random past sequences"
    )
    with _server(path, 0) as port:
        fresh = [
            COUNTRY.format(country=rng.choice(countries), sequence=rng.randrange(1, last))
            for _ in range(20)
        ]
        first = asyncio.run(_first_answers(port, fresh))
        print(
            f"  first answers at never-asked sequences (20, one at a time): median "
            f"{statistics.median(first) * 1000:.1f} ms, max {max(first) * 1000:.1f} ms"
        )
        for name, template in (
            ("as-of country", COUNTRY),
            ("as-of list", ACTIVITIES),
            ("present country", PRESENT),
        ):
            paths = [template.format(country=c, sequence=k) for c, k in pairs]
            asyncio.run(drive(port, paths[:200], 1.0, args.connections))  # warm-up
            latencies = asyncio.run(drive(port, paths, args.seconds, args.connections))
            rate = len(latencies) / args.seconds
            ratio = ""
            if name in baseline:
                raw_rate, raw_p99 = baseline[name]
                ratio = (
                    f"  | in-process {raw_rate:8,.0f} calls/s (p99 {raw_p99 * 1000:.2f} ms)"
                    f"  ratio {rate / raw_rate:.2f}"
                )
            print(
                f"  {name:<16} HTTP p50 {statistics.median(latencies) * 1000:6.2f} ms"
                f"  p99 {_percentile(latencies, 0.99) * 1000:6.2f} ms  {rate:8,.0f} req/s{ratio}"
            )


if __name__ == "__main__":
    main()
