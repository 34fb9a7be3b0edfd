"""Property: the projection equals a naive recomputation from the full event list.

Random ledgers of reports, revisions and withdrawals over a few countries, programmes and years,
with and without shares, including events that cannot follow (they go to quarantine). They are
applied in random batches, some delivered twice, to SQLite in memory and on disk, through both
paths: the live applier (one transaction per batch) and the bulk applier of a rebuild (all in
memory, a few activities at a time written out and read back, one transaction at the end). The
bulk path must also give the live path's file row for row.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.codec import encode, headers_for
from events.envelope import Envelope
from events.model import ActivityChanges, ActivityRevised, ActivityWithdrawn, CountryShare, Source
from events.stored import RawMessage
from projections import marks
from projections.apply import Applier
from projections.bulk import BulkApplier
from projections.db import finish_bulk, open_writer
from projections.fold import ROLLUP_KEYS
from projections.provenance import contributions
from projections.schema import table_names
from replay.partition import Plan, fold_part
from tests.factories import make_reported, sealed
from tests.projection_oracle import (
    assert_countries_match,
    assert_projection_matches,
    replay_activities,
)

COUNTRIES = ["KAZ", "UZB", "KGZ", "TJK"]
PROGRAMMES = ["GLOCYB", "CRIMJUST", "GENERAL"]
YEARS = [2019, 2020, 2021]
IDS = ["A1", "A2", "A3", "A4", "A5"]
METRICS = [
    "people_trained",
    "participants",
    "cocaine_seized_kg",
    "cocaine_seized_tons",  # counted as kilograms
    "countries_assisted",  # never summed
    "beneficiaries",  # the largest stands for all
]

figures = st.one_of(
    st.integers(0, 5000),
    st.floats(0, 5000, allow_nan=False).map(lambda x: round(x, 3)),
)
metrics = st.dictionaries(st.sampled_from(METRICS), figures, max_size=4)
DOCUMENTS = ["A/76/119", "A/77/100"]
# One or two reports cite an activity, now and then in two paragraphs of one.
sources = st.lists(
    st.builds(Source, st.sampled_from(DOCUMENTS), st.integers(1, 3)), min_size=1, max_size=3
)


@st.composite
def places(draw: st.DrawFn) -> list[CountryShare]:
    chosen = draw(st.lists(st.sampled_from(COUNTRIES), max_size=3, unique=True))
    # Now and then one of them only hosted the activity: a venue, which counts it nowhere.
    venue = chosen.pop() if chosen and draw(st.integers(0, 3)) == 0 else None
    hosted = [CountryShare(venue, role="venue")] if venue else []
    if len(chosen) < 2 or not draw(st.booleans()):
        return [*hosted, *(CountryShare(c) for c in chosen)]
    cuts = draw(st.lists(st.integers(1, 60), min_size=len(chosen) - 1, max_size=len(chosen) - 1))
    rest = 100 - sum(cuts)
    if rest <= 0:
        return [*hosted, *(CountryShare(c) for c in chosen)]
    shares = [*(float(c) for c in cuts), float(rest)]
    return [*hosted, *(CountryShare(c, s) for c, s in zip(chosen, shares, strict=True))]


@st.composite
def ledgers(draw: st.DrawFn) -> list[tuple[int, Envelope[Any]]]:
    events = []
    for sequence in range(1, draw(st.integers(1, 30)) + 1):
        activity_id = draw(st.sampled_from(IDS))
        kind = draw(st.sampled_from(["report", "report", "revise", "revise", "withdraw"]))
        if kind == "report":
            payload: Any = make_reported(
                activity_id=activity_id,
                programme=draw(st.sampled_from(PROGRAMMES)),
                year=draw(st.sampled_from(YEARS)),
                countries=draw(places()),
                metrics=draw(metrics),
                sources=draw(sources),
                # Some are part of another activity: their figures count in that one only.
                part_of=draw(st.one_of(st.none(), st.none(), st.sampled_from(IDS))),
            )
        elif kind == "revise":
            fields = draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "programme": st.sampled_from(PROGRAMMES),
                        "year": st.sampled_from(YEARS),
                        "countries": places(),
                        "metrics": metrics,
                        "sources": sources,
                        "part_of": st.one_of(st.none(), st.sampled_from(IDS)),
                    },
                )
            )
            payload = ActivityRevised(
                activity_id=activity_id, changes=ActivityChanges(**fields), reason="fix"
            )
        else:
            payload = ActivityWithdrawn(activity_id=activity_id, reason="duplicate")
        events.append((sequence, sealed(payload)))
    return events


def raw(sequence: int, envelope: Envelope[Any]) -> RawMessage:
    """The message as the stream would hand it over."""
    subject = f"ledger.activity.HQ.{envelope.activity_id}"
    return RawMessage(sequence, subject, sequence * 1000, headers_for(envelope), encode(envelope))


def assert_provenance_adds_up(conn) -> None:
    """Every rollup row's contributions sum to its total, and count its activities."""
    for table, keys in ROLLUP_KEYS.items():
        columns = ", ".join((*keys, "metric", "total_micros", "activities", "multi_country"))
        for row in conn.execute(f"SELECT {columns} FROM {table}").fetchall():
            *key, metric, micros, activities, multi = row
            found = contributions(conn, table, tuple(key), metric)
            assert sum(c.micros for c in found) == micros
            assert sum(c.counted for c in found) == activities
            assert sum(c.multi_country for c in found) == multi
            assert all(c.last_event_id == c.event_ids[-1] for c in found)


def batches(messages: list[RawMessage], cuts: list[int], twice: list[bool]):
    """The messages cut into batches at ``cuts``, each with whether it is delivered twice."""
    bounds = sorted({0, len(messages), *(c % (len(messages) + 1) for c in cuts)})
    redeliver = [*twice, *[False] * len(bounds)]
    for (start, end), again in zip(itertools.pairwise(bounds), redeliver, strict=False):
        yield messages[start:end], again


def assert_matches_oracle(conn, events: list[tuple[int, Envelope[Any]]]) -> None:
    """Every table against the naive recomputation, provenance and quarantine included."""
    assert_projection_matches(conn, events)
    assert_countries_match(conn, events)
    assert_provenance_adds_up(conn)
    valid = sum(a["version"] for a in replay_activities(events).values())
    quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    assert quarantined == len(events) - valid


def open_projection(path: str, *, bulk: bool = False):
    return open_writer(Path(path) if path != ":memory:" else path, bulk=bulk)  # type: ignore[arg-type]


def apply_live(path: str, events: list[tuple[int, Envelope[Any]]], cuts, twice):
    """The live applier's projection of the events, batch by batch; the open connection."""
    conn = open_projection(path)
    applier = Applier(conn)
    for batch, again in batches([raw(seq, env) for seq, env in events], cuts, twice):
        applier.apply(batch)
        if again:
            before = conn.execute("SELECT * FROM by_programme ORDER BY 1, 2").fetchall()
            result = applier.apply(batch)
            assert (result.applied, result.quarantined, result.skipped) == (0, 0, len(batch))
            assert conn.execute("SELECT * FROM by_programme ORDER BY 1, 2").fetchall() == before
    assert applier.checkpoint() == len(events)
    return conn


def check(path: str, events: list[tuple[int, Envelope[Any]]], cuts: list[int], twice: list[bool]):
    conn = apply_live(path, events, cuts, twice)
    assert_matches_oracle(conn, events)
    conn.close()


def rows_of(conn) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted, for a row-for-row comparison."""
    return {
        t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in table_names()
    }


def check_bulk(
    path: str,
    events: list[tuple[int, Envelope[Any]]],
    cuts: list[int],
    twice: list[bool],
    cache: int,
) -> None:
    conn = open_projection(path, bulk=True)
    bulk = BulkApplier(conn, cache=cache)
    for batch, again in batches([raw(seq, env) for seq, env in events], cuts, twice):
        bulk.add(batch)
        if again:
            result = bulk.add(batch)
            assert (result.applied, result.quarantined, result.skipped) == (0, 0, len(batch))
    # No checkpoint until the end: it is written with the last rows, in their transaction.
    assert conn.execute("SELECT count(*) FROM checkpoint").fetchone()[0] == 0
    assert bulk.finish() == len(events)
    finish_bulk(conn)
    assert conn.execute("SELECT sequence FROM checkpoint").fetchall() == [(len(events),)]
    assert_matches_oracle(conn, events)
    live = apply_live(":memory:", events, cuts, twice)
    assert rows_of(conn) == rows_of(live)
    live.close()
    conn.close()


@pytest.mark.parametrize("backend", ["memory", "file"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=ledgers(),
    cuts=st.lists(st.integers(0, 40), max_size=5),
    twice=st.lists(st.booleans(), max_size=6),
)
def test_projection_equals_naive_recomputation(backend, events, cuts, twice):
    if backend == "memory":
        check(":memory:", events, cuts, twice)
    else:
        with tempfile.TemporaryDirectory() as directory:
            check(str(Path(directory) / "p.db"), events, cuts, twice)


@pytest.mark.parametrize("backend", ["memory", "file"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=ledgers(),
    cuts=st.lists(st.integers(0, 40), max_size=5),
    twice=st.lists(st.booleans(), max_size=6),
    cache=st.integers(1, 6),
)
def test_bulk_projection_equals_naive_recomputation_and_live(backend, events, cuts, twice, cache):
    """The rebuild's path, with a cache so small that activities leave memory and come back."""
    if backend == "memory":
        check_bulk(":memory:", events, cuts, twice, cache)
    else:
        with tempfile.TemporaryDirectory() as directory:
            check_bulk(str(Path(directory) / "p.db"), events, cuts, twice, cache)


async def _as_batches(messages: list[RawMessage], cuts: list[int]):
    for batch, _ in batches(messages, cuts, []):
        if batch:
            yield batch


def check_split(
    directory: Path, events: list[tuple[int, Envelope[Any]]], cuts: list[int], parts: int
) -> None:
    messages = [raw(seq, env) for seq, env in events]
    plan = Plan(parts=parts, until_seq=len(events), fold_until=len(events))
    results = []
    for part in range(1, parts):
        path = directory / f"part{part}.db"
        conn = open_projection(str(path), bulk=True)
        bulk = BulkApplier(conn, cache=2)
        asyncio.run(fold_part(_as_batches(messages, cuts), bulk, part, plan))
        totals, last = bulk.close_part()
        conn.close()
        results.append((path, totals, last))
    conn = open_projection(str(directory / "p.db"), bulk=True)
    bulk = BulkApplier(conn, cache=2)
    asyncio.run(fold_part(_as_batches(messages, cuts), bulk, 0, plan))
    bulk.mark()
    for path, totals, last in results:
        bulk.merge(path, totals, last)
    assert bulk.finish() == len(events)
    finish_bulk(conn)
    assert_matches_oracle(conn, events)
    live = apply_live(":memory:", events, cuts, [])
    assert rows_of(conn) == rows_of(live)
    live.close()
    conn.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=ledgers(),
    cuts=st.lists(st.integers(0, 40), max_size=5),
    parts=st.integers(2, 3),
)
def test_a_replay_split_by_activity_equals_naive_recomputation_and_live(events, cuts, parts):
    """The split replay's path in one process: each part folds its activities into a file of
    its own and sums their marks, and part 0 takes in their rows and sums
    (replay/partition.py). Marks every few sequences, so that each history has some."""
    with tempfile.TemporaryDirectory() as directory, pytest.MonkeyPatch.context() as patch:
        patch.setattr(marks, "MARK_EVERY", 3)
        check_split(Path(directory), events, cuts, parts)
