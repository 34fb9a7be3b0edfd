"""The mapping of an activity to IATI (services/iati/mapping.py), each choice of docs/iati.md
checked on the element the writer makes of it, and that element checked by the validation."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

from lxml import etree

from events.activity import ActivityState
from events.model import CountryShare, Source
from events.reference import load_reference
from services.iati.mapping import IatiActivity, activity_of
from services.iati.validate import check_activity
from services.iati.writer import element_of
from tests.factories import make_reported

TODAY = dt.date(2026, 1, 15)
NOW = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)
ROOT = Path(__file__).resolve().parents[2]


def mapped(**fields: object) -> IatiActivity:
    state = ActivityState(activity=make_reported(**fields))
    return activity_of(state, reference=load_reference(), today=TODAY)


def element(**fields: object) -> etree._Element:
    built = element_of(mapped(**fields))
    check_activity(built, now=NOW)
    return built


def actuals(activity: etree._Element, metric: str) -> list[tuple[str, str | None]]:
    found = []
    for indicator in activity.iter("indicator"):
        if indicator.find("reference").get("code") == metric:
            for actual in indicator.iter("actual"):
                dimension = actual.find("dimension")
                found.append(
                    (actual.get("value"), None if dimension is None else dimension.get("value"))
                )
    return found


def test_the_571_people_trained_in_kazakhstan():
    activity = element()
    assert activity.findtext("iati-identifier") == "XM-DAC-41128-KAZ-TRAINING-1"
    assert [(c.get("code"), c.get("percentage")) for c in activity.iter("recipient-country")] == [
        ("KZ", None)
    ]
    assert actuals(activity, "people_trained") == [("571", None)]
    indicator = activity.find("result/indicator")
    assert (indicator.get("measure"), indicator.get("aggregation-status")) == ("1", "1")
    period = indicator.find("period")
    assert (
        period.find("period-start").get("iso-date"),
        period.find("period-end").get("iso-date"),
    ) == (
        "2020-01-01",
        "2020-12-31",
    )


def test_shares_become_percentages_and_each_countrys_part_of_the_figure():
    activity = element(
        countries=[CountryShare("KAZ", 60), CountryShare("UZB", 40)],
        metrics={"people_trained": 100},
    )
    assert [(c.get("code"), c.get("percentage")) for c in activity.iter("recipient-country")] == [
        ("KZ", "60"),
        ("UZ", "40"),
    ]
    assert actuals(activity, "people_trained") == [("100", None), ("60", "KZ"), ("40", "UZ")]


def test_a_multi_country_activity_without_shares_gets_equal_percentages_flagged_as_not_shares():
    activity = element(countries=[CountryShare("KAZ"), CountryShare("UZB"), CountryShare("KGZ")])
    percentages = [Decimal(c.get("percentage")) for c in activity.iter("recipient-country")]
    assert percentages == [Decimal("33.33"), Decimal("33.33"), Decimal("33.34")]
    assert activity.get("{urn:x-activity-ledger:iati:1}shares") == "none"
    # The ledger counts its figures in no single country: no country's part is given.
    assert actuals(activity, "people_trained") == [("571", None)]


def test_dates_are_actual_when_past_planned_when_to_come_and_derived_from_the_year_when_missing():
    past = element(start_date=dt.date(2020, 3, 2), end_date=dt.date(2020, 3, 6))
    assert [(d.get("type"), d.get("iso-date")) for d in past.iter("activity-date")] == [
        ("2", "2020-03-02"),
        ("4", "2020-03-06"),
    ]
    assert past.find("activity-status").get("code") == "3"
    coming = element(year=2026, start_date=dt.date(2026, 3, 2), end_date=dt.date(2026, 6, 1))
    assert [d.get("type") for d in coming.iter("activity-date")] == ["1", "3"]
    assert coming.find("activity-status").get("code") == "1"
    derived = element(start_date=None)
    (date,) = derived.iter("activity-date")
    assert (date.get("type"), date.get("iso-date")) == ("1", "2020-01-01")
    assert date.get("{urn:x-activity-ledger:iati:1}derived") == "year"


def test_a_global_activity_has_the_unspecified_developing_countries_region():
    activity = element(countries=[])
    assert activity.find("recipient-country") is None
    region = activity.find("recipient-region")
    assert (region.get("code"), region.get("vocabulary")) == ("998", "1")


def test_sectors_are_the_programmes_dac_codes_and_the_programme_itself():
    activity = element(programme="GPCC")
    assert [
        (s.get("vocabulary"), s.get("code"), s.get("percentage")) for s in activity.iter("sector")
    ] == [
        ("1", "15130", "50"),
        ("1", "22040", "50"),
        ("99", "GPCC", "100"),
    ]


def test_partners_sources_parent_and_venues():
    activity = element(
        partners=["OSCE"],
        sources=[Source("A/76/119", 39)],
        part_of="PROGRAMME-1",
        countries=[CountryShare("KAZ"), CountryShare("AUT", role="venue")],
    )
    orgs = [
        (o.get("role"), o.get("ref"), o.findtext("narrative"))
        for o in activity.iter("participating-org")
    ]
    assert orgs == [
        ("4", "XM-DAC-41128", "United Nations Office on Drugs and Crime"),
        ("4", None, "OSCE"),
    ]
    link = activity.find("document-link")
    assert link.get("url") == "https://undocs.org/A/76/119"
    assert link.findtext("title/narrative") == "A/76/119, paragraph 39"
    assert activity.find("related-activity").get("ref") == "XM-DAC-41128-PROGRAMME-1"
    assert [c.get("code") for c in activity.iter("recipient-country")] == ["KZ"]
    assert activity.get("{urn:x-activity-ledger:iati:1}venues") == "AUT"


def test_every_mapped_dac_sector_exists_and_is_not_withdrawn():
    # Read from the files themselves, not through the code under test.
    sectors = etree.parse(str(ROOT / "services/iati/data/codelists/Sector.xml"))
    status = {
        item.findtext("code"): item.get("status", "active")
        for item in sectors.iter("codelist-item")
    }
    programmes = json.loads((ROOT / "events/reference/programmes.json").read_text("utf-8"))
    assert all("dac_sectors" in p for p in programmes), "every programme maps to DAC sectors"
    for programme in programmes:
        pairs = [part.split(":") for part in programme["dac_sectors"].split(";")]
        assert sum(Decimal(percent) for _, percent in pairs) == 100, programme["code"]
        for code, _ in pairs:
            assert len(code) == 5 and status.get(code) == "active", (programme["code"], code)
