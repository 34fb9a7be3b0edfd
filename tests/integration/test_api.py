"""The HTTP API on a seeded projection file (tests/query_seed.py), through Litestar's TestClient.

Figures are the seed's, worked out by hand: Kazakhstan 571 + 60% of 100 = 631 trained.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from pathlib import Path

import pytest
from litestar.testing import TestClient

from events.model import CountryShare
from projections.apply import Applier
from projections.db import new_database_path, open_writer, switch_live
from services.api.app import create_app
from tests.factories import make_reported, sealed
from tests.query_seed import raw_messages, seed_events

AS_OF = {"sequence": 7, "time": "2021-06-30T12:00:06Z"}

ROUTES = [
    "/v1/countries",
    "/v1/countries/KAZ",
    "/v1/programmes",
    "/v1/programmes/GENERAL",
    "/v1/years",
    "/v1/years/2020",
    "/v1/activities",
    "/v1/activities/KAZ-TRAINING-1",
    "/v1/activities/KAZ-TRAINING-1/history",
    "/v1/provenance?metric=people_trained",
    "/v1/status",
    "/healthz",
]


def get_json(client: TestClient, url: str) -> dict:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return response.json()


def test_country_summary(client: TestClient):
    body = get_json(client, "/v1/countries/Kazakhstan")

    assert body["as_of"] == AS_OF
    assert (body["country"], body["name"], body["activities"]) == ("KAZ", "Kazakhstan", 2)
    assert body["totals"] == {"people_trained": 631, "participants": 30}
    assert body["multi_country_count"] == 1
    assert [ref["activity_id"] for ref in body["multi_country"]] == ["MULTI-1"]
    assert [(c["year"], c["totals"]) for c in body["by_year"]] == [
        (2020, {"people_trained": 571}),
        (2021, {"people_trained": 60, "participants": 30}),
    ]
    assert [(c["programme"], c["activities"]) for c in body["by_programme"]] == [
        ("GENERAL", 1),
        ("GPCC", 1),
    ]
    narrowed = get_json(client, "/v1/countries/KAZ?year=2021")
    assert (narrowed["year"], narrowed["totals"]) == (
        2021,
        {"people_trained": 60, "participants": 30},
    )


def test_programme_and_year_summaries(client: TestClient):
    general = get_json(client, "/v1/programmes/GENERAL")
    assert general["totals"] == {"people_trained": 601, "firearms_seized": 250}
    assert [c["country"] for c in general["by_country"]] == ["KAZ", "KGZ", "UZB"]
    in_2021 = get_json(client, "/v1/programmes/GENERAL?year=2021")
    assert in_2021["totals"] == {"firearms_seized": 250}

    year = get_json(client, "/v1/years/2021")
    assert year["totals"] == {"people_trained": 100, "participants": 50, "firearms_seized": 250}
    assert [c["country"] for c in year["by_country"]] == ["KAZ", "UZB"]


def test_lists(client: TestClient):
    countries = get_json(client, "/v1/countries")
    assert [(c["country"], c["activities"]) for c in countries["items"]] == [
        ("KAZ", 2),
        ("KGZ", 0),
        ("UZB", 2),
    ]
    assert [c["programme"] for c in get_json(client, "/v1/programmes?year=2021")["items"]] == [
        "GENERAL",
        "GPCC",
    ]
    assert [c["year"] for c in get_json(client, "/v1/years")["items"]] == [2020, 2021]


def test_every_list_is_also_csv_with_as_of_in_headers(client: TestClient):
    response = client.get("/v1/countries?format=csv")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["x-as-of-sequence"] == "7"
    assert response.text.splitlines() == [
        "country,programme,year,document,name,activities,multi_country,"
        "metric.firearms_seized,metric.participants,metric.people_trained",
        "KAZ,,,,Kazakhstan,2,1,,30.0,631.0",
        "KGZ,,,,Kyrgyzstan,0,1,,,",
        "UZB,,,,Uzbekistan,2,1,250.0,20.0,40.0",
    ]
    for url in ("/v1/programmes", "/v1/years", "/v1/activities", "/v1/provenance?metric=*"):
        rows = list(
            csv.DictReader(
                io.StringIO(client.get(f"{url}{'&' if '?' in url else '?'}format=csv").text)
            )
        )
        assert rows, url
    activities = list(csv.DictReader(io.StringIO(client.get("/v1/activities?format=csv").text)))
    shared = next(row for row in activities if row["activity_id"] == "CYBER-SHARED")
    assert (shared["countries"], shared["metric.people_trained"]) == ("KAZ:60;UZB:40", "100.0")


def test_activities_filters_full_text_and_cursor(client: TestClient):
    page = get_json(client, "/v1/activities?country=KAZ&limit=3")
    assert [i["activity_id"] for i in page["items"]] == [
        "CYBER-SHARED",
        "KAZ-TRAINING-1",
        "MULTI-1",
    ]
    rest = get_json(client, f"/v1/activities?country=KAZ&limit=3&cursor={page['next_cursor']}")
    assert [i["activity_id"] for i in rest["items"]] == ["WITHDRAWN-1"]
    assert rest["next_cursor"] is None

    found = get_json(client, "/v1/activities?q=Trigger&status=active")
    assert [i["activity_id"] for i in found["items"]] == ["UZB-OP-1"]
    filtered = get_json(
        client, "/v1/activities?programme=GENERAL&year=2021&kind=operation&office=KAZ"
    )
    assert [i["activity_id"] for i in filtered["items"]] == ["UZB-OP-1"]


def test_one_activity(client: TestClient):
    body = get_json(client, "/v1/activities/KAZ-TRAINING-1")

    assert body["as_of"] == AS_OF
    assert body["summary"] == "Judges and prosecutors trained on asset recovery."
    assert (body["start_date"], body["partners"]) == ("2020-03-02", ["OSCE"])
    assert body["sources"] == [{"document": "SG report 2021 (A/76, item 109)", "paragraph": 30}]


def test_provenance_sums_equal_every_total(client: TestClient):
    for country in get_json(client, "/v1/countries")["items"]:
        for metric, figure in country["totals"].items():
            answer = get_json(
                client, f"/v1/provenance?country={country['country']}&metric={metric}"
            )
            assert answer["total"] == figure
            assert sum(item["value"] for item in answer["items"]) == figure
    kaz = get_json(client, "/v1/provenance?country=KAZ&metric=people_trained")
    assert {i["activity_id"]: i["value"] for i in kaz["items"]} == {
        "CYBER-SHARED": 60,
        "KAZ-TRAINING-1": 571,
        "MULTI-1": 0,
    }


def test_status_and_health(client: TestClient):
    status = get_json(client, "/v1/status")
    assert status["projections"] == [
        {"projection": "ledger", "checkpoint": 7, "lag": None, "quarantined": 0}
    ]
    assert get_json(client, "/healthz") == {"status": "ok", "as_of": AS_OF}


@pytest.mark.parametrize("url", [r for r in ROUTES if "history" not in r])
def test_every_answer_carries_as_of(client: TestClient, url: str):
    assert get_json(client, url)["as_of"] == AS_OF


def test_history_without_nats_is_503_with_a_reason(client: TestClient):
    response = client.get("/v1/activities/KAZ-TRAINING-1/history")

    assert response.status_code == 503
    assert "no NATS connection" in response.json()["message"]


@pytest.mark.parametrize(
    ("url", "status", "field"),
    [
        ("/v1/countries/Atlantis", 404, "country"),
        ("/v1/programmes/NOPE", 404, "programme"),
        ("/v1/activities/NOPE", 404, "activity_id"),
        ("/v1/provenance?metric=smiles", 404, "metric"),
        ("/v1/activities?country=Atlantis", 404, "country"),
        ("/v1/countries?year=abc", 400, "year"),
        ("/v1/countries/KAZ?year=1700", 400, "year"),
        ("/v1/years/abc", 400, "year"),
        ("/v1/years/1700", 400, "year"),
        ("/v1/activities?cursor=bogus", 400, "cursor"),
        ("/v1/activities?limit=501", 400, "limit"),
        ("/v1/activities?limit=0", 400, "limit"),
        ("/v1/activities?status=deleted", 400, "status"),
        ("/v1/activities?contry=KAZ", 400, "contry"),
        ("/v1/countries/KAZ?format=csv", 400, "format"),
        ("/v1/countries?format=xml", 400, "format"),
        ("/v1/provenance", 400, "metric"),
        ("/v1/status?min_sequence=-1", 400, "min_sequence"),
        ("/healthz?x=1", 400, "x"),
    ],
)
def test_bad_input_is_4xx_naming_the_parameter(
    client: TestClient, url: str, status: int, field: str
):
    response = client.get(url)

    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field
    assert body["message"].startswith(f"{field}: ") or field in body["message"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_no_route_accepts_a_write(client: TestClient, method: str):
    for url in ROUTES:
        response = client.request(method, url)
        assert response.status_code == 405, (method, url)
        assert response.json()["code"] == "method_not_allowed"


def test_head_is_answered_without_a_body(client: TestClient):
    response = client.head("/v1/countries/KAZ")

    assert (response.status_code, response.content) == (200, b"")


def test_openapi_is_served(client: TestClient):
    schema = get_json(client, "/schema/openapi.json")

    assert {"/v1/countries", "/v1/activities", "/v1/provenance"} <= set(schema["paths"])
    assert "text/csv" in schema["paths"]["/v1/countries"]["get"]["responses"]["200"]["content"]


def _more_events(live: Path, delay: float) -> threading.Thread:
    """Apply one more event (sequence 8: 9 trained in KAZ) after ``delay`` seconds."""

    def later() -> None:
        time.sleep(delay)
        conn = open_writer(live)
        event = sealed(make_reported(activity_id="LATE-1", metrics={"people_trained": 9}))
        Applier(conn).apply(raw_messages([event], first=8))
        conn.close()

    thread = threading.Thread(target=later)
    thread.start()
    return thread


def test_min_sequence_waits_for_the_projection(live: Path):
    with TestClient(app=create_app(live, wait=5.0)) as client:
        writer = _more_events(live, 0.2)
        body = get_json(client, "/v1/countries/KAZ?min_sequence=8")
        writer.join()

    assert body["as_of"]["sequence"] == 8
    assert body["totals"]["people_trained"] == 631 + 9


def test_min_sequence_not_reached_is_503_with_retry_after(client: TestClient):
    response = client.get("/v1/countries/KAZ?min_sequence=8")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "at sequence 7, not yet 8" in response.json()["message"]


def test_a_switched_live_file_is_seen_by_the_next_request(live: Path, client: TestClient):
    assert get_json(client, "/v1/countries/KAZ")["activities"] == 2
    rebuilt = new_database_path(live.parent)
    conn = open_writer(rebuilt)
    extra = sealed(
        make_reported(
            activity_id="NEW-1", countries=[CountryShare("KAZ")], metrics={"people_trained": 1}
        )
    )
    Applier(conn).apply(raw_messages([*seed_events(), extra]))
    conn.close()

    switch_live(live, rebuilt)

    body = get_json(client, "/v1/countries/KAZ")
    assert (body["as_of"]["sequence"], body["activities"]) == (8, 3)
    assert body["totals"]["people_trained"] == 632
