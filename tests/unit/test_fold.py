"""The counting rules of docs/design.md, one table of cases per rule, on the pure fold alone.

The cases run the very functions the applier runs (live projector, rebuild and as-of replay):
:func:`~projections.fold.fold_state` for each event, then
:func:`~projections.fold.add_footprint` to take the activity's old footprint away and add its new
one, without SQLite.
"""

from __future__ import annotations

from typing import Any

import pytest

from events.model import CountryShare
from projections.fold import (
    MICROS,
    ROLLUP_KEYS,
    Bucket,
    FoldError,
    add_footprint,
    fold_state,
    net_deltas,
)
from tests.factories import make_reported, make_revised, make_withdrawn, sealed

KAZ = [CountryShare("KAZ")]
KAZ_UZB = [CountryShare("KAZ"), CountryShare("UZB")]
KAZ_UZB_SHARED = [CountryShare("KAZ", 60.0), CountryShare("UZB", 40.0)]


def rows_after(payloads: list[Any], table: str, metric: str = "people_trained") -> list[dict]:
    """Fold the payloads in order and return one rollup table's rows for one metric.

    Each event is applied as a batch of its own, as the live projector applies events that
    come one at a time, so that every revision and withdrawal takes a footprint away.
    """
    rows: dict[Bucket, list[int]] = {}
    states: dict[str, Any] = {}
    for sequence, payload in enumerate(payloads, start=1):
        before = states.get(payload.activity_id)
        after = fold_state(before, sealed(payload), sequence)
        states[payload.activity_id] = after
        add_footprint(rows, before, -1)
        add_footprint(rows, after, 1)
    keys = ROLLUP_KEYS[table]
    found = []
    for bucket, (micros, activities, multi) in net_deltas(rows).items():
        if bucket[0] != table or bucket[-1] != metric:
            continue
        row = dict(zip(keys, bucket[1:-1], strict=True))
        row.update(
            metric=metric,
            total=micros / MICROS,
            activities=activities,
            multi_country=multi,
        )
        found.append(row)
    return sorted(found, key=lambda r: [str(v) for v in r.values()])


def kaz(total: float, activities: int = 1, multi: int = 0, metric: str = "people_trained"):
    return {
        "country": "KAZ",
        "metric": metric,
        "total": total,
        "activities": activities,
        "multi_country": multi,
    }


def uzb(total: float, activities: int = 1, multi: int = 0, metric: str = "people_trained"):
    return dict(kaz(total, activities, multi, metric), country="UZB")


# -- an activity's figures count once in every total ---------------------------------------------

COUNTS_ONCE = [
    ("single report", [make_reported()], "by_country", [kaz(571)]),
    (
        "single report by programme",
        [make_reported()],
        "by_programme",
        [
            {
                "programme": "GENERAL",
                "metric": "people_trained",
                "total": 571,
                "activities": 1,
                "multi_country": 0,
            }
        ],
    ),
    (
        "two activities add up",
        [make_reported(), make_reported(activity_id="B", metrics={"people_trained": 29})],
        "by_country",
        [kaz(600, 2)],
    ),
    (
        "global total",
        [make_reported(), make_reported(activity_id="B", countries=[])],
        "totals",
        [
            {
                "metric": "people_trained",
                "total": 1142,
                "activities": 2,
                "multi_country": 0,
            }
        ],
    ),
    (
        "country x year",
        [make_reported(), make_reported(activity_id="B", year=2021)],
        "country_year",
        [
            dict(kaz(571), year=2020),
            dict(kaz(571), year=2021),
        ],
    ),
]


@pytest.mark.parametrize(
    ("payloads", "table", "expected"),
    [case[1:] for case in COUNTS_ONCE],
    ids=[case[0] for case in COUNTS_ONCE],
)
def test_figures_count_once_in_every_total(payloads, table, expected):
    assert rows_after(payloads, table) == sorted(
        expected, key=lambda r: [str(v) for v in r.values()]
    )


# -- shares allocate proportionally -----------------------------------------------------------

SHARES = [
    (
        "60/40 split",
        [make_reported(countries=KAZ_UZB_SHARED)],
        "by_country",
        [kaz(342.6), uzb(228.4)],
    ),
    (
        "programme gets the whole figure",
        [make_reported(countries=KAZ_UZB_SHARED)],
        "by_programme",
        [
            {
                "programme": "GENERAL",
                "metric": "people_trained",
                "total": 571,
                "activities": 1,
                "multi_country": 0,
            }
        ],
    ),
    (
        "activity count is whole in each country",
        [make_reported(countries=KAZ_UZB_SHARED)],
        "by_country",
        [kaz(1, metric="*"), uzb(1, metric="*")],
    ),
]


@pytest.mark.parametrize(
    ("payloads", "table", "expected"),
    [case[1:] for case in SHARES],
    ids=[case[0] for case in SHARES],
)
def test_shares_allocate_figures_proportionally(payloads, table, expected):
    metric = expected[0]["metric"]
    assert rows_after(payloads, table, metric) == expected


# -- multi-country without shares is listed, not counted, per country -------------------------

MULTI = [
    ("listed under each country", "by_country", [kaz(0, 0, 1), uzb(0, 0, 1)]),
    (
        "counts in the programme",
        "by_programme",
        [
            {
                "programme": "GENERAL",
                "metric": "people_trained",
                "total": 571,
                "activities": 1,
                "multi_country": 0,
            }
        ],
    ),
    (
        "counts in the year",
        "by_year",
        [
            {
                "year": 2020,
                "metric": "people_trained",
                "total": 571,
                "activities": 1,
                "multi_country": 0,
            }
        ],
    ),
    (
        "listed in country x programme",
        "country_programme",
        [dict(kaz(0, 0, 1), programme="GENERAL"), dict(uzb(0, 0, 1), programme="GENERAL")],
    ),
]


@pytest.mark.parametrize(
    ("table", "expected"), [case[1:] for case in MULTI], ids=[case[0] for case in MULTI]
)
def test_multi_country_without_shares_counts_in_no_single_country(table, expected):
    assert rows_after([make_reported(countries=KAZ_UZB)], table) == expected


# -- a withdrawn activity counts nowhere -----------------------------------------------------------


@pytest.mark.parametrize("table", list(ROLLUP_KEYS))
def test_withdrawn_activity_counts_nowhere(table):
    payloads = [make_reported(countries=KAZ_UZB_SHARED), make_revised(year=2019), make_withdrawn()]
    assert rows_after(payloads, table) == []
    assert rows_after(payloads, table, "*") == []


def test_withdrawal_leaves_other_activities_alone():
    payloads = [make_reported(), make_reported(activity_id="B"), make_withdrawn("B")]
    assert rows_after(payloads, "by_country") == [kaz(571)]


# -- a revision moves figures from the old values to the new ones ---------------------------------

REVISIONS = [
    ("new figure", make_revised(metrics={"people_trained": 600}), "by_country", [kaz(600)]),
    ("to another country", make_revised(countries=[CountryShare("UZB")]), "by_country", [uzb(571)]),
    (
        "to shares",
        make_revised(countries=KAZ_UZB_SHARED),
        "by_country",
        [kaz(342.6), uzb(228.4)],
    ),
    (
        "to multi-country without shares",
        make_revised(countries=KAZ_UZB),
        "by_country",
        [kaz(0, 0, 1), uzb(0, 0, 1)],
    ),
    ("metric dropped", make_revised(metrics={"participants": 10}), "by_country", []),
    (
        "to another year",
        make_revised(year=2021),
        "by_year",
        [
            {
                "year": 2021,
                "metric": "people_trained",
                "total": 571,
                "activities": 1,
                "multi_country": 0,
            }
        ],
    ),
    (
        "to another programme",
        make_revised(programme="GLOCYB"),
        "programme_year",
        [
            {
                "programme": "GLOCYB",
                "year": 2020,
                "metric": "people_trained",
                "total": 571,
                "activities": 1,
                "multi_country": 0,
            }
        ],
    ),
    ("title only", make_revised(title="Renamed"), "by_country", [kaz(571)]),
]


@pytest.mark.parametrize(
    ("revision", "table", "expected"),
    [case[1:] for case in REVISIONS],
    ids=[case[0] for case in REVISIONS],
)
def test_revision_moves_figures_from_old_to_new(revision, table, expected):
    assert rows_after([make_reported(), revision], table) == expected


def test_revision_that_changes_no_figure_has_no_deltas():
    first = fold_state(None, sealed(make_reported()), 1)
    after = fold_state(first, sealed(make_revised(title="Renamed")), 2)
    deltas: dict[Bucket, list[int]] = {}
    add_footprint(deltas, first, -1)
    add_footprint(deltas, after, 1)
    assert net_deltas(deltas) == {}
    assert (after.version, after.last_sequence) == (2, 2)


# -- events that cannot follow the state -----------------------------------------------------------

UNAPPLICABLE = [
    ("revision before report", [make_revised()]),
    ("withdrawal before report", [make_withdrawn()]),
    ("second report", [make_reported(), make_reported()]),
    ("revision after withdrawal", [make_reported(), make_withdrawn(), make_revised(year=2019)]),
    ("withdrawal twice", [make_reported(), make_withdrawn(), make_withdrawn()]),
    (
        "shares for some countries only",
        [make_reported(countries=[CountryShare("KAZ", 50.0), CountryShare("UZB")])],
    ),
]


@pytest.mark.parametrize(
    "payloads", [case[1] for case in UNAPPLICABLE], ids=[case[0] for case in UNAPPLICABLE]
)
def test_event_that_cannot_follow_raises_fold_error(payloads):
    with pytest.raises(FoldError):
        rows_after(payloads, "by_country")
