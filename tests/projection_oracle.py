"""A naive recomputation of every projection table from the full event list, for tests.

It shares no code with ``projections/``: it replays the events into plain dicts, then sums each
rollup from scratch with nested loops, so that a bug in the fold cannot hide in both.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from events.envelope import Envelope
from events.model import ActivityReported, ActivityRevised, ActivityWithdrawn

NOT_SUMMED = {
    "countries_assisted": "none",
    "countries_reached": "none",
    "countries_represented": "none",
    "network_member_countries": "none",
    "jurisdictions_reached": "none",
    "languages": "none",
    "beneficiaries": "max",
}
"""The metrics whose figures are never added across activities, as the catalogue declares
them (events/reference/metrics.json), written out here again on purpose."""

OTHER_UNITS = {"cocaine_seized_tons": ("cocaine_seized_kg", 1000)}
"""Metrics that are another metric in another unit: (that metric, its units per this unit)."""


def _recipients(countries: list[Any]) -> list[tuple[str, float | None]]:
    """The countries that count an activity: venues only hosted it."""
    return [(c.country, c.share) for c in countries if c.role == "recipient"]


def counted(fields: dict[str, Any]) -> dict[str, int]:
    """An activity's figures by the metric they count as, in millionths of its unit; none
    for an activity that is part of another (they are in the other's figures)."""
    out: dict[str, int] = {}
    if fields["part_of"] is not None:
        return out
    for metric, value in fields["metrics"].items():
        name, factor = OTHER_UNITS.get(metric, (metric, 1))
        out[name] = out.get(name, 0) + round(value * 1_000_000) * factor
    return out


ROLLUPS = {
    "by_country": ("country",),
    "by_programme": ("programme",),
    "by_year": ("year",),
    "country_year": ("country", "year"),
    "programme_year": ("programme", "year"),
    "country_programme": ("country", "programme"),
    "by_document": ("document",),
    "document_country": ("document", "country"),
    "totals": (),
}


def replay_activities(events: list[tuple[int, Envelope[Any]]]) -> dict[str, dict[str, Any]]:
    """The final state of every activity, skipping events that cannot follow (as quarantine)."""
    activities: dict[str, dict[str, Any]] = {}
    for sequence, envelope in events:
        payload = envelope.payload
        current = activities.get(payload.activity_id)
        if isinstance(payload, ActivityReported):
            if current is not None:
                continue
            current = {
                "fields": {
                    "programme": payload.programme,
                    "year": payload.year,
                    "countries": _recipients(payload.countries),
                    "metrics": dict(payload.metrics),
                    "part_of": payload.part_of,
                    "documents": _documents(payload.sources),
                },
                "status": "active",
                "version": 0,
                "event_ids": [],
            }
            activities[payload.activity_id] = current
        elif current is None or current["status"] == "withdrawn":
            continue
        elif isinstance(payload, ActivityRevised):
            for name, value in payload.changes.as_dict().items():
                if name == "countries":
                    value = _recipients(value)
                if name == "sources":
                    name, value = "documents", _documents(value)
                if name in current["fields"]:
                    current["fields"][name] = value
        elif isinstance(payload, ActivityWithdrawn):
            current["status"] = "withdrawn"
        current["version"] += 1
        current["last_sequence"] = sequence
        current["event_ids"].append(envelope.event_id)
    return activities


def _documents(sources: list[Any]) -> list[str]:
    return sorted({source.document for source in sources})


def _contributions(fields: dict[str, Any]) -> list[tuple[dict[str, Any], str, int, int, int]]:
    """(key columns, metric, micros, counted, listed) for one active activity."""
    out = []
    figures = [("*", 1_000_000), *counted(fields).items()]
    countries = fields["countries"]
    for metric, micros in figures:
        if metric in NOT_SUMMED:
            micros = 0  # the row counts the activity, never its figure
        whole = {"programme": fields["programme"], "year": fields["year"]}
        for where in [whole, *({"document": d} for d in fields["documents"])]:
            out.append((where, metric, micros, 1, 0))
            for country, share in countries:
                place = dict(where, country=country)
                if share is None and len(countries) > 1:
                    out.append((place, metric, 0, 0, 1))
                elif share is None or metric == "*":
                    out.append((place, metric, micros, 1, 0))
                else:
                    out.append((place, metric, round(micros * share / 100), 1, 0))
    return out


def expected_rollups(activities: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Every rollup table's rows, as the counting rules of docs/design.md define them."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for table, keys in ROLLUPS.items():
        rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        needs_country = "country" in keys
        needs_document = "document" in keys
        for activity in activities.values():
            if activity["status"] != "active":
                continue
            for place, metric, micros, counted, listed in _contributions(activity["fields"]):
                if needs_country != ("country" in place) or needs_document != ("document" in place):
                    continue
                key = (*(place[k] for k in keys), metric)
                row = rows.setdefault(
                    key,
                    {
                        **{k: place[k] for k in keys},
                        "metric": metric,
                        "total_micros": 0,
                        "activities": 0,
                        "multi_country": 0,
                    },
                )
                row["total_micros"] += micros
                row["activities"] += counted
                row["multi_country"] += listed
        tables[table] = sorted(rows.values(), key=lambda r: [str(r[k]) for k in (*keys, "metric")])
    return tables


def projected_rollups(conn: sqlite3.Connection) -> dict[str, list[dict[str, Any]]]:
    """The same tables as read from a projection database."""
    tables = {}
    for table, keys in ROLLUPS.items():
        columns = [*keys, "metric", "total_micros", "activities", "multi_country", "total"]
        rows = [
            dict(zip(columns, row, strict=True))
            for row in conn.execute(f"SELECT {', '.join(columns)} FROM {table}")
        ]
        for row in rows:
            # total is total_micros for readers; it must agree exactly.
            if row.pop("total") != row["total_micros"] / 1_000_000:
                raise AssertionError(f"{table}: total disagrees with total_micros in {row}")
        tables[table] = sorted(rows, key=lambda r: [str(r[k]) for k in (*keys, "metric")])
    return tables


def expected_activities(activities: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """(status, version, last_sequence, event_ids) by activity id."""
    return {
        activity_id: (a["status"], a["version"], a["last_sequence"], a["event_ids"])
        for activity_id, a in activities.items()
    }


def projected_activities(conn: sqlite3.Connection) -> dict[str, tuple[Any, ...]]:
    """The same, as read from a projection database."""
    import json

    return {
        row[0]: (row[1], row[2], row[3], json.loads(row[4]))
        for row in conn.execute(
            "SELECT activity_id, status, version, last_sequence, event_ids FROM activities"
        )
    }


def assert_projection_matches(conn: sqlite3.Connection, events: list[tuple[int, Envelope[Any]]]):
    """Fail unless every table of the projection equals the naive recomputation."""
    activities = replay_activities(events)
    assert projected_activities(conn) == expected_activities(activities)
    expected = expected_rollups(activities)
    projected = projected_rollups(conn)
    for table in ROLLUPS:
        assert projected[table] == expected[table], table
        # No figure of a metric that is not summed ever appears as a sum.
        assert not [
            row for row in projected[table] if row["metric"] in NOT_SUMMED and row["total_micros"]
        ], table
    assert sorted(conn.execute("SELECT * FROM reported")) == expected_reported(activities)


def expected_reported(activities: dict[str, dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The ``reported`` rows: each active activity's figures that are not summed, whole, for
    the activity and for each country it counts in."""
    rows = []
    for activity_id, activity in activities.items():
        if activity["status"] != "active":
            continue
        fields = activity["fields"]
        countries = fields["countries"]
        listed_only = len(countries) > 1 and all(share is None for _, share in countries)
        places = ["", *([] if listed_only else [country for country, _ in countries])]
        for metric, micros in counted(fields).items():
            if metric in NOT_SUMMED:
                rows += [
                    (metric, place, activity_id, fields["programme"], fields["year"], micros)
                    for place in places
                ]
    return sorted(rows)


def _country_figures(fields: dict[str, Any], share: float | None) -> dict[str, int]:
    """One country's part of each figure, in millionths (the whole of one that is not
    summed); nothing when only listed."""
    countries = fields["countries"]
    if share is None and len(countries) > 1:
        return {}
    return {
        metric: micros if share is None or metric in NOT_SUMMED else round(micros * share / 100)
        for metric, micros in counted(fields).items()
    }


def assert_countries_match(conn: sqlite3.Connection, events: list[tuple[int, Envelope[Any]]]):
    """Fail unless ``activity_countries`` lists each activity's current countries, with the
    activity's programme, year, status and multi-country flag, and the country's figures."""
    import json

    activities = replay_activities(events)
    expected = sorted(
        (
            activity_id,
            country,
            share,
            a["fields"]["programme"],
            a["fields"]["year"],
            a["status"],
            int(
                len(a["fields"]["countries"]) > 1
                and all(s is None for _, s in a["fields"]["countries"])
            ),
            _country_figures(a["fields"], share),
        )
        for activity_id, a in activities.items()
        for country, share in a["fields"]["countries"]
    )
    projected = sorted(
        (*row[:-1], json.loads(row[-1]))
        for row in conn.execute(
            "SELECT activity_id, country, share, programme, year, status, multi_country, figures "
            "FROM activity_countries"
        )
    )
    assert projected == expected
