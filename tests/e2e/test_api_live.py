"""The query API and NATS queries of a running stack: real nats-server, intake, projector.

The stack runs in-process (``run_stack``) on a fresh stream, with the API on a free port.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import nats.errors
import pytest
from nats.aio.client import Client as NATS

from events.checkpoint import KEY_NAME, open_note, origin_of
from events.errors import ReleaseExistsError, ReleaseNotFoundError
from events.model import CountryShare
from events.signing import public_key_of
from events.store import EventStore
from events.subjects import Namespace
from projections.db import live_path, open_reader
from projections.digest import digest_at
from replay.diff import diff
from replay.proofs import InclusionProof, check_inclusion
from replay.rebuild import rebuild
from replay.release import release_instant, verify_release
from services.api.server import ApiServer
from services.bootstrap import run_stack, stack_components
from services.client.errors import ForbiddenError
from services.client.office import OfficeClient
from services.infra.config import Settings
from services.infra.embedded import EmbeddedNats
from services.infra.office_keys import (
    create_office_key,
    ledger_seed,
    load_office_registry,
    office_seeds,
)
from services.infra.runtime import read_runtime
from tests.factories import make_reported


class Stack(msgspec.Struct):
    api: httpx.AsyncClient
    office: OfficeClient
    store: EventStore
    settings: Settings


@pytest.fixture
async def stack(
    nats_server: EmbeddedNats, nc: NATS, namespace: Namespace, tmp_path: Path
) -> AsyncIterator[Stack]:
    settings = Settings(nats_url=nats_server.url, data_dir=tmp_path, namespace=namespace)
    stop = asyncio.Event()
    api = ApiServer("127.0.0.1", 0)
    task = asyncio.create_task(run_stack(settings, stack_components(settings), stop=stop, api=api))
    for _ in range(200):
        runtime = read_runtime(tmp_path)
        if (runtime is not None and runtime.api_url) or task.done():
            break
        await asyncio.sleep(0.05)
    assert runtime is not None and runtime.api_url == api.url, task
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        for _ in range(200):  # until the server answers
            try:
                if (await client.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        # The API can answer before intake has subscribed: wait for any answer of intake's.
        for _ in range(200):
            try:
                await nc.request(namespace.intake("HQ"), b"{}", timeout=0.5)
                break
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                await asyncio.sleep(0.05)
        yield Stack(client, OfficeClient(nc, "HQ", namespace), EventStore(nc, namespace), settings)
    stop.set()
    await asyncio.wait_for(task, 30)


async def report(stack: Stack, activity_id: str, trained: int, countries=("KAZ",)) -> int:
    accepted = await stack.office.report(
        make_reported(
            activity_id=activity_id,
            countries=[CountryShare(c) for c in countries],
            metrics={"people_trained": trained},
        )
    )
    return accepted.sequence


async def get_at_least(stack: Stack, url: str, sequence: int) -> dict:
    """GET with min_sequence, honouring 503 + Retry-After as a client should (a loaded machine
    can keep the projector behind for longer than the API's bounded wait)."""
    for _ in range(15):
        response = await stack.api.get(f"{url}?min_sequence={sequence}")
        if response.status_code != 503:
            break
        await asyncio.sleep(float(response.headers["retry-after"]))
    assert response.status_code == 200, response.text
    return response.json()


async def test_read_your_writes_with_min_sequence(stack: Stack):
    first = await report(stack, "KAZ-TRAINING-1", 571)

    answer = await get_at_least(stack, "/v1/countries/KAZ", first)
    assert answer["as_of"]["sequence"] >= first
    assert answer["totals"] == {"people_trained": 571}

    second = await report(stack, "KAZ-TRAINING-2", 29)
    answer = await get_at_least(stack, "/v1/countries/KAZ", second)
    assert answer["totals"] == {"people_trained": 600}
    assert answer["activities"] == 2


async def test_history_comes_from_the_stream(stack: Stack):
    reported = await report(stack, "KAZ-TRAINING-1", 571)
    revised = await stack.office.revise(
        "KAZ-TRAINING-1", {"metrics.people_trained": 600}, "final list"
    )

    response = await stack.api.get("/v1/activities/KAZ-TRAINING-1/history")
    assert response.status_code == 200, response.text
    entries = response.json()["entries"]
    assert [(e["type"], e["sequence"]) for e in entries] == [
        ("ActivityReported", reported),
        ("ActivityRevised", revised.sequence),
    ]
    assert entries[1]["reason"] == "final list"
    assert entries[1]["changes"] == [
        {"field": "metrics", "old": {"people_trained": 571}, "new": {"people_trained": 600}}
    ]
    missing = await stack.api.get("/v1/activities/NOPE/history")
    assert missing.status_code == 404


async def test_status_shows_the_stream_and_the_lag(stack: Stack):
    last = await report(stack, "KAZ-TRAINING-1", 571)

    status = await get_at_least(stack, "/v1/status", last)
    assert status["stream_last_sequence"] == last
    assert status["projections"][0]["checkpoint"] == last
    assert status["projections"][0]["lag"] == 0


async def test_nats_queries_give_the_same_json_as_http(
    stack: Stack, nc: NATS, namespace: Namespace
):
    last = 0
    for index in range(3):
        last = await report(stack, f"KAZ-{index}", 10 + index, countries=("KAZ", "UZB"))
    await get_at_least(stack, "/v1/status", last)
    cases = [
        ("countries", {}, "/v1/countries"),
        ("country", {"country": "KAZ"}, "/v1/countries/KAZ"),
        ("country", {"country": "KAZ", "year": 2020}, "/v1/countries/KAZ?year=2020"),
        ("programmes", {}, "/v1/programmes"),
        ("programme", {"programme": "GENERAL"}, "/v1/programmes/GENERAL"),
        ("years", {}, "/v1/years"),
        ("year", {"year": 2020}, "/v1/years/2020"),
        ("activities", {"country": "UZB", "limit": 2}, "/v1/activities?country=UZB&limit=2"),
        ("activity", {"activity_id": "KAZ-1"}, "/v1/activities/KAZ-1"),
        ("provenance", {"metric": "*"}, "/v1/provenance?metric=*"),
        ("status", {}, "/v1/status"),
        ("country", {"country": "Atlantis"}, "/v1/countries/Atlantis"),
        ("activities", {"limit": 900}, "/v1/activities?limit=900"),
    ]
    for name, params, url in cases:
        reply = await nc.request(namespace.query(name), json.dumps(params).encode(), timeout=5)
        http = await stack.api.get(url)
        if http.status_code == 200:
            assert json.loads(reply.data) == http.json(), name
        else:
            error = json.loads(reply.data)
            assert (error["field"], reply.headers["Ledger-Error"]) == (
                http.json()["field"],
                error["code"],
            ), name

    unknown = await nc.request(namespace.query("country"), b'{"contry": "KAZ"}', timeout=5)
    assert json.loads(unknown.data)["field"] == "contry"


@pytest.mark.slow
async def test_the_api_keeps_answering_while_a_rebuild_switches_files(stack: Stack):
    last = 0
    for index in range(40):
        last = await report(stack, f"KAZ-{index:03d}", 1)
    await get_at_least(stack, "/v1/status", last)
    live = live_path(stack.settings.data_dir)
    before = live.resolve()
    answers: list[tuple[int, int, float]] = []
    done = asyncio.Event()

    async def keep_asking() -> None:
        while not done.is_set():
            response = await stack.api.get("/v1/countries/KAZ")
            body = response.json()
            answers.append(
                (response.status_code, body["activities"], body["totals"]["people_trained"])
            )
            await asyncio.sleep(0)

    readers = [asyncio.create_task(keep_asking()) for _ in range(3)]
    for _ in range(2):
        await rebuild(stack.store, live, batch_size=10, progress=False)
    done.set()
    await asyncio.gather(*readers)

    assert live.resolve() != before
    assert answers
    # Every answer is complete: all 40 activities, never a half-built file.
    assert set(answers) == {(200, 40, 40.0)}


# -- releases (issue 16): made through intake by HQ alone, verified against the stream --------


async def released(stack: Stack, name: str) -> dict:
    """The release as the API lists it, once the projector has copied it."""
    for _ in range(100):
        found = {r["name"]: r for r in (await stack.api.get("/v1/releases")).json()["items"]}
        if name in found:
            return found[name]
        await asyncio.sleep(0.1)
    raise AssertionError(f"release {name} never listed")


async def test_a_release_states_the_figures_then_and_verifies_against_the_stream(stack: Stack):
    await report(stack, "KAZ-TRAINING-1", 571)
    then = await report(stack, "UZB-TRAINING-1", 40, countries=("UZB",))
    await get_at_least(stack, "/v1/status", then)
    create_office_key(stack.settings.data_dir, "HQ")
    hq = OfficeClient(
        stack.office.nc, "HQ", stack.settings.namespace, seeds=office_seeds(stack.settings.data_dir)
    )
    conn = open_reader(live_path(stack.settings.data_dir))
    digest = digest_at(conn, then)
    conn.close()

    accepted = await hq.release("SG-2021", then, digest, "figures as published")
    revised = await hq.revise("KAZ-TRAINING-1", {"metrics.people_trained": 600}, "final list")
    await get_at_least(stack, "/v1/status", revised.sequence)

    listed = await released(stack, "SG-2021")
    assert (listed["sequence"], listed["digest"], listed["office"]) == (then, digest, "HQ")
    assert listed["recorded_sequence"] == accepted.sequence == then + 1
    past = (await stack.api.get("/v1/countries/KAZ?release=SG-2021")).json()
    assert past["totals"] == {"people_trained": 571}
    assert past["as_of"]["release"] == "SG-2021"
    assert (await stack.api.get("/v1/countries/KAZ")).json()["totals"] == {"people_trained": 600}

    registry = load_office_registry(stack.settings.data_dir)
    check = await verify_release(stack.store, "SG-2021", registry)
    assert check.ok, check.problems
    assert (check.sequence, check.digest, check.office) == (then, digest, "HQ")
    since = await release_instant(stack.store, "SG-2021")
    changes = await diff(stack.store, since, dt.datetime.now(dt.UTC))
    by_row = {(c.table, tuple(c.key.values()), c.metric): c for c in changes}
    kaz = by_row[("by_country", ("KAZ",), "people_trained")]
    assert (kaz.before, kaz.after) == (571, 600)
    assert [e.reason for e in kaz.events] == ["final list"]


async def test_only_hq_releases_and_a_name_is_used_once(stack: Stack):
    last = await report(stack, "KAZ-TRAINING-1", 571)
    kaz = OfficeClient(stack.office.nc, "KAZ", stack.settings.namespace)

    with pytest.raises(ForbiddenError, match="only HQ may release"):
        await kaz.release("MINE", last, "0" * 64)
    await stack.office.release("ONCE", last, "0" * 64)
    with pytest.raises(ReleaseExistsError):
        await stack.office.release("ONCE", last, "1" * 64)
    # The release is the stream's last message, but no event a projection applies: the
    # projection is not behind it.
    await released(stack, "ONCE")
    status = (await stack.api.get("/v1/status")).json()
    assert status["stream_last_sequence"] == last
    assert status["projections"][0]["lag"] == 0


async def test_verify_fails_naming_the_digest_when_the_figures_then_differ(stack: Stack):
    last = await report(stack, "KAZ-TRAINING-1", 571)
    create_office_key(stack.settings.data_dir, "HQ")
    hq = OfficeClient(
        stack.office.nc, "HQ", stack.settings.namespace, seeds=office_seeds(stack.settings.data_dir)
    )
    # Signed by HQ, but stating figures the history up to `last` does not give: what a
    # release of another history looks like after an import.
    await hq.release("FORGED", last, "0" * 64, "not these figures")

    check = await verify_release(
        stack.store, "FORGED", load_office_registry(stack.settings.data_dir)
    )
    assert not check.ok
    assert [p.split(":")[0] for p in check.problems] == ["digest"]
    assert check.stated == "0" * 64
    assert check.digest != check.stated
    with pytest.raises(ReleaseNotFoundError):
        await verify_release(stack.store, "NONE", load_office_registry(stack.settings.data_dir))


async def test_ledger_up_signs_checkpoints_and_serves_proofs(stack: Stack):
    last = await report(stack, "KAZ-TRAINING-1", 571)
    public = public_key_of(ledger_seed(stack.settings.data_dir))
    checkpoint = None
    for _ in range(100):
        response = await stack.api.get("/v1/checkpoint")
        if response.status_code == 200:
            checkpoint = open_note(response.content, KEY_NAME, public)
            if checkpoint.size >= last:
                break
        await asyncio.sleep(0.1)
    assert checkpoint is not None and checkpoint.size >= last
    assert checkpoint.origin == origin_of(stack.settings.namespace, public)
    for _ in range(100):  # the tree file may trail the note by a batch
        proof = await stack.api.get(
            "/v1/proofs/inclusion", params={"sequence": last, "tree_size": checkpoint.size}
        )
        if proof.status_code == 200:
            break
        await asyncio.sleep(0.1)
    check_inclusion(msgspec.convert(proof.json(), InclusionProof), checkpoint.root)
