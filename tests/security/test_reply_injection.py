"""Reply-subject injection: an office points intake's reply at a subject that is not its inbox.

Before the fix, intake answered with ``msg.respond()`` from a user that could append to the
stream and had ``allow_responses``, so an office's command with the reply subject
``ledger.activity.VNM.INJECTED`` stored intake's answer on VNM's activity for ever. Each test
performs the attack against a real nats-server started with the generated permissions, and
checks that nothing was stored and nothing changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from events.commands import Accepted, encode_command
from events.store import EventStore
from projections.db import live_path
from services.api.nats_queries import QueryService
from services.api.read_model import ReadModel
from services.bootstrap import run_stack, stack_components
from services.client.errors import IntakeUnavailableError
from services.client.office import OfficeClient
from services.infra.access import credentials_for
from services.infra.config import Settings
from services.infra.credentials import users_path
from services.infra.replies import ReplyGuard, is_reply_under
from services.infra.stack import connect
from services.infra.violations import PermissionDeniedError, refused_or
from tests.factories import make_reported

AsUser = Callable[[str], Awaitable[NATS]]

_JS_TIMEOUT = 3.0


async def _stream_state(nc: NATS) -> tuple[int, bool, bool]:
    info = await nc.jetstream(timeout=_JS_TIMEOUT).stream_info("LEDGER")
    return info.state.last_seq, info.config.deny_delete, info.config.deny_purge


async def _existing_hq_activity(as_user: AsUser) -> Accepted:
    """An activity of HQ's, reported through intake by the admin, as an import does."""
    admin = OfficeClient(await as_user("admin"), "HQ", timeout=_JS_TIMEOUT)
    suffix = id(admin) % 100_000
    return await admin.report(make_reported(activity_id=f"HQ-TARGET-{suffix}", office="HQ"))


def _targets(existing: str) -> list[str]:
    return [
        "ledger.activity.VNM.INJECTED",
        f"ledger.activity.HQ.{existing}",
        "$JS.API.STREAM.PURGE.LEDGER",
        "$JS.API.STREAM.DELETE.LEDGER",
        "$JS.API.STREAM.UPDATE.LEDGER",
        "ledger.intake.VNM",
    ]


async def test_an_office_cannot_aim_intakes_reply_at_any_other_subject(
    as_user: AsUser, secured_intake: None, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await as_user("admin")
    existing = await _existing_hq_activity(as_user)
    before = await _stream_state(admin)
    kaz = await as_user("office-KAZ")
    client = OfficeClient(kaz, "KAZ", timeout=_JS_TIMEOUT)
    command = encode_command(client.report_command(make_reported(activity_id="KAZ-EVIL")))
    targets = _targets(existing.activity_id)
    with caplog.at_level(logging.WARNING, logger="services.intake.service"):
        for target in targets:
            await kaz.publish("ledger.intake.KAZ", command, reply=target)
        # A legitimate request afterwards: intake reads one office's messages in order, and
        # drops each bad one before it takes the next, so its log is complete by this reply.
        legitimate = await client.report(make_reported(activity_id="KAZ-HONEST", office="KAZ"))
    dropped = [r.getMessage() for r in caplog.records if "violation" in r.getMessage()]
    assert len(dropped) == len(targets)
    for target, message in zip(targets, dropped, strict=True):
        assert repr(target) in message
    # Check only the honest report was stored, and the stream is as strict as before.
    last, deny_delete, deny_purge = await _stream_state(admin)
    assert (last, deny_delete, deny_purge) == (before[0] + 1, True, True)
    assert legitimate.sequence == before[0] + 1
    # Check the target activity can still be revised: no foreign message sits on its subject.
    hq = OfficeClient(admin, "HQ", timeout=_JS_TIMEOUT)
    revised = await hq.revise(existing.activity_id, {"title": "Still ours"}, reason="check")
    assert revised.version == 2
    history = [r.event.activity_id async for r in EventStore(admin).read()]
    assert "KAZ-EVIL" not in history


async def test_an_office_cannot_aim_intakes_reply_at_another_offices_inbox(
    as_user: AsUser, secured: tuple, secured_intake: None, caplog: pytest.LogCaptureFixture
) -> None:
    settings, _ = secured
    guard = ReplyGuard("intake-reply", users_path(settings.data_dir))
    vnm_only = sorted(guard.inboxes("VNM") - guard.inboxes("KAZ"))
    assert len(vnm_only) == 1  # VNM's own inbox; the admin's is shared by every office
    admin = await as_user("admin")
    before = await _stream_state(admin)
    kaz = await as_user("office-KAZ")
    client = OfficeClient(kaz, "KAZ", timeout=_JS_TIMEOUT)
    command = encode_command(client.report_command(make_reported(activity_id="KAZ-STRAY")))
    with caplog.at_level(logging.WARNING, logger="services.intake.service"):
        await kaz.publish("ledger.intake.KAZ", command, reply=f"{vnm_only[0]}.abc.1")
        await kaz.publish("ledger.intake.KAZ", command)  # no reply subject at all
        await client.report(make_reported(activity_id="KAZ-AFTER", office="KAZ"))
    assert sum("violation" in r.getMessage() for r in caplog.records) == 2
    assert (await _stream_state(admin))[0] == before[0] + 1


@pytest.mark.parametrize(
    "subject",
    [
        "ledger.activity.VNM.INJECTED",
        "$JS.API.STREAM.PURGE.LEDGER",
        "$JS.API.STREAM.DELETE.LEDGER",
        "$JS.API.STREAM.UPDATE.LEDGER",
        "ledger.intake.KAZ",
    ],
)
async def test_the_user_that_answers_offices_can_publish_nowhere_else(
    as_user: AsUser, subject: str
) -> None:
    # The server's line, should intake's own check ever fail: its answering user is refused.
    front = await as_user("intake-reply")
    with pytest.raises(PermissionDeniedError, match="refused publish"):
        await refused_or(front, _publish_and_wait(front, subject), [subject])


@pytest.mark.parametrize(
    "subject",
    ["$JS.API.STREAM.PURGE.LEDGER", "ledger.intake.KAZ", "_INBOX.anything"],
)
async def test_the_user_that_appends_answers_nothing(as_user: AsUser, subject: str) -> None:
    writer = await as_user("intake")
    with pytest.raises(PermissionDeniedError, match="refused publish"):
        await refused_or(writer, _publish_and_wait(writer, subject), [subject])


async def _publish_and_wait(nc: NATS, subject: str) -> None:
    # The server drops a refused publish and says so on the error callback, which refused_or
    # turns into PermissionDeniedError; the wait only bounds a publish that went through.
    await nc.publish(subject, b"{}")
    await nc.flush(timeout=_JS_TIMEOUT)
    await asyncio.sleep(_JS_TIMEOUT)


@pytest.mark.parametrize(
    ("reply", "allowed"),
    [
        ("_INBOX.abc", True),
        ("_INBOX.abc.def", True),
        ("_INBOX", False),
        ("_INBOX.", False),
        ("_INBOX..x", False),
        ("_INBOX.*", False),
        ("_INBOX.>", False),
        ("_INBOX.a b", False),
        ("_INBOX.a.b.c.d.e", False),
        ("_INBOX." + "a" * 65, False),
        ("_INBOXX.abc", False),
        ("ledger.activity.VNM.X", False),
        ("$JS.API.STREAM.PURGE.LEDGER", False),
    ],
)
def test_only_well_formed_inboxes_under_a_known_prefix_pass(reply: str, allowed: bool) -> None:
    assert is_reply_under(reply, {"_INBOX"}) is allowed


def test_a_guard_without_users_answers_only_the_default_inbox() -> None:
    guard = ReplyGuard("intake-reply")
    assert guard.allows("_INBOX.x.y", "KAZ")
    assert not guard.allows("_INBOX_UABC.x", "KAZ")
    assert not guard.allows(None, "KAZ")


@pytest.mark.slow
async def test_ledger_up_drops_an_injected_reply(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same attack on a whole ``ledger up``: intake there answers as intake-reply."""
    settings = Settings(data_dir=tmp_path / "ledger")
    stop = asyncio.Event()
    ready: asyncio.Future = asyncio.get_running_loop().create_future()
    stack = asyncio.create_task(
        run_stack(settings, stack_components(settings), on_ready=ready.set_result, stop=stop)
    )
    try:
        runtime = await asyncio.wait_for(asyncio.shield(ready), 30)
        kaz_nc = await connect(runtime.nats_url, creds=credentials_for(settings, "office-KAZ"))
        admin = await connect(runtime.nats_url, creds=credentials_for(settings, "admin"))
        try:
            kaz = OfficeClient(kaz_nc, "KAZ", timeout=_JS_TIMEOUT)
            first = await _report_when_listening(kaz, "KAZ-FIRST")
            command = encode_command(kaz.report_command(make_reported(activity_id="KAZ-EVIL")))
            with caplog.at_level(logging.WARNING, logger="services.intake.service"):
                await kaz_nc.publish(
                    "ledger.intake.KAZ", command, reply="ledger.activity.VNM.INJECTED"
                )
                second = await kaz.report(make_reported(activity_id="KAZ-SECOND", office="KAZ"))
            # Nothing was appended in between but, perhaps, the notary's checkpoints.
            events = [m async for batch in EventStore(admin).read_raw() for m in batch]
            assert [m.sequence for m in events] == [first.sequence, second.sequence]
            assert any("violation" in r.getMessage() for r in caplog.records)
        finally:
            await kaz_nc.close()
            await admin.close()
    finally:
        stop.set()
        await asyncio.wait_for(stack, 30)


async def _report_when_listening(client: OfficeClient, activity_id: str) -> Accepted:
    # on_ready comes once the components started, which can be just before intake subscribes.
    for _ in range(100):
        try:
            return await client.report(make_reported(activity_id=activity_id, office="KAZ"))
        except IntakeUnavailableError:
            await asyncio.sleep(0.1)
    return await client.report(make_reported(activity_id=activity_id, office="KAZ"))


async def test_the_query_service_answers_only_a_users_inbox(
    as_user: AsUser, secured: tuple, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings, _ = secured
    query_nc = await as_user("query")
    service = QueryService(ReadModel(live_path(tmp_path)), EventStore(query_nc))
    stop = asyncio.Event()
    guard = ReplyGuard("query", users_path(settings.data_dir))
    serving = asyncio.create_task(service.serve(query_nc, "ledger", stop, guard))
    try:
        await query_nc.flush()
        admin = await as_user("admin")
        before = await _stream_state(admin)
        with caplog.at_level(logging.WARNING, logger="ledger.query"):
            for target in ("ledger.activity.VNM.INJECTED", "$JS.API.STREAM.PURGE.LEDGER"):
                await admin.publish("ledger.query.status", b"{}", reply=target)
            # The admin's own inbox is answered: the service was listening all along.
            answer = await admin.request("ledger.query.status", b"{}", timeout=_JS_TIMEOUT)
        assert answer.data
        dropped = [r for r in caplog.records if "violation" in r.getMessage()]
        assert len(dropped) == 2
        assert await _stream_state(admin) == before
    finally:
        stop.set()
        await asyncio.wait_for(serving, 10)
