"""The read-only queries against a projection seeded with known events (tests/query_seed.py).

Every expected figure is worked out by hand from the seed's docstring: Kazakhstan has 571
trained alone plus 60% of 100 in the shared course, so 631; the three-country workshop is
listed under Kazakhstan but counted in no country.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from projections import queries
from projections.answers import AsOf, Cell
from projections.db import open_reader
from projections.errors import BadParameterError, UnknownKeyError
from tests.query_seed import seed_projection

AS_OF = AsOf(7, dt.datetime(2021, 6, 30, 12, 0, 6, tzinfo=dt.UTC))
GENERAL = "UNODC general / not programme-specific"
GPCC = "Global Programme on Cybercrime"


@pytest.fixture(scope="module")
def read_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the seeded projection."""
    live = tmp_path_factory.mktemp("queries") / "projections" / "ledger.db"
    seed_projection(live)
    conn = open_reader(live)
    yield conn
    conn.close()


def plain(value: object) -> object:
    return msgspec.to_builtins(value)


def test_country_summary_counts_shares_and_lists_multi_country(read_model):
    summary = queries.country_summary(read_model, "KAZ")

    assert summary.as_of == AS_OF
    assert (summary.country, summary.name, summary.year) == ("KAZ", "Kazakhstan", None)
    assert summary.activities == 2
    assert summary.totals == {"people_trained": 571 + 60, "participants": 30}
    assert summary.multi_country_count == 1
    assert [ref.activity_id for ref in summary.multi_country] == ["MULTI-1"]
    assert summary.multi_country[0].countries == ["KAZ", "UZB", "KGZ"]
    assert "no single country's total" in summary.note
    assert summary.by_year == [
        Cell(year=2020, activities=1, multi_country=1, totals={"people_trained": 571}),
        Cell(year=2021, activities=1, totals={"people_trained": 60, "participants": 30}),
    ]
    assert summary.by_programme == [
        Cell(
            programme="GENERAL",
            name=GENERAL,
            activities=1,
            multi_country=1,
            totals={"people_trained": 571},
        ),
        Cell(
            programme="GPCC",
            name=GPCC,
            activities=1,
            totals={"people_trained": 60, "participants": 30},
        ),
    ]
    assert summary.by_country is None


def test_country_accepts_the_un_name_and_narrows_to_a_year(read_model):
    summary = queries.country_summary(read_model, "Kazakhstan", year=2021)

    assert summary.country == "KAZ"
    assert summary.year == 2021
    assert summary.activities == 1
    assert summary.totals == {"people_trained": 60, "participants": 30}
    assert summary.multi_country_count == 0
    assert summary.by_year == [
        Cell(year=2021, activities=1, totals={"people_trained": 60, "participants": 30})
    ]
    assert summary.by_programme == [
        Cell(
            programme="GPCC",
            name=GPCC,
            activities=1,
            totals={"people_trained": 60, "participants": 30},
        )
    ]


def test_a_known_country_without_activities_has_zero_figures(read_model):
    summary = queries.country_summary(read_model, "FRA")

    assert (summary.activities, summary.totals, summary.by_year) == (0, {}, [])


@pytest.mark.parametrize(
    ("call", "parameter", "words"),
    [
        (lambda c: queries.country_summary(c, "Atlantis"), "country", "unknown country"),
        (lambda c: queries.country_summary(c, "KAZ", year=1800), "year", "out of range"),
        (lambda c: queries.programme_summary(c, "NOPE"), "programme", "unknown programme"),
        (lambda c: queries.year_summary(c, 3000), "year", "out of range"),
        (lambda c: queries.list_activities(c, limit=501), "limit", "1..500"),
        (lambda c: queries.list_activities(c, limit=0), "limit", "1..500"),
        (lambda c: queries.list_activities(c, kind="party"), "kind", "unknown kind"),
        (lambda c: queries.list_activities(c, status="gone"), "status", "unknown status"),
        (lambda c: queries.list_activities(c, q="   "), "q", "is empty"),
        (lambda c: queries.list_activities(c, cursor="!!!"), "cursor", "not a cursor"),
        (lambda c: queries.get_activity(c, "NOPE"), "activity_id", "no activity 'NOPE'"),
        (lambda c: queries.provenance(c, metric="smiles"), "metric", "unknown metric"),
        (
            lambda c: queries.provenance(
                c, country="KAZ", programme="GENERAL", year=2020, metric="people_trained"
            ),
            "year",
            "drop one",
        ),
    ],
)
def test_bad_parameters_are_refused_naming_the_parameter(read_model, call, parameter, words):
    with pytest.raises((BadParameterError, UnknownKeyError)) as caught:
        call(read_model)

    assert caught.value.parameter == parameter
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"{parameter}: ")


def test_programme_summary_counts_multi_country_in_the_programme(read_model):
    summary = queries.programme_summary(read_model, "GENERAL")

    # 571 (KAZ) + 30 (the three-country workshop, counted here); the withdrawn 1000 not at all.
    assert summary.activities == 3
    assert summary.totals == {"people_trained": 601, "firearms_seized": 250}
    assert summary.multi_country_count == 1
    assert summary.by_year == [
        Cell(year=2020, activities=2, totals={"people_trained": 601}),
        Cell(year=2021, activities=1, totals={"firearms_seized": 250}),
    ]
    assert summary.by_country == [
        Cell(
            country="KAZ",
            name="Kazakhstan",
            activities=1,
            multi_country=1,
            totals={"people_trained": 571},
        ),
        Cell(country="KGZ", name="Kyrgyzstan", activities=0, multi_country=1, totals={}),
        Cell(
            country="UZB",
            name="Uzbekistan",
            activities=1,
            multi_country=1,
            totals={"firearms_seized": 250},
        ),
    ]


def test_programme_narrowed_to_a_year_splits_by_country_from_the_activities(read_model):
    summary = queries.programme_summary(read_model, "GENERAL", year=2020)

    assert summary.totals == {"people_trained": 601}
    assert summary.by_country == [
        Cell(
            country="KAZ",
            name="Kazakhstan",
            activities=1,
            multi_country=1,
            totals={"people_trained": 571},
        ),
        Cell(country="KGZ", name="Kyrgyzstan", multi_country=1),
        Cell(country="UZB", name="Uzbekistan", multi_country=1),
    ]


def test_year_summary_breaks_down_by_country_and_programme(read_model):
    summary = queries.year_summary(read_model, 2021)

    assert summary.activities == 2
    assert summary.totals == {"people_trained": 100, "participants": 50, "firearms_seized": 250}
    assert [(c.country, c.activities, c.totals) for c in summary.by_country] == [
        ("KAZ", 1, {"people_trained": 60, "participants": 30}),
        ("UZB", 2, {"firearms_seized": 250, "people_trained": 40, "participants": 20}),
    ]
    assert [(c.programme, c.totals) for c in summary.by_programme] == [
        ("GENERAL", {"firearms_seized": 250}),
        ("GPCC", {"people_trained": 100, "participants": 50}),
    ]


def test_lists_of_countries_programmes_and_years(read_model):
    countries = queries.list_countries(read_model)
    assert [(c.country, c.activities, c.multi_country, c.totals) for c in countries.items] == [
        ("KAZ", 2, 1, {"participants": 30, "people_trained": 631}),
        ("KGZ", 0, 1, {}),
        ("UZB", 2, 1, {"firearms_seized": 250, "participants": 20, "people_trained": 40}),
    ]
    assert countries.as_of == AS_OF
    in_2020 = queries.list_countries(read_model, year=2020)
    assert [(c.country, c.activities, c.totals) for c in in_2020.items] == [
        ("KAZ", 1, {"people_trained": 571}),
        ("KGZ", 0, {}),
        ("UZB", 0, {}),
    ]
    programmes = queries.list_programmes(read_model)
    assert [(c.programme, c.activities) for c in programmes.items] == [("GENERAL", 3), ("GPCC", 1)]
    assert [(c.programme, c.totals) for c in queries.list_programmes(read_model, 2021).items] == [
        ("GENERAL", {"firearms_seized": 250}),
        ("GPCC", {"people_trained": 100, "participants": 50}),
    ]
    years = queries.list_years(read_model)
    assert [(c.year, c.activities, c.totals) for c in years.items] == [
        (2020, 2, {"people_trained": 601}),
        (2021, 2, {"firearms_seized": 250, "people_trained": 100, "participants": 50}),
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["CYBER-SHARED", "KAZ-TRAINING-1", "MULTI-1", "UZB-OP-1", "WITHDRAWN-1"]),
        ({"country": "KAZ"}, ["CYBER-SHARED", "KAZ-TRAINING-1", "MULTI-1", "WITHDRAWN-1"]),
        ({"country": "Kyrgyzstan"}, ["MULTI-1"]),
        ({"programme": "GPCC"}, ["CYBER-SHARED"]),
        ({"year": 2021}, ["CYBER-SHARED", "UZB-OP-1"]),
        ({"kind": "operation"}, ["UZB-OP-1"]),
        ({"office": "KAZ"}, ["UZB-OP-1"]),
        ({"status": "withdrawn"}, ["WITHDRAWN-1"]),
        ({"country": "KAZ", "year": 2020, "status": "active"}, ["KAZ-TRAINING-1", "MULTI-1"]),
        ({"q": "trigger"}, ["UZB-OP-1"]),  # from the revised summary
        ({"q": "firearms"}, ["UZB-OP-1"]),  # from the title
        ({"q": "digital evidence"}, ["CYBER-SHARED"]),
        ({"q": 'evidence "OR'}, []),  # quotes are words, never FTS syntax
    ],
)
def test_activities_are_filtered(read_model, filters, expected):
    page = queries.list_activities(read_model, **filters)

    assert [item.activity_id for item in page.items] == expected
    assert page.next_cursor is None


def test_activities_page_with_a_cursor_that_belongs_to_its_filters(read_model):
    first = queries.list_activities(read_model, country="KAZ", limit=3)
    assert [i.activity_id for i in first.items] == ["CYBER-SHARED", "KAZ-TRAINING-1", "MULTI-1"]
    assert first.next_cursor is not None

    second = queries.list_activities(read_model, country="KAZ", limit=3, cursor=first.next_cursor)
    assert [i.activity_id for i in second.items] == ["WITHDRAWN-1"]
    assert second.next_cursor is None

    with pytest.raises(BadParameterError, match="cursor: was made for other filters"):
        queries.list_activities(read_model, country="UZB", cursor=first.next_cursor)


def test_activity_item_shows_shares_and_multi_country(read_model):
    items = {i.activity_id: i for i in queries.list_activities(read_model).items}

    assert plain(items["CYBER-SHARED"].countries) == [
        {"country": "KAZ", "share": 60.0, "role": "recipient"},
        {"country": "UZB", "share": 40.0, "role": "recipient"},
    ]
    assert items["MULTI-1"].multi_country is True
    assert items["CYBER-SHARED"].multi_country is False
    assert (items["UZB-OP-1"].version, items["UZB-OP-1"].last_sequence) == (2, 7)


def test_get_activity_gives_every_field(read_model):
    detail = queries.get_activity(read_model, "KAZ-TRAINING-1")

    assert detail.as_of == AS_OF
    assert detail.summary == "Judges and prosecutors trained on asset recovery."
    assert detail.partners == ["OSCE"]
    assert (detail.start_date, detail.end_date) == (dt.date(2020, 3, 2), dt.date(2020, 3, 6))
    assert [(s.document, s.paragraph) for s in detail.sources] == [
        ("SG report 2021 (A/76, item 109)", 30)
    ]
    assert detail.notes == "from the report"
    assert detail.metrics == {"people_trained": 571}
    assert (detail.status, detail.version, len(detail.event_ids)) == ("active", 1, 1)
    withdrawn = queries.get_activity(read_model, "WITHDRAWN-1")
    assert (withdrawn.status, withdrawn.withdraw_reason) == (
        "withdrawn",
        "reported twice by mistake",
    )
    assert withdrawn.last_event_id == withdrawn.event_ids[-1]


@pytest.mark.parametrize(
    ("key", "metric", "total", "values"),
    [
        (
            {"country": "KAZ"},
            "people_trained",
            631,
            {"CYBER-SHARED": 60, "KAZ-TRAINING-1": 571, "MULTI-1": 0},
        ),
        ({"country": "UZB"}, "participants", 20, {"CYBER-SHARED": 20}),
        (
            {"programme": "GENERAL", "year": 2020},
            "people_trained",
            601,
            {"KAZ-TRAINING-1": 571, "MULTI-1": 30},
        ),
        ({"country": "KAZ", "programme": "GENERAL"}, "*", 1, {"KAZ-TRAINING-1": 1, "MULTI-1": 0}),
        ({}, "people_trained", 701, {"CYBER-SHARED": 100, "KAZ-TRAINING-1": 571, "MULTI-1": 30}),
        ({"year": 2021}, "firearms_seized", 250, {"UZB-OP-1": 250}),
    ],
)
def test_provenance_lists_what_makes_up_the_figure(read_model, key, metric, total, values):
    answer = queries.provenance(read_model, metric=metric, **key)

    assert answer.total == total
    assert {item.activity_id: item.value for item in answer.items} == values
    assert sum(item.value for item in answer.items) == answer.total
    assert all(item.event_ids and item.last_event_id == item.event_ids[-1] for item in answer.items)


def test_provenance_pages_with_a_cursor_that_belongs_to_its_figure(read_model):
    # Kazakhstan's people trained: CYBER-SHARED 60, KAZ-TRAINING-1 571, MULTI-1 listed (0).
    pages, cursor = [], None
    while True:
        page = queries.provenance(
            read_model, country="KAZ", metric="people_trained", cursor=cursor, limit=2
        )
        pages.append([item.activity_id for item in page.items])
        assert (page.limit, page.total, page.activities) == (2, 631, 2)
        cursor = page.next_cursor
        if cursor is None:
            break

    assert pages == [["CYBER-SHARED", "KAZ-TRAINING-1"], ["MULTI-1"]]
    first = queries.provenance(read_model, country="KAZ", metric="people_trained", limit=1)
    kept = first.next_cursor
    elsewhere = [
        lambda: queries.provenance(read_model, country="UZB", metric="people_trained", cursor=kept),
        lambda: queries.provenance(read_model, country="KAZ", metric="*", cursor=kept),
        lambda: queries.list_activities(read_model, country="KAZ", cursor=kept),
    ]
    for call in elsewhere:
        with pytest.raises(BadParameterError, match="other filters"):
            call()
    with pytest.raises(BadParameterError, match=r"1\.\.500"):
        queries.provenance(read_model, metric="*", limit=501)


def test_status_gives_checkpoint_lag_and_quarantine(read_model):
    answer = queries.status(read_model, stream_last_sequence=10)

    assert answer.as_of == AS_OF
    assert plain(answer.projections) == [
        {"projection": "ledger", "checkpoint": 7, "lag": 3, "quarantined": 0}
    ]
    assert queries.status(read_model).projections[0].lag is None


def test_an_empty_projection_answers_with_sequence_zero(tmp_path: Path):
    from projections.db import ensure_live

    live = tmp_path / "ledger.db"
    ensure_live(live)
    conn = open_reader(live)

    assert queries.list_years(conn).as_of == AsOf(0, None)
    assert queries.country_summary(conn, "KAZ").activities == 0
    assert queries.list_activities(conn).items == []


def test_queries_never_write(read_model):
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        read_model.execute("DELETE FROM activities")
