"""Dashboard benchmark: how long each page takes to render, p50 and p99, on N synthetic events.

The goal (issue 10) is that no page takes more than 200 ms on 100k events. It fills a projection
with the applier exactly as ``bench/query.py`` does (and shares its cache of built files), then
asks the API's app, dashboard included, for each page in-process through Litestar's TestClient:
no sockets, so the figure is the page's own work (queries, shaping, template, SVG) plus a small
constant for the client. Keys rotate (countries, programmes, years, activities), so no page is
measured on one lucky key. The activity page has no NATS connection here, so it reads no
history from the stream; that is a network round trip, not rendering.

    python -m bench.dashboard --events 100000
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from litestar.testing import TestClient

from bench.query import build
from projections import queries
from projections.db import open_reader
from services.api.app import create_app

GOAL_MS = 200.0


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


def page_urls(path: Path, count: int) -> dict[str, list[str]]:
    """For each page measured, ``count`` URLs over different keys, read from the projection."""
    conn = open_reader(path)
    try:
        countries = [c.country for c in queries.list_countries(conn).items]
        programmes = [c.programme for c in queries.list_programmes(conn).items]
        years = [c.year for c in queries.list_years(conn).items]
        activities = [a.activity_id for a in queries.list_activities(conn, limit=count).items]
    finally:
        conn.close()

    def pick(values: list, i: int) -> object:
        return values[i % len(values)]

    return {
        "overview": ["/"] * count,
        "overview, map of a metric": ["/?metric=people_trained"] * count,
        "countries, map and table": ["/countries"] * count,
        "countries, sorted by figure": ["/countries?sort=-people_trained&metric=people_trained"]
        * count,
        "country": [f"/countries/{pick(countries, i)}" for i in range(count)],
        "country, one year": [
            f"/countries/{pick(countries, i)}?year={pick(years, i)}" for i in range(count)
        ],
        "programme": [f"/programmes/{pick(programmes, i)}" for i in range(count)],
        "year": [f"/years/{pick(years, i)}" for i in range(count)],
        "activity": [f"/activities/{pick(activities, i)}" for i in range(count)],
        "search, words": ["/search?q=synthetic"] * count,
        "search, words + filters": [
            f"/search?q=synthetic&country={pick(countries, i)}&year={pick(years, i)}&kind=training"
            for i in range(count)
        ],
        "provenance, country": [
            f"/provenance?country={pick(countries, i)}&metric=people_trained" for i in range(count)
        ],
    }


def measure(client: TestClient, urls: list[str], warmup: int = 3) -> list[float]:
    """Seconds each request took, after a few unmeasured ones."""
    for url in urls[:warmup]:
        client.get(url)
    latencies = []
    for url in urls:
        started = time.perf_counter()
        response = client.get(url)
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
    return latencies


def main() -> None:
    """Build or reuse the projection, then time every page."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "ledger-bench-query"
    )
    parser.add_argument("--requests", type=int, default=100, help="per page")
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    path = args.cache_dir / f"query-{args.events}.db"
    build(path, args.events)
    pages = page_urls(path, args.requests)
    print(
        f"{args.events:,} events, {args.requests} requests per page, in-process "
        f"(goal: no page above {GOAL_MS:.0f} ms)"
    )
    worst = 0.0
    with TestClient(app=create_app(path)) as client:
        for name, urls in pages.items():
            latencies = measure(client, urls)
            p50, p99 = statistics.median(latencies) * 1000, _percentile(latencies, 0.99) * 1000
            worst = max(worst, p99)
            flag = "" if p99 <= GOAL_MS else "  over the goal"
            print(f"  {name:<24} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms{flag}")
    print(f"worst p99 {worst:.1f} ms: {'within' if worst <= GOAL_MS else 'OVER'} the goal")


if __name__ == "__main__":
    main()
