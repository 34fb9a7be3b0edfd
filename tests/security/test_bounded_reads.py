"""Bounded reads: a long download never stalls the server, and provenance comes in pages.

The projection holds ``BULK`` activities in Kazakhstan, applied through the real applier; the
server is the real one (``ApiServer`` under uvicorn) in a process of its own, as ``ledger up``
runs it, so that the timings are the server's and not this test's client's.

Figures, worked out here: activity ``i`` trained ``i % 50 + 1`` people, and every tenth
activity also reported ``participants`` instead; so the provenance of people trained in
Kazakhstan lists the other nine in ten, and their values sum to the figure.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from events.model import CountryShare
from projections.apply import Applier
from projections.db import ensure_live, open_writer
from tests.factories import make_reported, sealed
from tests.query_seed import raw_messages

BULK = 20_000
"""Activities in the projection: enough that writing them all as CSV takes a while."""

ROOT = Path(__file__).resolve().parents[2]

_SERVE = """
import asyncio, sys
from pathlib import Path
from services.api.app import create_app
from services.api.server import ApiServer

async def main() -> None:
    server = ApiServer("127.0.0.1", 0)
    print(server.bind(), flush=True)
    await server.serve(create_app(Path(sys.argv[1])), asyncio.Event())

asyncio.run(main())
"""


def _trained(index: int) -> int:
    return index % 50 + 1


def _counted(index: int) -> bool:
    return index % 10 != 0


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A live projection of ``BULK`` activities in Kazakhstan."""
    path = tmp_path_factory.mktemp("bulk") / "projections" / "ledger.db"
    events = [
        sealed(
            make_reported(
                activity_id=f"BULK-{index:05d}",
                title=f"Workshop {index}",
                countries=[CountryShare("KAZ")],
                metrics={"people_trained": _trained(index)}
                if _counted(index)
                else {"participants": 3},
            )
        )
        for index in range(BULK)
    ]
    conn = open_writer(ensure_live(path))
    try:
        messages = raw_messages(events)
        for start in range(0, len(messages), 5_000):
            Applier(conn).apply(messages[start : start + 5_000])
    finally:
        conn.close()
    return path


@pytest.fixture(scope="module")
def base_url(live: Path) -> Iterator[str]:
    """The API over ``live``, served by ``ApiServer`` in a child process."""
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(live)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        assert url.startswith("http://"), url
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)
        yield url
    finally:
        child.terminate()
        child.wait(10)


async def test_healthz_answers_at_once_while_long_downloads_stream(base_url: str):
    in_flight = 0
    downloads: list[tuple[int, int]] = []
    done = asyncio.Event()

    async def download_again_and_again(client: httpx.AsyncClient) -> None:
        nonlocal in_flight
        while not done.is_set():
            in_flight += 1
            try:
                async with client.stream("GET", "/csv/activities?country=KAZ") as response:
                    lines = 0
                    async for chunk in response.aiter_bytes():
                        lines += chunk.count(b"\n")
                downloads.append((response.status_code, lines))
            finally:
                in_flight -= 1

    latencies: list[float] = []
    busy_during: list[int] = []
    limits = httpx.Limits(max_connections=10)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as downloader,
        httpx.AsyncClient(base_url=base_url, timeout=10) as prober,
    ):
        await prober.get("/healthz")  # the connection is open before the clock runs
        loaders = [asyncio.create_task(download_again_and_again(downloader)) for _ in range(3)]
        await asyncio.sleep(0.3)  # every loader is in the middle of a download
        for _ in range(15):
            busy_during.append(in_flight)
            started = time.perf_counter()
            response = await prober.get("/healthz")
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200
            await asyncio.sleep(0.05)
        done.set()
        await asyncio.gather(*loaders)

    # Each download is the header and every activity; they ran all along the measurement.
    assert downloads and set(downloads) == {(200, BULK + 1)}
    assert min(busy_during) >= 1, busy_during
    median = statistics.median(latencies)
    worst = max(latencies)
    print(f"/healthz during downloads: median {median * 1000:.1f} ms, max {worst * 1000:.1f} ms")
    assert median < 0.100, latencies


def test_provenance_pages_list_every_contribution_once(base_url: str):
    limit = 300
    counted = [index for index in range(BULK) if _counted(index)]
    seen: list[str] = []
    values = 0.0
    pages = 0
    url = f"/v1/provenance?country=KAZ&metric=people_trained&limit={limit}"
    with httpx.Client(base_url=base_url, timeout=30) as client:
        cursor = None
        while True:
            response = client.get(url + (f"&cursor={cursor}" if cursor else ""))
            assert response.status_code == 200, response.text
            page = response.json()
            pages += 1
            assert page["limit"] == limit
            assert page["total"] == sum(_trained(index) for index in counted)
            assert page["activities"] == len(counted)
            cursor = page["next_cursor"]
            # Every page is full but the last.
            assert len(page["items"]) == (limit if cursor else len(counted) - limit * (pages - 1))
            seen.extend(item["activity_id"] for item in page["items"])
            values += sum(item["value"] for item in page["items"])
            if cursor is None:
                break
        too_many = client.get(f"{url.replace(str(limit), '501')}")

    assert pages == -(-len(counted) // limit)
    assert seen == [f"BULK-{index:05d}" for index in counted]
    assert values == sum(_trained(index) for index in counted)
    assert (too_many.status_code, too_many.json()["field"]) == (400, "limit")


def test_provenance_csv_is_a_page_with_the_next_cursor(base_url: str):
    with httpx.Client(base_url=base_url, timeout=30) as client:
        first = client.get("/v1/provenance?country=KAZ&metric=people_trained&format=csv&limit=7")
        rest = client.get(
            "/v1/provenance?country=KAZ&metric=people_trained&format=csv&limit=7"
            f"&cursor={first.headers['x-next-cursor']}"
        )
        whole = client.get("/csv/provenance?country=KAZ&metric=people_trained")

    assert first.headers["content-type"].startswith("text/csv")
    ids = [line.split(",")[0] for line in first.text.splitlines()[1:]]
    # BULK-00000 reported no one trained; the next seven did.
    assert ids == [f"BULK-{index:05d}" for index in range(1, 8)]
    assert rest.text.splitlines()[1].startswith("BULK-00008,")
    # The dashboard's download is every contribution, a header line above them.
    assert len(whole.text.splitlines()) == 1 + sum(1 for i in range(BULK) if _counted(i))
