"""Benchmark: N synthetic activities reported through intake, against two lower bounds.

In one run, on one fresh embedded nats-server, it stores the same N activities three ways,
each into its own stream:

- ``intake``: ``ReportActivity`` commands through :meth:`OfficeClient.send_many` to one intake
  instance (the path ``ledger import`` takes, minus file parsing), once in a process of its
  own as deployed, once in the client's process;
- ``append_many``: the sealed events straight into :meth:`EventStore.append_many`, with the
  same expected-sequence and msg-id headers;
- ``raw``: nats-py ``js.publish_async`` of the same bytes to fresh subjects, with no headers;
- ``intake + notary's tree``: intake in its own process as above, with the notary (services/
  notary) in another, keeping the Merkle tree and signing checkpoints; timed until the tree
  holds every event, against intake alone in the same run (the verifiable log's goal: < 10%).

It prints events/s for each and the ratio intake/raw. Run: ``python -m bench.import
--events 100000``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

import nats

from bench.synthetic import synthetic_activities
from events.codec import encode
from events.commands import Accepted
from events.envelope import new_event_id, seal, utc_now
from events.signing import new_key_pair
from events.store import EventStore
from events.subjects import Namespace
from replay.tree import TreeStore
from services.client.office import OfficeClient
from services.infra.embedded import EmbeddedNats
from services.intake.service import run_intake


async def _through_intake(
    url: str, n: int, window: int, workers: int, separate: bool, notary: Path | None = None
) -> float:
    nc = await nats.connect(url)
    tag = f"{int(separate)}{'_notary' if notary else ''}"
    store = EventStore(nc, Namespace.for_tests(f"bench_intake_{tag}"))
    await store.ensure_stream()
    stop, ready = asyncio.Event(), asyncio.Event()
    keeper = await _notary(url, store.ns, notary) if notary else None
    if separate:
        # As deployed: intake in a process of its own, on the other core.
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.intake",
            "--nats-url",
            url,
            "--prefix",
            store.ns.prefix,
            "--stream",
            store.ns.stream,
            "--workers",
            str(workers),
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        await process.stdout.readline()  # "intake ready on ..."
    else:
        server = asyncio.create_task(run_intake(url, store, stop, workers=workers, ready=ready))
        await ready.wait()
    client_nc = await nats.connect(url)
    client = OfficeClient(client_nc, None, store.ns, actor="bench", timeout=30)
    now = utc_now()
    commands = (
        (i, client.report_command(a, command_id=f"bench-{i}", issued_at=now))
        for i, a in enumerate(synthetic_activities(n, seed=1))
    )
    started = time.perf_counter()
    accepted = 0
    async for _, reply in client.send_many(commands, window=window):
        accepted += isinstance(reply, Accepted)
    elapsed = time.perf_counter() - started
    if keeper is not None and notary is not None:
        # Done when the tree holds every event (and the checkpoints signed meanwhile).
        tree_file = notary / "tree.db"
        while not tree_file.exists() or _leaves(tree_file, store.ns.stream) < n:
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        keeper.send_signal(signal.SIGTERM)
        await keeper.wait()
    if separate:
        process.send_signal(signal.SIGTERM)
        await process.wait()
    else:
        stop.set()
        await server
    await client_nc.close()
    await nc.close()
    if accepted != n:
        raise SystemExit(f"intake accepted {accepted} of {n}")
    return elapsed


async def _notary(url: str, ns: Namespace, folder: Path) -> asyncio.subprocess.Process:
    """The notary in a process of its own, keeping the stream's tree in ``folder``."""
    seed = folder / "ledger.nk"
    seed.write_text(new_key_pair()[0])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.notary",
        "--nats-url",
        url,
        "--prefix",
        ns.prefix,
        "--stream",
        ns.stream,
        "--tree",
        str(folder / "tree.db"),
        "--seed",
        str(seed),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    await process.stdout.readline()  # "notary ready on ..."
    return process


def _leaves(path: Path, stream: str) -> int:
    tree = TreeStore(path, stream)
    try:
        return tree.size()
    finally:
        tree.close()


def _sealed(n: int) -> list:
    now = utc_now()
    return [
        (seal(a, office=a.office, actor="bench", event_id=new_event_id(now, seed=str(i))), 0)
        for i, a in enumerate(synthetic_activities(n, seed=1))
    ]


async def _append_many(url: str, n: int) -> float:
    events = _sealed(n)
    nc = await nats.connect(url)
    store = EventStore(nc, Namespace.for_tests("bench_append"), window=2000)
    await store.ensure_stream()
    started = time.perf_counter()
    outcomes = await store.append_many(events)
    elapsed = time.perf_counter() - started
    await nc.close()
    stored = sum(o.status == "stored" for o in outcomes)
    if stored != n:
        raise SystemExit(f"append_many stored {stored} of {n}")
    return elapsed


async def _raw(url: str, n: int) -> float:
    bodies = [encode(event) for event, _ in _sealed(n)]
    nc = await nats.connect(url)
    ns = Namespace.for_tests("bench_raw")
    await EventStore(nc, ns).ensure_stream()
    js = nc.jetstream(publish_async_max_pending=2000)
    started = time.perf_counter()
    for i, body in enumerate(bodies):
        await js.publish_async(ns.activity("HQ", f"R{i}"), body)
    await js.publish_async_completed()
    elapsed = time.perf_counter() - started
    await nc.close()
    return elapsed


async def _run(n: int, window: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedNats(Path(tmp)) as server:
        notary = Path(tmp) / "notary"
        notary.mkdir()
        rates = {
            "intake, own process": n / await _through_intake(server.url, n, window, workers, True),
            "intake + notary's tree": n
            / await _through_intake(server.url, n, window, workers, True, notary),
            "intake, in-process": n / await _through_intake(server.url, n, window, workers, False),
            "append_many": n / await _append_many(server.url, n),
            "raw publish_async": n / await _raw(server.url, n),
        }
    for name, rate in rates.items():
        print(f"{name:>30}: {rate:10,.0f} events/s")
    raw, append = rates["raw publish_async"], rates["append_many"]
    kept = rates["intake + notary's tree"] / rates["intake, own process"]
    print(f"{'with the tree / without':>30}: {kept:10.2f}   (goal: >= 0.91, i.e. < 10% added)")
    for name in ("intake, own process", "intake, in-process"):
        print(f"{name + ' / raw':>30}: {rates[name] / raw:10.2f}")
        print(f"{name + ' / append':>30}: {rates[name] / append:10.2f}")


def main() -> None:
    """Parse the flags and run the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench.import", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000, help="activities to store")
    parser.add_argument("--window", type=int, default=1000, help="commands in flight")
    parser.add_argument("--workers", type=int, default=64, help="intake handlers at once")
    args = parser.parse_args()
    print(f"{args.events:,} activities, window {args.window}, {args.workers} intake workers")
    asyncio.run(_run(args.events, args.window, args.workers))


if __name__ == "__main__":
    main()
