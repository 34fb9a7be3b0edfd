"""Hostile commands sent raw to a running intake: each gets a small ``invalid`` reply.

Security finding 3: intake took a 300 KB title, a 100 KB actor and 20,000 partners; deep JSON
raised ``RecursionError``, which reached the office as "unavailable, retry"; 50,000 duplicate
countries made a reply over 1 MiB that was never sent. Here each such command goes on the
intake subject as bytes, past any client-side check, against a real nats-server. The reply must
be ``invalid`` and name the field, stay under 4 KiB, store nothing, and log no traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NATS

from events.commands import Rejected, Replies, decode_reply
from events.limits import MAX_COMMAND_BYTES
from events.store import EventStore
from events.subjects import Namespace
from services.client.office import OfficeClient
from tests.factories import make_reported

SMALL_REPLY = 4 * 1024


@pytest.fixture
async def one_stored(nc: NATS, namespace: Namespace, intake: None, store: EventStore) -> int:
    """A stream holding one accepted report, so that "nothing stored" is not trivially true."""
    await OfficeClient(nc, "KAZ", namespace, actor="kaz@example.org").report(
        make_reported(office="KAZ")
    )
    return await store.last_sequence()


def report(**activity: Any) -> dict[str, Any]:
    """A report command of office KAZ as plain data, with some activity fields overridden."""
    return {
        "command": "report",
        "command_id": "hostile-1",
        "issued_at": "2021-06-30T12:00:00Z",
        "actor": "kaz@example.org",
        "activity": msgspec.to_builtins(make_reported(office="KAZ", activity_id="HOSTILE-1"))
        | activity,
    }


def encoded(value: Any) -> bytes:
    return msgspec.json.encode(value)


def with_actor(actor: str) -> bytes:
    return encoded(report() | {"actor": actor})


def nested(depth: int) -> bytes:
    """A report whose ``notes`` is lists nested so that the whole command is ``depth`` deep."""
    lists = depth - 2
    return encoded(report(notes=0)).replace(b'"notes":0', b'"notes":' + b"[" * lists + b"]" * lists)


CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    # Larger than one command may be: refused on size before any field is read.
    "title-300KB": (lambda: encoded(report(title="t" * 300_000)), ""),
    "actor-100KB": (lambda: with_actor("a" * 100_000), ""),
    "countries-50000-duplicates": (
        lambda: encoded(report(countries=[{"country": "KAZ"}] * 50_000)),
        "",
    ),
    "command-65KiB": (lambda: encoded(report(summary="s" * (65 * 1024))), ""),
    # Within 64 KiB: refused by the field's own limit, which the reply names.
    "title-60KB": (lambda: encoded(report(title="t" * 60_000)), "title"),
    "actor-60KB": (lambda: with_actor("a" * 60_000), "actor"),
    "partners-20000": (lambda: encoded(report(partners=[""] * 20_000)), "partners"),
    "metrics-51": (
        lambda: encoded(report(metrics={f"m{i}": 1 for i in range(51)})),
        "metrics",
    ),
    "countries-251": (lambda: encoded(report(countries=[{"country": "KAZ"}] * 251)), "countries"),
    # Decoded, then refused by validation with one issue per repeat: the reply lists a few.
    "countries-250-duplicates": (
        lambda: encoded(report(countries=[{"country": "KAZ"}] * 250)),
        "countries.1.country",
    ),
    "depth-17": (lambda: nested(17), ""),
    "depth-100000": (lambda: nested(100_000), ""),
    "depth-100000-unclosed": (lambda: b'{"command":"report","activity":' + b"[" * 100_000, ""),
    "not-utf8": (lambda: encoded(report(title="x")).replace(b'"x"', b'"\xff\xfe"'), ""),
    "huge-integer-year": (
        lambda: encoded(report()).replace(b'"year":2020', b'"year":' + b"9" * 5_000),
        "year",
    ),
    "huge-integer-figure": (
        lambda: encoded(report(metrics={"people_trained": 10**19})),
        "metrics.people_trained",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_hostile_command_gets_a_small_invalid_reply_and_stores_nothing(
    case: str,
    nc: NATS,
    namespace: Namespace,
    store: EventStore,
    one_stored: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    build, field = CASES[case]
    data = build()
    caplog.set_level(logging.WARNING)

    msg = await nc.request(namespace.intake("KAZ"), data, timeout=10)

    reply = decode_reply(msg.data)
    assert isinstance(reply, Rejected), reply
    assert (reply.code, reply.field) == ("invalid", field), reply.message
    assert len(msg.data) < SMALL_REPLY
    assert await store.last_sequence() == one_stored
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_the_size_refusal_states_the_limit(
    nc: NATS, namespace: Namespace, intake: None
) -> None:
    msg = await nc.request(
        namespace.intake("KAZ"), encoded(report(summary="s" * MAX_COMMAND_BYTES)), timeout=10
    )

    reply = decode_reply(msg.data)
    assert isinstance(reply, Rejected)
    assert "65,536 bytes (64 KiB)" in reply.message


async def test_a_batch_of_flooding_reports_gets_small_replies(
    nc: NATS, namespace: Namespace, store: EventStore, one_stored: int
) -> None:
    # Each report repeats one country 250 times: 249 issues each, 100 reports in one request.
    reports = [
        report(countries=[{"country": "KAZ"}] * 250) | {"command_id": f"flood-{i}"}
        for i in range(100)
    ]
    data = encoded({"command": "report_batch", "commands": reports})

    msg = await nc.request(namespace.intake("KAZ"), data, timeout=30)

    reply = decode_reply(msg.data)
    assert isinstance(reply, Replies)
    assert len(reply.replies) == 100
    for each in reply.replies:
        assert isinstance(each, Rejected)
        assert (each.code, each.field) == ("invalid", "countries.1.country")
        assert each.message.endswith("; and 239 more")
        assert len(encoded(each)) < SMALL_REPLY
    assert len(msg.data) < 100 * SMALL_REPLY
    assert await store.last_sequence() == one_stored
