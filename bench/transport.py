"""Benchmark: one request-reply handler behind nats-py and behind FastStream, in one run.

The question it answers: should intake (and the NATS queries) move to FastStream, as the
design suggests? They stay on nats-py unless FastStream answers within 10% of it.

On one fresh embedded nats-server, in this one process, the same trivial handler (decode a
``ReportActivity`` with :func:`events.commands.decode_command`, encode a small ``Accepted``
with :func:`events.commands.encode_reply`) answers N requests from a client that keeps a
bounded window of them in flight, behind:

- ``nats-py``: a queue subscription whose callback waits for one of a bounded number of
  slots and answers in a task of its own, as ``services/intake/service.py`` does;
- ``faststream serial``: a FastStream ``NatsBroker`` subscriber in a queue group, as its
  documentation writes one; FastStream answers with the handler's return value;
- ``faststream max_workers``: the same with ``max_workers``, so that handlers overlap as
  intake's do;
- ``faststream lean``: ``max_workers`` and ``apply_types=False`` (no fast-depends call model):
  the leanest FastStream setup tried.

Every FastStream variant has its per-message logging off (``logger=None``; intake logs no
line per command) and an async decoder that hands the body over as bytes, so that
FastStream's JSON decoding does not run before msgspec's (a plain-function decoder would run in
a worker thread for every message, and cost FastStream two thirds of its rate). The server
and client run on separate connections but in one event loop, as one process; the rates are
therefore lower than a deployment's, the ratios are what to read. Each variant runs
``--rounds`` times, interleaved, after a warm-up; the median is reported.

``--await-ms`` adds an awaited pause to the handler, standing for intake's JetStream append:
it shows what handlers that overlap are worth. Run: ``python -m bench.transport --requests
20000``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from faststream.nats import NatsBroker
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from bench.common import bench_server
from bench.synthetic import synthetic_activities
from events.commands import (
    Accepted,
    ReportActivity,
    decode_command,
    decode_reply,
    encode_command,
    encode_reply,
)
from events.envelope import utc_now
from events.subjects import Namespace

WORKERS = 64
"""Handlers at once, for the variants that overlap them: intake's default."""

Serve = Callable[[str, str, Callable[[bytes], Awaitable[bytes]]], Awaitable["Stop"]]
Stop = Callable[[], Awaitable[None]]


def make_handler(pause: float) -> Callable[[bytes], Awaitable[bytes]]:
    """The handler every transport runs: decode a command, encode a small reply."""

    async def handle(data: bytes) -> bytes:
        command = decode_command(data)
        assert isinstance(command, ReportActivity)
        if pause:
            await asyncio.sleep(pause)
        return encode_reply(
            Accepted(
                event_id=command.command_id,
                activity_id=command.activity.activity_id,
                sequence=1,
                version=1,
            )
        )

    return handle


# -- the transports --------------------------------------------------------------------------


async def serve_nats_py(
    url: str, subject: str, handle: Callable[[bytes], Awaitable[bytes]]
) -> Stop:
    """A queue subscription with a bounded pool of answering tasks, as intake has."""
    nc = await nats.connect(url, name="bench-transport-nats-py")
    slots = asyncio.Semaphore(WORKERS)
    running: set[asyncio.Task[None]] = set()

    async def answer(msg: Msg) -> None:
        try:
            await nc.publish(msg.reply, await handle(msg.data))
        finally:
            slots.release()

    async def on_request(msg: Msg) -> None:
        # Awaited by nats-py before the next message: the wait for a slot is the back-pressure.
        await slots.acquire()
        task = asyncio.create_task(answer(msg))
        running.add(task)
        task.add_done_callback(running.discard)

    sub = await nc.subscribe(subject, queue="bench", cb=on_request, pending_msgs_limit=WORKERS * 64)
    await nc.flush()

    async def stop() -> None:
        await sub.unsubscribe()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        await nc.close()

    return stop


def faststream_server(*, max_workers: int | None, apply_types: bool) -> Serve:
    """A FastStream subscriber's setup, with or without overlapping handlers and fast-depends."""

    async def serve(url: str, subject: str, handle: Callable[[bytes], Awaitable[bytes]]) -> Stop:
        broker = NatsBroker(url, logger=None, apply_types=apply_types)
        options: dict[str, Any] = {"max_workers": max_workers} if max_workers else {}

        async def raw_body(message: Any) -> bytes:
            # FastStream would json.loads a body without content type; msgspec decodes it.
            # Async: FastStream runs a plain function in a worker thread, for every message.
            return message.body

        async def on_request(body: bytes) -> bytes:
            return await handle(body)

        broker.subscriber(subject, queue="bench", decoder=raw_body, **options)(on_request)
        await broker.start()

        async def stop() -> None:
            await broker.stop()

        return stop

    return serve


VARIANTS: dict[str, Serve] = {
    "nats-py": serve_nats_py,
    "faststream serial": faststream_server(max_workers=None, apply_types=True),
    "faststream max_workers": faststream_server(max_workers=WORKERS, apply_types=True),
    "faststream lean": faststream_server(max_workers=WORKERS, apply_types=False),
}
BASELINE = "nats-py"


# -- the client ------------------------------------------------------------------------------


def commands(n: int) -> list[bytes]:
    """``n`` distinct encoded ``ReportActivity`` commands, made before any clock starts."""
    now = utc_now()
    return [
        encode_command(
            ReportActivity(command_id=f"bench-{i}", issued_at=now, actor="bench", activity=a)
        )
        for i, a in enumerate(synthetic_activities(n, seed=1))
    ]


async def drive(nc: NATS, subject: str, bodies: list[bytes], window: int) -> float:
    """Seconds to have every body answered, ``window`` requests in flight; checks each reply."""
    position = 0

    async def worker() -> None:
        nonlocal position
        while position < len(bodies):
            body = bodies[position]
            position += 1
            reply = decode_reply((await nc.request(subject, body, timeout=30)).data)
            if not isinstance(reply, Accepted):
                raise SystemExit(f"unexpected reply: {reply}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(window, len(bodies)))))
    return time.perf_counter() - started


async def measure(
    url: str,
    name: str,
    round_: int,
    bodies: list[bytes],
    *,
    warmup: list[bytes],
    window: int,
    pause: float,
) -> float:
    """Requests per second of one variant, on subjects of its own."""
    subject = Namespace.for_tests(f"transport_{name.replace(' ', '_')}_{round_}").intake("HQ")
    stop = await VARIANTS[name](url, subject, make_handler(pause))
    client = await nats.connect(url, name="bench-transport-client")
    try:
        await drive(client, subject, warmup, window)
        seconds = await drive(client, subject, bodies, window)
    finally:
        await client.close()
        with contextlib.suppress(Exception):
            await stop()
    return len(bodies) / seconds


async def run(url: str, n: int, window: int, rounds: int, pause: float) -> dict[str, float]:
    """The median requests/s of each variant over ``rounds`` interleaved rounds."""
    bodies = commands(n)
    warmup = bodies[: min(1000, n)]
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for round_ in range(rounds):
        for name in VARIANTS:
            rate = await measure(
                url, name, round_, bodies, warmup=warmup, window=window, pause=pause
            )
            rates[name].append(rate)
            print(f"  round {round_ + 1}  {name:<24} {rate:>9,.0f} requests/s", flush=True)
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    """Parse the flags, run every variant against one server, print rates and ratios."""
    parser = argparse.ArgumentParser(prog="python -m bench.transport", description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round")
    parser.add_argument("--window", type=int, default=256, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every variant")
    parser.add_argument(
        "--await-ms", type=float, default=0.0, help="an awaited pause in the handler, in ms"
    )
    parser.add_argument("--nats-url", default=None, help="use this server, not an embedded one")
    args = parser.parse_args()
    print(
        f"{args.requests:,} requests x {args.rounds} rounds, window {args.window}, "
        f"{WORKERS} workers where they overlap, handler pause {args.await_ms} ms"
    )
    with bench_server(args.nats_url) as url:
        rates = asyncio.run(run(url, args.requests, args.window, args.rounds, args.await_ms / 1000))
    base = rates[BASELINE]
    print("median of the rounds:")
    for name, rate in rates.items():
        print(f"  {name:<24} {rate:>9,.0f} requests/s  ratio to {BASELINE} {rate / base:.2f}")
    best = max((name for name in rates if name != BASELINE), key=rates.__getitem__)
    verdict = "within" if rates[best] >= 0.9 * base else "not within"
    print(f"best FastStream variant: {best}, {rates[best] / base:.0%} of {BASELINE}: {verdict} 10%")


if __name__ == "__main__":
    main()
