"""Property: every answer as of sequence k equals the same answer from a rebuild of the first
k events, for every k of a generated history, and so does the digest of the figures a release
would state; and a document's figures read from its rollups equal those summed from its
footprints.

The histories are those of the projection property (reports, revisions of every field,
withdrawals, events that cannot follow, venues, shares, parts, one or two documents). The full
history is applied in random batches by the live applier, or by the bulk applier of a rebuild,
so both writers of the past are checked. Marks are written every 3 sequences here (50,000 in
use), so that answers start from them, and each mark is checked against the footprints.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.envelope import Envelope
from events.reference import load_reference
from projections import marks, queries
from projections.answers import AsOf
from projections.apply import Applier
from projections.bulk import BulkApplier
from projections.db import finish_bulk, open_reader, open_writer
from projections.digest import digest_at, present_digest
from projections.errors import UnknownKeyError
from projections.temporal import Scope, View
from tests.unit.test_projection_property import (
    COUNTRIES,
    DOCUMENTS,
    IDS,
    PROGRAMMES,
    YEARS,
    apply_live,
    batches,
    ledgers,
    raw,
)

_MARK_EVERY = 3


@pytest.fixture(autouse=True, scope="module")
def _marks_every_few_sequences():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(marks, "MARK_EVERY", _MARK_EVERY)
        yield


_PROGRAMMES = [p for p in PROGRAMMES if load_reference().programme_code(p) is not None]
_METRICS = ["*", "people_trained", "cocaine_seized_kg", "countries_assisted", "beneficiaries"]


def _plain(answer: Any) -> Any:
    """The answer without its ``as_of``, which says which ledger it reflects, not what."""
    data = msgspec.to_builtins(answer)
    if isinstance(data, dict):
        data.pop("as_of", None)
    return data


def _answers(conn, scope: Scope | None) -> dict[str, Any]:
    """Every query's answer over a small ledger's keys, by a name that says which."""
    out: dict[str, Any] = {
        "countries": queries.list_countries(conn, scope=scope),
        "countries 2020": queries.list_countries(conn, 2020, scope=scope),
        "programmes": queries.list_programmes(conn, scope=scope),
        "years": queries.list_years(conn, scope=scope),
        "documents": queries.list_documents(conn, scope=scope),
        "global": queries.global_summary(conn, scope=scope),
        "activities": queries.list_activities(conn, limit=500, scope=scope),
        "withdrawn": queries.list_activities(conn, status="withdrawn", scope=scope),
        "status": queries.status(conn, scope=scope).projections[0].quarantined,
    }
    for country in COUNTRIES:
        out[f"country {country}"] = queries.country_summary(conn, country, scope=scope)
        out[f"country {country} 2021"] = queries.country_summary(conn, country, 2021, scope=scope)
        out[f"activities {country}"] = queries.list_activities(conn, country=country, scope=scope)
    for programme in _PROGRAMMES:
        out[f"programme {programme}"] = queries.programme_summary(conn, programme, scope=scope)
        out[f"programme {programme} 2020"] = queries.programme_summary(
            conn, programme, 2020, scope=scope
        )
    for year in YEARS:
        out[f"year {year}"] = queries.year_summary(conn, year, scope=scope)
    for activity_id in IDS:
        try:
            out[f"activity {activity_id}"] = queries.get_activity(conn, activity_id, scope=scope)
        except UnknownKeyError:
            out[f"activity {activity_id}"] = None
    for metric in _METRICS:
        out[f"provenance {metric}"] = queries.provenance(conn, metric=metric, scope=scope)
        out[f"provenance KAZ {metric}"] = queries.provenance(
            conn, country="KAZ", metric=metric, scope=scope
        )
        out[f"provenance GENERAL 2020 {metric}"] = queries.provenance(
            conn, programme="GENERAL", year=2020, metric=metric, scope=scope
        )
    return {name: _plain(answer) for name, answer in out.items()}


def _rebuilt(events: list[tuple[int, Envelope[Any]]], k: int):
    conn = open_writer(":memory:")  # type: ignore[arg-type]
    Applier(conn).apply([raw(seq, env) for seq, env in events[:k]])
    return conn


def _bulk(events: list[tuple[int, Envelope[Any]]], cuts: list[int], cache: int):
    conn = open_writer(":memory:", bulk=True)  # type: ignore[arg-type]
    bulk = BulkApplier(conn, cache=cache)
    for batch, _ in batches([raw(seq, env) for seq, env in events], cuts, []):
        bulk.add(batch)
    bulk.finish()
    finish_bulk(conn)
    return conn


def _check_marks(conn, last: int) -> None:
    """Every multiple of the spacing up to ``last`` is marked, and each mark holds the sums of
    the footprints valid at it, by place, metric and year or programme."""
    found = [mark for (mark,) in conn.execute("SELECT mark FROM marks ORDER BY mark")]
    assert found == list(range(_MARK_EVERY, last + 1, _MARK_EVERY))
    for breakdown in ("year", "programme"):
        stored = conn.execute(
            f"SELECT country, mark, metric, {breakdown}, micros, counted, listed "
            f"FROM marks_by_{breakdown} ORDER BY 1, 2, 3, 4"
        ).fetchall()
        summed = conn.execute(
            f"SELECT * FROM (SELECT f.country, m.mark, f.metric, f.{breakdown}, "
            "sum(f.micros) AS a, sum(f.counted) AS b, sum(f.listed) AS c "
            "FROM marks m JOIN footprints f ON f.since <= m.mark AND f.until > m.mark "
            f"GROUP BY 1, 2, 3, 4) WHERE a != 0 OR b != 0 OR c != 0 ORDER BY 1, 2, 3, 4"
        ).fetchall()
        assert stored == summed, breakdown


def _check_every_sequence(conn, events: list[tuple[int, Envelope[Any]]]) -> None:
    _check_marks(conn, len(events))
    for k in range(len(events) + 1):
        scope = Scope(as_of_sequence=k)
        rebuilt = _rebuilt(events, k)
        expected = _answers(rebuilt, None)
        got = _answers(conn, scope)
        for name, answer in expected.items():
            assert got[name] == answer, f"as of {k}: {name}"
        # A release's digest of the figures then equals the rebuilt rollups' own.
        assert digest_at(conn, k) == present_digest(rebuilt), f"digest as of {k}"
        rebuilt.close()
        # The answer says which ledger it reflects: the sequence asked, in the past.
        seen = queries.view_of(conn, scope=scope)
        assert seen.sequence == k
        assert seen.now is (k == len(events))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledgers(), st.lists(st.integers(0, 40), max_size=6))
def test_as_of_every_sequence_equals_a_rebuild_until_it(events, cuts):
    conn = apply_live(":memory:", events, cuts, [])
    _check_every_sequence(conn, events)
    conn.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledgers(), st.lists(st.integers(0, 40), max_size=6), st.integers(1, 3))
def test_the_bulk_rebuild_writes_the_same_past(events, cuts, cache):
    # A small cache writes activities out and reads them back mid-replay: their open
    # versions are then closed in the file, as the live applier closes them.
    conn = _bulk(events, cuts, cache)
    _check_every_sequence(conn, events)
    conn.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledgers())
def test_a_documents_rollups_equal_its_footprints(events):
    conn = apply_live(":memory:", events, [], [])
    for document in DOCUMENTS:
        view = View(None, document, AsOf(0, None), {})
        for group in (None, "country"):
            from_rollups = queries._cells(
                conn,
                "by_document" if group is None else "document_country",
                {"document": document},
                group,
            )
            summed = queries._footprint_cells(conn, view, {}, group)
            assert summed == from_rollups
    conn.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledgers(), st.lists(st.integers(0, 40), max_size=6))
def test_marks_filled_after_the_batches_equal_those_written_in_them(events, cuts):
    # The live projector leaves marks out of its batches and fills them from a thread.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "live.db")
        conn = open_writer(path)
        applier = Applier(conn, marks=False)
        for batch, _ in batches([raw(seq, env) for seq, env in events], cuts, []):
            applier.apply(batch)
        assert conn.execute("SELECT count(*) FROM marks").fetchone()[0] == 0
        reader = open_reader(path)
        due = list(range(_MARK_EVERY, len(events) + 1, _MARK_EVERY))
        assert marks.fill_marks(reader, conn, len(events)) == due
        assert marks.fill_marks(reader, conn, len(events)) == []  # each once
        inline = apply_live(":memory:", events, cuts, [])
        for table in ("marks", "marks_by_year", "marks_by_programme"):
            query = f"SELECT * FROM {table} ORDER BY {'1' if table == 'marks' else '1, 2, 3, 4'}"
            assert conn.execute(query).fetchall() == inline.execute(query).fetchall(), table
        _check_marks(conn, len(events))
        for each in (reader, conn, inline):
            each.close()
