"""Who may do what, enforced by a real nats-server started with the generated configuration."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from nats.aio.client import Client as NATS
from nats.js import api

from events.commands import Accepted, Rejected
from events.store import EventStore
from projections.db import live_path
from services.api.server import ApiServer
from services.bootstrap import run_stack, stack_components
from services.cli.exit_codes import ExitCode
from services.cli.main import main
from services.client.errors import ForbiddenError, IntakeUnavailableError
from services.client.office import OfficeClient
from services.infra.access import add_office, credentials_for, embedded_server
from services.infra.cluster import LocalCluster
from services.infra.config import Settings
from services.infra.credentials import creds_dir, creds_path, load_users
from services.infra.runtime import Runtime, read_runtime
from services.infra.stack import ConnectionFailedError, connect
from services.infra.violations import PermissionDeniedError, refused_or
from tests.factories import make_reported
from tests.integration.test_projector import wait_for_checkpoint

# Every JetStream request here is refused or answered at once; a short timeout only bounds a
# test that would otherwise hang if the server let a request through and nobody answered.
_JS_TIMEOUT = 3.0


def test_credential_files_are_readable_by_their_owner_only(secured) -> None:
    settings, _ = secured
    folder = creds_dir(settings.data_dir)
    seeds = sorted(folder.glob("*.nk"))
    names = {path.stem for path in seeds}
    assert {"admin", "intake", "intake-reply", "projector", "query", "auditor"} <= names
    assert "office-KAZ" in names
    for path in seeds:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    # Check the registry names every seed's user, with no seed in it.
    registered = {user.name for user in load_users(settings.data_dir)}
    assert registered == names
    registry = (folder / "users.json").read_text()
    assert not any(path.read_text().strip() in registry for path in seeds)


async def test_a_client_without_credentials_cannot_connect(secured) -> None:
    _, server = secured
    with pytest.raises(ConnectionFailedError, match="refused a client without credentials"):
        await connect(server.url, "anonymous")


async def test_an_office_cannot_report_for_another_office(as_user, secured_intake) -> None:
    kaz = await as_user("office-KAZ")
    client = OfficeClient(kaz, "VNM", timeout=_JS_TIMEOUT)
    with pytest.raises(PermissionDeniedError) as refused:
        await client.report(make_reported(activity_id="VNM-1", office="VNM"))
    assert str(refused.value).startswith(
        "the server refused publish to ledger.intake.VNM for this user"
    )


@pytest.mark.parametrize(
    "subject",
    ["ledger.activity.KAZ.KAZ-1", "ledger.activity.VNM.VNM-1", "ledger.release.FORGED"],
)
async def test_an_office_cannot_write_to_the_stream_directly(as_user, subject: str) -> None:
    kaz = await as_user("office-KAZ")
    js = kaz.jetstream(timeout=_JS_TIMEOUT)
    with pytest.raises(PermissionDeniedError, match=f"refused publish to {subject} "):
        await refused_or(kaz, js.publish(subject, b"{}"), [subject])


_ADMINISTRATION = {
    "create a stream": lambda jsm: jsm.add_stream(name="ROGUE", subjects=["rogue.>"]),
    "delete the stream": lambda jsm: jsm.delete_stream("LEDGER"),
    "purge the stream": lambda jsm: jsm.purge_stream("LEDGER"),
    "change the stream": lambda jsm: jsm.update_stream(
        api.StreamConfig(name="LEDGER", subjects=["ledger.activity.>"], deny_delete=False)
    ),
    "create a durable consumer": lambda jsm: jsm.add_consumer(
        "LEDGER", api.ConsumerConfig(durable_name="rogue")
    ),
    "create a named consumer": lambda jsm: jsm.add_consumer(
        "LEDGER", api.ConsumerConfig(name="rogue", durable_name="rogue")
    ),
    "delete a consumer": lambda jsm: jsm.delete_consumer("LEDGER", "projector"),
    "delete a message": lambda jsm: jsm.delete_msg("LEDGER", 1),
}


@pytest.mark.parametrize("action", list(_ADMINISTRATION))
@pytest.mark.parametrize("user", ["office-KAZ", "auditor", "query"])
async def test_only_the_admin_administers_streams_and_consumers(
    as_user, user: str, action: str
) -> None:
    nc = await as_user(user)
    jsm = nc.jetstream(timeout=_JS_TIMEOUT)
    with pytest.raises(PermissionDeniedError, match=r"(?i)refused publish to \$JS\.API\."):
        await refused_or(nc, _ADMINISTRATION[action](jsm))
    # Check the stream is still there, as strict as ever.
    admin = await as_user("admin")
    info = await admin.jetstream().stream_info("LEDGER")
    assert (info.config.deny_delete, info.config.deny_purge) == (True, True)


@pytest.mark.parametrize(
    "subject",
    [
        "ledger.activity.KAZ.KAZ-1",
        "ledger.release.FORGED",
        "ledger.intake.KAZ",
        "ledger.checkpoint",
    ],
)
@pytest.mark.parametrize("user", ["query", "auditor", "projector"])
async def test_readers_cannot_publish_events_or_commands(as_user, user: str, subject: str) -> None:
    nc = await as_user(user)
    with pytest.raises(PermissionDeniedError, match=f"refused publish to {subject} "):
        await refused_or(nc, nc.request(subject, b"{}", timeout=_JS_TIMEOUT), [subject])


async def test_only_hq_releases_and_only_through_intake(as_user, secured_intake) -> None:
    kaz = OfficeClient(await as_user("office-KAZ"), "KAZ", timeout=_JS_TIMEOUT)
    hq = OfficeClient(await as_user("office-HQ"), "HQ", timeout=_JS_TIMEOUT)

    with pytest.raises(ForbiddenError, match="only HQ may release"):
        await kaz.release("KAZ-OWN", 0, "0" * 64)
    accepted = await hq.release("SG-EMPTY", 0, "0" * 64, "the empty ledger")

    stored = await EventStore(await as_user("auditor")).release("SG-EMPTY")
    assert stored is not None and stored.sequence == accepted.sequence
    assert stored.subject == "ledger.release.SG-EMPTY"


async def test_an_office_cannot_read_another_offices_replies(secured, as_user) -> None:
    settings, _ = secured
    kaz = await as_user("office-KAZ")
    vnm = credentials_for(settings, "office-VNM")
    assert vnm is not None
    with pytest.raises(PermissionDeniedError, match="refused subscription"):
        # The server answers the SUB with an error, which arrives before the flush's PONG.
        await refused_or(kaz, _subscribe_and_flush(kaz, f"{vnm.inbox_prefix}.>"))


async def _subscribe_and_flush(nc: NATS, subject: str) -> None:
    await nc.subscribe(subject)
    await nc.flush(timeout=_JS_TIMEOUT)
    await asyncio.sleep(_JS_TIMEOUT)


async def test_the_auditor_reads_the_whole_stream(as_user, secured_intake) -> None:
    kaz = OfficeClient(await as_user("office-KAZ"), "KAZ", timeout=_JS_TIMEOUT)
    await kaz.report(make_reported(activity_id="KAZ-AUDITED", office="KAZ"))
    auditor = EventStore(await as_user("auditor"), timeout=_JS_TIMEOUT)
    read = [recorded.event.activity_id async for recorded in auditor.read()]
    assert read[-1] == "KAZ-AUDITED"
    loaded = await refused_or(auditor.nc, auditor.load("KAZ-AUDITED"))
    assert loaded.version == 1


async def test_intake_checks_the_office_even_of_a_trusted_sender(as_user, secured_intake) -> None:
    # The admin may publish anywhere; intake still refuses a KAZ activity sent as VNM.
    admin = OfficeClient(await as_user("admin"), "VNM", timeout=_JS_TIMEOUT)
    command = admin.report_command(make_reported(activity_id="KAZ-FORWARDED", office="KAZ"))
    reply = await admin.request(command)
    assert isinstance(reply, Rejected)
    assert reply.code == "forbidden"


async def test_a_new_office_can_connect_at_once_after_office_add(secured) -> None:
    settings, server = secured
    # Replace PO_HND's user while the server runs, as `ledger office add` does for an office
    # new to the catalogue: without a reload the server would refuse the new key.
    _forget_user(settings, "office-PO_HND")
    added = add_office(settings, "PO_HND")
    # No `ledger up` wrote runtime.json here, so reload as add_office does for a running one.
    assert added.reloaded_pid is None
    if isinstance(server, LocalCluster):
        server.reload()
    else:
        embedded_server(settings).reload(server.pid)
    nc = await _connect_when_reloaded(settings, "office-PO_HND", server.url)
    await nc.flush()  # a round trip: the server took the new key
    assert nc.is_connected
    await nc.close()


def _forget_user(settings: Settings, name: str) -> None:
    """Remove a user's seed and registry entry, so that adding it makes a new key."""
    creds_path(settings.data_dir, name).unlink()
    registry = creds_dir(settings.data_dir) / "users.json"
    users = json.loads(registry.read_text())
    users["users"] = [u for u in users["users"] if u["name"] != name]
    registry.write_text(json.dumps(users))


async def _connect_when_reloaded(settings: Settings, name: str, url: str = "") -> NATS:
    # No retry: the reload returned only once the server confirmed it, so the first try counts.
    url = url or (read_runtime(settings.data_dir) or _no_runtime()).nats_url
    return await connect(url, name, creds=credentials_for(settings, name), timeout=5)


def _no_runtime() -> Runtime:
    raise AssertionError("no ledger up runs on the data directory")


@pytest.mark.slow
async def test_the_stack_runs_end_to_end_with_each_service_in_its_role(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "ledger")
    stop = asyncio.Event()
    ready: asyncio.Future[Runtime] = asyncio.get_running_loop().create_future()
    api = ApiServer("127.0.0.1", 0, token="s3cret")
    stack = asyncio.create_task(
        run_stack(
            settings, stack_components(settings), on_ready=ready.set_result, stop=stop, api=api
        )
    )
    try:
        runtime = await asyncio.wait_for(asyncio.shield(ready), 30)
        # Check the office reports with its own credentials, as `ledger report` would.
        nc = await connect(runtime.nats_url, creds=credentials_for(settings, "office-KAZ"))
        try:
            kaz = OfficeClient(nc, "KAZ")
            accepted = await _report_once_intake_listens(
                kaz, make_reported(activity_id="KAZ-E2E", office="KAZ")
            )
        finally:
            await nc.close()
        # Check the projector, connected as the projector role, applies it.
        await wait_for_checkpoint(live_path(settings.data_dir), accepted.sequence, timeout=30)
        # Check the API wants its token, and reads history from the stream as the query role.
        history = f"{runtime.api_url}/v1/activities/KAZ-E2E/history"
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(history)).status_code == 401
            wrong = {"Authorization": "Bearer guess"}
            assert (await http.get(history, headers=wrong)).status_code == 401
            answer = await http.get(history, headers={"Authorization": "Bearer s3cret"})
        assert answer.status_code == 200
        assert "KAZ-E2E" in answer.text
        await _check_the_cli(settings, tmp_path)
    finally:
        stop.set()
        await asyncio.wait_for(stack, 30)


async def _check_the_cli(settings: Settings, tmp_path: Path) -> None:
    """The office commands pick the office's credentials; `office add` reloads the server."""
    data_dir = str(settings.data_dir)

    def ledger(*args: str) -> Result:
        env = {"LEDGER_NATS_URL": "", "LEDGER_CREDS": "", "LEDGER_OFFICE": ""}
        return CliRunner().invoke(main, ["--data-dir", data_dir, *args], env=env)

    record = tmp_path / "kaz.json"
    record.write_text(json.dumps(_record("KAZ-CLI", "KAZ")))
    done = await asyncio.to_thread(ledger, "report", str(record))
    assert done.exit_code == ExitCode.OK, done.output
    # Check KAZ's credentials cannot send as VNM: refused by the server, exit code 8.
    kaz_creds = str(creds_path(settings.data_dir, "office-KAZ"))
    record.write_text(json.dumps(_record("VNM-CLI", "VNM")))
    refused = await asyncio.to_thread(ledger, "--creds", kaz_creds, "report", str(record))
    assert refused.exit_code == ExitCode.REFUSED
    assert "the server refused publish to ledger.intake.VNM for this user" in refused.output
    # Check a replaced office user can connect as soon as `ledger office add` returns.
    _forget_user(settings, "office-PO_HND")
    added = await asyncio.to_thread(ledger, "office", "add", "PO_HND")
    assert added.exit_code == ExitCode.OK, added.output
    assert "reloaded its users" in added.output
    nc = await _connect_when_reloaded(settings, "office-PO_HND")
    await nc.close()


def _record(activity_id: str, office: str) -> dict:
    return {
        "activity_id": activity_id,
        "office": office,
        "programme": "GENERAL",
        "kind": "training",
        "title": "Training of criminal justice practitioners",
        "countries": [{"country": "KAZ"}],
        "year": 2020,
        "metrics": {"people_trained": 571},
    }


async def _report_once_intake_listens(client: OfficeClient, activity: Any) -> Accepted:
    # on_ready comes once the components are started, which can be just before intake's
    # subscription reaches the server.
    for _ in range(100):
        try:
            return await client.report(activity)
        except IntakeUnavailableError:
            await asyncio.sleep(0.1)
    return await client.report(activity)


@pytest.mark.parametrize("user", ["office-KAZ", "intake"])
async def test_only_the_notary_signs_checkpoints(as_user, user: str) -> None:
    nc = await as_user(user)
    subject = "ledger.checkpoint"
    with pytest.raises(PermissionDeniedError, match=f"refused publish to {subject} "):
        await refused_or(nc, nc.request(subject, b"forged", timeout=_JS_TIMEOUT), [subject])


@pytest.mark.parametrize("subject", ["ledger.activity.KAZ.KAZ-1", "ledger.release.FORGED"])
async def test_the_notary_appends_nothing_but_checkpoints(as_user, subject: str) -> None:
    nc = await as_user("notary")
    with pytest.raises(PermissionDeniedError, match=f"refused publish to {subject} "):
        await refused_or(nc, nc.request(subject, b"{}", timeout=_JS_TIMEOUT), [subject])
