"""The IATI export of real projection files: the seed report whole, through the query layer and
the HTTP route, now and as of the past."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from litestar.testing import TestClient
from lxml import etree

from projections.db import live_path, open_reader
from projections.temporal import Scope
from services.api.app import create_app
from services.cli.demo import read_dataset
from services.iati.export import iati_activities, write_document
from services.iati.source import ExportFilters, read_states
from services.iati.validate import validate_file
from tests.iati_seed import seed_report_projection
from tests.query_seed import seed_projection


def _export(db: Path, out: Path, filters: ExportFilters | None = None) -> etree._Element:
    conn = open_reader(db)
    try:
        states = read_states(conn, filters or ExportFilters())
        write_document(
            out, iati_activities(states, reporting_org="XM-DAC-41128", today=dt.date.today())
        )
    finally:
        conn.close()
    return etree.parse(str(out)).getroot()


@pytest.fixture(scope="module")
def seed_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_report_projection(live_path(tmp_path_factory.mktemp("seed")))


def test_the_whole_seed_exports_and_validates_offline(seed_db: Path, tmp_path: Path):
    out = tmp_path / "seed.xml"
    root = _export(seed_db, out)
    assert len(root) == len(read_dataset())
    report = validate_file(out)
    assert report.activities == len(read_dataset())


def _actual(activity: etree._Element, metric: str) -> Decimal | None:
    for indicator in activity.iter("indicator"):
        if indicator.find("reference").get("code") == metric:
            for actual in indicator.iter("actual"):
                if actual.find("dimension") is None:
                    return Decimal(actual.get("value"))
    return None


def test_kazakhstans_571_people_trained_is_an_actual_value_under_kz(seed_db: Path, tmp_path: Path):
    root = _export(seed_db, tmp_path / "seed.xml")
    under_kz = [
        activity
        for activity in root
        if [c.get("code") for c in activity.iter("recipient-country")] == ["KZ"]
    ]
    assert Decimal(571) in [_actual(activity, "people_trained") for activity in under_kz]


def test_the_route_streams_the_same_document(seed_db: Path, tmp_path: Path):
    by_cli = _export(seed_db, tmp_path / "kaz.xml", ExportFilters(country="KAZ"))
    with TestClient(create_app(seed_db)) as client:
        answer = client.get("/v1/iati/activities.xml", params={"country": "Kazakhstan"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/xml")
        (tmp_path / "http.xml").write_bytes(answer.content)
        assert validate_file(tmp_path / "http.xml").activities == len(by_cli)
        by_http = etree.fromstring(answer.content)
        assert [etree.tostring(a) for a in by_http] == [etree.tostring(a) for a in by_cli]

        # Check: a bad filter is refused before any XML is sent, naming the parameter.
        unknown = client.get("/v1/iati/activities.xml", params={"country": "Atlantis"})
        assert (unknown.status_code, unknown.json()["field"]) == (404, "country")
        typo = client.get("/v1/iati/activities.xml", params={"countries": "KAZ"})
        assert (typo.status_code, typo.json()["field"]) == (400, "countries")
        # An IATI file holds at least one activity: none is a 404, not an invalid file.
        empty = client.get("/v1/iati/activities.xml", params={"year": 1999})
        assert (empty.status_code, empty.json()["field"]) == (404, "activities")


@pytest.fixture
def small_db(tmp_path: Path) -> Iterator[Path]:
    yield seed_projection(live_path(tmp_path / "small"))


def _ids(root: etree._Element) -> list[str]:
    return [a.findtext("iati-identifier").removeprefix("XM-DAC-41128-") for a in root]


def test_withdrawn_activities_are_left_out_and_as_of_shows_the_past(small_db: Path, tmp_path: Path):
    # tests/query_seed.py: [5] WITHDRAWN-1 is reported, [6] withdrawn; [4] UZB-OP-1 has 200
    # firearms until [7] revises them to 250.
    now = _export(small_db, tmp_path / "now.xml")
    assert _ids(now) == ["CYBER-SHARED", "KAZ-TRAINING-1", "MULTI-1", "UZB-OP-1"]
    assert _actual(now[3], "firearms_seized") == 250

    then = _export(small_db, tmp_path / "then.xml", ExportFilters(scope=Scope(as_of_sequence=5)))
    assert _ids(then) == ["CYBER-SHARED", "KAZ-TRAINING-1", "MULTI-1", "UZB-OP-1", "WITHDRAWN-1"]
    assert _actual(then[3], "firearms_seized") == 200

    with TestClient(create_app(small_db)) as client:
        answer = client.get("/v1/iati/activities.xml", params={"as_of_sequence": 5, "year": 2021})
        assert answer.status_code == 200
        assert _ids(etree.fromstring(answer.content)) == ["CYBER-SHARED", "UZB-OP-1"]
