"""An IATI activity read back as the report of an activity (services/iati/importer.py): from a
file another publisher wrote, and from the ledger's own export."""

from __future__ import annotations

import datetime as dt

from lxml import etree

from events.activity import ActivityState
from events.model import ActivityReported, CountryShare, Source
from events.reference import load_reference
from services.client.importer import LineRejection
from services.iati.importer import record_of
from services.iati.mapping import activity_of
from services.iati.writer import element_of
from tests.factories import make_reported

FOREIGN = b"""<iati-activity xml:lang="en" last-updated-datetime="2024-01-01T00:00:00Z">
  <iati-identifier>XM-DAC-41114-PROJ/42</iati-identifier>
  <reporting-org ref="XM-DAC-41114" type="40"><narrative>UNDP</narrative></reporting-org>
  <title>
    <narrative xml:lang="fr">Formation</narrative><narrative>Training of judges</narrative>
  </title>
  <description type="1"><narrative>Judges learned about asset recovery.</narrative></description>
  <participating-org ref="XM-DAC-41114" role="4"><narrative>UNDP</narrative></participating-org>
  <participating-org role="1"><narrative>Government of Norway</narrative></participating-org>
  <activity-status code="2"/>
  <activity-date type="1" iso-date="2021-01-10"/>
  <activity-date type="2" iso-date="2021-02-01"/>
  <activity-date type="3" iso-date="2021-11-30"/>
  <recipient-country code="KZ" percentage="70"/>
  <recipient-country code="UZ" percentage="30"/>
  <recipient-region code="789" vocabulary="1"/>
  <sector vocabulary="1" code="15130" percentage="100"/>
  <result type="1">
    <title><narrative>Capacity</narrative></title>
    <indicator measure="1"><title><narrative>people_trained</narrative></title>
      <period><period-start iso-date="2021-01-01"/><period-end iso-date="2021-12-31"/>
        <actual value="40"/><actual value="25"><dimension name="sex" value="female"/></actual>
      </period>
    </indicator>
    <indicator measure="1"><title><narrative>Courts equipped</narrative></title>
      <period><period-start iso-date="2021-01-01"/><period-end iso-date="2021-12-31"/>
        <actual value="3"/></period>
    </indicator>
  </result>
</iati-activity>"""


def test_another_publishers_activity_maps_what_it_can_and_notes_the_rest():
    record = record_of(etree.fromstring(FOREIGN), office="KAZ", programme="GPML", kind="training")
    assert isinstance(record, ActivityReported)
    assert record.activity_id == "PROJ-42"
    assert (record.office, record.programme, record.kind, record.year) == (
        "KAZ",
        "GPML",
        "training",
        2021,
    )
    assert (record.title, record.summary) == (
        "Training of judges",
        "Judges learned about asset recovery.",
    )
    assert record.countries == [CountryShare("KAZ", 70.0), CountryShare("UZB", 30.0)]
    # Actual dates come before planned ones.
    assert (record.start_date, record.end_date) == (dt.date(2021, 2, 1), dt.date(2021, 11, 30))
    # The overall actual; the actual of a dimension is part of it, not more.
    assert record.metrics == {"people_trained": 40}
    assert record.partners == ["Government of Norway"]
    assert record.notes == (
        "imported from IATI activity XM-DAC-41114-PROJ/42; indicator 'Courts equipped': "
        "actual 3; recipient region 789 (vocabulary 1)"
    )


def test_the_ledgers_own_export_comes_back_as_it_was():
    original = make_reported(
        activity_id="CYBER-SHARED",
        programme="GPCC",
        summary="Investigators learned to handle digital evidence.",
        countries=[
            CountryShare("KAZ", 60.0),
            CountryShare("UZB", 40.0),
            CountryShare("AUT", role="venue"),
        ],
        year=2021,
        metrics={"people_trained": 100, "countries_assisted": 2},
        partners=["OSCE"],
        sources=[Source("A/76/119", 39)],
        part_of="GPCC-ALL",
        notes="",
    )
    exported = element_of(
        activity_of(
            ActivityState(activity=original), reference=load_reference(), today=dt.date(2026, 1, 1)
        )
    )
    assert record_of(exported, office="HQ") == original


def test_a_derived_start_date_is_not_read_as_a_date_and_shares_that_were_not_stay_none():
    original = make_reported(countries=[CountryShare("KAZ"), CountryShare("UZB")], notes="")
    exported = element_of(
        activity_of(
            ActivityState(activity=original), reference=load_reference(), today=dt.date(2026, 1, 1)
        )
    )
    assert record_of(exported, office="HQ") == original


def test_an_activity_without_any_year_or_id_is_rejected_with_its_line():
    no_year = etree.fromstring(
        b"<iati-activity><iati-identifier>XM-DAC-1-A</iati-identifier>"
        b'<reporting-org ref="XM-DAC-1"/><title><narrative>T</narrative></title></iati-activity>'
    )
    rejection = record_of(no_year, office="HQ", position=7)
    assert isinstance(rejection, LineRejection)
    assert (rejection.field, rejection.activity_id) == ("activity-date", "A")
    assert "no year" in rejection.message
    no_id = etree.fromstring(
        b"<iati-activity><iati-identifier>//</iati-identifier></iati-activity>"
    )
    rejection = record_of(no_id, office="HQ")
    assert isinstance(rejection, LineRejection) and rejection.field == "iati-identifier"
