"""CSV formula injection: no CSV the ledger writes hands a spreadsheet a formula to run.

Activities whose text an office controls start with the characters a spreadsheet reads as a
formula (OWASP, "CSV Injection"): ``=``, ``+``, ``-``, ``@``, tab, carriage return. They are
applied through the real applier, and every CSV route of the API and dashboard is read back:
each such cell must start with ``'`` and keep the rest of the text as it was, while figures,
which the ledger computed, stay numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import msgspec
import pytest
from litestar.testing import TestClient

from events.model import CountryShare
from projections.answers import Cell
from projections.apply import Applier
from projections.db import ensure_live, open_writer
from services.api.app import create_app
from services.api.tables import FORMULA_STARTS, neutralise, to_csv
from tests.factories import make_reported, sealed
from tests.query_seed import raw_messages

HYPERLINK = '=HYPERLINK("http://evil.example","x")'
TITLES = {
    "EVIL-LINK": HYPERLINK,
    "EVIL-PLUS": "+1+cmd|' /C calc'!A0",
    "EVIL-MINUS": "-2+3",
    "EVIL-AT": "@SUM(1+1)*cmd|' /C calc'!A0",
    "EVIL-TAB": "\t=1+1",
    "EVIL-CR": "\r=1+1",
    "PLAIN": "Training - phase 2 = done",
}
"""Each activity's title; the last one has formula characters, but not at the start."""

SHARED = "EVIL-PLUS"
"""Listed under Kazakhstan and Uzbekistan without shares: the multi-country CSV lists it."""

CSV_ROUTES = [
    "/v1/activities?format=csv&limit=500",
    "/v1/activities?format=csv&country=KAZ",
    "/csv/activities",
    "/csv/activities?country=KAZ",
    "/v1/provenance?metric=*&format=csv&limit=500",
    "/v1/provenance?country=KAZ&metric=people_trained&format=csv",
    "/csv/provenance?metric=*",
    "/csv/country/KAZ/multi_country",
    "/csv/year/2020/multi_country",
    "/v1/countries?format=csv",
    "/csv/country/KAZ/by_programme",
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The API and dashboard over a projection of the activities of :data:`TITLES`."""
    live = tmp_path_factory.mktemp("injection") / "projections" / "ledger.db"
    events = [
        sealed(
            make_reported(
                activity_id=activity_id,
                title=title,
                summary="\tsummary that starts with a tab",
                partners=["@SUM(1)", "-OSCE"],
                countries=[CountryShare("KAZ"), CountryShare("UZB")]
                if activity_id == SHARED
                else [CountryShare("KAZ")],
                metrics={"people_trained": 10 + index},
            )
        )
        for index, (activity_id, title) in enumerate(TITLES.items())
    ]
    conn = open_writer(ensure_live(live))
    try:
        Applier(conn).apply(raw_messages(events))
    finally:
        conn.close()
    with TestClient(app=create_app(live)) as test_client:
        yield test_client


def read_csv(client: TestClient, url: str) -> list[dict[str, str]]:
    response = client.get(url)
    assert response.status_code == 200, (url, response.text)
    assert response.headers["content-type"].startswith("text/csv"), url
    # newline="" keeps a carriage return inside a quoted cell, as a spreadsheet reads it.
    return list(csv.DictReader(io.StringIO(response.text, newline="")))


@pytest.mark.parametrize("url", CSV_ROUTES)
def test_no_cell_of_any_csv_starts_a_formula(client: TestClient, url: str):
    rows = read_csv(client, url)

    assert rows, url
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(FORMULA_STARTS), (url, column, cell)


@pytest.mark.parametrize("url", [u for u in CSV_ROUTES if "activities" in u or "prov" in u])
def test_titles_are_neutralised_and_otherwise_kept(client: TestClient, url: str):
    rows = read_csv(client, url)

    titles = {row["activity_id"]: row["title"] for row in rows}
    assert titles, url
    for activity_id, title in titles.items():
        original = TITLES[activity_id]
        expected = original if activity_id == "PLAIN" else "'" + original
        assert title == expected, (url, activity_id)


def test_every_download_lists_the_injected_activities(client: TestClient):
    everything = read_csv(client, "/csv/activities")
    multi = read_csv(client, "/csv/country/KAZ/multi_country")
    provenance = read_csv(client, "/v1/provenance?metric=*&format=csv")

    assert [row["activity_id"] for row in everything] == sorted(TITLES)
    assert [(row["activity_id"], row["title"]) for row in multi] == [(SHARED, "'" + TITLES[SHARED])]
    hyperlink = next(row for row in provenance if row["activity_id"] == "EVIL-LINK")
    assert hyperlink["title"] == "'" + HYPERLINK


def test_figures_stay_numbers_even_when_negative():
    # A figure is the ledger's own number, never text someone typed: -5 stays -5, so that it
    # still sums in a spreadsheet. The same characters as text are neutralised.
    assert neutralise(-5) == -5
    assert neutralise(-5.0) == -5.0
    assert neutralise("-5") == "'-5"
    assert neutralise("") == ""
    text = to_csv([Cell(country="KAZ", name="-KAZ", totals={"balance": -5.0})], Cell)
    assert text.splitlines() == [
        "country,programme,year,document,name,activities,multi_country,metric.balance",
        "KAZ,,,,'-KAZ,0,0,-5.0",
    ]


def test_the_json_answers_keep_the_text_as_reported(client: TestClient):
    # Neutralising is for CSV alone: JSON is data for programs, and the page escapes HTML.
    detail = client.get("/v1/activities/EVIL-LINK").json()

    assert detail["title"] == HYPERLINK
    assert detail["partners"] == ["@SUM(1)", "-OSCE"]
    assert detail["summary"].startswith("\t")
    page = client.get("/activities/EVIL-LINK").text
    assert msgspec.json.encode(HYPERLINK).decode() not in page  # escaped, not raw
    assert "=HYPERLINK(&#34;http://evil.example&#34;,&#34;x&#34;)" in page
