"""As of a past instant or sequence, and one document's figures, over HTTP, on the seed
ledger (tests/query_seed.py), whose event n was recorded at 12:00:0(n-1) on 30 June 2021.

Figures are worked out by hand from the seed's story: before the withdrawal at [6],
Kazakhstan's people trained are 571 + 60% of 100 + 1000 = 1631; after it, 631. The firearms
operation in Uzbekistan seized 200 until its revision at [7] made it 250.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from services.api.app import create_app
from tests.query_seed import DOCUMENT_2021, DOCUMENT_2022, seed_two_reports

OLD, NEW = DOCUMENT_2021, DOCUMENT_2022


@pytest.fixture
def two_reports(tmp_path: Path) -> Iterator[TestClient]:
    live = tmp_path / "projections" / "ledger.db"
    seed_two_reports(live)
    with TestClient(app=create_app(live, wait=0.3)) as test_client:
        yield test_client


def get_json(client: TestClient, url: str) -> dict:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return response.json()


def refused(client: TestClient, url: str, status: int = 400) -> dict:
    response = client.get(url)
    assert response.status_code == status, response.text
    return response.json()


def test_a_country_before_and_after_the_withdrawal(client: TestClient):
    before = get_json(client, "/v1/countries/KAZ?as_of_sequence=5")
    now = get_json(client, "/v1/countries/KAZ")

    assert before["totals"]["people_trained"] == 571 + 60 + 1000
    assert before["activities"] == 3
    assert before["as_of"] == {"sequence": 5, "time": "2021-06-30T12:00:04Z", "now": False}
    assert now["totals"]["people_trained"] == 571 + 60
    assert now["activities"] == 2


def test_an_instant_means_the_last_event_recorded_by_then(client: TestClient):
    # [5] at 12:00:04, [6] (the withdrawal) at 12:00:05.
    before = get_json(client, "/v1/countries/KAZ?as_of=2021-06-30T12:00:04.5Z")
    after = get_json(client, "/v1/countries/KAZ?as_of=2021-06-30T14:00:05.5%2B02:00")

    assert before["as_of"]["sequence"] == 5
    assert before["as_of"]["asked"] == "2021-06-30T12:00:04.500000Z"
    assert before["totals"]["people_trained"] == 1631
    assert after["as_of"]["sequence"] == 6
    assert after["totals"]["people_trained"] == 631


def test_a_revision_after_the_instant_shows_the_old_figure_then(client: TestClient):
    then = get_json(client, "/v1/activities/UZB-OP-1?as_of_sequence=6")
    now = get_json(client, "/v1/activities/UZB-OP-1")

    assert then["metrics"] == {"firearms_seized": 200}
    assert then["version"] == 1
    assert len(then["event_ids"]) == 1
    assert "Trigger" not in then["summary"]
    assert now["metrics"] == {"firearms_seized": 250}
    assert len(now["event_ids"]) == 2
    uzb = get_json(client, "/v1/countries/UZB?as_of_sequence=6")
    assert uzb["totals"]["firearms_seized"] == 200


def test_withdrawn_then_and_counted_before(client: TestClient):
    before = get_json(client, "/v1/activities?status=withdrawn&as_of_sequence=5")
    after = get_json(client, "/v1/activities?status=withdrawn&as_of_sequence=6")
    active = get_json(client, "/v1/activities?country=KAZ&as_of_sequence=5")

    assert before["items"] == []
    assert [item["activity_id"] for item in after["items"]] == ["WITHDRAWN-1"]
    assert "WITHDRAWN-1" in [item["activity_id"] for item in active["items"]]


def test_provenance_then_adds_up(client: TestClient):
    answer = get_json(client, "/v1/provenance?country=KAZ&metric=people_trained&as_of_sequence=5")

    assert answer["total"] == 1631
    assert sum(item["value"] for item in answer["items"]) == 1631
    assert {item["activity_id"] for item in answer["items"] if item["counted"]} == {
        "KAZ-TRAINING-1",
        "CYBER-SHARED",
        "WITHDRAWN-1",
    }


def test_before_the_first_event_the_figures_are_empty(client: TestClient):
    countries = get_json(client, "/v1/countries?as_of=2021-06-30T11:00:00Z")
    kaz = get_json(client, "/v1/countries/KAZ?as_of=2021-06-30")

    assert countries["items"] == []
    assert countries["as_of"]["sequence"] == 0
    assert kaz["activities"] == 0
    assert kaz["totals"] == {}
    refused(client, "/v1/activities/KAZ-TRAINING-1?as_of_sequence=0", 404)


def test_the_future_and_past_the_end_are_refused_naming_the_last(client: TestClient):
    future = refused(client, "/v1/countries?as_of=2999-01-01T00:00:00Z")
    beyond = refused(client, "/v1/countries?as_of_sequence=8")

    assert future["field"] == "as_of"
    assert "sequence 7" in future["message"]
    assert "2021-06-30T12:00:06" in future["message"]
    assert beyond["field"] == "as_of_sequence"
    assert "7" in beyond["message"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("as_of=yesterday", "as_of"),
        ("as_of=2021-06-30T12:00:00", "as_of"),  # no time zone
        ("as_of=2021-06-30T12:00:00Z&as_of_sequence=3", "as_of"),
        ("as_of_sequence=-1", "as_of_sequence"),
        ("document=", "document"),
    ],
)
def test_a_malformed_scope_is_refused_by_name(client: TestClient, query: str, field: str):
    assert refused(client, f"/v1/countries/KAZ?{query}")["field"] == field


def test_every_list_as_of_says_so_in_csv(client: TestClient):
    response = client.get("/v1/countries?format=csv&as_of_sequence=5")

    assert response.status_code == 200
    assert response.headers["x-as-of-sequence"] == "5"
    assert "KAZ" in response.text


def test_every_route_takes_as_of(client: TestClient):
    for url in (
        "/v1/countries",
        "/v1/countries/KAZ",
        "/v1/programmes",
        "/v1/programmes/GENERAL",
        "/v1/years",
        "/v1/years/2020",
        "/v1/documents",
        "/v1/activities",
        "/v1/activities/KAZ-TRAINING-1",
        "/v1/provenance?metric=people_trained",
        "/v1/status",
    ):
        answer = get_json(client, f"{url}{'&' if '?' in url else '?'}as_of_sequence=3")
        assert answer["as_of"]["sequence"] == 3, url
        assert answer["as_of"]["now"] is False, url


def test_status_as_of_is_that_sequence(client: TestClient):
    answer = get_json(client, "/v1/status?as_of_sequence=4")

    assert answer["projections"][0]["checkpoint"] == 4


def test_two_reports_each_alone(two_reports: TestClient):
    documents = get_json(two_reports, "/v1/documents")
    by_name = {item["document"]: item for item in documents["items"]}
    new = get_json(two_reports, f"/v1/countries/KAZ?document={NEW}")
    old = get_json(two_reports, f"/v1/countries/KAZ?document={OLD}")
    listed = get_json(two_reports, f"/v1/activities?document={NEW}")

    # The 2021 report: the training, the shared course, the workshop and the operation.
    assert by_name[OLD]["activities"] == 4
    assert by_name[OLD]["totals"]["people_trained"] == 571 + 100 + 30
    # The 2022 report: its own activity, and the 2021 training it cites again.
    assert by_name[NEW]["activities"] == 2
    assert by_name[NEW]["totals"]["people_trained"] == 40 + 571
    assert new["totals"]["people_trained"] == 611
    assert new["as_of"]["document"] == NEW
    assert old["totals"]["people_trained"] == 631
    assert old["multi_country_count"] == 1
    assert [item["activity_id"] for item in listed["items"]] == ["KAZ-2022-1", "KAZ-TRAINING-1"]
    # Over the two, the training counts once.
    assert get_json(two_reports, "/v1/countries/KAZ")["totals"]["people_trained"] == 571 + 60 + 40


def test_a_document_as_of_before_a_revision_cited_it(two_reports: TestClient):
    then = get_json(two_reports, f"/v1/countries/KAZ?document={NEW}&as_of_sequence=8")
    by_year = get_json(two_reports, f"/v1/programmes/GENERAL?document={NEW}&year=2020")

    assert then["totals"]["people_trained"] == 40
    assert by_year["totals"]["people_trained"] == 611


def test_an_activity_of_another_document_is_not_found_in_this_one(two_reports: TestClient):
    cited = get_json(two_reports, f"/v1/activities/KAZ-TRAINING-1?document={NEW}")
    answer = refused(two_reports, f"/v1/activities/UZB-OP-1?document={NEW}", 404)

    assert cited["activity_id"] == "KAZ-TRAINING-1"
    assert answer["field"] == "activity_id"
    assert NEW in answer["message"]


def test_an_unknown_document_is_refused_by_name(two_reports: TestClient):
    answer = refused(two_reports, "/v1/countries/KAZ?document=A/99/1", 404)

    assert answer["field"] == "document"
