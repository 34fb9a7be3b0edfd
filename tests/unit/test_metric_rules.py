"""Figures that mean what they say: each metric's aggregation rule and unit, in the fold, the
queries, and on the seed report's own activities."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from events.codec import encode, headers_for
from events.metrics import metric_rules, rule_of
from events.model import ActivityChanges, ActivityRevised, CountryShare
from events.reference import load_reference
from events.stored import RawMessage
from projections import queries
from projections.apply import Applier
from projections.db import open_writer
from projections.fold import MICROS, counted_figures
from services.cli.demo import DATASET, read_dataset, read_revisions
from tests.factories import make_reported, sealed

COUNTRY_COUNTS = ("countries_assisted", "countries_reached", "countries_represented")


def test_every_metric_declares_a_known_rule_and_units_point_at_a_metric_of_their_own() -> None:
    rules = metric_rules()
    assert set(rules) == set(load_reference().metrics)
    for name, rule in rules.items():
        assert rule.aggregate in ("sum", "max", "none"), name
        assert rules[rule.canonical].canonical == rule.canonical, name
    # The distinct counts are never added; the tons are kilograms.
    assert {rules[m].aggregate for m in COUNTRY_COUNTS} == {"none"}
    assert rules["people_trained"].aggregate == "sum"
    assert rules["cocaine_seized_tons"].canonical == "cocaine_seized_kg"


def test_a_metric_the_catalogue_lacks_is_summed_as_itself() -> None:
    rule = rule_of("retired_metric")
    assert (rule.canonical, rule.factor, rule.aggregate) == ("retired_metric", 1, "sum")


def test_tons_convert_to_kilograms_exactly() -> None:
    # 106 tons are 106,000 kg: 106,000,000,000 millionths of a kilogram, to the last one.
    figures = counted_figures(make_reported(metrics={"cocaine_seized_tons": 106}))
    assert figures == {"cocaine_seized_kg": (106 * 1000 * MICROS, True)}
    # A fraction of a ton keeps every reported digit: 0.000001 t = 1 g = 0.001 kg.
    assert counted_figures(make_reported(metrics={"cocaine_seized_tons": 0.000001})) == {
        "cocaine_seized_kg": (1000, True)
    }
    # The same quantity in both units: both count.
    both = counted_figures(
        make_reported(metrics={"cocaine_seized_tons": 2, "cocaine_seized_kg": 5})
    )
    assert both == {"cocaine_seized_kg": ((2000 + 5) * MICROS, True)}


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    conn = open_writer(":memory:")  # type: ignore[arg-type]
    yield conn
    conn.close()


def apply(conn: sqlite3.Connection, payloads: list[Any]) -> None:
    applier = Applier(conn)
    messages = []
    for sequence, payload in enumerate(payloads, start=1):
        envelope = sealed(payload)
        subject = f"ledger.activity.HQ.{payload.activity_id}"
        messages.append(
            RawMessage(sequence, subject, sequence * 1000, headers_for(envelope), encode(envelope))
        )
    applier.apply(messages)


def test_distinct_counts_are_listed_never_summed_and_max_names_its_activity(
    conn: sqlite3.Connection,
) -> None:
    kaz = [CountryShare("KAZ")]
    apply(
        conn,
        [
            make_reported(
                activity_id="A",
                countries=kaz,
                metrics={"countries_assisted": 12, "beneficiaries": 900},
            ),
            make_reported(
                activity_id="B",
                countries=kaz,
                metrics={"countries_assisted": 30, "beneficiaries": 1500},
            ),
            make_reported(activity_id="C", countries=kaz, metrics={"people_trained": 40}),
        ],
    )
    summary = queries.country_summary(conn, "KAZ")
    assert summary.totals == {"people_trained": 40.0}
    assert summary.rules == {
        "beneficiaries": "max",
        "countries_assisted": "none",
        "people_trained": "sum",
    }
    assert summary.units["countries_assisted"] == "countries"
    listed = summary.reported["countries_assisted"]
    assert (listed.rule, listed.activities, listed.value) == ("none", 2, None)
    assert [(f.activity_id, f.value) for f in listed.figures] == [("B", 30.0), ("A", 12.0)]
    largest = summary.reported["beneficiaries"]
    assert (largest.rule, largest.value, largest.activity_id) == ("max", 1500.0, "B")
    # Nowhere in the rollups is 42 countries assisted, or 2,400 beneficiaries.
    stored = conn.execute(
        "SELECT total_micros FROM totals WHERE metric IN ('countries_assisted', 'beneficiaries')"
    ).fetchall()
    assert stored == [(0,), (0,)]
    # The year breakdown says how many report each, and no total of them.
    (year,) = summary.by_year or []
    assert "countries_assisted" not in year.totals
    assert year.reported["countries_assisted"].activities == 2


def test_a_withdrawn_or_revised_figure_leaves_the_list(conn: sqlite3.Connection) -> None:
    from events.model import ActivityChanges, ActivityRevised, ActivityWithdrawn

    applier = Applier(conn)
    events = [
        make_reported(activity_id="A", metrics={"countries_assisted": 12}),
        make_reported(activity_id="B", metrics={"countries_assisted": 30}),
        ActivityRevised(
            activity_id="A", changes=ActivityChanges(metrics={"countries_assisted": 14}), reason="x"
        ),
        ActivityWithdrawn(activity_id="B", reason="duplicate"),
    ]
    for sequence, payload in enumerate(events, start=1):
        envelope = sealed(payload)
        applier.apply(
            [
                RawMessage(
                    sequence,
                    f"ledger.activity.HQ.{payload.activity_id}",
                    sequence,
                    headers_for(envelope),
                    encode(envelope),
                )
            ]
        )
    assert conn.execute("SELECT metric, country, activity_id, micros FROM reported").fetchall() == [
        ("countries_assisted", "", "A", 14 * MICROS),
        ("countries_assisted", "KAZ", "A", 14 * MICROS),
    ]


# -- the seed report -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed() -> Iterator[sqlite3.Connection]:
    """The seed report's activities, then its revisions (data/revisions.jsonl), applied."""
    payloads: list[Any] = read_dataset()
    payloads += [
        ActivityRevised(
            activity_id=r.activity_id,
            changes=msgspec.convert(r.changes, ActivityChanges),
            reason=r.reason,
        )
        for r in read_revisions()
    ]
    conn = open_writer(":memory:")  # type: ignore[arg-type]
    apply(conn, payloads)
    assert conn.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)
    yield conn
    conn.close()


def test_no_total_of_the_seed_counts_countries(seed: sqlite3.Connection) -> None:
    # There are 193 Member States; the largest code list has 249 entries. A sum of distinct
    # counts (the overview once said 516) exceeds both.
    tables = ["totals", "by_year", "by_programme", "by_country", "country_year"]
    for table in tables:
        rows = seed.execute(
            f"SELECT metric, total FROM {table} WHERE metric LIKE 'countries_%' AND total > 0"
        ).fetchall()
        assert rows == [], table
    overall = queries.global_summary(seed)
    assert not set(COUNTRY_COUNTS) & set(overall.totals)
    assert all(overall.reported[m].rule == "none" for m in COUNTRY_COUNTS if m in overall.reported)
    assert max(f.value for f in overall.reported["countries_assisted"].figures) <= 249
    for year in queries.list_years(seed).items:
        assert not set(COUNTRY_COUNTS) & set(year.totals)


def test_the_seed_still_says_571_people_trained_in_kazakhstan(seed: sqlite3.Connection) -> None:
    assert queries.country_summary(seed, "KAZ").totals["people_trained"] == 571


def test_the_coaches_of_peru_and_kyrgyzstan_are_in_no_single_countrys_total(
    seed: sqlite3.Connection,
) -> None:
    (coaches,) = [
        p
        for p in map(msgspec.json.decode, DATASET.read_bytes().splitlines())
        if p["activity_id"] == "P021-SPORT-COACHES-TRAINING"
    ]
    trained = coaches["metrics"]["people_trained"]
    for country in ("PER", "KGZ"):
        summary = queries.country_summary(seed, country)
        assert summary.totals.get("people_trained", 0) < trained
        assert "P021-SPORT-COACHES-TRAINING" in [a.activity_id for a in summary.multi_country]
    programme = queries.programme_summary(seed, "YOUTH_SPORT")
    assert programme.totals["people_trained"] >= trained


def test_provenance_of_a_max_names_its_activity_and_of_a_none_gives_no_total(
    conn: sqlite3.Connection,
) -> None:
    apply(
        conn,
        [
            make_reported(activity_id="A", metrics={"countries_assisted": 12, "beneficiaries": 9}),
            make_reported(activity_id="B", metrics={"countries_assisted": 30, "beneficiaries": 15}),
        ],
    )
    most = queries.provenance(conn, programme="GENERAL", metric="beneficiaries")
    assert (most.rule, most.total, most.largest) == ("max", 15.0, "B")
    assert {(i.activity_id, i.value, i.figure) for i in most.items} == {
        ("A", 0.0, 9.0),
        ("B", 0.0, 15.0),
    }
    distinct = queries.provenance(conn, country="KAZ", metric="countries_assisted")
    assert (distinct.rule, distinct.total, distinct.largest) == ("none", None, None)
    assert [(i.activity_id, i.figure) for i in distinct.items] == [("A", 12.0), ("B", 30.0)]
    # Asked in tons, a seizure is traced under kilograms, its canonical metric.
    assert queries.provenance(conn, metric="cocaine_seized_tons").metric == "cocaine_seized_kg"


def test_venues_are_in_no_countrys_totals_but_on_the_activity(seed: sqlite3.Connection) -> None:
    congress = queries.get_activity(seed, "P004-CONGRESS14")
    assert [(p.country, p.role) for p in congress.countries] == [("JPN", "venue")]
    assert congress.metrics["participants"] == 5600  # para 4, as reported
    japan = queries.country_summary(seed, "JPN")
    assert japan.totals.get("participants", 0) < 5600
    assert "P004-CONGRESS14" not in [
        a.activity_id for a in queries.list_activities(seed, country="JPN").items
    ]
    for host, activity in [
        ("USA", "P083-AHC-CYBERCRIME-ORGANIZATIONAL"),
        ("ITA", "P079-VENICE-CULTURAL-PROPERTY-EVENT"),
        ("AUT", "P057-UNTOC-REVIEW-LAUNCH"),
    ]:
        places = queries.get_activity(seed, activity).countries
        assert [(p.country, p.role) for p in places] == [(host, "venue")]


def test_a_part_counts_once_in_its_whole(seed: sqlite3.Connection) -> None:
    # E4J (para 55) is part of the Doha Programme (para 6): 100,000 of its capacity-building
    # are within the programme's 112,000, so the global figure holds 112,000, not 212,000.
    e4j = queries.get_activity(seed, "P055-E4J-CAPACITY")
    assert (e4j.part_of, e4j.metrics["people_trained"]) == ("P006-DOHA-CAPACITY", 100_000)
    assert queries.get_activity(seed, "P006-DOHA-CAPACITY").parts == ["P055-E4J-CAPACITY"]
    assert "people_trained" not in queries.programme_summary(seed, "E4J").totals
    assert queries.programme_summary(seed, "DOHA").totals["people_trained"] == 112_000
    everything = queries.global_summary(seed).totals["people_trained"]
    parts = {r.activity_id for r in read_revisions() if "part_of" in r.changes}
    expected = sum(
        r.metrics.get("people_trained", 0) for r in read_dataset() if r.activity_id not in parts
    )
    assert everything == expected
    assert expected + 100_000 == sum(r.metrics.get("people_trained", 0) for r in read_dataset())


def test_para_62_is_a_second_source_not_a_second_activity(seed: sqlite3.Connection) -> None:
    sources = queries.get_activity(seed, "P050-IRG11-RESUMED-2").sources
    assert [s.paragraph for s in sources] == [50, 62]
