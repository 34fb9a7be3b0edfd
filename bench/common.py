"""What every benchmark needs: a server to run against, a clock, and a way to print results."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from services.infra.embedded import EmbeddedNats

__all__ = ["Timer", "bench_server", "parser", "report"]


def parser(description: str, default_events: int) -> argparse.ArgumentParser:
    """The flags every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--events", type=int, default=default_events, help="how many events")
    p.add_argument("--nats-url", default=None, help="use this server instead of an embedded one")
    return p


@contextlib.contextmanager
def bench_server(url: str | None) -> Iterator[str]:
    """The given server's URL, or a fresh embedded server in a temporary directory."""
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp, EmbeddedNats(Path(tmp)) as s:
        yield s.url


class Timer:
    """Wall-clock seconds of a ``with`` block."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def report(rows: list[tuple[str, int, float]], baseline: str) -> None:
    """Print events/s for each measured path and its ratio to the baseline path."""
    rates = {name: count / seconds for name, count, seconds in rows}
    base = rates[baseline]
    width = max(len(name) for name, _, _ in rows)
    for name, count, seconds in rows:
        rate = rates[name]
        print(
            f"  {name:<{width}}  {count:>9,} events  {seconds:7.2f} s"
            f"  {rate:>10,.0f} ev/s  ratio {rate / base:.2f}"
        )
