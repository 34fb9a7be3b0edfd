"""Benchmark of the verifiable log's tree: how fast it grows, and how fast proofs are served.

It builds the notary's tree file (replay/tree.py) of N synthetic payloads of the stream's
size, kept in a cache directory, and measures, in one run:

- appending: leaves/s into the tree file, beside the raw SHA-256 of the same payloads (RFC
  6962 leaf hashes alone, no file): the ratio is what keeping the tree costs over hashing;
- proofs in-process: ``inclusion_of`` at random sequences and ``consistency_of`` at random
  pairs, p50/p99;
- proofs over HTTP: ``GET /v1/proofs/inclusion`` and ``/v1/proofs/consistency`` from the API
  in a child process, one request at a time (the time to serve one: the goal, p99 < 5 ms),
  then 8 keep-alive connections (throughput).

    python -m bench.proofs --leaves 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.query import _percentile, child_server, drive
from events.stored import RawMessage
from projections.db import open_writer
from replay.proofs import consistency_of, inclusion_of
from replay.tree import TreeLocation, TreeStore

_STREAM = "BENCH"
_PAYLOAD = 600
"""Bytes a message has, about a synthetic event's."""


def payloads(n: int) -> Iterator[bytes]:
    """N distinct payloads of :data:`_PAYLOAD` bytes."""
    filler = bytes(range(256)) * (_PAYLOAD // 256 + 1)
    for i in range(n):
        yield i.to_bytes(8, "big") + filler[: _PAYLOAD - 8]


def build(path: Path, n: int) -> tuple[float, float]:
    """The tree of ``n`` payloads at ``path``; (leaves/s into the file, raw hashes/s)."""
    started = time.perf_counter()
    for data in payloads(n):
        hashlib.sha256(b"\x00" + data).digest()
    raw = n / (time.perf_counter() - started)
    path.unlink(missing_ok=True)
    tree = TreeStore(path, _STREAM, writer=True)
    started = time.perf_counter()
    batch: list[RawMessage] = []
    for sequence, data in enumerate(payloads(n), start=1):
        batch.append(RawMessage(sequence, "x", 0, None, data))
        if len(batch) == 5000:
            tree.append(batch)
            batch = []
    tree.append(batch)
    rate = n / (time.perf_counter() - started)
    tree.close()
    return rate, raw


def in_process(path: Path, n: int, calls: int) -> dict[str, list[float]]:
    """Latencies of proofs computed directly from the file."""
    tree = TreeStore(path, _STREAM)
    rng = random.Random(1)
    timings: dict[str, list[float]] = {"inclusion": [], "consistency": []}
    for _ in range(calls):
        size = rng.randint(1, n)
        started = time.perf_counter()
        inclusion_of(tree, rng.randint(1, size), size)
        timings["inclusion"].append(time.perf_counter() - started)
        first = rng.randint(1, n)
        started = time.perf_counter()
        consistency_of(tree, first, rng.randint(first, n))
        timings["consistency"].append(time.perf_counter() - started)
    tree.close()
    return timings


def serve(tree: Path, port: int) -> None:
    """The API with the tree and an empty projection, on loopback (the child process)."""
    import uvicorn

    from services.api.app import create_app

    db = tree.with_name("empty.db")
    open_writer(db).close()
    app = create_app(db, tree=TreeLocation(tree, _STREAM), kept=0)
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop="asyncio"
    )


def _paths(n: int, count: int) -> dict[str, list[str]]:
    rng = random.Random(2)
    inclusions, consistencies = [], []
    for _ in range(count):
        size = rng.randint(1, n)
        inclusions.append(f"/v1/proofs/inclusion?sequence={rng.randint(1, size)}&tree_size={size}")
        first = rng.randint(1, n)
        consistencies.append(f"/v1/proofs/consistency?first={first}&second={rng.randint(first, n)}")
    return {"inclusion": inclusions, "consistency": consistencies}


def _ms(values: list[float], fraction: float) -> str:
    return f"{_percentile(values, fraction) * 1000:6.2f} ms"


def main() -> None:
    """Parse the flags and run the benchmark (or, with --serve, be its server)."""
    parser = argparse.ArgumentParser(prog="python -m bench.proofs", description=__doc__)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="per HTTP measure")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "ledger-bench-proofs"
    )
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    path = args.cache_dir / f"tree-{args.leaves}.db"
    rate, raw = build(path, args.leaves)
    print(
        f"tree of {args.leaves:,} leaves of {_PAYLOAD} bytes: {path.stat().st_size / 1e6:,.0f} MB"
    )
    print(
        f"  append     {rate:10,.0f} leaves/s | raw leaf hashes {raw:10,.0f}/s"
        f"  ratio {rate / raw:.2f}"
    )
    for name, values in in_process(path, args.leaves, 2000).items():
        print(f"  {name:<11} in-process p50 {_ms(values, 0.5)}  p99 {_ms(values, 0.99)}")
    with child_server("bench.proofs", "--serve", str(path)) as port:
        for name, paths in _paths(args.leaves, 5000).items():
            one = asyncio.run(drive(port, paths, args.seconds, 1))
            eight = asyncio.run(drive(port, paths, args.seconds, 8))
            print(
                f"  {name:<11} HTTP, 1 connection p50 {_ms(one, 0.5)}  p99 {_ms(one, 0.99)} "
                f"(goal p99 < 5 ms) | 8 connections {len(eight) / args.seconds:7,.0f} req/s, "
                f"p99 {_ms(eight, 0.99)}"
            )


if __name__ == "__main__":
    main()
