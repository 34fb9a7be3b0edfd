"""Intake against a real nats-server: each error code through the client, concurrency, retries."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import nats
import pytest

from events.commands import Accepted, Rejected, ReportActivity, ReviseActivity
from events.envelope import utc_now
from events.errors import ActivityNotFoundError, ActivityWithdrawnError, InvalidEventError
from events.model import ActivityRevised, ActivityWithdrawn, CountryShare
from events.store import EventStore
from events.subjects import Namespace
from services.client.errors import ForbiddenError, VersionConflict
from services.client.office import OfficeClient
from services.infra.embedded import EmbeddedNats
from tests.factories import make_reported


@pytest.fixture
def kaz(nc: Any, namespace: Namespace, intake: None) -> OfficeClient:
    """The Kazakhstan office's client."""
    return OfficeClient(nc, "KAZ", namespace, actor="kaz@example.org")


async def test_an_office_reports_revises_and_withdraws(kaz: OfficeClient, store: EventStore):
    reported = await kaz.report(make_reported(office="KAZ"))
    revised = await kaz.revise(
        "KAZ-TRAINING-1", {"metrics.people_trained": 600}, "final list", expected_version=1
    )
    withdrawn = await kaz.withdraw("KAZ-TRAINING-1", "reported twice", expected_version=2)

    assert [(r.version, r.duplicate) for r in (reported, revised, withdrawn)] == [
        (1, False),
        (2, False),
        (3, False),
    ]
    loaded = await store.load("KAZ-TRAINING-1")
    assert [r.event.event_id for r in loaded.events] == [
        reported.event_id,
        revised.event_id,
        withdrawn.event_id,
    ]
    assert [r.sequence for r in loaded.events] == [
        reported.sequence,
        revised.sequence,
        withdrawn.sequence,
    ]
    assert loaded.events[1].event.payload.changes.metrics == {"people_trained": 600}
    assert loaded.events[1].event.actor == "kaz@example.org"


async def test_a_hundred_large_reports_travel_in_requests_intake_accepts(
    kaz: OfficeClient, store: EventStore
) -> None:
    # 100 reports near their text limits (events/limits.py) make about 1.5 MB, over intake's
    # 1 MiB bound on one request: the client splits them, and every report is stored.
    long_text = "x" * 5_000
    reports = [
        kaz.report_command(
            make_reported(office="KAZ", activity_id=f"BIG-{i}", summary=long_text, notes=long_text)
        )
        for i in range(100)
    ]
    replies = [r async for _, r in kaz.send_many((i, c) for i, c in enumerate(reports))]
    assert sum(isinstance(r, Accepted) and not r.duplicate for r in replies) == 100
    assert await store.last_sequence() == 100


async def test_each_refusal_raises_its_error_through_the_client(
    kaz: OfficeClient, nc: Any, namespace: Namespace
) -> None:
    # Check invalid: the error names the field.
    with pytest.raises(InvalidEventError) as invalid:
        await kaz.report(make_reported(office="KAZ", countries=[CountryShare("Atlantis")]))
    assert invalid.value.field == "countries.0.country"
    # Check unknown_activity.
    with pytest.raises(ActivityNotFoundError):
        await kaz.revise("NO-SUCH", {"year": 2021}, "typo")
    await kaz.report(make_reported(office="KAZ"))
    # Check forbidden: another office may not touch KAZ's activity.
    vnm = OfficeClient(nc, "VNM", namespace)
    with pytest.raises(ForbiddenError):
        await vnm.withdraw("KAZ-TRAINING-1", "not ours")
    # Check invalid: a revision must change something, and must say why.
    with pytest.raises(InvalidEventError) as nothing:
        await kaz.revise("KAZ-TRAINING-1", {"year": 2020}, "same year")
    assert nothing.value.field == "changes"
    with pytest.raises(InvalidEventError) as no_reason:
        await kaz.withdraw("KAZ-TRAINING-1", " ")
    assert no_reason.value.field == "reason"
    # Check conflict: a stale expected version, answered with the current one.
    with pytest.raises(VersionConflict) as stale:
        await kaz.revise("KAZ-TRAINING-1", {"year": 2021}, "x", expected_version=4)
    assert stale.value.version == 1
    # Check withdrawn.
    await kaz.withdraw("KAZ-TRAINING-1", "reported twice")
    with pytest.raises(ActivityWithdrawnError):
        await kaz.revise("KAZ-TRAINING-1", {"year": 2021}, "too late")


async def test_concurrent_revisions_one_wins_the_other_retries_and_nothing_is_lost(
    nc: Any, nats_server: EmbeddedNats, namespace: Namespace, kaz: OfficeClient, store: EventStore
) -> None:
    await kaz.report(make_reported(office="KAZ", metrics={"people_trained": 571}))
    other_nc = await nats.connect(nats_server.url)
    other = OfficeClient(other_nc, "KAZ", namespace)
    try:
        outcomes = await asyncio.gather(
            kaz.revise("KAZ-TRAINING-1", {"metrics.people_trained": 600}, "list", 1),
            other.revise("KAZ-TRAINING-1", {"metrics.participants": 40}, "count", 1),
            return_exceptions=True,
        )
        winners = [o for o in outcomes if isinstance(o, Accepted)]
        losers = [o for o in outcomes if isinstance(o, VersionConflict)]
        assert (len(winners), len(losers)) == (1, 1)
        assert losers[0].version == 2
        # Check the loser's retry on the version it was told about succeeds.
        retry_client = other if outcomes[1] is losers[0] else kaz
        change = (
            {"metrics.participants": 40}
            if retry_client is other
            else {"metrics.people_trained": 600}
        )
        retried = await retry_client.revise("KAZ-TRAINING-1", change, "again", losers[0].version)
        assert retried.version == 3
    finally:
        await other_nc.close()
    loaded = await store.load("KAZ-TRAINING-1")
    final = loaded.events[-1].event.payload
    assert isinstance(final, ActivityRevised)
    assert final.changes.metrics == {"people_trained": 600, "participants": 40}


async def test_a_retried_command_is_stored_once_and_answered_with_the_first_outcome(
    kaz: OfficeClient, store: EventStore
) -> None:
    command = kaz.report_command(make_reported(office="KAZ"))
    first = await kaz.send(command)
    # Check a retry much later, and two retries racing each other.
    again, *racing = await asyncio.gather(*(kaz.send(command) for _ in range(3)))
    revise = ReviseActivity(
        command_id="rev-1",
        issued_at=utc_now(),
        actor="kaz",
        activity_id="KAZ-TRAINING-1",
        changes={"year": 2021},
        reason="year was wrong",
    )
    revised = await kaz.send(revise)
    revised_again = await kaz.send(revise)

    assert all(r.event_id == first.event_id and r.duplicate for r in (again, *racing))
    assert (again.sequence, again.version) == (first.sequence, 1)
    assert revised_again == Accepted(
        event_id=revised.event_id,
        activity_id="KAZ-TRAINING-1",
        sequence=revised.sequence,
        version=2,
        duplicate=True,
    )
    assert (await store.load("KAZ-TRAINING-1")).version == 2
    assert await store.last_sequence() == 2


@pytest.fixture
def two_intakes(nats_server: EmbeddedNats, namespace: Namespace, store: EventStore) -> Iterator:
    """Two intake instances as separate processes, through the standalone entry point."""
    args = [
        sys.executable,
        "-m",
        "services.intake",
        "--nats-url",
        nats_server.url,
        "--prefix",
        namespace.prefix,
        "--stream",
        namespace.stream,
    ]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith("intake ready")
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


@pytest.mark.slow
async def test_two_intake_instances_under_concurrent_load_break_no_rule(
    two_intakes: list, nc: Any, namespace: Namespace, store: EventStore
) -> None:
    n = 60
    client = OfficeClient(nc, "KAZ", namespace, timeout=10)
    reports = [
        client.report_command(make_reported(office="KAZ", activity_id=f"A{i}")) for i in range(n)
    ]
    # Each report sent twice: exactly one stored per activity.
    replies = [r async for _, r in client.send_many((0, c) for c in reports + reports)]
    assert sum(isinstance(r, Accepted) and not r.duplicate for r in replies) == n
    assert sum(isinstance(r, Accepted) and r.duplicate for r in replies) == n

    # Four offices' staff revise every activity at once on version 1: one wins each.
    def revisions() -> Iterator[tuple[str, ReviseActivity]]:
        for i in range(n):
            for k in range(4):
                yield (
                    f"A{i}",
                    ReviseActivity(
                        command_id=f"rev-{i}-{k}",
                        issued_at=utc_now(),
                        actor=f"staff{k}",
                        activity_id=f"A{i}",
                        changes={"metrics.people_trained": 1000 + k},
                        reason="recount",
                        expected_version=1,
                    ),
                )

    revised = [(key, r) async for key, r in client.send_many(revisions(), window=64)]
    wins: dict[str, int] = {}
    for key, reply in revised:
        if isinstance(reply, Accepted):
            wins[key] = wins.get(key, 0) + 1
        else:
            assert isinstance(reply, Rejected)
            assert (reply.code, reply.version) == ("conflict", 2)
    assert wins == {f"A{i}": 1 for i in range(n)}

    # A withdrawal races a blind revision on every activity: nothing may follow a withdrawal.
    def races() -> Iterator[tuple[int, Any]]:
        for i in range(n):
            yield (
                0,
                ReviseActivity(
                    command_id=f"late-{i}",
                    issued_at=utc_now(),
                    actor="x",
                    activity_id=f"A{i}",
                    changes={"title": "Renamed"},
                    reason="late",
                ),
            )
            yield 1, client_withdraw(i)

    def client_withdraw(i: int) -> Any:
        from events.commands import WithdrawActivity

        return WithdrawActivity(
            command_id=f"wd-{i}",
            issued_at=utc_now(),
            actor="x",
            activity_id=f"A{i}",
            reason="duplicate",
        )

    raced = [r async for r in client.send_many(races(), window=64)]
    assert all(isinstance(r, Accepted) for kind, r in raced if kind == 1)
    assert all(isinstance(r, Accepted) or r.code == "withdrawn" for kind, r in raced if kind == 0)

    for i in range(n):
        events = (await store.load(f"A{i}")).events
        chain = [e.event for e in events]
        assert isinstance(chain[0].payload, type(reports[i].activity))
        assert isinstance(chain[-1].payload, ActivityWithdrawn)
        assert [e.prev for e in chain] == ["", *[e.hash for e in chain[:-1]]]
        assert len({e.event_id for e in chain}) == len(chain)
    assert isinstance(reports[0], ReportActivity)
