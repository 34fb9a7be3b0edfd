"""Every validation rule rejects its bad input, naming the field and what to do."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from events.errors import InvalidEventError
from events.limits import (
    MAX_ACTOR,
    MAX_FIGURE,
    MAX_ISSUES,
    MAX_METRICS,
    MAX_NAME,
    MAX_PARAGRAPH,
    MAX_PARTNERS,
    MAX_REASON,
    MAX_TEXT,
    MAX_TITLE,
)
from events.model import CountryShare, Source
from events.reference import load_reference
from events.validation import check_actor, check_reason, check_reported
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
            "every recipient country or for none",
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


# Size limits (events.limits) on Structs built in Python, which msgspec does not check: each at
# its limit passes, one over fails with the field and the limit in the message.
def _countries(n: int) -> list[CountryShare]:
    codes = sorted(REF.countries)[:n]
    assert len(codes) == n, "the catalogue has too few countries for this case"
    return [CountryShare(code) for code in codes]


def _metrics(n: int) -> dict[str, float]:
    return {f"made_up_{i}": 1 for i in range(n)}


@pytest.mark.parametrize(
    ("field", "at_limit", "over_limit", "limit"),
    [
        ("title", {"title": "t" * MAX_TITLE}, {"title": "t" * (MAX_TITLE + 1)}, "300"),
        ("summary", {"summary": "s" * MAX_TEXT}, {"summary": "s" * (MAX_TEXT + 1)}, "5,000"),
        ("notes", {"notes": "n" * MAX_TEXT}, {"notes": "n" * (MAX_TEXT + 1)}, "5,000"),
        ("partners", {"partners": ["p"] * MAX_PARTNERS},
         {"partners": ["p"] * (MAX_PARTNERS + 1)}, "100"),
        ("partners.0", {"partners": ["p" * MAX_NAME]}, {"partners": ["p" * (MAX_NAME + 1)]},
         "200"),
        ("metrics.people_trained", {"metrics": {"people_trained": MAX_FIGURE}},
         {"metrics": {"people_trained": MAX_FIGURE + 1}}, "10,000,000,000"),
        ("sources.0.paragraph", {"sources": [Source("doc", MAX_PARAGRAPH)]},
         {"sources": [Source("doc", MAX_PARAGRAPH + 1)]}, "100,000"),
    ],
)  # fmt: skip
def test_each_size_limit_passes_at_the_limit_and_fails_one_over(
    field: str, at_limit: dict[str, Any], over_limit: dict[str, Any], limit: str
) -> None:
    check_reported(make_reported(**at_limit), REF, max_year=2022)
    with pytest.raises(InvalidEventError) as caught:
        check_reported(make_reported(**over_limit), REF, max_year=2022)
    assert caught.value.field == field
    assert limit in caught.value.issues[0].message


def test_the_countries_limit_counts_entries() -> None:
    # The catalogue holds 249 codes, so the 250th entry can only be a repeat: refused as one,
    # not for the count. At 251 the count alone is reported.
    every = _countries(len(REF.countries))
    check_reported(make_reported(countries=every), REF, max_year=2022)
    with pytest.raises(InvalidEventError) as at_limit:
        check_reported(make_reported(countries=[*every, every[0]]), REF, max_year=2022)
    assert [issue.field for issue in at_limit.value.issues] == [f"countries.{len(every)}.country"]
    with pytest.raises(InvalidEventError) as over:
        check_reported(make_reported(countries=[CountryShare("KAZ")] * 251), REF, max_year=2022)
    assert [(issue.field, issue.message) for issue in over.value.issues] == [
        ("countries", "251 countries; at most 250 are accepted")
    ]


def test_the_metrics_limit_counts_entries() -> None:
    with pytest.raises(InvalidEventError) as at_limit:
        check_reported(make_reported(metrics=_metrics(MAX_METRICS)), REF, max_year=2022)
    assert at_limit.value.issues[0].message.startswith("unknown metric")  # not the count
    with pytest.raises(InvalidEventError) as over:
        check_reported(make_reported(metrics=_metrics(MAX_METRICS + 1)), REF, max_year=2022)
    assert [issue.field for issue in over.value.issues] == ["metrics"]
    assert "at most 50" in str(over.value)


@pytest.mark.parametrize(("check", "limit"), [(check_reason, MAX_REASON), (check_actor, MAX_ACTOR)])
def test_reason_and_actor_are_at_most_200_characters(
    check: Callable[[str], None], limit: int
) -> None:
    check("r" * limit)
    with pytest.raises(InvalidEventError) as caught:
        check("r" * (limit + 1))
    assert caught.value.field in ("reason", "actor")
    assert "at most 200" in str(caught.value)


def test_fifty_thousand_repeated_countries_make_a_short_error() -> None:
    with pytest.raises(InvalidEventError) as caught:
        check_reported(make_reported(countries=[CountryShare("KAZ")] * 50_000), REF, max_year=2022)
    assert len(caught.value.issues) == 1
    assert len(str(caught.value)) < 200


def test_many_issues_are_listed_up_to_ten_and_counted_beyond() -> None:
    # 250 entries, within the limit, of which 249 repeat the first: one issue each.
    with pytest.raises(InvalidEventError) as caught:
        check_reported(make_reported(countries=[CountryShare("KAZ")] * 250), REF, max_year=2022)
    assert len(caught.value.issues) == 249
    message = str(caught.value)
    assert message.count("listed twice") == MAX_ISSUES
    assert message.endswith("; and 239 more")
    assert len(message) < 1_000


@pytest.mark.parametrize(
    "value", [10**5000, 10**400, -(10**400), 10**19], ids=["5000-digits", "1e400", "-1e400", "1e19"]
)
def test_a_huge_integer_is_refused_not_overflowed(value: int) -> None:
    # Neither math.isfinite (OverflowError) nor repr (ValueError past 4,300 digits) may see it.
    with pytest.raises(InvalidEventError) as figure:
        check_reported(make_reported(metrics={"people_trained": value}), REF, max_year=2022)
    with pytest.raises(InvalidEventError) as share:
        check_reported(make_reported(countries=[CountryShare("KAZ", value)]), REF, max_year=2022)
    assert (figure.value.field, share.value.field) == (
        "metrics.people_trained",
        "countries.0.share",
    )
    assert len(str(figure.value)) < 300  # the value is not quoted in full


def test_a_hostile_value_is_quoted_cut_short() -> None:
    with pytest.raises(InvalidEventError) as caught:
        check_reported(make_reported(office="X" * 100_000), REF, max_year=2022)
    assert caught.value.field == "office"
    assert len(caught.value.issues[0].message) < 200
