"""Append and read throughput of the EventStore against raw nats-py, in one run.

    python -m bench.append [--events 100000] [--nats-url URL]

Appends N synthetic events with ``EventStore.append_many``, then publishes the same encoded
payloads with raw nats-py ``publish_async`` (bare, and with the same headers) to streams of
their own. Then reads the ledger's stream back through ``EventStore.read`` (decoding every event)
and through a raw ordered consumer that only counts. Ratios are to the raw path of each pair.
"""

from __future__ import annotations

import asyncio

import nats
from nats.js import api

from bench.common import Timer, bench_server, parser, report
from bench.synthetic import synthetic_events
from events.codec import encode
from events.store import EventStore
from events.subjects import Namespace

WINDOW = 2000


async def _raw_publish(
    nc: nats.NATS, ns: Namespace, messages: list[tuple[str, bytes, dict]]
) -> None:
    js = nc.jetstream(publish_async_max_pending=WINDOW)
    await EventStore(nc, ns).ensure_stream()
    for subject, data, headers in messages:
        await js.publish_async(subject, data, headers=headers or None)
    await js.publish_async_completed()


async def _raw_read(nc: nats.NATS, ns: Namespace, total: int) -> int:
    js = nc.jetstream()
    done = asyncio.Event()
    count = 0

    async def on_message(msg: object) -> None:
        nonlocal count
        count += 1
        if count >= total:
            done.set()

    sub = await js.subscribe(
        ns.activities,
        stream=ns.stream,
        cb=on_message,
        ordered_consumer=True,
        config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL),
        pending_bytes_limit=-1,
    )
    await done.wait()
    await sub.unsubscribe()
    return count


async def main(events: int, url: str) -> None:
    print(f"generating {events:,} synthetic events ...")
    items = list(synthetic_events(events))
    nc = await nats.connect(url)
    ledger = EventStore(nc, Namespace.for_tests("bench_ledger"), window=WINDOW)
    await ledger.ensure_stream()
    bare_ns, headed_ns = Namespace.for_tests("bench_bare"), Namespace.for_tests("bench_headed")

    bare = [(bare_ns.activity(e.office, e.activity_id), encode(e), {}) for e, _ in items]
    headed = []
    for event, expected in items:
        _, data, headers = ledger.message_for(event, expected)
        headed.append((headed_ns.activity(event.office, event.activity_id), data, headers))
        headers["Nats-Expected-Last-Subject-Sequence-Subject"] = headed_ns.activity_filter(
            event.activity_id
        )

    with Timer() as raw_bare:
        await _raw_publish(nc, bare_ns, bare)
    with Timer() as raw_headed:
        await _raw_publish(nc, headed_ns, headed)
    with Timer() as ours:
        outcomes = await ledger.append_many(items)
    stored = sum(o.status == "stored" for o in outcomes)
    if stored != events:
        raise SystemExit(f"only {stored:,} of {events:,} stored: {outcomes[0]}")

    print(f"\nappend ({events:,} events, window {WINDOW})")
    report(
        [
            ("raw publish_async, bare", events, raw_bare.seconds),
            ("raw publish_async, same headers", events, raw_headed.seconds),
            ("EventStore.append_many", events, ours.seconds),
        ],
        baseline="raw publish_async, bare",
    )

    with Timer() as raw_read:
        got = await _raw_read(nc, ledger.ns, events)
    with Timer() as our_read:
        read = 0
        async for _ in ledger.read():
            read += 1
    if read != events or got != events:
        raise SystemExit(f"read {read:,} and {got:,} of {events:,}")
    print(f"\nread the whole stream ({events:,} events)")
    report(
        [
            ("raw ordered consumer, count only", events, raw_read.seconds),
            ("EventStore.read, decoded", events, our_read.seconds),
        ],
        baseline="raw ordered consumer, count only",
    )
    await nc.close()


if __name__ == "__main__":
    args = parser(__doc__.splitlines()[0], default_events=100_000).parse_args()
    with bench_server(args.nats_url) as server_url:
        asyncio.run(main(args.events, server_url))
