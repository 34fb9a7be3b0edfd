"""Every validation rule rejects its bad input, naming the field and what to do."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from events.errors import InvalidEventError
from events.model import CountryShare
from events.reference import load_reference
from events.validation import check_reason, check_reported
from tests.factories import make_reported

REF = load_reference()


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"countries": [CountryShare("Atlantis")]}, "countries.0.country", "unknown country"),
        ({"programme": "NOPE"}, "programme", "unknown programme"),
        ({"office": "MARS"}, "office", "unknown office"),
        ({"kind": "picnic"}, "kind", "unknown kind"),
        ({"metrics": {"smiles": 3}}, "metrics.smiles", "unknown metric"),
        ({"metrics": {"people_trained": -1}}, "metrics.people_trained", "zero or more"),
        ({"metrics": {"people_trained": float("nan")}}, "metrics.people_trained", "not a figure"),
        ({"metrics": {"people_trained": float("inf")}}, "metrics.people_trained", "not a figure"),
        ({"title": "   "}, "title", "title is empty"),
        ({"year": 1989}, "year", "outside 1990"),
        ({"year": 2101}, "year", "outside 1990"),
        (
            {"start_date": dt.date(2021, 3, 12), "end_date": dt.date(2021, 3, 7)},
            "end_date",
            "before start date",
        ),
        (
            {"countries": [CountryShare("KAZ", 60.0), CountryShare("UZB", 30.0)]},
            "countries",
            "add up to 90",
        ),
        (
            {"countries": [CountryShare("KAZ", 60.0), CountryShare("UZB")]},
            "countries",
            "every country or for none",
        ),
        (
            {"countries": [CountryShare("KAZ"), CountryShare("Kazakhstan")]},
            "countries.1.country",
            "twice",
        ),
        ({"activity_id": "has.dot"}, "activity_id", "not a valid id"),
        ({"activity_id": "has space"}, "activity_id", "not a valid id"),
        ({"activity_id": "star*"}, "activity_id", "not a valid id"),
        ({"activity_id": "gt>"}, "activity_id", "not a valid id"),
        ({"activity_id": "x" * 65}, "activity_id", "not a valid id"),
        ({"activity_id": ""}, "activity_id", "not a valid id"),
    ],
)
def test_bad_input_is_rejected_with_its_field(
    overrides: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidEventError) as caught:
        check_reported(make_reported(**overrides), REF, max_year=2022)
    assert caught.value.field == field
    assert words in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    bad = make_reported(office="MARS", kind="picnic", title="")
    with pytest.raises(InvalidEventError) as caught:
        check_reported(bad, REF, max_year=2022)
    assert [issue.field for issue in caught.value.issues] == ["office", "kind", "title"]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Bolivia (Plurinational State of)", "BOL"),
        ("Viet Nam", "VNM"),
        ("State of Palestine", "PSE"),
        ("Türkiye", "TUR"),
        ("Turkey", "TUR"),
        ("Côte d'Ivoire", "CIV"),
        ("Cote d'Ivoire", "CIV"),
        ("kaz", "KAZ"),
    ],
)
def test_countries_accept_the_un_names_the_report_uses(name: str, code: str) -> None:
    checked = check_reported(make_reported(countries=[CountryShare(name)]), REF, max_year=2022)
    assert checked.countries == [CountryShare(code)]


def test_a_programme_name_is_stored_as_its_code() -> None:
    checked = check_reported(
        make_reported(programme="Global Programme on Cybercrime"), REF, max_year=2022
    )
    assert checked.programme == "GPCC"


def test_valid_shares_and_boundary_years_pass() -> None:
    event = make_reported(
        countries=[
            CountryShare("KAZ", 33.33),
            CountryShare("UZB", 33.33),
            CountryShare("TJK", 33.34),
        ],
        year=1990,
    )
    assert check_reported(event, REF, max_year=2022) == event
    assert check_reported(make_reported(year=2022), REF, max_year=2022).year == 2022


def test_a_blank_reason_is_refused() -> None:
    with pytest.raises(InvalidEventError) as caught:
        check_reason("  ")
    assert caught.value.field == "reason"
