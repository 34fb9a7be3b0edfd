"""The instruments of services/infra/metrics.py as intake and the API fill them, and the lag the
API reports when the stream cannot be read or is not followed.

The registry belongs to the process, so each check compares the counts before and after.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import nats
from litestar.testing import AsyncTestClient, TestClient
from prometheus_client.parser import text_string_to_metric_families

from events.commands import ReportActivity, ReviseActivity, encode_command
from events.memory import InMemoryEventStore
from events.store import EventStore
from services.api.app import create_app
from services.infra.embedded import EmbeddedNats
from services.infra.metrics import REGISTRY
from services.intake.service import Intake
from services.projector.service import Projector
from tests.factories import make_reported, sealed

ISSUED = dt.datetime(2021, 6, 30, 12, 0, tzinfo=dt.UTC)


def counted(outcome: str, code: str = "") -> float:
    value = REGISTRY.get_sample_value(
        "ledger_intake_commands_total", {"outcome": outcome, "code": code}
    )
    return value or 0.0


def report(activity_id: str, command_id: str) -> bytes:
    return encode_command(
        ReportActivity(
            command_id=command_id,
            issued_at=ISSUED,
            actor="kaz.officer@example.org",
            activity=make_reported(activity_id=activity_id),
        )
    )


async def test_intake_counts_each_answer_by_outcome_and_code() -> None:
    intake = Intake(InMemoryEventStore())
    subject = "ledger.intake.HQ"
    before = {
        key: counted(*key)
        for key in [
            ("accepted",),
            ("duplicate",),
            ("rejected", "unknown_activity"),
            ("rejected", "invalid"),
        ]
    }
    timed = REGISTRY.get_sample_value("ledger_intake_request_seconds_count") or 0.0

    await intake.handle(subject, report("KAZ-TRAINING-1", "c-1"))
    await intake.handle(subject, report("KAZ-TRAINING-2", "c-2"))
    await intake.handle(subject, report("KAZ-TRAINING-1", "c-1"))  # the same command again
    revise = ReviseActivity(
        command_id="c-3",
        issued_at=ISSUED,
        actor="kaz.officer@example.org",
        activity_id="NO-SUCH-ACTIVITY",
        changes={"metrics.people_trained": 600},
        reason="final attendance list",
    )
    await intake.handle(subject, encode_command(revise))
    await intake.handle(subject, b"{not json")

    after = {key: counted(*key) for key in before}
    assert {key: after[key] - before[key] for key in before} == {
        ("accepted",): 2,
        ("duplicate",): 1,
        ("rejected", "unknown_activity"): 1,
        ("rejected", "invalid"): 1,
    }
    assert (REGISTRY.get_sample_value("ledger_intake_request_seconds_count") or 0) - timed == 5


def test_metrics_parse_and_time_routes_by_their_template(client: TestClient) -> None:
    assert client.get("/v1/countries/KAZ").status_code == 200
    assert client.get("/v1/activities/KAZ-TRAINING-1").status_code == 200
    assert client.get("/v1/no/such/route/abc123").status_code == 404

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    routes = {
        (sample.labels["route"], sample.labels["status"])
        for sample in families["ledger_api_request_seconds"].samples
        if sample.name.endswith("_count")
    }
    assert {
        ("/v1/countries/{country}", "200"),
        ("/v1/activities/{activity_id}", "200"),
        ("unmatched", "404"),
    } <= routes
    # Labels carry templates only: no activity id, country or path anyone asked for.
    assert not re.search(r"KAZ|abc123|no/such", response.text)
    assert {
        "ledger_intake_commands",
        "ledger_projector_lag_events",
        "ledger_rebuild_progress_ratio",
        "ledger_outbox_commands_waiting",
        "ledger_stream_bytes",
        "ledger_nats_server_healthy",
    } <= families.keys()


def test_metrics_take_no_query_parameter(client: TestClient) -> None:
    response = client.get("/metrics?name[]=x")
    assert response.status_code == 400
    assert response.json()["field"] == "name[]"
    assert response.json()["message"].endswith("this route takes no query parameters")


def test_a_file_served_alone_says_what_it_reflects(live: Path) -> None:
    with TestClient(app=create_app(live, follows_stream=False)) as client:
        status = client.get("/v1/status").json()
        page = client.get("/").text
    assert status["follows_stream"] is False
    assert status["projections"][0]["lag"] is None
    assert status["lag_note"].startswith(
        "a projection file served alone: it reflects sequence 7 (2021-06-30T12:00:06"
    )
    assert "it reflects sequence 7, recorded 2021-06-30 12:00:06 UTC" in page


async def test_a_lost_stream_connection_says_why_and_what_to_do(
    live: Path, nats_server: EmbeddedNats
) -> None:
    nc = await nats.connect(nats_server.url)
    await nc.close()  # the API's connection, lost
    app = create_app(live, EventStore(nc))
    async with AsyncTestClient(app=app) as client:
        status = (await client.get("/v1/status")).json()
        page = (await client.get("/")).text
    assert status["follows_stream"] is True
    assert status["projections"][0]["lag"] is None
    assert "lost its NATS connection" in status["lag_note"]
    assert "ledger doctor" in status["lag_note"]
    badge = re.search(r'data-testid="status">(.*?)</p>', page, re.S)
    assert badge is not None and "Lag <strong>unknown</strong>" in badge.group(1)
    assert "lost its NATS connection" in badge.group(1)


async def test_the_projector_counts_what_it_applies_and_quarantines(
    store: EventStore, tmp_path: Path
) -> None:
    # Check a catch-up (a rebuild from the stream) of 3 events and 1 poison message.
    for activity_id in ("A", "B", "C"):
        await store.append(sealed(make_reported(activity_id=activity_id)), 0)
    await store.js.publish(store.ns.activity("HQ", "POISON"), b"\x00not an event")
    applied = REGISTRY.get_sample_value("ledger_projector_events_applied_total") or 0.0

    projector = Projector(store, tmp_path / "projections" / "ledger.db")
    projector.open()
    try:
        assert await projector.catch_up() == 3
    finally:
        projector.close()

    assert (REGISTRY.get_sample_value("ledger_projector_events_applied_total") or 0) - applied == 3
    assert REGISTRY.get_sample_value("ledger_projector_quarantined_events") == 1
    assert REGISTRY.get_sample_value("ledger_projector_checkpoint_sequence") == 4
    assert REGISTRY.get_sample_value("ledger_rebuild_progress_ratio") == 1
